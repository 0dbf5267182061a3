"""Tests added for the mutants that survived tests/test_equations.py and tests/test_family_losses.py (#13).

Each test names the mutant it kills (see tests/mutation/REPORT.md). Expected values are
computed by hand or in NumPy from the equations, as in the other two files.
"""

import numpy as np
import keras
import tensorflow as tf

from test_family_losses import (LR, FixedDraws, ToyCritic, ToyGenerator, g_numpy, gp_numpy, m2, ngrad,
                                problem)
from tf_sparse_gen import build_model
from tf_sparse_gen.config import get_config


def test_andor_later_critic_updates_use_fresh_syntheses_and_the_generator_the_first():
    """Kills cooperative.py `z_hat if i == 0 else ...` -> `i >= 0` (n_critic = 2)."""
    config = get_config("andor", "tiny", {"data.dataset": "digits", "train.ema_decay": 0.0, "andor.n_critic": 2,
                                          "andor.langevin_steps": 0, "andor.critic_weight": 0.5})
    a = config.andor
    p = problem(3, 4, a.z_dim)
    model = build_model(config, 8)
    toy = ToyGenerator(0.8, p["c"], p["w"])
    toy.layer_names = list(model.generator.layer_names)
    toy.layer_stages = list(range(len(toy.layer_names)))
    model.generator = toy
    model.critic = ToyCritic(2.0, "toy_critic")
    model.compile(g_optimizer=keras.optimizers.SGD(LR), c_optimizer=keras.optimizers.SGD(LR))
    rng = p["rng"]
    z_hat, z_second = rng.normal(size=(4, a.z_dim)), rng.normal(size=(4, a.z_dim))
    eps1, eps2 = rng.uniform(size=(4, 1, 1, 1)), rng.uniform(size=(4, 1, 1, 1))
    model.random_normal = FixedDraws([z_hat, z_second])
    model.random_uniform = FixedDraws([eps1, eps2])
    y, c, w = p["images"], p["c"], p["w"]
    index = tf.constant([0, 1, 2, 3], tf.int64)
    z = model.latents.numpy()[:4]
    av = 2.0
    for zz, eps in ((z_hat, eps1), (z_second, eps2)):
        fakes = g_numpy(0.8, c, w, zz)
        av = av - LR * ngrad(lambda t: t * (m2(fakes).mean() - m2(y).mean()) + a.gp_weight * gp_numpy(t, y, fakes, eps),
                             av)
    recon = lambda t: np.mean((y - g_numpy(t, c, w, z)) ** 2) / (2 * a.sigma ** 2)  # noqa: E731
    term = lambda t: -av * m2(g_numpy(t, c, w, z_hat)).mean()  # noqa: E731
    expected = ngrad(recon, 0.8) + 0.5 * ngrad(term, 0.8)
    model.train_step((index, tf.constant(y, tf.float32)))
    assert model.random_normal.shapes == [[4, a.z_dim]] * 2
    np.testing.assert_allclose(model.critic.value, av, rtol=1e-5)
    np.testing.assert_allclose((0.8 - model.generator.value) / LR, expected, rtol=1e-5)


class RecordingToyGenerator(ToyGenerator):
    """The toy generator with exact zeros in half the pixels, recording activations only when asked."""

    def forward(self, z, training=None, record=False):
        out = ToyGenerator.forward(self, z)[0]
        return out, out, ([out] * len(self.layer_stages) if record else []), None


def _andor_with_langevin(overrides):
    base = {"data.dataset": "digits", "train.ema_decay": 0.0, "andor.n_critic": 1, "andor.langevin_steps": 2,
            "andor.critic_weight": 0.5, "andor.sigma": 0.5, "andor.delta": 0.2}
    base.update(overrides)
    config = get_config("andor", "tiny", base)
    a = config.andor
    p = problem(4, 4, a.z_dim)
    p["c"][:8] = 0.0                          # rows 0..7 of every image are exactly 0 in g(z)
    p["w"].reshape(a.z_dim, 16, 16)[:, :8] = 0.0
    model = build_model(config, 8)
    toy = RecordingToyGenerator(0.8, p["c"], p["w"])
    toy.layer_names = list(model.generator.layer_names)
    toy.layer_stages = list(range(len(toy.layer_names)))
    model.generator = toy
    model.critic = ToyCritic(2.0, "toy_critic") if a.ebm else None
    model.compile(g_optimizer=keras.optimizers.SGD(LR), c_optimizer=keras.optimizers.SGD(LR))
    return model, a, p


def test_andor_step_stores_the_langevin_latents_and_trains_g_on_them():
    """Kills mutants of the Langevin call in train_step (steps, seed, write-back, the finite check) and of
    the logged active fractions and gradient norms."""
    model, a, p = _andor_with_langevin({})
    rng = p["rng"]
    z_hat, eps = rng.normal(size=(4, a.z_dim)), rng.uniform(size=(4, 1, 1, 1))
    model.random_normal = FixedDraws([z_hat])
    model.random_uniform = FixedDraws([eps])
    seed = tf.constant([3, 4], tf.int32)
    model._draw_seed = lambda: seed
    y, c, w = p["images"], p["c"], p["w"]
    index = np.array([6, 1, 3, 0])
    lat0 = model.latents.numpy().copy()
    # Two Langevin steps (eq. 13) from the stored latents with the step's seeded noise, theta = 0.8.
    z = lat0[index]
    for t in range(2):
        resid = (y - g_numpy(0.8, c, w, z)).reshape(4, -1)
        grad = -(resid @ w.T) / a.sigma ** 2 + z
        z = z - 0.5 * a.delta ** 2 * grad + a.delta * tf.random.stateless_normal([4, a.z_dim], seed=[3, 4 + t]).numpy()
    fakes0 = g_numpy(0.8, c, w, z_hat)
    a1 = 2.0 - LR * ngrad(lambda t: t * (m2(fakes0).mean() - m2(y).mean()) + a.gp_weight * gp_numpy(t, y, fakes0, eps),
                          2.0)
    recon = lambda t: np.mean((y - g_numpy(t, c, w, z)) ** 2) / (2 * a.sigma ** 2)  # noqa: E731
    term = lambda t: -a1 * m2(g_numpy(t, c, w, z_hat)).mean()  # noqa: E731
    g_grad = ngrad(recon, 0.8) + 0.5 * ngrad(term, 0.8)
    c_grad = (2.0 - a1) / LR
    logs = model.train_step((tf.constant(index, tf.int64), tf.constant(y, tf.float32)))
    stored = model.latents.numpy()
    np.testing.assert_allclose(stored[index], z, rtol=1e-4, atol=1e-5)
    others = np.setdiff1d(np.arange(8), index)
    np.testing.assert_array_equal(stored[others], lat0[others])
    np.testing.assert_allclose((0.8 - model.generator.value) / LR, g_grad, rtol=1e-5)
    np.testing.assert_allclose(float(logs["g_grad_norm"]), abs(g_grad), rtol=1e-5)
    np.testing.assert_allclose(float(logs["c_grad_norm"]), abs(c_grad), rtol=1e-4)
    mse0 = np.mean((y - g_numpy(0.8, c, w, lat0[index])) ** 2) / 4
    np.testing.assert_allclose(float(logs["mse_before_langevin"]), mse0, rtol=1e-5)
    np.testing.assert_allclose(float(logs["mse_after_langevin"]), np.mean((y - g_numpy(0.8, c, w, z)) ** 2) / 4,
                               rtol=1e-5)
    # Active fraction: the share of strictly positive outputs of the reconstruction g(Z) (half are exactly 0).
    positive = np.mean(g_numpy(0.8, c, w, z) > 0)
    assert 0.1 < positive < 0.45
    for name in model.generator.layer_names:
        np.testing.assert_allclose(float(logs[f"active_{name}"]), positive, rtol=1e-5)


def test_andor_without_abp_logs_the_activations_of_the_syntheses():
    """Kills `record=not a.abp` -> `record=a.abp` (without ABP the syntheses' activations are logged)."""
    model, a, p = _andor_with_langevin({"andor.abp": False})
    rng = p["rng"]
    z_hat = rng.normal(size=(4, a.z_dim))
    model.random_normal = FixedDraws([z_hat])
    model.random_uniform = FixedDraws([rng.uniform(size=(4, 1, 1, 1))])
    logs = model.train_step((tf.range(4, dtype=tf.int64), tf.constant(p["images"], tf.float32)))
    positive = np.mean(g_numpy(0.8, p["c"], p["w"], z_hat) > 0)
    for name in model.generator.layer_names:
        np.testing.assert_allclose(float(logs[f"active_{name}"]), positive, rtol=1e-5)


class FlagRecordingCritic(ToyCritic):
    def __init__(self, *args):
        super().__init__(*args)
        self.flags = []

    def call(self, x, training=None):
        self.flags.append(training)
        return super().call(x)


def test_andor_critic_update_scores_real_and_synthesised_images_in_training_mode():
    """Kills `self.critic(images|fakes, training=True)` -> `training=False` in the critic update: under
    spectral normalisation (critic_reg = "sn") training mode is what runs the power iteration."""
    model, a, p = _andor_with_langevin({"andor.langevin_steps": 0})
    model.critic = FlagRecordingCritic(2.0, "toy_critic")
    model.compile(g_optimizer=keras.optimizers.SGD(LR), c_optimizer=keras.optimizers.SGD(LR))
    rng = p["rng"]
    model.random_normal = FixedDraws([rng.normal(size=(4, a.z_dim))])
    model.random_uniform = FixedDraws([rng.uniform(size=(4, 1, 1, 1))])
    model.train_step((tf.range(4, dtype=tf.int64), tf.constant(p["images"], tf.float32)))
    assert model.critic.flags[:2] == [True, True]

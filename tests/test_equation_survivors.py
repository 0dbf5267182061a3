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

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


# ----------------------------------------------------------------------------- spgan / selfexgan

from test_family_losses import ToyEncoder, ToyImageCritic, ToyPairCritic, _spgan  # noqa: E402


def _recording(cls):
    """A subclass of a toy network that records the `training` flag of every call (in `flags`)."""

    class Recording(cls):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.flags = []

        def call(self, x, training=None):
            self.flags.append(training)
            return cls.forward(self, x)[0] if hasattr(cls, "forward") else cls.call(self, x)

        def forward(self, z, training=None, record=False):
            self.flags.append(training)
            return cls.forward(self, z)
    return Recording


class SoftThresholdStub:
    @staticmethod
    def current_threshold():
        return tf.constant(0.25)


def test_spgan_step_logs_phase_means_codes_and_runs_each_network_in_its_mode():
    """Kills the `training=` flags of the four phases, the averaging of each log over its phases
    (`tf.add_n(v) / len(v)`) and the code statistics (`tf.equal(codes, 0.0)`)."""
    model, hp, p = _spgan({"spgan.n_critic": 2, "spgan.n_reconst": 1})
    y, c, w, proj = p["images"], p["c"], p["w"], p["proj"]
    model.generator = _recording(ToyGenerator)(0.8, c, w, codes=True)
    model.critic = _recording(ToyCritic)(2.0, "toy_critic")
    model.encoder = _recording(ToyEncoder)(0.6, proj)
    code_w = p["rng"].normal(size=(hp.z_dim, 16 * 16 * 2))
    code_w[:, ::3] = 0.0  # a third of the code entries are exactly 0

    def forward(z, training=None, record=False):
        model.generator.flags.append(training)
        out = ToyGenerator.forward(model.generator, z)[0]
        return out, tf.reshape(tf.matmul(z, tf.constant(code_w, tf.float32)), [-1, 16, 16, 2])
    model.generator.forward = forward
    model.generator.soft_threshold = SoftThresholdStub()
    model.compile(g_optimizer=keras.optimizers.SGD(LR), d_optimizer=keras.optimizers.SGD(LR),
                  e_optimizer=keras.optimizers.SGD(LR))
    rng = p["rng"]
    zs = [rng.normal(size=(4, hp.z_dim)) for _ in range(4)]
    epss = [rng.uniform(size=(4, 1, 1, 1)) for _ in range(2)]
    model.random_normal = FixedDraws(list(zs))
    model.random_uniform = FixedDraws(list(epss))
    a, d_losses, gps = 2.0, [], []
    for i in range(2):
        fakes = g_numpy(0.8, c, w, zs[i])
        loss = lambda t: t * (m2(fakes).mean() - m2(y).mean()) + 10.0 * gp_numpy(t, y, fakes, epss[i])  # noqa: E731
        d_losses.append(loss(a))
        gps.append(gp_numpy(a, y, fakes, epss[i]))
        a = a - LR * ngrad(loss, a)
    g_loss = -a * m2(g_numpy(0.8, c, w, zs[2])).mean()
    theta = 0.8 - LR * ngrad(lambda t: -a * m2(g_numpy(t, c, w, zs[2])).mean(), 0.8)
    gz = g_numpy(theta, c, w, zs[3]).reshape(4, -1)
    e_loss = lambda e: np.mean((e * gz @ proj - zs[3]) ** 2)  # noqa: E731
    e1 = 0.6 - LR * ngrad(e_loss, 0.6)
    zx = e1 * y.reshape(4, -1) @ proj
    logs = model.train_step((tf.range(4, dtype=tf.int64), tf.constant(y, tf.float32)))
    np.testing.assert_allclose(float(logs["d_loss"]), np.mean(d_losses), rtol=1e-5)
    np.testing.assert_allclose(float(logs["gradient_penalty"]), np.mean(gps), rtol=1e-5)
    np.testing.assert_allclose(float(logs["g_loss"]), g_loss, rtol=1e-5)
    np.testing.assert_allclose(float(logs["e_loss"]), e_loss(0.6), rtol=1e-5)
    np.testing.assert_allclose(float(logs["recon_loss"]), np.mean((y - g_numpy(theta, c, w, zx)) ** 2), rtol=1e-5)
    np.testing.assert_allclose(float(logs["code_zero_fraction"]), 1 / 3, rtol=1e-2)
    np.testing.assert_allclose(float(logs["threshold"]), 0.25)
    # G: critic step x2, generator step, encoder step (fixed), reconstruction step: all in training mode.
    assert model.generator.flags == [True] * 5
    assert model.critic.flags == [True] * 7  # 2 x (real, fake, x_hat), then the generator step
    # E is trained in training mode, and used in inference mode to reconstruct.
    assert model.encoder.flags == [True, False]
    # The divergence guard names each update "<phase loss>_<round>" (what last_nonfinite_name reports).
    assert model.check_names == ["d_loss_0", "d_loss_1", "g_loss_0", "e_loss_0", "recon_loss_0"]


def test_selexgan_step_runs_every_network_in_training_mode():
    """Kills the `training=True` -> `False` mutants of SelfExGAN's train_step (BatchNorm uses batch statistics)."""
    config = get_config("selfexgan", "tiny", {"data.dataset": "digits", "train.ema_decay": 0.0,
                                              "selfexgan.anchor_fraction": 1.0})
    model = build_model(config, 8, (16, 16, 1))
    d = model.hp.z_dim
    p = problem(5, 4, d)
    rng = p["rng"]
    model.encoder = _recording(ToyEncoder)(0.6, rng.normal(0, 0.2, size=(256, d)))
    model.generator = _recording(ToyGenerator)(0.8, p["c"], p["w"])
    model.d1 = _recording(ToyImageCritic)(1.5, "toy_d1")
    model.d2 = _recording(ToyPairCritic)(-0.7, rng.normal(size=d))
    opt = lambda: keras.optimizers.SGD(LR)  # noqa: E731
    model.compile(g_optimizer=opt(), e_optimizer=opt(), d1_optimizer=opt(), d2_optimizer=opt())
    model.train_step((tf.range(4, dtype=tf.int64), tf.constant(p["images"], tf.float32)))
    for net in (model.encoder, model.generator, model.d1, model.d2):
        assert net.flags and all(f is True for f in net.flags), (net.name, net.flags)


def test_abp_reconstruction_loss_refuses_every_other_reduction():
    """Kills `reduction == "mean"` -> `reduction <= "mean"` (strings sorting before "mean" were taken as it)."""
    import pytest

    from tf_sparse_gen import losses

    x = tf.zeros([1, 2, 2, 1])
    for bad in ("", "avg", "max", "MEAN", "batch", "none", "median", "total"):
        with pytest.raises(ValueError, match="reduction"):
            losses.abp_reconstruction_loss(x, x, 0.3, bad)


def test_reductions_given_as_strings_built_at_run_time():
    """Kills `==` -> `is` on the reduction names (a name read from config.json is not an interned literal)."""
    from tf_sparse_gen import losses

    mean, total = "".join(["me", "an"]), "".join(["s", "um"])
    assert mean is not "mean" and total is not "sum"  # noqa: F632 (the point of the test)
    y, g = tf.ones([2, 2, 1, 1]), tf.zeros([2, 2, 1, 1])
    # ||Y - g||^2 = 2 per image; sigma = 1: sum -> 2 / 2 = 1, mean -> 1 / D = 1/2.
    np.testing.assert_allclose(float(losses.abp_reconstruction_loss(y, g, 1.0, total)), 1.0, rtol=1e-6)
    np.testing.assert_allclose(float(losses.abp_reconstruction_loss(y, g, 1.0, mean)), 0.5, rtol=1e-6)
    for name, weight in ((total, 1.0), (mean, 1.0 / 256)):
        config = get_config("andor", "tiny", {"data.dataset": "digits", "andor.critic_weight": None,
                                              "andor.recon_reduction": name})
        assert build_model(config, 4).critic_weight == weight


# ----------------------------------------------------------------------------- stats

def test_stats_sqrtm_path_refuses_a_large_imaginary_part():
    """Kills `imag > 1e-3 * ...` -> `imag is ...` in frechet_distance(method="sqrtm"): a covariance that is
    not PSD makes sqrtm(S1 S2) complex (here sqrt(-1) = i), which must be an error, not a silent real part."""
    import pytest

    from tf_sparse_gen.metrics.stats import frechet_distance

    with pytest.raises(ValueError, match="imaginary"):
        frechet_distance([0.0, 0.0], np.diag([1.0, -1.0]), [0.0, 0.0], np.eye(2), method="sqrtm")


def test_stats_saved_feature_stats_never_unpickle(tmp_path):
    """Kills `np.load(path, allow_pickle=False)` -> `True` in FeatureStats.load: an npz holding a pickled
    object is refused rather than executed."""
    import pytest

    from tf_sparse_gen.metrics.stats import FeatureStats

    path = str(tmp_path / "bad.npz")
    np.savez(path, count=np.array(0), dim=np.array(0), keep_features=np.array(False),
             extra=np.array([{"not": "numbers"}], dtype=object))
    with pytest.raises(ValueError, match="allow_pickle"):
        FeatureStats.load(path)


def test_stats_fd_names_a_mean_shape_mismatch():
    """Kills `mu1.shape != mu2.shape` -> `>`: means of 2 and 3 dimensions with 2 x 2 covariances."""
    import pytest

    from tf_sparse_gen.metrics.stats import frechet_distance

    for mu1, mu2 in (([0.0, 0.0], [0.0, 0.0, 0.0]), ([0.0, 0.0, 0.0], [0.0, 0.0])):
        with pytest.raises(ValueError, match="shape mismatch"):
            frechet_distance(mu1, np.eye(2), mu2, np.eye(2))


# ----------------------------------------------------------------------------- selfexgan inputs / diagnostics

def _selfexgan_toys(overrides):
    config = get_config("selfexgan", "tiny", {"data.dataset": "digits", "train.ema_decay": 0.0, **overrides})
    model = build_model(config, 8, (16, 16, 1))
    d = model.hp.z_dim
    p = problem(6, 4, d)
    rng = p["rng"]
    p["proj"] = rng.normal(0, 0.2, size=(256, d))
    model.encoder = ToyEncoder(0.6, p["proj"])
    model.generator = ToyGenerator(0.8, p["c"], p["w"])
    model.d1 = ToyImageCritic(1.5, "toy_d1")
    if model.d2 is not None:
        model.d2 = ToyPairCritic(-0.7, rng.normal(size=d))
    opt = lambda: keras.optimizers.SGD(LR)  # noqa: E731
    model.compile(g_optimizer=opt(), e_optimizer=opt(), d1_optimizer=opt(), d2_optimizer=opt())
    return model, d, p


def test_selfexgan_without_anchors_logs_the_reconstruction_mse_of_g_of_e_on_the_01_scale():
    """Kills the `/ 4.0` of the anchor-free branch of recon_mse (anchor_fraction = 0)."""
    model, d, p = _selfexgan_toys({"selfexgan.anchor_fraction": 0.0, "selfexgan.d2": False})
    model.random_normal = FixedDraws([p["rng"].normal(size=(4, d))])
    y = p["images"]
    logs = model.train_step((tf.range(4, dtype=tf.int64), tf.constant(y, tf.float32)))
    codes = 0.6 * y.reshape(4, -1) @ p["proj"]  # E before its update (the codes of the G/E step)
    recon = g_numpy(model.generator.value, p["c"], p["w"], codes)  # G after its update
    np.testing.assert_allclose(float(logs["recon_mse"]), np.mean((y - recon) ** 2) / 4, rtol=1e-5)


def test_stats_shape_checks_name_the_problem():
    """Kills `sigma1.shape != sigma2.shape` -> `<` (a larger first covariance) and `f1.ndim != 2` -> `< 2`
    (3-D features) in FD and KID: the code's own error, not a later NumPy one."""
    import pytest

    from tf_sparse_gen.metrics.stats import frechet_distance, kernel_inception_distance

    with pytest.raises(ValueError, match="shape mismatch"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(2))
    with pytest.raises(ValueError, match="same D"):
        kernel_inception_distance(np.zeros((5, 2, 1)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="same D"):
        kernel_inception_distance(np.zeros((5, 2)), np.zeros((5, 2, 1)))


def test_layers_patch_decoder_refuses_a_dictionary_of_another_shape_itself():
    """Kills `tuple(atoms.shape) != tuple(self.dictionary.shape)` -> `is` (TensorFlow's own assign error
    also mentions a shape; the decoder's names both)."""
    import pytest

    from tf_sparse_gen.layers import PatchDictionaryDecoder

    dec = PatchDictionaryDecoder(num_atoms=2, patch_size=3, channels=1)
    with pytest.raises(ValueError, match=r"dictionary shape \(3, 9\) != expected \(2, 9\)"):
        dec.set_dictionary(np.zeros((3, 9), np.float32))

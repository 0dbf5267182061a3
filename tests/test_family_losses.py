"""The full generator / critic / encoder losses of each family's train_step, on toy networks (#13).

Each family's networks are replaced by toy Keras layers with one parameter each (a
scale), whose losses can be written down in NumPy from the equations of METHODS.md.
One SGD(lr) step of train_step (or of a phase) must move every parameter by exactly
-lr * the gradient of that equation, which pins the sign of every term, its weight
and its reduction. The gradients of the NumPy losses are central differences in
float64, independent of TensorFlow. Randomness (z, eps) is replaced by fixed draws,
and the shapes of the draws the step asks for are checked (eps: one U[0, 1] per example).
"""

import numpy as np
import pytest
import keras
import tensorflow as tf

from tf_sparse_gen.config import get_config
from tf_sparse_gen.families import build_model

LR = 0.5
SHAPE = (16, 16, 1)
D = 256


def ngrad(f, p, h=1e-5):
    return (f(p + h) - f(p - h)) / (2 * h)


def softplus(t):
    return np.logaddexp(0.0, t)


def m2(x):
    """Per-image mean of squares: the toy critic's feature."""
    return np.mean(x.reshape(len(x), -1) ** 2, axis=1)


def gp_numpy(a, real, fake, eps):
    """lambda-free WGAN-GP penalty of the toy critic f(x) = a * mean(x^2): grad = 2 a x_hat / D."""
    x_hat = eps * real + (1 - eps) * fake
    sq = (2 * a / D) ** 2 * np.sum(x_hat.reshape(len(x_hat), -1) ** 2, axis=1)
    return np.mean((np.sqrt(sq + 1e-10) - 1) ** 2)


class Scale(keras.layers.Layer):
    def __init__(self, value, name):
        super().__init__(name=name)
        self.p = self.add_weight(shape=(), initializer=keras.initializers.Constant(value), name=name + "_p")

    @property
    def value(self):
        return float(self.p.numpy())


class ToyCritic(Scale):
    """f(x) = a * mean_p(x^2) per example, [B, 1]. Non-linear in x, so the penalty depends on eps."""

    def call(self, x, training=None):
        return self.p * tf.reduce_mean(tf.square(x), axis=[1, 2, 3])[:, None]


class ToyGenerator(Scale):
    """g(z) = theta * c + reshape(z W): one trainable parameter theta; W, c fixed."""

    layer_names = ["toy"]
    layer_stages = [0]

    def __init__(self, value, c, w, codes=False):
        super().__init__(value, "toy_generator")
        self.c, self.w, self.codes = tf.constant(c, tf.float32), tf.constant(w, tf.float32), codes

    def forward(self, z, training=None, record=False):
        out = self.p * self.c + tf.reshape(tf.matmul(tf.cast(z, tf.float32), self.w), [-1, *SHAPE])
        if self.codes:  # the Sparse GAN's (images, codes)
            return out, None
        return out, out, [out] * len(self.layer_stages), None

    def call(self, z, training=None):
        return self.forward(z)[0]


class ToyEncoder(Scale):
    """E(x) = e * flatten(x) P, P fixed."""

    def __init__(self, value, proj):
        super().__init__(value, "toy_encoder")
        self.proj = tf.constant(proj, tf.float32)

    def call(self, x, training=None):
        return self.p * tf.matmul(tf.reshape(tf.cast(x, tf.float32), [tf.shape(x)[0], -1]), self.proj)


class ToyPairCritic(Scale):
    """D2(x, z) = a * (mean_p(x) + z . r), r fixed."""

    def __init__(self, value, r):
        super().__init__(value, "toy_d2")
        self.r = tf.constant(r, tf.float32)

    def call(self, inputs, training=None):
        x, z = inputs
        return self.p * (tf.reduce_mean(x, axis=[1, 2, 3]) + tf.linalg.matvec(z, self.r))[:, None]


class ToyImageCritic(Scale):
    """D1(x) = a * mean_p(x) (a logit)."""

    def call(self, x, training=None):
        return self.p * tf.reduce_mean(x, axis=[1, 2, 3])[:, None]


class FixedDraws:
    """Stands in for model.random_normal / random_uniform: hands out prepared arrays, records shapes."""

    def __init__(self, arrays):
        self.arrays, self.shapes = list(arrays), []

    def __call__(self, shape):
        self.shapes.append([int(s) for s in shape])
        out = self.arrays.pop(0)
        assert list(out.shape) == self.shapes[-1], (out.shape, shape)
        return tf.constant(out, tf.float32)


def problem(seed, batch, z_dim):
    rng = np.random.default_rng(seed)
    return dict(images=rng.uniform(-1, 1, size=(batch, *SHAPE)), c=rng.uniform(-0.5, 0.5, size=SHAPE),
                w=rng.normal(0, 0.05, size=(z_dim, D)), rng=rng)


def g_numpy(theta, c, w, z):
    return theta * c + (z @ w).reshape(-1, *SHAPE)


# ----------------------------------------------------------------------------- andor

def _andor(overrides, batch=4):
    base = {"data.dataset": "digits", "train.ema_decay": 0.0, "andor.n_critic": 1, "andor.langevin_steps": 0,
            "andor.sigma": 0.3, "andor.gp_weight": 10.0}
    base.update(overrides)
    config = get_config("andor", "tiny", base)
    a = config.andor
    p = problem(0, batch, a.z_dim)
    model = build_model(config, 8)
    toy = ToyGenerator(0.8, p["c"], p["w"])
    # The step logs one active fraction per sparse layer of the real generator.
    toy.layer_names = list(model.generator.layer_names)
    toy.layer_stages = list(range(len(toy.layer_names)))
    model.generator = toy
    if a.ebm:
        model.critic = ToyCritic(2.0, "toy_critic")
    model.compile(g_optimizer=keras.optimizers.SGD(LR), c_optimizer=keras.optimizers.SGD(LR))
    z_hat = p["rng"].normal(size=(batch, a.z_dim))
    eps = np.array([0.1, 0.9, 0.5, 0.3][:batch]).reshape(batch, 1, 1, 1)
    model.random_normal = FixedDraws([z_hat])
    model.random_uniform = FixedDraws([eps] if a.ebm and a.critic_reg == "gp" else [])
    return model, config, p, z_hat, eps


@pytest.mark.parametrize("overrides", [
    {"andor.recon_reduction": "mean", "andor.critic_weight": 0.5},
    {"andor.recon_reduction": "sum", "andor.critic_weight": None},   # eq. 22's own weight: 1
    {"andor.recon_reduction": "mean", "andor.critic_weight": None},  # 1 / D
    {"andor.recon_reduction": "sum", "andor.critic_weight": 5.0, "andor.critic_reg": "none"},
])
def test_andor_step_is_critic_eqs_20_21_then_generator_eq_15_plus_weighted_eq_22(overrides):
    model, config, p, z_hat, eps = _andor(overrides)
    a = config.andor
    index = tf.constant([5, 0, 2, 7], tf.int64)
    y = p["images"]
    z = model.latents.numpy()[index.numpy()]  # langevin_steps = 0: the stored latents
    theta0, a0 = 0.8, 2.0
    gp_w = a.gp_weight if a.critic_reg == "gp" else 0.0
    fakes0 = g_numpy(theta0, p["c"], p["w"], z_hat)

    # 1. critic: L_C(a) = mean f(Y_hat) - mean f(Y) + lambda * GP, f = a * mean(x^2)
    def critic_loss(av):
        return av * m2(fakes0).mean() - av * m2(y).mean() + gp_w * gp_numpy(av, y, fakes0, eps)
    a1 = a0 - LR * ngrad(critic_loss, a0)

    # 3. generator: ||Y - g(Z)||^2 / (2 sigma^2) averaged over the batch (/ D for "mean")
    #    + w * (-mean f(g(Z_hat))) with the updated critic.
    w = a.critic_weight if a.critic_weight is not None else (1.0 if a.recon_reduction == "sum" else 1.0 / D)
    scale = 1.0 / D if a.recon_reduction == "mean" else 1.0

    def recon_loss(t):
        return np.mean(np.sum((y - g_numpy(t, p["c"], p["w"], z)).reshape(4, -1) ** 2, axis=1)) * scale / (
            2 * a.sigma ** 2)

    def critic_term(t):
        return -a1 * m2(g_numpy(t, p["c"], p["w"], z_hat)).mean()

    g_recon, g_critic = ngrad(recon_loss, theta0), w * ngrad(critic_term, theta0)
    assert abs(g_critic) > 1e-3 * abs(g_recon)  # the critic term is visible in the step
    logs = model.train_step((index, tf.constant(y, tf.float32)))
    assert model.random_uniform.shapes == ([[4, 1, 1, 1]] if gp_w else [])  # one eps per example
    assert model.random_normal.shapes == [[4, a.z_dim]]
    np.testing.assert_allclose(model.critic.value, a1, rtol=1e-5)
    measured = (theta0 - model.generator.value) / LR
    np.testing.assert_allclose(measured, g_recon + g_critic, rtol=1e-5, atol=1e-4 * abs(g_critic))
    np.testing.assert_allclose(float(logs["critic_loss"]), critic_loss(a0), rtol=1e-5)
    np.testing.assert_allclose(float(logs["recon_loss"]), recon_loss(theta0), rtol=1e-5)
    np.testing.assert_allclose(float(logs["gen_critic_term"]), critic_term(theta0), rtol=1e-5)
    np.testing.assert_allclose(float(logs["critic_real"]), a0 * m2(y).mean(), rtol=1e-5)
    np.testing.assert_allclose(float(logs["critic_fake"]), a0 * m2(fakes0).mean(), rtol=1e-5)
    if gp_w:
        np.testing.assert_allclose(float(logs["gradient_penalty"]), gp_numpy(a0, y, fakes0, eps), rtol=1e-5)


def test_andor_without_abp_trains_the_generator_by_the_critic_alone():
    model, config, p, z_hat, eps = _andor({"andor.abp": False, "andor.critic_weight": 0.7})
    y = p["images"]
    theta0, a0 = 0.8, 2.0
    fakes0 = g_numpy(theta0, p["c"], p["w"], z_hat)
    a1 = a0 - LR * ngrad(lambda av: av * (m2(fakes0).mean() - m2(y).mean()) + 10.0 * gp_numpy(av, y, fakes0, eps),
                         a0)
    expected = 0.7 * ngrad(lambda t: -a1 * m2(g_numpy(t, p["c"], p["w"], z_hat)).mean(), theta0)
    lat0 = model.latents.numpy().copy()
    model.train_step((tf.constant([0, 1, 2, 3], tf.int64), tf.constant(y, tf.float32)))
    np.testing.assert_allclose(model.critic.value, a1, rtol=1e-5)
    np.testing.assert_allclose((theta0 - model.generator.value) / LR, expected, rtol=1e-5)
    np.testing.assert_array_equal(model.latents.numpy(), lat0)  # no inference without ABP


def test_andor_without_critic_is_plain_abp():
    model, config, p, z_hat, _ = _andor({"andor.ebm": False, "andor.recon_reduction": "sum"})
    assert model.critic is None
    y = p["images"]
    index = tf.constant([1, 3, 4, 6], tf.int64)
    z = model.latents.numpy()[index.numpy()]
    expected = ngrad(lambda t: np.mean(np.sum((y - g_numpy(t, p["c"], p["w"], z)).reshape(4, -1) ** 2, axis=1))
                     / (2 * 0.3 ** 2), 0.8)
    model.train_step((index, tf.constant(y, tf.float32)))
    np.testing.assert_allclose((0.8 - model.generator.value) / LR, expected, rtol=1e-5)


# ----------------------------------------------------------------------------- spgan

def _spgan(overrides=None, batch=4):
    base = {"data.dataset": "digits", "train.ema_decay": 0.0, "spgan.gp_weight": 10.0, "spgan.recon_weight": 2.5}
    base.update(overrides or {})
    config = get_config("spgan", "tiny", base)
    hp = config.spgan
    p = problem(1, batch, hp.z_dim)
    p["proj"] = p["rng"].normal(0, 0.1, size=(D, hp.z_dim))
    model = build_model(config, 8)
    model.generator = ToyGenerator(0.8, p["c"], p["w"], codes=True)
    model.critic = ToyCritic(2.0, "toy_critic")
    model.encoder = ToyEncoder(0.6, p["proj"])
    model.compile(g_optimizer=keras.optimizers.SGD(LR), d_optimizer=keras.optimizers.SGD(LR),
                  e_optimizer=keras.optimizers.SGD(LR))
    return model, hp, p


def test_spgan_phases_are_eq_4_and_eq_6_with_their_signs_and_weights():
    model, hp, p = _spgan()
    y, c, w, proj = p["images"], p["c"], p["w"], p["proj"]
    rng = p["rng"]
    z1, z2, z3 = (rng.normal(size=(4, hp.z_dim)) for _ in range(3))
    eps = np.array([0.2, 0.6, 0.95, 0.05]).reshape(4, 1, 1, 1)
    model.random_normal = FixedDraws([z1, z2, z3])
    model.random_uniform = FixedDraws([eps])
    images = tf.constant(y, tf.float32)

    # Critic: L_D = E[D(G(z))] - E[D(x)] + lambda * GP
    fakes = g_numpy(0.8, c, w, z1)
    d_loss = lambda av: av * (m2(fakes).mean() - m2(y).mean()) + 10.0 * gp_numpy(av, y, fakes, eps)  # noqa: E731
    out = model.critic_step(images)
    assert model.random_uniform.shapes == [[4, 1, 1, 1]]
    a1 = 2.0 - LR * ngrad(d_loss, 2.0)
    np.testing.assert_allclose(model.critic.value, a1, rtol=1e-5)
    np.testing.assert_allclose(float(out["d_loss"]), d_loss(2.0), rtol=1e-5)
    np.testing.assert_allclose(float(out["wasserstein"]), 2.0 * (m2(y).mean() - m2(fakes).mean()), rtol=1e-5)
    np.testing.assert_allclose(float(out["gradient_penalty"]), gp_numpy(2.0, y, fakes, eps), rtol=1e-5)
    np.testing.assert_allclose(float(out["d_real"]), 2.0 * m2(y).mean(), rtol=1e-5)
    np.testing.assert_allclose(float(out["d_fake"]), 2.0 * m2(fakes).mean(), rtol=1e-5)

    # Generator: L_G = -E[D(G(z))]
    g_loss = lambda t: -a1 * m2(g_numpy(t, c, w, z2)).mean()  # noqa: E731
    out = model.generator_step(4)
    theta1 = 0.8 - LR * ngrad(g_loss, 0.8)
    np.testing.assert_allclose(model.generator.value, theta1, rtol=1e-5)
    np.testing.assert_allclose(float(out["g_loss"]), g_loss(0.8), rtol=1e-5)

    # Encoder: mean((E(G(z)) - z)^2), G fixed
    gz = g_numpy(theta1, c, w, z3).reshape(4, -1)
    e_loss = lambda e: np.mean((e * gz @ proj - z3) ** 2)  # noqa: E731
    out = model.encoder_step(4)
    e1 = 0.6 - LR * ngrad(e_loss, 0.6)
    np.testing.assert_allclose(model.encoder.value, e1, rtol=1e-5)
    np.testing.assert_allclose(float(out["e_loss"]), e_loss(0.6), rtol=1e-5)
    np.testing.assert_allclose(model.generator.value, theta1, rtol=1e-6)  # G untouched by the encoder step

    # Reconstruction: recon_weight * mean((x - G(E(x)))^2), E fixed; logged: the MSE itself.
    zx = e1 * y.reshape(4, -1) @ proj
    mse = lambda t: np.mean((y - g_numpy(t, c, w, zx)) ** 2)  # noqa: E731
    out = model.reconstruction_step(images)
    np.testing.assert_allclose(model.generator.value, theta1 - LR * 2.5 * ngrad(mse, theta1), rtol=1e-5)
    np.testing.assert_allclose(float(out["recon_loss"]), mse(theta1), rtol=1e-5)
    np.testing.assert_allclose(model.encoder.value, e1, rtol=1e-6)


def test_spgan_train_step_chains_n_critic_critic_steps_one_generator_step_and_n_reconst_rounds():
    model, hp, p = _spgan({"spgan.n_critic": 2, "spgan.n_reconst": 1})
    y, c, w, proj = p["images"], p["c"], p["w"], p["proj"]
    rng = p["rng"]
    zs = [rng.normal(size=(4, hp.z_dim)) for _ in range(4)]
    epss = [rng.uniform(size=(4, 1, 1, 1)) for _ in range(2)]
    model.random_normal = FixedDraws(list(zs))
    model.random_uniform = FixedDraws(list(epss))
    a, theta, e = 2.0, 0.8, 0.6
    for i in range(2):
        fakes = g_numpy(theta, c, w, zs[i])
        a = a - LR * ngrad(lambda av: av * (m2(fakes).mean() - m2(y).mean()) + 10.0 * gp_numpy(av, y, fakes, epss[i]),
                           a)
    theta = theta - LR * ngrad(lambda t: -a * m2(g_numpy(t, c, w, zs[2])).mean(), theta)
    gz = g_numpy(theta, c, w, zs[3]).reshape(4, -1)
    e = e - LR * ngrad(lambda ev: np.mean((ev * gz @ proj - zs[3]) ** 2), e)
    zx = e * y.reshape(4, -1) @ proj
    theta = theta - LR * 2.5 * ngrad(lambda t: np.mean((y - g_numpy(t, c, w, zx)) ** 2), theta)
    model.train_step((tf.range(4, dtype=tf.int64), tf.constant(y, tf.float32)))
    assert model.random_uniform.shapes == [[4, 1, 1, 1]] * 2
    np.testing.assert_allclose([model.critic.value, model.generator.value, model.encoder.value], [a, theta, e],
                               rtol=1e-5)


# ----------------------------------------------------------------------------- selfexgan

def test_selfexgan_step_d1_d2_then_g_and_e_with_the_bigan_signs_and_the_kl_term():
    config = get_config("selfexgan", "tiny", {"data.dataset": "digits", "train.ema_decay": 0.0,
                                              "selfexgan.anchor_fraction": 1.0, "selfexgan.kl_weight": 0.7})
    hp = config.selfexgan
    model = build_model(config, 8, SHAPE)
    d = model.hp.z_dim
    p = problem(2, 4, d)
    rng = p["rng"]
    y, c, w = p["images"], p["c"], p["w"]
    proj = rng.normal(0, 0.2, size=(D, d))
    r = rng.normal(0, 1.0, size=d)
    model.encoder = ToyEncoder(0.6, proj)
    model.generator = ToyGenerator(0.8, c, w)
    model.d1 = ToyImageCritic(1.5, "toy_d1")
    model.d2 = ToyPairCritic(-0.7, r)
    opt = lambda: keras.optimizers.SGD(LR)  # noqa: E731
    model.compile(g_optimizer=opt(), e_optimizer=opt(), d1_optimizer=opt(), d2_optimizer=opt())

    mean_x = lambda x: x.reshape(len(x), -1).mean(axis=1)  # noqa: E731
    enc = lambda e: e * y.reshape(4, -1) @ proj  # noqa: E731
    z_g = enc(0.6)  # every input an anchor: G's inputs are E(x)
    fakes = g_numpy(0.8, c, w, z_g)
    d2_logit = lambda av, x, z: av * (mean_x(x) + z @ r)  # noqa: E731

    # D1: -E log D1(x) - E log(1 - D1(G(z))), D1 = sigmoid(a1 * mean x)
    d1_loss = lambda av: np.mean(softplus(-av * mean_x(y))) + np.mean(softplus(av * mean_x(fakes)))  # noqa: E731
    a1 = 1.5 - LR * ngrad(d1_loss, 1.5)
    # D2: real pairs (x, E(x)), fake pairs (G(z), z)
    d2_loss = lambda av: (np.mean(softplus(-d2_logit(av, y, z_g)))  # noqa: E731
                          + np.mean(softplus(d2_logit(av, fakes, z_g))))
    a2 = -0.7 - LR * ngrad(d2_loss, -0.7)

    # G: -E log D1(G(z)) - E log D2(G(z), z), against the updated critics
    def g_loss(t):
        f = g_numpy(t, c, w, z_g)
        return np.mean(softplus(-a1 * mean_x(f))) + np.mean(softplus(-d2_logit(a2, f, z_g)))

    # E: -E log(1 - D2(x, E(x))) + kl_weight * KL(batch statistics of E(x))
    def kl(z):
        mu, var = z.mean(axis=0), z.var(axis=0)
        return np.mean(0.5 * (var + mu ** 2) - 0.5 * np.log(var + 1e-8) - 0.5)

    def e_loss(e):
        return np.mean(softplus(d2_logit(a2, y, enc(e)))) + 0.7 * kl(enc(e))

    logs = model.train_step((tf.range(4, dtype=tf.int64), tf.constant(y, tf.float32)))
    np.testing.assert_allclose(model.d1.value, a1, rtol=1e-5)
    np.testing.assert_allclose(model.d2.value, a2, rtol=1e-5)
    np.testing.assert_allclose(model.generator.value, 0.8 - LR * ngrad(g_loss, 0.8), rtol=1e-5)
    np.testing.assert_allclose(model.encoder.value, 0.6 - LR * ngrad(e_loss, 0.6), rtol=1e-5)
    np.testing.assert_allclose(float(logs["d1_loss"]), d1_loss(1.5), rtol=1e-5)
    np.testing.assert_allclose(float(logs["d2_loss"]), d2_loss(-0.7), rtol=1e-5)
    np.testing.assert_allclose(float(logs["g_loss"]), g_loss(0.8), rtol=1e-5)
    np.testing.assert_allclose(float(logs["e_loss"]), e_loss(0.6), rtol=1e-5)
    np.testing.assert_allclose(float(logs["kl"]), kl(enc(0.6)), rtol=1e-5)
    np.testing.assert_allclose(float(logs["recon_mse"]), np.mean((y - fakes) ** 2) / 4, rtol=1e-5)
    sig = lambda t: 1 / (1 + np.exp(-t))  # noqa: E731
    np.testing.assert_allclose(float(logs["d1_real"]), np.mean(sig(1.5 * mean_x(y))), rtol=1e-5)
    np.testing.assert_allclose(float(logs["d1_fake"]), np.mean(sig(1.5 * mean_x(fakes))), rtol=1e-5)
    np.testing.assert_allclose(float(logs["d2_real"]), np.mean(sig(d2_logit(-0.7, y, z_g))), rtol=1e-5)
    np.testing.assert_allclose(float(logs["d2_fake"]), np.mean(sig(d2_logit(-0.7, fakes, z_g))), rtol=1e-5)
    np.testing.assert_allclose(float(logs["latent_norm"]), np.mean(np.linalg.norm(z_g, axis=1)), rtol=1e-5)
    assert hp.d2

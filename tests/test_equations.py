"""Exact values of the equations: every loss, one Langevin step, the gradient penalty, KL, evaluation MSE.

Every expected value is computed by hand or by an independent NumPy float64 formula
written here from the equation in the docstring / METHODS.md, never from the code's
own output. Issue #13: these tests must fail when an equation is wrong (a flipped
sign, delta x3, a reconstruction term x3, eps from the wrong distribution or shape).
"""

import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_sparse_gen import losses


def softplus(t):
    return np.logaddexp(0.0, np.asarray(t, np.float64))


def close(got, expected, rtol=1e-6, atol=1e-7):
    np.testing.assert_allclose(np.asarray(got, np.float64), expected, rtol=rtol, atol=atol)


# ----------------------------------------------------------------------------- Wasserstein losses

def test_wasserstein_discriminator_loss_is_fake_mean_minus_real_mean():
    real = tf.constant([[1.0], [3.0]])         # mean 2
    fake = tf.constant([[-1.0], [0.5], [2.0]])  # mean 0.5
    close(losses.wasserstein_discriminator_loss(real, fake), 0.5 - 2.0)
    # Not symmetric: swapping the roles flips the sign.
    close(losses.wasserstein_discriminator_loss(fake, real), 2.0 - 0.5)


def test_wasserstein_generator_loss_is_minus_the_fake_mean():
    close(losses.wasserstein_generator_loss(tf.constant([[1.0], [2.0], [6.0]])), -3.0)
    close(losses.wasserstein_generator_loss(tf.constant([-4.0, 2.0])), 1.0)


def test_losses_reduce_in_float32_for_half_inputs():
    out = losses.wasserstein_generator_loss(tf.constant([1.0, 2.0], tf.float16))
    assert out.dtype == tf.float32
    close(out, -1.5)


# ----------------------------------------------------------------------------- gradient penalty

def _quadratic_critic(a):
    """f(x) = sum_p a_p x_p^2 per example: grad = 2 a * x, which depends on where x_hat lies (on eps)."""
    a_t = tf.constant(a, tf.float32)

    def critic(x):
        return tf.reduce_sum(a_t * tf.square(x), axis=[1, 2, 3])[:, None]
    return critic


def _gp_reference(a, real, fake, eps):
    x_hat = eps * real + (1.0 - eps) * fake
    g = 2.0 * a * x_hat
    norm = np.sqrt(np.sum(g ** 2, axis=(1, 2, 3)) + 1e-10)
    return np.mean((norm - 1.0) ** 2)


def test_gradient_penalty_of_a_nonlinear_critic_depends_on_eps_per_example():
    rng = np.random.default_rng(0)
    shape = (3, 2, 2, 1)
    a = rng.uniform(0.2, 1.0, size=shape[1:])
    real, fake = rng.uniform(-1, 1, size=shape), rng.uniform(-1, 1, size=shape)
    eps = np.array([0.1, 0.7, 0.35]).reshape(3, 1, 1, 1)
    args = [tf.constant(v, tf.float32) for v in (real, fake, eps)]
    got = float(losses.wasserstein_gradient_penalty(_quadratic_critic(a), *args))
    expected = _gp_reference(a, real, fake, eps)
    close(got, expected, rtol=1e-5)
    # The penalty really depends on eps here (a linear critic's would not): other eps, other value.
    for other in (1.0 - eps, eps[::-1], np.full_like(eps, eps.mean())):
        assert abs(_gp_reference(a, real, fake, other) - expected) > 1e-3
    # Hand case: one example, one pixel, f = x^2, x = 1, G(z) = 0, eps = 0.25:
    # x_hat = 0.25, grad = 0.5, penalty = (0.5 - 1)^2 = 0.25.
    one = lambda v: tf.constant(v, tf.float32, shape=[1, 1, 1, 1])  # noqa: E731
    close(losses.wasserstein_gradient_penalty(_quadratic_critic(np.ones((1, 1, 1))), one(1.0), one(0.0),
                                              one(0.25)), 0.25, rtol=1e-5)


def test_gradient_penalty_is_finite_and_one_at_a_constant_critic():
    x = tf.zeros([2, 2, 2, 1])
    gp = losses.wasserstein_gradient_penalty(lambda v: tf.reduce_sum(0.0 * v, axis=[1, 2, 3]), x, x,
                                             tf.fill([2, 1, 1, 1], 0.5))
    close(gp, (np.sqrt(1e-10) - 1.0) ** 2, rtol=1e-5)


# ----------------------------------------------------------------------------- ABP reconstruction

def test_abp_reconstruction_loss_sum_and_mean_by_hand():
    # B = 2 images of D = 2 x 1 x 2 = 4 pixels.
    y = np.zeros((2, 2, 1, 2))
    g = np.zeros((2, 2, 1, 2))
    y[0, 0, 0, 0], g[0, 1, 0, 1] = 1.0, -1.0   # image 0: squared error 1 + 1 = 2
    y[1] = 0.5                                   # image 1: 4 * 0.25 = 1
    sigma = 0.5                                  # 2 sigma^2 = 0.5
    y_t, g_t = tf.constant(y, tf.float32), tf.constant(g, tf.float32)
    # sum: (1/B) sum_i ||Y_i - g_i||^2 / (2 sigma^2) = ((2 + 1) / 2) / 0.5 = 3
    close(losses.abp_reconstruction_loss(y_t, g_t, sigma, "sum"), 3.0)
    # mean: the same / D = 3 / 4
    close(losses.abp_reconstruction_loss(y_t, g_t, sigma, "mean"), 0.75)
    close(losses.abp_reconstruction_loss(y_t, g_t, sigma), 0.75)  # the default is "mean"
    close(losses.abp_reconstruction_loss(y_t, g_t, 1.0, "sum"), 0.75)
    with pytest.raises(ValueError, match="reduction"):
        losses.abp_reconstruction_loss(y_t, g_t, sigma, "median")


def test_abp_reconstruction_loss_matches_numpy_on_random_data():
    rng = np.random.default_rng(1)
    y, g = rng.normal(size=(3, 4, 5, 2)), rng.normal(size=(3, 4, 5, 2))
    sigma = 0.3
    per_image = ((y - g) ** 2).reshape(3, -1).sum(axis=1) / (2 * sigma ** 2)
    args = (tf.constant(y, tf.float32), tf.constant(g, tf.float32), sigma)
    close(losses.abp_reconstruction_loss(*args, reduction="sum"), per_image.mean(), rtol=1e-5)
    close(losses.abp_reconstruction_loss(*args, reduction="mean"), per_image.mean() / 40, rtol=1e-5)


def test_langevin_energy_by_hand():
    y = np.zeros((2, 1, 1, 2))
    g = np.zeros((2, 1, 1, 2))
    y[0] = 1.0                                        # ||Y - g||^2 = 2
    g[1, 0, 0, 1] = 2.0                               # ||Y - g||^2 = 4
    z = np.array([[1.0, 2.0, 0.0], [0.0, 0.0, 3.0]])  # ||z||^2 = 5, 9
    sigma = 0.5                                       # 2 sigma^2 = 0.5
    got = losses.langevin_energy(*(tf.constant(v, tf.float32) for v in (y, g, z)), sigma)
    close(got, [2 / 0.5 + 2.5, 4 / 0.5 + 4.5])


# ----------------------------------------------------------------------------- minimax / KL

def test_minimax_losses_by_hand():
    real, fake = np.array([0.0, 2.0, -1.0]), np.array([1.0, -3.0])
    # -log sigmoid(0) = log 2
    close(losses.minimax_generator_loss(tf.constant([0.0])), np.log(2.0))
    close(losses.minimax_discriminator_loss(tf.constant([0.0]), tf.constant([0.0])), 2 * np.log(2.0))
    # -E log D(x) - E log(1 - D(G(z))), D = sigmoid, computed from the probabilities.
    sig = lambda t: 1.0 / (1.0 + np.exp(-t))  # noqa: E731
    expected_d = -np.mean(np.log(sig(real))) - np.mean(np.log(1.0 - sig(fake)))
    close(losses.minimax_discriminator_loss(tf.constant(real, tf.float32), tf.constant(fake, tf.float32)),
          expected_d, rtol=1e-5)
    close(losses.minimax_generator_loss(tf.constant(fake, tf.float32)), -np.mean(np.log(sig(fake))), rtol=1e-5)
    # The discriminator is low when real logits are high and fake ones low, not the other way round.
    good = losses.minimax_discriminator_loss(tf.constant([5.0]), tf.constant([-5.0]))
    bad = losses.minimax_discriminator_loss(tf.constant([-5.0]), tf.constant([5.0]))
    close(good, 2 * softplus(-5.0), rtol=1e-5)
    close(bad, 2 * softplus(5.0), rtol=1e-5)


def test_batch_kl_by_hand_and_against_numpy():
    # One dimension with values {0, 2}: mu = 1, population var = 1 -> (1 + 1)/2 - 0 - 1/2 = 0.5.
    # Another with {-1, 1}: mu = 0, var = 1 -> 0.  Mean over the 2 dimensions: 0.25.
    z = tf.constant([[0.0, -1.0], [2.0, 1.0]])
    close(losses.batch_kl_to_standard_normal(z), 0.25, rtol=1e-6)
    # {0, 4}: mu = 2, var = 4 -> (4 + 4)/2 - log 2 - 1/2
    close(losses.batch_kl_to_standard_normal(tf.constant([[0.0], [4.0]])), 3.5 - np.log(2.0), rtol=1e-6)
    rng = np.random.default_rng(2)
    x = rng.normal(0.3, 1.7, size=(50, 4))
    mu, var = x.mean(axis=0), x.var(axis=0)
    expected = np.mean((var + mu ** 2) / 2 - 0.5 * np.log(var + 1e-8) - 0.5)
    close(losses.batch_kl_to_standard_normal(tf.constant(x, tf.float32)), expected, rtol=1e-5)
    # Its epsilon keeps a constant batch finite: var = 0 -> -log(1e-8)/2 - 1/2 (+ mu^2/2 = 0).
    close(losses.batch_kl_to_standard_normal(tf.zeros([3, 2])), -0.5 * np.log(1e-8) - 0.5, rtol=1e-5)


# ----------------------------------------------------------------------------- Langevin (AND-OR)

class LinearGenerator(keras.layers.Layer):
    """g(z) = reshape(z W + b): grad_z U = -W (Y - g(z)) / sigma^2 + z in closed form."""

    def __init__(self, w, b, shape):
        super().__init__()
        self.w, self.b, self.out_shape = tf.constant(w, tf.float32), tf.constant(b, tf.float32), shape

    def call(self, z):
        return tf.reshape(tf.matmul(tf.cast(z, tf.float32), self.w) + self.b, [-1, *self.out_shape])


@pytest.fixture(scope="module")
def langevin_setup():
    from tf_sparse_gen.config import get_config
    from tf_sparse_gen.families import build_model

    config = get_config("andor", "tiny", {"data.dataset": "digits", "andor.ebm": False,
                                          "andor.sigma": 0.4, "andor.delta": 0.3, "andor.infer_steps": 3})
    model = build_model(config, 8)
    d, shape = config.andor.z_dim, (16, 16, 1)
    rng = np.random.default_rng(3)
    w = rng.normal(0, 0.05, size=(d, 256))
    b = rng.normal(0, 0.1, size=256)
    model.generator = LinearGenerator(w, b, shape)
    images = rng.uniform(-1, 1, size=(5, *shape))
    return types.SimpleNamespace(model=model, w=w, b=b, images=images, d=d, sigma=0.4, delta=0.3)


def _closed_form_step(s, z, noise=None):
    """z - (delta^2 / 2) grad U(z) [+ delta * noise], U = ||Y - g(z)||^2 / (2 sigma^2) + ||z||^2 / 2."""
    y = s.images.reshape(len(s.images), -1)
    resid = y - (z @ s.w + s.b)
    grad = -(resid @ s.w.T) / s.sigma ** 2 + z
    z = z - 0.5 * s.delta ** 2 * grad
    return z if noise is None else z + s.delta * noise


def _mse01(s, z):
    return np.mean((s.images.reshape(len(s.images), -1) - (z @ s.w + s.b)) ** 2) / 4.0


def test_one_noiseless_langevin_step_is_the_closed_form(langevin_setup):
    s = langevin_setup
    z0 = np.random.default_rng(4).normal(size=(5, s.d))
    images = tf.constant(s.images, tf.float32)
    for steps in (1, 2):
        z, before, after = s.model.langevin(images, tf.constant(z0, tf.float32), steps, tf.constant([1, 2]),
                                            noise=False)
        expected = z0
        for _ in range(steps):
            expected = _closed_form_step(s, expected)
        close(z, expected, rtol=1e-5, atol=1e-6)
        # The reported MSEs are per pixel on the [0, 1] scale (the [-1, 1] error / 4).
        close(before, _mse01(s, z0), rtol=1e-5)
        close(after, _mse01(s, expected), rtol=1e-5)
    # The step moved z by a non-trivial amount (so a wrong delta cannot hide).
    assert np.abs(_closed_form_step(s, z0) - z0).mean() > 0.01
    # Zero steps leave z as it is.
    z, _, _ = s.model.langevin(images, tf.constant(z0, tf.float32), 0, tf.constant([1, 2]), noise=False)
    close(z, z0, rtol=0, atol=1e-7)


def test_langevin_noise_has_standard_deviation_delta(langevin_setup):
    s = langevin_setup
    n = 2000
    images = tf.constant(np.repeat(s.images[:1], n, axis=0), tf.float32)
    z0 = tf.zeros([n, s.d])
    noisy, _, _ = s.model.langevin(images, z0, 1, tf.constant([7, 11]))
    plain, _, _ = s.model.langevin(images, z0, 1, tf.constant([7, 11]), noise=False)
    noise = (noisy - plain).numpy()
    # 16000 draws: the sample std is within ~1% of delta, the mean within ~0.01 delta of 0.
    assert abs(noise.std() / s.delta - 1.0) < 0.03, noise.std()
    assert abs(noise.mean()) < 0.03 * s.delta
    # Each row and dimension gets its own draw (not one shared number).
    assert np.unique(np.round(noise, 6)).size > 0.99 * noise.size


def test_infer_latent_is_langevin_from_zero_with_the_seeded_noise(langevin_setup):
    s = langevin_setup
    images = tf.constant(s.images, tf.float32)
    b = len(s.images)
    # Step t draws N(0, I) from seed + [0, t] (the seed is [seed, 0]); z starts at 0.
    z = np.zeros((b, s.d))
    for t in range(3):
        eps = tf.random.stateless_normal([b, s.d], seed=[5, t]).numpy()
        z = _closed_form_step(s, z, eps)
    close(s.model.infer_latent(images, steps=3, seed=5), z, rtol=1e-4, atol=1e-5)
    # The default number of steps is andor.infer_steps (3 here); encode is the same inference.
    close(s.model.infer_latent(images, seed=5), z, rtol=1e-4, atol=1e-5)
    close(s.model.encode(images), s.model.infer_latent(images, seed=0), rtol=1e-6, atol=1e-7)
    one = np.zeros((b, s.d))
    one = _closed_form_step(s, one, tf.random.stateless_normal([b, s.d], seed=[5, 0]).numpy())
    close(s.model.infer_latent(images, steps=1, seed=5), one, rtol=1e-4, atol=1e-5)


def test_critic_weight_is_eq22s_own_unless_given(tiny_andor):
    from tf_sparse_gen.families import build_model

    def weight(**o):
        return build_model(tiny_andor(**o), 4).critic_weight
    assert weight(**{"andor.critic_weight": None, "andor.recon_reduction": "sum"}) == 1.0
    assert weight(**{"andor.critic_weight": None, "andor.recon_reduction": "mean"}) == pytest.approx(1 / 256)
    assert weight(**{"andor.critic_weight": 0.3, "andor.recon_reduction": "mean"}) == pytest.approx(0.3)
    assert weight(**{"andor.critic_weight": 0.3, "andor.recon_reduction": "sum"}) == pytest.approx(0.3)


# ----------------------------------------------------------------------------- eps and z draws

def test_random_uniform_is_u01_and_random_normal_is_standard(tiny_andor):
    from tf_sparse_gen.families import build_model

    model = build_model(tiny_andor(), 4)
    u = model.random_uniform([4000, 1, 1, 1]).numpy()
    assert u.shape == (4000, 1, 1, 1)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.02 and abs(u.std() - np.sqrt(1 / 12)) < 0.01
    n = model.random_normal([4000, 2]).numpy()
    assert abs(n.mean()) < 0.05 and abs(n.std() - 1.0) < 0.03


# ----------------------------------------------------------------------------- evaluation MSE

def test_evaluation_mse_is_the_per_pixel_error_on_the_01_scale(tmp_path, monkeypatch):
    """evaluate(metrics=["mse"]) on a known pair: x and a reconstruction off by a known amount."""
    from tf_sparse_gen import evaluation

    n, shape = 5, (4, 4, 1)
    rng = np.random.default_rng(5)
    images = rng.uniform(-0.5, 0.5, size=(n, *shape)).astype(np.float32)
    offset = np.zeros((n, *shape), np.float32)
    offset[:, :2] = 0.4       # half the pixels off by 0.4 on [-1, 1], i.e. 0.2 on [0, 1]
    offset[3] = -0.8          # one whole image off by 0.8 ([-1, 1]) = 0.4 ([0, 1])
    by_image = {tuple(np.round(im.ravel(), 5)): off for im, off in zip(images, offset)}

    class Model:
        ema_in_use = False

        def reconstruct(self, x):
            x = np.asarray(x)
            return tf.constant(x + np.stack([by_image[tuple(np.round(im.ravel(), 5))] for im in x]))

        def sample_latents(self, k, seed=None):
            return tf.zeros([k, 2])

        def generate(self, z):
            return tf.zeros([z.shape[0], *shape])

        def interpretation_figures(self, zs, out_dir):
            return {}

    class Ref:
        num_examples = n

        def take_images(self, count):  # the "training" images: a mean image of 0.1 everywhere
            return np.stack([np.zeros(shape), np.full(shape, 0.2)]).astype(np.float32)

        def eval_dataset(self, batch_size, limit=None):
            for i in range(0, min(limit, n), batch_size):
                yield tf.range(i, min(i + batch_size, n)), tf.constant(images[i:i + batch_size])

    config = types.SimpleNamespace(
        model="andor", preset="tiny",
        data=types.SimpleNamespace(dataset="toy", image_size=4, channels=1, data_dir=None, shapes_num_examples=0),
        train=types.SimpleNamespace(seed=0, ema_decay=0.0))
    trained = types.SimpleNamespace(model=Model(), config=config, step=1, checkpoint="ckpt",
                                    model_dir=str(tmp_path))
    monkeypatch.setattr(evaluation, "load_trained_model", lambda *a, **k: trained)
    monkeypatch.setattr(evaluation, "load_run_data", lambda *a, **k: Ref())
    report = evaluation.evaluate(str(tmp_path), metrics=["mse"], batch_size=2, log=lambda s: None)
    # By hand on [0, 1]: 4 images x (8 pixels x 0.2^2) + 1 image x 16 pixels x 0.4^2, over 80 pixels.
    expected = (4 * 8 * 0.04 + 16 * 0.16) / 80
    assert expected == pytest.approx(np.mean((offset / 2.0) ** 2))
    assert report["metrics"]["mse"]["value"] == pytest.approx(expected, rel=1e-6)
    assert report["metrics"]["mse"]["num_samples"] == n
    baseline = np.mean(((images.astype(np.float64) - 0.1) / 2.0) ** 2)
    assert report["metrics"]["mse_mean_image"]["value"] == pytest.approx(baseline, rel=1e-6)
    assert report["metrics"]["mse_ratio"]["value"] == pytest.approx(expected / baseline, rel=1e-6)

"""Loss functions of the three methods, as pure functions.

Naming follows TF-GAN: `<name>_generator_loss` / `<name>_discriminator_loss`.
Each docstring gives the equation it computes. Reductions are computed in
float32 whatever the compute dtype.
"""

from __future__ import annotations

from typing import Callable

import keras
import tensorflow as tf


def _f32(x):
    return tf.cast(x, tf.float32)


def wasserstein_discriminator_loss(real_scores, fake_scores):
    """L_D = E[D(G(z))] - E[D(x)].

    The WGAN critic loss (Gulrajani et al. 2017, eq. 3 without the penalty;
    Sparse GAN eq. 4). It is also the critic update of the sparse AND-OR
    model (Xing et al., eqs. 20/21): raising `mean f(Y) - mean f(Y_hat)` for
    the energy-based critic f, since the normalising-constant terms reduce to
    the mean score of synthesised images.
    """
    return tf.reduce_mean(_f32(fake_scores)) - tf.reduce_mean(_f32(real_scores))


def wasserstein_generator_loss(fake_scores):
    """L_G = -E[D(G(z))] (Sparse GAN eq. 4; the AND-OR model's eq. 22 term)."""
    return -tf.reduce_mean(_f32(fake_scores))


def wasserstein_gradient_penalty(critic: Callable, real, fake, epsilon, eps_norm: float = 1e-10):
    """E[(||grad_x D(x_hat)||_2 - 1)^2], x_hat = eps * x + (1 - eps) * G(z).

    `epsilon` is U[0, 1] per example, shape [B, 1, 1, 1]. The norm is
    sqrt(sum g^2 + eps_norm), so its gradient is finite where g = 0. The
    critic is evaluated inside this function's tape, as the penalty needs.
    Computed in float32.
    """
    real, fake = _f32(real), _f32(fake)
    x_hat = epsilon * real + (1.0 - epsilon) * fake
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        scores = _f32(critic(x_hat))
    grads = _f32(tape.gradient(scores, x_hat))
    norm = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]) + eps_norm)
    return tf.reduce_mean(tf.square(norm - 1.0))


def abp_reconstruction_loss(images, reconstructions, sigma: float, reduction: str = "mean"):
    """The generator's term of alternating back-propagation (Han et al. 2017; Xing et al. eq. 15).

    reduction "sum": L = (1/B) sum_i ||Y_i - g(Z_i)||^2 / (2 sigma^2), the squared
    error summed over the D pixel values of each image and averaged over the batch,
    as eq. 15 is printed. "mean": the same divided by D, i.e.
    mean((Y - g(Z))^2) / (2 sigma^2); it keeps the balance with a critic term
    independent of the image size.
    """
    diff = _f32(images) - _f32(reconstructions)
    per_image = tf.reduce_sum(tf.square(diff), axis=tf.range(1, tf.rank(diff)))
    if reduction == "mean":
        per_image = per_image / tf.cast(tf.reduce_prod(tf.shape(diff)[1:]), tf.float32)
    elif reduction != "sum":
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    return tf.reduce_mean(per_image) / (2.0 * sigma ** 2)


def langevin_energy(images, reconstructions, z, sigma: float):
    """U(Z) = ||Y - g(Z)||^2 / (2 sigma^2) + ||Z||^2 / 2, per example ([B]).

    The negative log joint density of the generator model up to a constant
    (Xing et al. eq. 13); Langevin dynamics samples p(Z | Y) by
    Z <- Z - (delta^2 / 2) grad U(Z) + delta * N(0, I).
    """
    diff = _f32(images) - _f32(reconstructions)
    rec = tf.reduce_sum(tf.square(diff), axis=[1, 2, 3]) / (2.0 * sigma ** 2)
    return rec + 0.5 * tf.reduce_sum(tf.square(_f32(z)), axis=-1)


def minimax_discriminator_loss(real_logits, fake_logits):
    """L_D = -E[log D(x)] - E[log(1 - D(G(z)))], D = sigmoid(logits).

    The discriminator side of the original GAN value function (Goodfellow et
    al. 2014), and of SelfExGAN's eqs. (3.4)/(3.5) for D1 (images) and D2
    (pairs). From logits: -log sigmoid(l) = softplus(-l) and
    -log(1 - sigmoid(l)) = softplus(l), which is numerically stable. A single
    logit is equivalent to the thesis' two-way softmax head.
    """
    return (tf.reduce_mean(tf.nn.softplus(-_f32(real_logits)))
            + tf.reduce_mean(tf.nn.softplus(_f32(fake_logits))))


def minimax_generator_loss(fake_logits):
    """L_G = -E[log D(G(z))] (the non-saturating generator loss, from logits).

    Goodfellow et al. 2014, section 3: instead of minimising log(1 - D(G(z)))
    the generator maximises log D(G(z)); same fixed point, stronger gradients
    early in training. For SelfExGAN's pair critic the encoder uses the same
    loss with the roles swapped: E minimises -E[log(1 - D2(x, E(x)))], i.e.
    `minimax_generator_loss(-real_pair_logits)` (the BiGAN inverted labels).
    """
    return tf.reduce_mean(tf.nn.softplus(-_f32(fake_logits)))


def cycle_reconstruction_loss(images, reconstructions):
    """L_rec = mean over the batch and the D pixel values of (x - G(E(x)))^2.

    Not in the SelfExGAN thesis, whose point (1) is to train E and G with no
    reconstruction loss; it is the explicit cycle-consistency term of ALICE
    (Li et al., "ALICE: Towards Understanding Adversarial Learning for Joint
    Distribution Matching", NeurIPS 2017, section 4), an option of this project
    (`selfexgan.recon_weight`) for when the adversarial pair matching alone does
    not bring G(E(x)) back to x. On the model's [-1, 1] scale: 4x the [0, 1]-scale
    MSE evaluate.py reports.
    """
    return tf.reduce_mean(tf.square(_f32(images) - _f32(reconstructions)))


def batch_kl_to_standard_normal(z, epsilon: float = 1e-8):
    """KL = mean_i[(sigma_i^2 + mu_i^2) / 2 - log sigma_i - 1/2].

    SelfExGAN's matching loss for the encoder (Liu 2018, eq. 4.5): mu_i and
    sigma_i are the mean and (population) standard deviation of dimension i of
    the codes `z` `[B, d]` over the batch, and the term is KL(N(mu_i,
    sigma_i^2) || N(0, 1)) averaged over the d dimensions. It is 0 exactly when
    every dimension has batch mean 0 and std 1, positive otherwise. log sigma
    is computed as log(sigma^2 + epsilon) / 2. Under a multi-replica
    tf.distribute strategy the statistics are those of the global batch
    (all-reduced, and differentiable through the reduction).
    """
    z = _f32(z)
    mu, var = keras.ops.moments(z, axes=[0], synchronized=True)
    return tf.reduce_mean(0.5 * (var + tf.square(mu)) - 0.5 * tf.math.log(var + epsilon) - 0.5)

"""Sparse GAN: sparse patch generator + WGAN-GP critic + reconstructor (Algorithm 1).

Mahdizadehaghdam, Panahi, Krim, "Sparse Generative Adversarial Network"
(ICCV-W 2019). Three players (eq. 4):

    L_D = E[D(G(z))] - E[D(x)] + lambda E[(||grad D(x_hat)||_2 - 1)^2],
          x_hat = eps x + (1 - eps) G(z), eps ~ U[0, 1] per example, lambda = gp_weight
    L_G = -E[D(G(z))]
    L_E = E ||E(G(z)) - z||^2                            (eq. 6, the encoder)
    L_R = E ||x - G(E(x))||^2                             (updates G only)

One `train_step` on a real batch x (B images) is one iteration of Algorithm 1:

1. `n_critic` critic steps (`critic_step`). Every critic step uses the same
   real batch x and a fresh z (and fresh eps): the paper samples x, z and eps
   anew per critic step; reusing the batch the input pipeline delivered keeps
   one batch per step (the WGAN-GP reference code does the same per
   generator iteration when data is scarce) and makes the step's data
   deterministic for a resume.
2. One generator step on a fresh z (`generator_step`).
3. `n_reconst` rounds of: one encoder step on a fresh z (`encoder_step`,
   G fixed), then one reconstruction step on G with the real batch x
   (`reconstruction_step`, E fixed). Skipped when `reconstructor=False`.

Losses are per-element means: L_E = mean((E(G(z)) - z)^2) and
L_R = recon_weight * mean((x - G(E(x)))^2); with Adam the scale of a loss
mostly changes nothing, except that G's two kinds of step share one Adam
state (`g_optimizer` takes 1 + n_reconst steps per iteration).

Sparsity controller (`zero_fraction` > 0, see `steer_threshold`): with a fixed
lambda the share of zero codes falls during training (the generator grows its
pre-threshold features and learns its way out of sparsity: 0.35 -> 0.11 with
lambda = 0.1 in issue #19). With a target share, lambda is adapted after every
generator step from that step's measured share; lambda stays a non-trainable
variable (in checkpoints and exports) and is logged as `threshold`.

Randomness (z, eps) comes from `self.seed_generator`, whose state is in the
checkpoint. The patch dictionary is learned in `prepare()` (fresh runs only)
and lives in the generator's `PatchDictionaryDecoder` as a non-trainable
variable (also reachable as `model.dictionary`), so a resume restores it.

`encode` without a reconstructor: latent optimisation. z starts at a fixed
(seeded) draw of N(0, I) and takes `infer_steps` Adam steps (`infer_lr`) on mean((G(z) - x)^2) per
example (G fixed), so `encode`/`reconstruct` exist for every configuration.
"""

from __future__ import annotations

from typing import Dict, Optional

import keras
import numpy as np
import tensorflow as tf

from tf_sparse_gen.families.spgan import dictionary as dictionary_lib
from tf_sparse_gen import losses
from tf_sparse_gen.families.base import GenerativeModel
from tf_sparse_gen.families.spgan.nets import build_networks


class SparseGAN(GenerativeModel):
    """The `spgan` family: sparse patch generator G, WGAN-GP critic D, encoder E."""

    def __init__(self, config, num_examples, image_shape, **kwargs):
        super().__init__(config, num_examples, image_shape, **kwargs)
        hp = config.spgan
        self.hp = hp
        self.generator, self.critic, self.encoder = build_networks(hp, self.image_shape)
        self.check_image_size(self.generator.image_size)
        # The dictionary variable (owned by the generator's decoder); None for the dense baseline.
        self.dictionary = self.generator.dictionary
        names = ["d_loss", "d_real", "d_fake", "wasserstein", "gradient_penalty", "d_grad_norm",
                 "g_loss", "g_grad_norm"]
        if hp.sparse_output:
            names += ["code_zero_fraction", "threshold"]
        if hp.reconstructor:
            names += ["e_loss", "e_grad_norm", "recon_loss", "r_grad_norm"]
        self.trackers = self.make_trackers(names)
        self.track_ema(self.generator)

    def compile(self, g_optimizer: Optional[keras.optimizers.Optimizer] = None,
                d_optimizer: Optional[keras.optimizers.Optimizer] = None,
                e_optimizer: Optional[keras.optimizers.Optimizer] = None, **kwargs):
        """Adam(lr, beta1, beta2) for G and D, Adam(e_lr, beta1, beta2) for E, unless given."""
        self.compile_step(**kwargs)
        hp = self.hp
        self.g_optimizer = self.optimizer_for(g_optimizer, hp.lr, self.generator.trainable_variables)
        self.d_optimizer = self.optimizer_for(d_optimizer, hp.lr, self.critic.trainable_variables)
        if self.encoder is not None:
            self.e_optimizer = self.optimizer_for(e_optimizer, hp.e_lr, self.encoder.trainable_variables)

    # ------------------------------------------------------------------ dictionary
    def set_dictionary(self, atoms) -> None:
        """Replaces the patch dictionary `[K, p * p * C]` (rows are atoms)."""
        if self.generator.decoder is None:
            raise ValueError("spgan.sparse_output=False: the dense generator has no dictionary")
        self.generator.decoder.set_dictionary(atoms)

    def learn_dictionary(self, source) -> dict:
        """Learns the dictionary from `source.images` (eq. 5) and installs it; returns the info dict."""
        hp = self.hp
        patches = dictionary_lib.extract_patches(source.images, hp.patch_size, hp.dict_patches,
                                                 seed=self.cfg.train.seed)
        atoms, info = dictionary_lib.learn_dictionary(
            patches, hp.num_atoms, self.image_shape[-1], alpha=hp.dict_alpha, batch_size=hp.dict_batch_size,
            seed=self.cfg.train.seed, center=hp.dict_center)
        self.set_dictionary(atoms)
        return info

    def prepare(self, source):
        """Learns the patch dictionary (fresh runs only); returns its picture as the figure "dictionary"."""
        if not self.hp.sparse_output:
            return {}
        self.dictionary_info = self.learn_dictionary(source)
        return {"dictionary": dictionary_lib.dictionary_grid(self.dictionary.numpy(), self.hp.patch_size,
                                                              self.image_shape[-1])}

    # ------------------------------------------------------------------ inference
    def generate(self, z):
        return self.generator(z, training=False)

    def codes(self, z):
        """Sparse codes `[B, H, W, K]` of latents z."""
        return self.generator.codes(z, training=False)

    def encode_method(self):
        if self.encoder is not None:
            return super().encode_method()
        hp = self.hp
        return {"method": "latent_optimisation", "steps": int(hp.infer_steps), "lr": float(hp.infer_lr),
                "init": "fixed N(0, I) draw", "note": "Adam on mean((G(z) - x)^2) with G fixed"}

    def encode(self, images):
        if self.encoder is not None:
            return self.encoder(images, training=False)
        return self.infer_latent(images)

    def reconstruct(self, images):
        return self.generate(self.encode(images))

    @tf.function(reduce_retracing=True)
    def _optimise_latent(self, images, steps, lr):
        images = tf.cast(images, tf.float32)
        # A fixed draw of N(0, I), not z = 0: at z = 0 an untrained generator's ReLUs all sit
        # at 0 and pass no gradient.
        z = tf.random.stateless_normal([tf.shape(images)[0], self.hp.z_dim], seed=[self.cfg.train.seed, 4242])
        b1, b2, eps = 0.9, 0.999, 1e-8

        def step(t, z, m, v):
            with tf.GradientTape() as tape:
                tape.watch(z)
                err = tf.reduce_sum(tf.reduce_mean(tf.square(self.generator(z, training=False) - images),
                                                   axis=[1, 2, 3]))
            g = tape.gradient(err, z)
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * tf.square(g)
            tf_ = tf.cast(t + 1, tf.float32)
            z = z - lr * (m / (1 - b1 ** tf_)) / (tf.sqrt(v / (1 - b2 ** tf_)) + eps)
            return t + 1, z, m, v

        _, z, _, _ = tf.while_loop(lambda t, *_: t < steps, step,
                                   (tf.constant(0), z, tf.zeros_like(z), tf.zeros_like(z)))
        return z

    def infer_latent(self, images, steps: Optional[int] = None, lr: Optional[float] = None):
        """Latents for images by Adam on mean((G(z) - x)^2) from a fixed N(0, I) draw (G fixed)."""
        steps = self.hp.infer_steps if steps is None else steps
        lr = self.hp.infer_lr if lr is None else lr
        return self._optimise_latent(tf.convert_to_tensor(images, tf.float32), tf.constant(steps),
                                     tf.constant(lr, tf.float32))

    # ------------------------------------------------------------------ summaries
    def summary_images(self, images, z) -> Dict[str, tf.Tensor]:
        out = super().summary_images(images, z)
        if self.dictionary is not None:
            out["dictionary"] = tf.constant(dictionary_lib.atoms_for_display(
                self.dictionary.numpy(), self.hp.patch_size, self.image_shape[-1]))
        return out

    def active_fractions(self, z) -> Dict[str, float]:
        if not self.hp.sparse_output:
            return {}
        codes = self.codes(z)
        return {"codes": float(tf.reduce_mean(tf.cast(tf.not_equal(codes, 0.0), tf.float32)))}

    # ------------------------------------------------------------------ the phases of one iteration
    def _latents(self, batch):
        return self.random_normal([batch, self.hp.z_dim])

    def critic_step(self, images, checks: Optional[Dict[str, tf.Tensor]] = None) -> Dict[str, tf.Tensor]:
        """One critic update (Algorithm 1, lines 5-9) on `images` and a fresh z and eps.

        Every phase method records in `checks` whether its loss and gradients were
        finite (a non-finite update is skipped: `GenerativeModel.guarded_update`).
        """
        checks = {} if checks is None else checks
        batch = tf.shape(images)[0]
        fakes = self.generator(self._latents(batch), training=True)
        eps = self.random_uniform([batch, 1, 1, 1])
        with tf.GradientTape() as tape:
            real_scores = self.critic(images, training=True)
            fake_scores = self.critic(fakes, training=True)
            w_loss = losses.wasserstein_discriminator_loss(real_scores, fake_scores)
            gp = losses.wasserstein_gradient_penalty(lambda x: self.critic(x, training=True), images, fakes, eps)
            d_loss = w_loss + self.hp.gp_weight * gp
        grads = self.guarded_update("d_loss", tape, self.d_optimizer, d_loss, self.critic.trainable_variables,
                                    checks)
        return {"d_loss": d_loss, "d_real": tf.reduce_mean(real_scores), "d_fake": tf.reduce_mean(fake_scores),
                "wasserstein": -w_loss, "gradient_penalty": gp, "d_grad_norm": tf.linalg.global_norm(grads)}

    def generator_step(self, batch, checks: Optional[Dict[str, tf.Tensor]] = None) -> Dict[str, tf.Tensor]:
        """One generator update (lines 10-13): L_G = -E[D(G(z))] on a fresh z."""
        checks = {} if checks is None else checks
        z = self._latents(batch)
        with tf.GradientTape() as tape:
            fakes, codes = self.generator.forward(z, training=True)
            g_loss = losses.wasserstein_generator_loss(self.critic(fakes, training=True))
        grads = self.guarded_update("g_loss", tape, self.g_optimizer, g_loss, self.generator.trainable_variables,
                                    checks)
        logs = {"g_loss": g_loss, "g_grad_norm": tf.linalg.global_norm(grads)}
        if codes is not None:
            zero_fraction = tf.reduce_mean(tf.cast(tf.equal(codes, 0.0), tf.float32))
            logs["code_zero_fraction"] = zero_fraction
            # The threshold the step's codes were made with (before the controller moves it).
            logs["threshold"] = self.generator.soft_threshold.current_threshold()
            if self.hp.zero_fraction > 0:
                self.steer_threshold(zero_fraction, checks["g_loss"])
        return logs

    # Smallest threshold the controller steps from (a multiplicative step cannot leave 0).
    MIN_THRESHOLD = 1e-4

    def steer_threshold(self, zero_fraction, finite=True):
        """One step of the sparsity controller: lambda <- lambda * exp(gain * (target - measured)).

        `zero_fraction` is the measured share of zero codes of this replica's batch; under a
        tf.distribute strategy the mean over the replicas (the global batch's share) is used,
        so every copy of lambda takes the same value. Too few zeros raise lambda, too many
        lower it; multiplicative, so the step scales with lambda (and with the codes, whose
        scale the generator may grow: the fixed threshold's sparsity fades in training).
        lambda is the non-trainable `soft_threshold` variable of the generator (checkpointed
        and exported with it). Not applied when `finite` is False (a skipped step).
        """
        measured = tf.cast(zero_fraction, tf.float32)
        num, _ = self.replicas()
        if num > 1:
            measured = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.MEAN, measured)
        lam = self.generator.soft_threshold.lam
        old = tf.cast(tf.convert_to_tensor(lam), tf.float32)
        new = tf.maximum(old, self.MIN_THRESHOLD) * tf.exp(self.hp.threshold_gain * (self.hp.zero_fraction - measured))
        ok = tf.logical_and(tf.convert_to_tensor(finite), tf.math.is_finite(new))
        lam.assign(tf.cast(tf.where(ok, new, old), lam.dtype))

    def encoder_step(self, batch, checks: Optional[Dict[str, tf.Tensor]] = None) -> Dict[str, tf.Tensor]:
        """One encoder update (line 15, eq. 6): mean((E(G(z)) - z)^2) on a fresh z, G fixed."""
        checks = {} if checks is None else checks
        z = self._latents(batch)
        fakes = tf.stop_gradient(self.generator(z, training=True))
        with tf.GradientTape() as tape:
            e_loss = tf.reduce_mean(tf.square(self.encoder(fakes, training=True) - z))
        grads = self.guarded_update("e_loss", tape, self.e_optimizer, e_loss, self.encoder.trainable_variables,
                                    checks)
        return {"e_loss": e_loss, "e_grad_norm": tf.linalg.global_norm(grads)}

    def reconstruction_step(self, images, checks: Optional[Dict[str, tf.Tensor]] = None) -> Dict[str, tf.Tensor]:
        """One reconstruction update of G (lines 16-19): recon_weight * mean((x - G(E(x)))^2), E fixed."""
        checks = {} if checks is None else checks
        z_x = tf.stop_gradient(self.encoder(images, training=False))
        with tf.GradientTape() as tape:
            recon = self.generator(z_x, training=True)
            mse = tf.reduce_mean(tf.square(tf.cast(images, tf.float32) - recon))
            r_loss = self.hp.recon_weight * mse
        grads = self.guarded_update("recon_loss", tape, self.g_optimizer, r_loss,
                                    self.generator.trainable_variables, checks)
        return {"recon_loss": mse, "r_grad_norm": tf.linalg.global_norm(grads)}

    def train_step(self, data):
        images = tf.cast(data[1], tf.float32)
        batch = tf.shape(images)[0]
        hp = self.hp
        values = {}  # name -> per-phase values, averaged into the trackers
        checks: Dict[str, tf.Tensor] = {}  # "<phase>_<round>" -> finite?

        def run(phase, arg, round_):
            mine: Dict[str, tf.Tensor] = {}
            for k, v in phase(arg, mine).items():
                values.setdefault(k, []).append(tf.cast(v, tf.float32))
            checks.update({f"{k}_{round_}": v for k, v in mine.items()})

        for i in range(hp.n_critic):
            run(self.critic_step, images, i)
        run(self.generator_step, batch, 0)
        if self.encoder is not None:
            for i in range(hp.n_reconst):
                run(self.encoder_step, batch, i)
                run(self.reconstruction_step, images, i)
        self.note_finite(checks)
        self.update_ema()
        self.update_trackers(self.trackers, {k: tf.add_n(v) / len(v) for k, v in values.items()})
        return self.tracked_results()

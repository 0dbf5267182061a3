"""SelfExGAN: encoder, generator, an image critic D1 and a pair critic D2 (Liu 2018, chapters 3-4).

Which reading of the thesis' pairs this implements (the BiGAN reading). The
thesis' value function (eq. 3.4) is

    V(G, E, D2) = E_{x ~ p_X}[log D2(x, E(x))] + E_{z ~ p_z}[log(1 - D2(G(z), z))],

i.e. the real pair is (x, E(x)) and the fake pair is (G(z), z), as in BiGAN
(Donahue et al. 2017); its Theorem 2 (G(E(x)) = x, E(G(z)) = z at the
optimum) is proved for exactly these two joint measures P_E and P_G. Figure
3.9's caption names "(z, x)" the real pair and "(z, x_hat)", "(x, z_hat)" the
fake ones; that wording is not consistent with eq. 3.4 (there is no data pair
(z, x) to sample), so we follow the equation.

One training step on a batch x of B images (anchors A = round(anchor_fraction * B)):

1. z_e = E(x) (sphere-projected codes). G's inputs ("self-excited", section
   4.1.1): the first A codes E(x_1..A) are anchors; each of the other B - A
   inputs is a random anchor of the batch plus excite_noise * N(0, I)
   ("sampling around our anchor points"). G's inputs are treated as samples of
   a prior p_e(z) (the thesis' reading behind eq. 3.5): stop_gradient, so E
   learns only from its own terms below.
2. D1 minimises -E[log D1(x)] - E[log(1 - D1(G(z)))]                (eq. 3.5)
3. D2 minimises -E[log D2(x, E(x))] - E[log(1 - D2(G(z), z))]        (eq. 3.4)
4. G minimises -E[log D1(G(z))] - E[log D2(G(z), z)]    (non-saturating form)
5. E minimises -E[log(1 - D2(x, E(x)))] + kl_weight * KL             (eq. 4.5)
   where KL = mean_i[(sigma_i^2 + mu_i^2)/2 - log sigma_i - 1/2] over the
   per-dimension batch mean/std of E(x).

D1 and D2 are updated on the same fakes; G and E are then updated against
the updated critics (alternating, one tape per network). There is no
reconstruction loss (the thesis' point (1)); the reconstruction MSE of
G(E(x)) is tracked only as a diagnostic, on the [0, 1] scale.

With `d2=False` (ablation) steps 3 and the D2 terms of 4-5 are dropped, so E
learns from the KL term alone.

Divergence guard (see `GenerativeModel`): each of the four updates is applied
only when that network's loss and gradients are finite (`guarded_update`, which
also handles loss scaling under mixed_float16); the step records
d1_loss / d2_loss / g_loss / e_loss with `note_finite`, and non-finite values
are left out of the trackers. The forward passes of a bad step still write the
BatchNorm moving statistics (NaN, or finite garbage where a ReLU turned NaNs
into zeros); when any check of the step fails (or a statistic became
non-finite) they are put back to their values before the step, so one bad
batch cannot poison inference (`training=False`) for the rest of the run.
On a partly bad step (say only e_loss non-finite) the finite networks' updates
are still applied; only the statistics are rolled back.
"""

from __future__ import annotations

from typing import Dict, Optional

import keras
import tensorflow as tf

from tf_sparse_gen import losses
from tf_sparse_gen.families.base import GenerativeModel
from tf_sparse_gen.families.selfexgan.nets import build_networks


class SelfExGAN(GenerativeModel):
    """The `selfexgan` family: E, G, D1 (images) and D2 ((image, latent) pairs)."""

    def __init__(self, config, num_examples, image_shape, **kwargs):
        super().__init__(config, num_examples, image_shape, **kwargs)
        hp = config.selfexgan.resolved(self.image_shape[0], self.image_shape[-1])
        self.hp = hp
        self.encoder, self.generator, self.d1, self.d2 = build_networks(hp, self.image_shape)
        names = ["d1_loss", "d1_real", "d1_fake", "g_loss", "g_d1_term", "e_loss", "kl",
                 "recon_mse", "latent_norm", "d1_grad_norm", "g_grad_norm", "e_grad_norm"]
        if self.d2 is not None:
            names += ["d2_loss", "d2_real", "d2_fake", "g_d2_term", "e_d2_term", "d2_grad_norm"]
        self.trackers = self.make_trackers(names)
        self.track_ema(self.generator)

    def compile(self, g_optimizer: Optional[keras.optimizers.Optimizer] = None,
                e_optimizer: Optional[keras.optimizers.Optimizer] = None,
                d1_optimizer: Optional[keras.optimizers.Optimizer] = None,
                d2_optimizer: Optional[keras.optimizers.Optimizer] = None, **kwargs):
        """Adam(lr, beta1, beta2) of the config for every network unless given."""
        self.compile_step(**kwargs)
        hp = self.hp
        self.g_optimizer = self.optimizer_for(g_optimizer, hp.lr, self.generator.trainable_variables)
        self.e_optimizer = self.optimizer_for(e_optimizer, hp.lr, self.encoder.trainable_variables)
        self.d1_optimizer = self.optimizer_for(d1_optimizer, hp.lr, self.d1.trainable_variables)
        if self.d2 is not None:
            self.d2_optimizer = self.optimizer_for(d2_optimizer, hp.lr, self.d2.trainable_variables)

    # ------------------------------------------------------------------ inference
    def generate(self, z):
        return self.generator(z, training=False)

    def encode(self, images):
        return self.encoder(images, training=False)

    def reconstruct(self, images):
        return self.generate(self.encode(images))

    # ------------------------------------------------------------------ pieces of a step
    def num_anchors(self, batch: int) -> int:
        """A = round(anchor_fraction * batch) for a static batch size."""
        return int(round(self.hp.anchor_fraction * batch))

    def generator_inputs(self, anchors, num_anchors):
        """G's inputs for a batch: `num_anchors` anchors, the rest excited around random anchors.

        Args:
            anchors: codes E(x) `[B, d]` of the batch (gradients are stopped).
            num_anchors: A; rows 0..A-1 are anchors[0..A-1] unchanged.

        Returns `[B, d]`: rows A..B-1 are anchors[j] + excite_noise * N(0, I),
        j uniform over the batch.
        """
        anchors = tf.stop_gradient(tf.cast(anchors, tf.float32))
        batch = tf.shape(anchors)[0]
        rest = batch - num_anchors
        j = keras.random.randint([rest], 0, batch, dtype="int32", seed=self.seed_generator)
        noise = self.random_normal([rest, self.hp.z_dim])
        excited = tf.gather(anchors, j) + self.hp.excite_noise * noise
        return tf.concat([anchors[:num_anchors], excited], axis=0)

    @staticmethod
    def d2_pairs(images, codes, fakes, fake_codes):
        """The pairs D2 is trained on, with their labels (1 = real, 0 = fake).

        Real pairs (x, E(x)) and fake pairs (G(z), z) (the BiGAN reading of
        eq. 3.4), concatenated real first. Returns
        `(pair_images [2B, H, W, C], pair_codes [2B, d], labels [2B])`.
        """
        pair_images = tf.concat([tf.cast(images, tf.float32), tf.cast(fakes, tf.float32)], axis=0)
        pair_codes = tf.concat([tf.cast(codes, tf.float32), tf.cast(fake_codes, tf.float32)], axis=0)
        labels = tf.concat([tf.ones([tf.shape(images)[0]]), tf.zeros([tf.shape(fakes)[0]])], axis=0)
        return pair_images, pair_codes, labels

    @staticmethod
    def split_by_label(logits, labels):
        """(logits of label-1 rows, logits of label-0 rows)."""
        logits = tf.reshape(logits, [-1])
        real = labels > 0.5
        return tf.boolean_mask(logits, real), tf.boolean_mask(logits, tf.logical_not(real))

    def networks(self):
        """E, G, D1 and (when present) D2."""
        return [n for n in (self.encoder, self.generator, self.d1, self.d2) if n is not None]

    def moving_statistics(self):
        """The floating-point non-trainable variables of the networks (BatchNorm moving mean/variance)."""
        return [v for net in self.networks() for v in net.non_trainable_variables
                if "float" in str(getattr(v.dtype, "name", v.dtype))]

    # ------------------------------------------------------------------ training
    def train_step(self, data):
        images = tf.cast(data[1], tf.float32)
        hp = self.hp
        batch = images.shape[0]
        if batch is None:
            raise ValueError("SelfExGAN.train_step needs a static batch size (drop_remainder=True)")
        num_anchors = self.num_anchors(batch)
        logs: Dict[str, tf.Tensor] = {}
        checks: Dict[str, tf.Tensor] = {}
        # BatchNorm moving statistics before the step (restored below if the step is not finite).
        stats = self.moving_statistics()
        stats_before = [tf.identity(v.value) for v in stats]

        # 1. Codes and G's inputs; the fakes the critics are trained on.
        codes = self.encoder(images, training=True)
        z_g = self.generator_inputs(codes, num_anchors)
        fakes = self.generator(z_g, training=True)

        # 2. D1: real images vs G's images.
        with tf.GradientTape() as tape:
            d1_real = self.d1(images, training=True)
            d1_fake = self.d1(fakes, training=True)
            d1_loss = losses.minimax_discriminator_loss(d1_real, d1_fake)
        d1_grads = self.guarded_update("d1_loss", tape, self.d1_optimizer, d1_loss, self.d1.trainable_variables,
                                       checks)
        logs.update(d1_loss=d1_loss, d1_real=tf.reduce_mean(tf.sigmoid(d1_real)),
                    d1_fake=tf.reduce_mean(tf.sigmoid(d1_fake)), d1_grad_norm=tf.linalg.global_norm(d1_grads))

        # 3. D2: real pairs (x, E(x)) vs fake pairs (G(z), z).
        if self.d2 is not None:
            pair_x, pair_z, labels = self.d2_pairs(images, tf.stop_gradient(codes), fakes, z_g)
            with tf.GradientTape() as tape:
                real_logits, fake_logits = self.split_by_label(self.d2((pair_x, pair_z), training=True), labels)
                d2_loss = losses.minimax_discriminator_loss(real_logits, fake_logits)
            d2_grads = self.guarded_update("d2_loss", tape, self.d2_optimizer, d2_loss,
                                           self.d2.trainable_variables, checks)
            logs.update(d2_loss=d2_loss, d2_real=tf.reduce_mean(tf.sigmoid(real_logits)),
                        d2_fake=tf.reduce_mean(tf.sigmoid(fake_logits)),
                        d2_grad_norm=tf.linalg.global_norm(d2_grads))

        # 4./5. G against D1 and D2; E against D2 plus the KL term (updated critics).
        with tf.GradientTape() as g_tape, tf.GradientTape() as e_tape:
            codes = self.encoder(images, training=True)
            fakes = self.generator(z_g, training=True)
            g_d1 = losses.minimax_generator_loss(self.d1(fakes, training=True))
            g_loss = g_d1
            kl = losses.batch_kl_to_standard_normal(codes)
            e_loss = hp.kl_weight * kl
            if self.d2 is not None:
                pair_x, pair_z, labels = self.d2_pairs(images, codes, fakes, z_g)
                real_logits, fake_logits = self.split_by_label(self.d2((pair_x, pair_z), training=True), labels)
                g_d2 = losses.minimax_generator_loss(fake_logits)
                # E flips the real pairs' label: -log(1 - D2(x, E(x))).
                e_d2 = losses.minimax_generator_loss(-real_logits)
                g_loss = g_loss + g_d2
                e_loss = e_loss + e_d2
                logs.update(g_d2_term=g_d2, e_d2_term=e_d2)
        g_grads = self.guarded_update("g_loss", g_tape, self.g_optimizer, g_loss,
                                      self.generator.trainable_variables, checks)
        e_grads = self.guarded_update("e_loss", e_tape, self.e_optimizer, e_loss,
                                      self.encoder.trainable_variables, checks)
        step_ok = self.note_finite(checks)
        # A bad step's forward passes have written the moving statistics too (NaN, or finite garbage
        # where a ReLU swallowed the NaNs): put them back, as well as any that became non-finite.
        for v, old in zip(stats, stats_before):
            v.assign(tf.where(tf.logical_and(step_ok, self.all_finite(v.value)), v.value, old))

        # Diagnostic (not a loss): per-pixel MSE of G(E(x)) on the [0, 1] scale.
        if num_anchors > 0:
            recon = tf.cast(fakes[:num_anchors], tf.float32)
            recon_mse = tf.reduce_mean(tf.square(images[:num_anchors] - recon)) / 4.0
        else:
            recon_mse = tf.reduce_mean(tf.square(images - tf.cast(self.generator(codes, training=False),
                                                                  tf.float32))) / 4.0
        logs.update(g_loss=g_loss, g_d1_term=g_d1, e_loss=e_loss, kl=kl, recon_mse=recon_mse,
                    latent_norm=tf.reduce_mean(tf.norm(tf.cast(codes, tf.float32), axis=-1)),
                    g_grad_norm=tf.linalg.global_norm(g_grads), e_grad_norm=tf.linalg.global_norm(e_grads))
        self.update_ema()
        self.update_trackers(self.trackers, logs)
        return self.tracked_results()

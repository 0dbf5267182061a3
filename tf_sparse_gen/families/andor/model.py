"""Sparse AND-OR generator learned by alternating back-propagation with an energy-based critic.

Algorithm 1 of Xing, Wu, Zhu, Wu (CVPR 2020). Each training image Y_i owns a
persistent latent Z_i (a non-trainable `[N, d]` variable indexed by the
dataset's `index`, part of every checkpoint). One training step:

1. critic: draw Z_hat ~ N(0, I), Y_hat = g(Z_hat); update Phi to raise
   mean f(Y_i) - mean f(Y_hat) (eqs. 20/21), plus the configured regulariser;
2. inference: l_G Langevin steps on the stored Z_i (eq. 13), written back;
3. generator: update Theta to lower ||Y_i - g(Z_i)||^2 / (2 sigma^2) (eq. 15)
   - w * mean f(g(Z_hat)) (eq. 22).

`ebm=False` skips steps 1 and the critic term of 3: plain ABP.

Departure from the paper, stated here and in the README: the paper gives
the critic no regulariser. Without one its scores diverge within ~100 steps
(measured: |f| ~ 1e6 by step 150), so `critic_reg` adds a WGAN-GP gradient
penalty (default) or spectral normalisation; `none` is the paper's setting.
"""

from __future__ import annotations

import os
from typing import Dict, Optional

import keras
import numpy as np
import tensorflow as tf

from tf_sparse_gen import losses, netutils
from tf_sparse_gen.families.base import GenerativeModel
from tf_sparse_gen.families.andor.nets import EnergyCritic, SparseGenerator


class CooperativeAndOrModel(GenerativeModel):
    """The `andor` family: sparse generator + Langevin inference + energy-based critic."""

    def __init__(self, config, num_examples, image_shape, **kwargs):
        super().__init__(config, num_examples, image_shape, **kwargs)
        a = config.andor
        self.hp = a
        self.generator = SparseGenerator(
            z_dim=a.z_dim, base_size=a.base_size, fc_channels=a.fc_channels, fc_k=a.fc_k,
            block_widths=a.block_widths, block_ks=a.block_ks, convs_per_block=a.convs_per_block,
            out_channels=self.image_shape[-1], sparsity=a.sparsity, topk_implementation=a.topk_implementation,
            upsample=a.upsample, name="generator")
        self.check_image_size(self.generator.image_size)
        self.critic = None
        if a.ebm:
            self.critic = EnergyCritic(a.critic_stem, a.critic_widths, spectral_norm=a.critic_reg == "sn",
                                       name="critic")
            self.critic(tf.zeros([1, *self.image_shape]))  # creates the critic's variables
        # Under a multi-replica strategy every replica writes the whole global batch's
        # latents (gathered), so all copies agree; the first replica's write is kept.
        self.latents = tf.Variable(
            tf.random.stateless_normal([self.num_examples, a.z_dim], seed=[config.train.seed, 1]),
            trainable=False, name="persistent_latents", aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        names = ["g_grad_norm"]
        if a.abp:
            names += ["recon_loss", "mse_before_langevin", "mse_after_langevin"]
        if a.ebm:
            names += ["critic_loss", "critic_real", "critic_fake", "gen_critic_term", "c_grad_norm"]
            if a.critic_reg == "gp":
                names.append("gradient_penalty")
        names += [f"active_{n}" for n in self.generator.layer_names]
        self.trackers = self.make_trackers(names)
        self.track_ema(self.generator)

    @property
    def critic_weight(self) -> float:
        """The weight of eq. 22's critic term; by default eq. 22's own in the chosen reduction."""
        a = self.hp
        if a.critic_weight is not None:
            return float(a.critic_weight)
        return 1.0 if a.recon_reduction == "sum" else 1.0 / float(np.prod(self.image_shape))

    def compile(self, g_optimizer: Optional[keras.optimizers.Optimizer] = None,
                c_optimizer: Optional[keras.optimizers.Optimizer] = None, **kwargs):
        self.compile_step(**kwargs)
        a = self.hp
        self.g_optimizer = self.optimizer_for(g_optimizer, a.g_lr, self.generator.trainable_variables)
        if self.critic is not None:
            self.c_optimizer = self.optimizer_for(c_optimizer, a.c_lr, self.critic.trainable_variables)

    # ------------------------------------------------------------------ inference
    def generate(self, z):
        return self.generator(z)

    def langevin(self, images, z, steps, seed, noise: bool = True):
        """`steps` Langevin updates of z for images (eq. 13), vectorised over the batch.

        Returns (z, per-pixel MSE before, per-pixel MSE after) with MSE on the [0, 1] scale.
        `seed` is an int32 `[2]` tensor; step t draws its noise from seed + [0, t], for the
        global batch when called on one of several replicas (`replica_rows`).
        """
        sigma, delta = self.hp.sigma, self.hp.delta
        images = tf.cast(images, tf.float32)
        z = tf.cast(z, tf.float32)

        def mse(zz):
            return tf.reduce_mean(tf.square(images - tf.cast(self.generator(zz), tf.float32))) / 4.0

        num_replicas, _ = self.replicas()
        # [b, d] -> [R * b, d]: the noise of the global batch.
        noise_shape = tf.shape(z) * tf.constant([num_replicas, 1])

        def step(t, z):
            with tf.GradientTape() as tape:
                tape.watch(z)
                energy = tf.reduce_sum(losses.langevin_energy(images, self.generator(z), z, sigma))
            z = z - 0.5 * delta ** 2 * tape.gradient(energy, z)
            if noise:
                eps = self.replica_rows(tf.random.stateless_normal(noise_shape, seed=seed + tf.stack([0, t])))
                z = z + delta * tf.reshape(eps, tf.shape(z))  # keeps z's static shape for the loop
            return t + 1, z

        before = mse(z)
        _, z = tf.while_loop(lambda t, _: t < steps, step, (tf.constant(0), z))
        return z, before, mse(z)

    def _draw_seed(self):
        return keras.random.randint([2], 0, 2 ** 30, dtype="int32", seed=self.seed_generator)

    def _langevin_from_zero(self, images, steps, seed):
        z0 = tf.zeros([tf.shape(images)[0], self.hp.z_dim])
        return self.langevin(images, z0, steps, seed)[0]

    @tf.function(reduce_retracing=True)
    def _infer(self, images, steps, seed):
        return self._langevin_from_zero(images, steps, seed)

    def infer_latent(self, images, steps: Optional[int] = None, seed: int = 0):
        """Latents for any images by Langevin dynamics from z = 0 (the paper's reconstruction)."""
        steps = self.hp.infer_steps if steps is None else steps
        args = (tf.convert_to_tensor(images, tf.float32), tf.constant(steps), tf.constant([seed, 0], tf.int32))
        # Inside a caller's graph the loop is traced afresh into it (so e.g. a SavedModel export
        # traced under `standard_ops` gets standard ops); eager calls share one cached trace.
        return self._langevin_from_zero(*args) if tf.inside_function() else self._infer(*args)

    def encode(self, images):
        return self.infer_latent(images)

    def encode_method(self):
        a = self.hp
        return {"method": "langevin", "init": "z = 0", "steps": int(a.infer_steps), "delta": float(a.delta),
                "sigma": float(a.sigma), "noise": True, "seed": [0, 0],
                "note": "Langevin dynamics (eq. 13) from z = 0 for a fixed number of steps; the noise of "
                        "step t is stateless_normal([B, d], seed=[0, 0] + [0, t]), so results are "
                        "deterministic per batch but an image's code can depend on its batch. Costs about "
                        "3 * steps generator passes."}

    def store_latents(self, index, z):
        """Writes z back to the persistent latents at `index` (every replica's rows, on every replica)."""
        self.latents.scatter_update(tf.IndexedSlices(self.gather_replicas(z), self.gather_replicas(index)))

    # ------------------------------------------------------------------ interpretation
    def active_fractions(self, z):
        acts = self.generator.stage_activations(z)
        return {name: float(tf.reduce_mean(tf.cast(a > 0, tf.float32)))
                for name, a in zip(self.generator.layer_names, acts)}

    @property
    def mid_layer(self) -> int:
        """The sparse layer whose positions are the parts: the first block (8x8 at 32 and 64 px)."""
        return min(1, len(self.generator.layer_stages) - 1)

    def interpretability_templates(self, zs, units_per_latent: int = 32, frac: float = 0.1, seed: int = 0):
        """Mid-layer basis functions for the NCC score (Table 4 of the paper).

        Per latent, `units_per_latent` of its active mid-layer units drawn uniformly at random
        without replacement (all of them when it has fewer; the draw is seeded by `seed` and the
        latent's position), each unit's basis cropped where |B| exceeds `frac` of its peak.
        """
        from tf_sparse_gen.families.andor import interpret

        templates = []
        for i, z in enumerate(zs):
            rec = interpret.record(self.generator, z)
            units, _ = interpret.active_units(self.generator, rec, self.mid_layer)
            if len(units) == 0:
                continue
            if len(units) > units_per_latent:
                pick = np.random.default_rng([seed, i]).choice(len(units), units_per_latent, replace=False)
                units = units[np.sort(pick)]
            for b in interpret.basis_functions(self.generator, rec, self.mid_layer, units):
                y0, y1, x0, x1 = interpret.crop_box(b, frac)
                templates.append(b[y0:y1, x0:x1])
        return templates

    def untrained_copy(self):
        """The same architecture at initialisation, with the run's seed (the NCC floor's model).

        Built as right after `keras.utils.set_random_seed(train.seed)` (what
        `trainer.setup_runtime` does before the run's model is built), so its initial
        weights are the run's own; the caller's global generators are left as they were
        (`netutils.seeded_construction`).
        """
        with netutils.seeded_construction(self.cfg.train.seed):
            return type(self)(self.cfg, 1, self.image_shape)

    has_part_units = True

    def part_metrics(self, images, part_maps, part_names, out_dir, log=print):
        """Part purity, object purity and locality of every layer the config gives a k (see `purity`)."""
        from tf_sparse_gen.families.andor import purity as purity_lib

        details = purity_lib.model_part_purity(self, images, part_maps, part_names, log=log)
        m = len(images)
        results, figures = {}, {}
        for layer, r in details.items():
            results[f"purity_{layer}"] = {"value": r["purity"], "num_scenes": m, "num_channels": r["num_channels"],
                                          "parts_per_channel": r["parts_per_channel"],
                                          "background_share": r["background_share"]}
            results[f"object_purity_{layer}"] = {"value": r["object_purity"], "num_scenes": m,
                                                 "note": "background votes left out"}
            results[f"locality_{layer}"] = {"value": r["locality"], "num_scenes": m,
                                            "of": "share of each basis's energy inside its dominant object part"}
            if r["mismatched"]:
                for key in ("object_purity", "locality"):
                    results[f"{key}_lift_{layer}"] = {
                        "value": r[key] - r["mismatched"][key], "mismatched": r["mismatched"][key],
                        "num_scenes": m, "of": f"{key} - the same bases' {key} on the next scene's part map"}
            figures[f"purity {layer}: channel x part shares"] = purity_lib.confusion_heatmap(
                r, os.path.join(out_dir, f"purity_confusion_{layer}.png"))
            figures[f"purity {layer}: strongest basis | dominant part mask, per frequent channel"] = \
                purity_lib.channel_part_figure(self, part_maps, r, os.path.join(out_dir, f"purity_parts_{layer}.png"),
                                               part_names)
        return results, figures, details

    def interpretation_figures(self, zs, out_dir):
        from tf_sparse_gen.families.andor import interpret

        figures = {}
        for layer, name in enumerate(self.generator.layer_names):
            path = os.path.join(out_dir, f"basis_{name}.png")
            if interpret.layer_basis_figure(self.generator, zs, layer, path):
                figures[f"most used basis functions, layer {name}"] = path
        paths = interpret.write_and_or_tree(self.generator, zs[0], out_dir, mid_layer=self.mid_layer)
        figures["AND-OR tree of one sample"] = paths["png"]
        figures["AND-OR tree (JSON)"] = paths["json"]
        from tf_sparse_gen.families.andor import explorer

        figures["interactive explorer (data)"] = explorer.write_explorer(
            self.generator, zs[:3], self.mid_layer, os.path.join(out_dir, "explorer.json"))
        return figures

    def explore_tasks(self):
        """explore.py's `ablate` and `swap` (families/andor/tasks.py)."""
        from tf_sparse_gen.families.andor import tasks

        return dict(tasks.TASKS)

    # ------------------------------------------------------------------ training
    def train_step(self, data):
        index, images = data[0], data[1]
        a = self.hp
        batch = tf.shape(images)[0]
        z_hat = self.random_normal([batch, a.z_dim])
        logs: Dict[str, tf.Tensor] = {}
        checks: Dict[str, tf.Tensor] = {}

        # 1. Critic (n_critic updates): raise mean f(Y) - mean f(Y_hat).
        for i in range(a.n_critic if self.critic is not None else 0):
            fakes = self.generator(z_hat if i == 0 else self.random_normal([batch, a.z_dim]))
            with tf.GradientTape() as tape:
                real_scores = self.critic(images, training=True)
                fake_scores = self.critic(fakes, training=True)
                c_loss = losses.wasserstein_discriminator_loss(real_scores, fake_scores)
                if a.critic_reg == "gp":
                    eps = self.random_uniform([batch, 1, 1, 1])
                    gp = losses.wasserstein_gradient_penalty(self.critic, images, fakes, eps)
                    logs["gradient_penalty"] = gp
                    c_loss = c_loss + a.gp_weight * gp
            c_grads = self.guarded_update("critic_loss", tape, self.c_optimizer, c_loss,
                                          self.critic.trainable_variables, checks)
            logs.update(critic_loss=c_loss, critic_real=tf.reduce_mean(real_scores),
                        critic_fake=tf.reduce_mean(fake_scores), c_grad_norm=tf.linalg.global_norm(c_grads))

        # 2. Langevin inference on the persistent latents of this batch.
        if a.abp:
            z, mse_before, mse_after = self.langevin(images, tf.gather(self.latents, index), a.langevin_steps,
                                                     self._draw_seed())
            checks["langevin"] = self.all_replicas(self.all_finite(z))
            z = tf.where(checks["langevin"], z, tf.gather(self.latents, index))
            self.store_latents(index, z)
            logs.update(mse_before_langevin=mse_before, mse_after_langevin=mse_after)

        # 3. Generator: reconstruction (ABP) term and the critic's judgement of syntheses.
        with tf.GradientTape() as tape:
            g_loss = tf.constant(0.0)
            if a.abp:
                recon, _, acts, _ = self.generator.forward(z, record=True)
                recon_loss = losses.abp_reconstruction_loss(images, recon, a.sigma, a.recon_reduction)
                logs["recon_loss"] = recon_loss
                g_loss = g_loss + recon_loss
            if self.critic is not None:
                fakes, _, fake_acts, _ = self.generator.forward(z_hat, record=not a.abp)
                acts = acts if a.abp else fake_acts
                critic_term = losses.wasserstein_generator_loss(self.critic(fakes))
                logs["gen_critic_term"] = critic_term
                g_loss = g_loss + self.critic_weight * critic_term
        g_grads = self.guarded_update("generator_loss", tape, self.g_optimizer, g_loss,
                                      self.generator.trainable_variables, checks)
        self.note_finite(checks)
        self.update_ema()

        logs["g_grad_norm"] = tf.linalg.global_norm(g_grads)
        for name, s in zip(self.generator.layer_names, self.generator.layer_stages):
            logs[f"active_{name}"] = tf.reduce_mean(tf.cast(acts[s] > 0, tf.float32))
        self.update_trackers(self.trackers, logs)
        return self.tracked_results()

"""The interface every model family implements, used by the harness, evaluation and export."""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import keras
import tensorflow as tf

from tf_sparse_gen.config import Config


class GenerativeModel(keras.Model):
    """Base of the model families (`andor`, `spgan`, `selfexgan`).

    A family builds its networks in `__init__` (so checkpoints can restore
    before the first step), creates its optimizers in `compile`, and
    implements `train_step` returning `{tracker.name: tracker.result()}`.
    Its trackers are `keras.metrics.Mean`s listed by the `metrics` property;
    the harness logs and resets them every `log_every` steps.

    Args:
        config: the run's resolved `Config`.
        num_examples: size of the training split (persistent state per example).
        image_shape: `(H, W, C)` of the training images.
    """

    def __init__(self, config: Config, num_examples: int, image_shape: Tuple[int, int, int], **kwargs):
        super().__init__(**kwargs)
        self.cfg = config
        self.num_examples = int(num_examples)
        self.image_shape = tuple(int(s) for s in image_shape)
        self.seed_generator = keras.random.SeedGenerator(config.train.seed)
        # A SeedGenerator's state is not a checkpoint dependency by itself.
        self.rng_state = self.seed_generator.state
        # Divergence guard: consecutive steps with a non-finite loss or gradient
        # (their updates were skipped) and the name of the last offending quantity.
        self.nonfinite_streak = tf.Variable(0, dtype=tf.int64, trainable=False, name="nonfinite_streak")
        self.last_nonfinite = tf.Variable("", dtype=tf.string, trainable=False, name="last_nonfinite")

    # ------------------------------------------------------------------ contract
    @property
    def latent_dim(self) -> int:
        raise NotImplementedError

    def compile(self, **kwargs):
        """Creates and builds the optimizers from `self.cfg` (overridable by kwargs)."""
        raise NotImplementedError

    def generate(self, z):
        """Images in [-1, 1] for latents z `[B, latent_dim]`."""
        raise NotImplementedError

    def encode(self, images):
        """Latents `[B, latent_dim]` for images in [-1, 1]."""
        raise NotImplementedError

    def reconstruct(self, images):
        """g(encode(x)) for images in [-1, 1]."""
        return self.generate(self.encode(images))

    def prepare(self, source, model_dir: str) -> None:
        """One-off work before the first step of a fresh run (e.g. a dictionary)."""

    def summary_images(self, images, z) -> Dict[str, tf.Tensor]:
        """Named image batches in [-1, 1] for TensorBoard and `samples/`.

        `images` is a fixed batch of training images, `z` fixed latents.
        """
        recon = self.reconstruct(images)
        # Originals and reconstructions side by side: [2B, H, W, C], interleaved.
        pairs = tf.reshape(tf.stack([tf.cast(images, recon.dtype), recon], axis=1),
                           [-1, *self.image_shape])
        return {"samples": self.generate(z), "reconstructions": pairs}

    def active_fractions(self, z) -> Dict[str, float]:
        """Per-layer fraction of non-zero units for latents z (families with sparse layers)."""
        return {}

    def interpretability_templates(self, zs) -> list:
        """Cropped mid-layer basis functions for the NCC score (families that have them)."""
        return []

    def interpretation_figures(self, zs, out_dir: str) -> Dict[str, str]:
        """Writes family-specific figures into out_dir; returns {title: path}."""
        return {}

    def sample_latents(self, n: int, seed: Optional[int] = None):
        seed = self.cfg.train.seed if seed is None else seed
        return tf.random.stateless_normal([n, self.latent_dim], seed=[seed, 7919])

    # ------------------------------------------------------------------ divergence guard
    @staticmethod
    def all_finite(*tensors) -> tf.Tensor:
        """True when every (non-None) tensor, e.g. a loss and its gradients, is finite."""
        checks = [tf.reduce_all(tf.math.is_finite(tf.cast(t, tf.float32))) for t in tensors if t is not None]
        return tf.reduce_all(tf.stack(checks)) if checks else tf.constant(True)

    @staticmethod
    def apply_if(finite, optimizer, grads, variables) -> None:
        """optimizer.apply(grads, variables) only when `finite`; otherwise nothing changes."""
        def apply():
            optimizer.apply(grads, variables)
            return tf.constant(True)
        tf.cond(finite, apply, lambda: tf.constant(False))

    def note_finite(self, checks: Dict[str, tf.Tensor]) -> tf.Tensor:
        """Updates the non-finite streak from {quantity name: finite?}; returns all finite."""
        ok = tf.reduce_all(tf.stack(list(checks.values())))
        self.nonfinite_streak.assign(tf.where(ok, tf.constant(0, tf.int64), self.nonfinite_streak + 1))
        first_bad = tf.constant("")
        for name, finite in reversed(list(checks.items())):
            first_bad = tf.where(finite, first_bad, tf.constant(name))
        self.last_nonfinite.assign(tf.where(ok, self.last_nonfinite, first_bad))
        return ok

    @staticmethod
    def update_trackers(trackers, values: Dict[str, tf.Tensor]) -> None:
        """Adds each finite value to its Mean tracker; non-finite values are left out."""
        for name, value in values.items():
            value = tf.cast(value, tf.float32)
            finite = tf.math.is_finite(value)
            trackers[name].update_state(tf.where(finite, value, 0.0), sample_weight=tf.cast(finite, tf.float32))

    def guarded_update(self, name: str, tape, optimizer, loss, variables, checks: Dict[str, tf.Tensor]):
        """Differentiates `loss` (loss-scaled under mixed_float16) and applies the update if finite.

        Records `checks[name]`; returns the unscaled gradients (for norms).
        With a `LossScaleOptimizer` the optimizer itself skips non-finite
        gradients and lowers its scale, so only a non-finite loss counts as
        divergence; otherwise a non-finite loss or gradient skips the update.
        """
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            # Seeding back-propagation with the scale is the gradient of scale * loss.
            grads = tape.gradient(loss, variables, output_gradients=tf.cast(optimizer.dynamic_scale, loss.dtype))
            checks[name] = self.all_finite(loss)
            optimizer.apply(grads, variables)
            scale = tf.cast(optimizer.dynamic_scale, tf.float32)
            return [None if g is None else tf.cast(g, tf.float32) / scale for g in grads]
        grads = tape.gradient(loss, variables)
        checks[name] = self.all_finite(loss, *grads)
        self.apply_if(checks[name], optimizer, grads, variables)
        return grads

    @staticmethod
    def _build_optimizer(optimizer, variables):
        """Builds `optimizer` for `variables`, wrapped in a LossScaleOptimizer under mixed_float16."""
        if (keras.mixed_precision.global_policy().name == "mixed_float16"
                and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer)):
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(variables)
        return optimizer

    def call(self, z):
        return self.generate(z)

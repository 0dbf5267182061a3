"""The interface every model family implements, used by the harness, evaluation and export."""

from __future__ import annotations

import contextlib
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
        # Under a tf.distribute strategy every replica computes the same value
        # (the checks are all-reduced), and the first replica's is kept.
        first = tf.VariableAggregation.ONLY_FIRST_REPLICA
        self.nonfinite_streak = tf.Variable(0, dtype=tf.int64, trainable=False, name="nonfinite_streak",
                                            aggregation=first)
        # An index into `self.check_names` (set when the step is traced), not a string:
        # XLA compiles no string ops. -1 = none yet.
        self.last_nonfinite = tf.Variable(-1, dtype=tf.int64, trainable=False, name="last_nonfinite",
                                          aggregation=first)
        self.check_names: list = []
        self.ema_slots = None  # a tf.Module holding the averages (track_ema), when EMA is on
        self.ema_in_use = False

    # ------------------------------------------------------------------ contract
    @property
    def latent_dim(self) -> int:
        return self.hp.z_dim

    @property
    def metrics(self):
        """The family's `keras.metrics.Mean` trackers (`self.trackers`, made in its __init__)."""
        return list(self.trackers.values())

    @staticmethod
    def make_trackers(names) -> Dict[str, keras.metrics.Mean]:
        return {n: keras.metrics.Mean(name=n) for n in names}

    def check_image_size(self, generated: int) -> None:
        """Refuses a generator whose images (`generated` px square) do not match the data's size."""
        if generated != self.image_shape[0]:
            raise ValueError(f"the generator makes {generated}px images, the data is {self.image_shape[0]}px")

    def compile(self, **kwargs):
        """Creates and builds the optimizers from `self.cfg` (overridable by kwargs)."""
        raise NotImplementedError

    def compile_step(self, **kwargs):
        """keras.Model.compile with the run's `jit_compile` (XLA), never Keras' "auto".

        No Keras-level optimizer: each family holds its own per network, and Keras'
        default (RMSprop) would be built for every weight under a tf.distribute
        strategy and saved in checkpoints unused. Call under the strategy's scope.
        """
        kwargs.setdefault("optimizer", None)
        kwargs.setdefault("jit_compile", bool(self.cfg.train.jit_compile))
        keras.Model.compile(self, **kwargs)

    def generate(self, z):
        """Images in [-1, 1] for latents z `[B, latent_dim]`."""
        raise NotImplementedError

    def encode(self, images):
        """Latents `[B, latent_dim]` for images in [-1, 1]."""
        raise NotImplementedError

    def encode_method(self) -> Dict[str, object]:
        """How `encode` maps images to latents, for an export's signature.json."""
        if getattr(self, "encoder", None) is not None:
            return {"method": "encoder", "note": "the encoder network E (inference mode)"}
        return {"method": "model.encode"}

    def reconstruct(self, images):
        """g(encode(x)) for images in [-1, 1]."""
        return self.generate(self.encode(images))

    def prepare(self, source) -> Dict[str, object]:
        """One-off work before the first step of a fresh run (e.g. a dictionary).

        Returns named figures (image arrays in [-1, 1]) that the harness writes beside
        the run's samples and to TensorBoard.
        """
        return {}

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

    def untrained_copy(self) -> "GenerativeModel":
        """The same architecture at initialisation (the floor of interpretability scores)."""
        raise NotImplementedError

    # True when the family's units have image-space bases that `part_metrics` can
    # compare with ground-truth part maps (evaluate.py's `purity`).
    has_part_units = False

    def part_metrics(self, images, part_maps, part_names, out_dir: str, log=print):
        """(metrics {name: entry}, figures {title: path}, details) of units vs ground-truth parts."""
        raise NotImplementedError(f"{type(self).__name__} has no part units")

    def interpretation_figures(self, zs, out_dir: str) -> Dict[str, str]:
        """Writes family-specific figures into out_dir; returns {title: path}."""
        return {}

    def explore_tasks(self) -> Dict[str, object]:
        """The family's own explore.py tasks: {name: task(run, out_dir, **options) -> dict}."""
        return {}

    def sample_latents(self, n: int, seed: Optional[int] = None):
        seed = self.cfg.train.seed if seed is None else seed
        return tf.random.stateless_normal([n, self.latent_dim], seed=[seed, 7919])

    # ------------------------------------------------------------------ EMA
    def track_ema(self, *networks) -> None:
        """Keeps an exponential moving average of `networks`' weights when train.ema_decay > 0.

        Call at the end of the family's `__init__` (the averages are checkpointed with the
        model). Every weight is averaged, BatchNorm statistics included. The decay of
        update t (from 1) is min(ema_decay, (1 + t) / (10 + t)), as in
        `tf.train.ExponentialMovingAverage` with `num_updates`: early averages are not
        dominated by the initial weights.
        """
        self.ema_decay = float(self.cfg.train.ema_decay)
        self._ema_sources = [w for net in networks for w in net.weights]
        if not self.ema_decay:
            return
        first = tf.VariableAggregation.ONLY_FIRST_REPLICA
        self.ema_updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="ema_updates", aggregation=first)
        # A tf.Module holds the list: Keras' own list tracking does not make a list of
        # tf.Variables a checkpoint dependency.
        self.ema_slots = tf.Module(name="ema")
        self.ema_slots.averages = [tf.Variable(tf.convert_to_tensor(w), trainable=False, aggregation=first,
                                               name="ema_" + w.name) for w in self._ema_sources]

    @property
    def ema_weights(self) -> list:
        """The averages, in the order of the averaged networks' weights ([] when EMA is off)."""
        return list(self.ema_slots.averages) if self.ema_slots is not None else []

    def update_ema(self) -> None:
        """One EMA update (called by each family at the end of its train_step); no-op when off."""
        if not self.ema_weights:
            return
        t = tf.cast(self.ema_updates.assign_add(1), tf.float32)
        decay = tf.minimum(self.ema_decay, (1.0 + t) / (10.0 + t))
        for avg, w in zip(self.ema_weights, self._ema_sources):
            avg.assign(decay * avg + (1.0 - decay) * tf.cast(w, avg.dtype))

    def swap_ema(self) -> None:
        """Exchanges the networks' weights with their averages (twice restores them)."""
        for avg, w in zip(self.ema_weights, self._ema_sources):
            raw = tf.identity(tf.convert_to_tensor(w))
            w.assign(tf.convert_to_tensor(avg))
            avg.assign(raw)
        self.ema_in_use = not self.ema_in_use if self.ema_weights else False

    @contextlib.contextmanager
    def averaged_weights(self):
        """Within the block the averaged weights are in place (a no-op without EMA or when in use)."""
        if not self.ema_weights or self.ema_in_use:
            yield
            return
        self.swap_ema()
        try:
            yield
        finally:
            self.swap_ema()

    # ------------------------------------------------------------------ replicas
    @staticmethod
    def replicas():
        """(number of replicas in sync, this replica's id) inside a train step; (1, 0) outside one."""
        ctx = tf.distribute.get_replica_context()
        if ctx is None or ctx.num_replicas_in_sync == 1:
            return 1, 0
        return ctx.num_replicas_in_sync, ctx.replica_id_in_sync_group

    def replica_rows(self, global_rows):
        """This replica's share of a tensor drawn for the global batch (all of it on one replica).

        Random draws of a step are made for the global batch `[R * b, ...]` from the
        same seed on every replica and sliced: each replica gets different numbers, and
        R replicas draw exactly what one device would for the same global batch.
        """
        num, rid = self.replicas()
        if num == 1:
            return global_rows
        per_replica = tf.shape(global_rows)[0] // num
        return global_rows[rid * per_replica:(rid + 1) * per_replica]

    def random_normal(self, shape):
        """N(0, I) of `shape` (leading axis: the per-replica batch), from the model's seed state."""
        return self._draw_for_global_batch(keras.random.normal, shape)

    def random_uniform(self, shape):
        """U[0, 1) of `shape` (leading axis: the per-replica batch), from the model's seed state."""
        return self._draw_for_global_batch(keras.random.uniform, shape)

    def _draw_for_global_batch(self, draw, shape):
        num, _ = self.replicas()
        return self.replica_rows(draw([shape[0] * num, *shape[1:]], seed=self.seed_generator))

    def gather_replicas(self, x):
        """`[b, ...]` on each replica -> `[R * b, ...]` on every replica, in replica order.

        An all-reduce of zero-padded copies (exact: every position sums one value and
        zeros), since `all_gather` is not available under every strategy
        (`MultiWorkerMirroredStrategy` refuses it for the step's input tensors).
        Integers travel as float64, exact below 2**53.
        """
        num, rid = self.replicas()
        if num == 1:
            return x
        wide = tf.float64 if x.dtype.is_integer else x.dtype
        rows = tf.shape(x)[0]
        rest = tf.shape(x)[1:]
        before = tf.zeros(tf.concat([[rid * rows], rest], 0), wide)
        after = tf.zeros(tf.concat([[(num - 1 - rid) * rows], rest], 0), wide)
        padded = tf.concat([before, tf.cast(x, wide), after], axis=0)
        total = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, padded)
        return tf.cast(total, x.dtype)

    def all_replicas(self, finite):
        """A boolean that holds on every replica (logical AND across replicas)."""
        if self.replicas()[0] == 1:
            return finite
        failures = tf.distribute.get_replica_context().all_reduce(
            tf.distribute.ReduceOp.SUM, tf.cast(tf.logical_not(finite), tf.float32))
        return tf.equal(failures, 0.0)

    # ------------------------------------------------------------------ divergence guard
    @staticmethod
    def all_finite(*tensors) -> tf.Tensor:
        """True when every (non-None) tensor, e.g. a loss and its gradients, is finite."""
        checks = [tf.reduce_all(tf.math.is_finite(tf.cast(t, tf.float32))) for t in tensors if t is not None]
        return tf.reduce_all(tf.stack(checks)) if checks else tf.constant(True)

    @staticmethod
    def apply_if(finite, optimizer, grads, variables) -> None:
        """optimizer.apply(grads, variables) only when `finite` (the same on every replica).

        Without a strategy this is a `tf.cond`. Under a tf.distribute strategy (even
        with one replica) the optimizer all-reduces the gradients inside a `merge_call`,
        which may not sit in a replica-context `cond`: the cond is taken in the
        cross-replica context and each replica's apply is called from there (as Keras'
        LossScaleOptimizer does).
        """
        ctx = tf.distribute.get_replica_context()
        if ctx is None or not tf.distribute.has_strategy():
            def apply():
                optimizer.apply(grads, variables)
                return tf.constant(True)
            tf.cond(finite, apply, lambda: tf.constant(False))
            return

        def cross_replica(distribution, finite, grads):
            def apply():
                distribution.extended.call_for_each_replica(optimizer.apply, args=(grads, variables))
                return tf.constant(True)
            tf.cond(distribution.experimental_local_results(finite)[0], apply, lambda: tf.constant(False))

        ctx.merge_call(cross_replica, args=(finite, grads))

    def note_finite(self, checks: Dict[str, tf.Tensor]) -> tf.Tensor:
        """Updates the non-finite streak from {quantity name: finite?}; returns all finite."""
        self.check_names = list(checks)
        ok = tf.reduce_all(tf.stack(list(checks.values())))
        self.nonfinite_streak.assign(tf.where(ok, tf.constant(0, tf.int64), self.nonfinite_streak + 1))
        first_bad = tf.constant(-1, tf.int64)
        for i, finite in reversed(list(enumerate(checks.values()))):
            first_bad = tf.where(finite, first_bad, tf.constant(i, tf.int64))
        self.last_nonfinite.assign(tf.where(ok, self.last_nonfinite, first_bad))
        return ok

    def last_nonfinite_name(self) -> str:
        """The first non-finite quantity of the last step that had one ("" if none)."""
        i = int(self.last_nonfinite.numpy())
        return self.check_names[i] if 0 <= i < len(self.check_names) else ""

    @staticmethod
    def update_trackers(trackers, values: Dict[str, tf.Tensor]) -> None:
        """Adds each finite value to its Mean tracker; non-finite values are left out."""
        for name, value in values.items():
            value = tf.cast(value, tf.float32)
            finite = tf.math.is_finite(value)
            trackers[name].update_state(tf.where(finite, value, 0.0), sample_weight=tf.cast(finite, tf.float32))

    def tracked_results(self) -> Dict[str, tf.Tensor]:
        """What `train_step` returns: {tracker name: mean so far}.

        Under `MultiWorkerMirroredStrategy` each value has shape [1]: Keras 3 reduces
        a step's outputs across workers along axis 0, which a scalar lacks
        (tensorflow/tensorflow#72388); the harness averages whatever shape comes back.
        """
        results = {m.name: m.result() for m in self.metrics}
        if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
            results = {k: tf.reshape(v, [1]) for k, v in results.items()}
        return results

    def guarded_update(self, name: str, tape, optimizer, loss, variables, checks: Dict[str, tf.Tensor]):
        """Differentiates `loss` and applies the update if it is finite on every replica.

        Records `checks[name]`; returns the gradients of the per-replica loss (for norms).
        Losses are per-replica means; the optimizer sums gradients over replicas, so
        back-propagation is seeded with 1 / R: the applied update is that of the mean
        over the global batch (replicas hold equal shares of it). Under mixed_float16
        the seed is also multiplied by the loss scale; a `LossScaleOptimizer` itself skips
        non-finite gradients and lowers its scale, so only a non-finite loss counts as
        divergence. Otherwise a non-finite loss or gradient skips the update.
        """
        num, _ = self.replicas()
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            scale = tf.cast(optimizer.dynamic_scale, tf.float32)
            grads = tape.gradient(loss, variables, output_gradients=tf.cast(scale / num, loss.dtype))
            checks[name] = self.all_replicas(self.all_finite(loss))
            optimizer.apply(grads, variables)
            return [None if g is None else tf.cast(g, tf.float32) * (num / scale) for g in grads]
        if num == 1:
            grads = tape.gradient(loss, variables)
        else:
            grads = tape.gradient(loss, variables, output_gradients=tf.cast(1.0 / num, loss.dtype))
        checks[name] = self.all_replicas(self.all_finite(loss, *grads))
        self.apply_if(checks[name], optimizer, grads, variables)
        return grads if num == 1 else [None if g is None else g * num for g in grads]

    def optimizer_for(self, given, lr: float, variables):
        """`given`, or Adam(lr, hp.beta1, hp.beta2), built for `variables` (see `_build_optimizer`)."""
        return self._build_optimizer(given or keras.optimizers.Adam(lr, beta_1=self.hp.beta1, beta_2=self.hp.beta2),
                                     variables)

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

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Nothing to build: every variable exists once the family's __init__ returns.

        Under a tf.distribute strategy Keras' `fit` would otherwise reduce a data batch
        across replicas (which fails for `MultiWorkerMirroredStrategy`) and trace `call`
        on the batch's first element (our `index`) to build the model.
        """

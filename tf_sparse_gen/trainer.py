"""The training harness shared by every model family.

`train(config, model_dir)` resolves the run (a new `model_dir`, or a resume
of the run stored there), loads the data, builds and compiles the model,
restores the latest checkpoint and runs `model.fit` for the remaining steps
with one callback that counts steps, logs the tracked means to TensorBoard,
writes image grids, saves checkpoints and enforces the budgets.

The run directory's layout and resume rules are `rundir.RunDir`'s.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from typing import Callable, Dict, Optional

import keras
import numpy as np
import tensorflow as tf

from tf_sparse_gen import config as config_lib
from tf_sparse_gen import images as image_lib
from tf_sparse_gen import runs
from tf_sparse_gen.config import Config, ConfigError
from tf_sparse_gen.data import load_run_data
from tf_sparse_gen.families import build_model
from tf_sparse_gen.rundir import RunDir


class DivergenceError(RuntimeError):
    """Training produced non-finite values for too many steps in a row."""


def setup_runtime(config: Config) -> None:
    """Seeds, op determinism and the mixed-precision policy (process-wide TF settings)."""
    keras.utils.set_random_seed(config.train.seed)
    if config.train.deterministic:
        tf.config.experimental.enable_op_determinism()
    policy = {"off": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}[config.train.mixed_precision]
    keras.mixed_precision.set_global_policy(policy)


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The tf.distribute strategy of `--strategy`.

    `default`: no distribution (one device). `mirrored`: `MirroredStrategy` over
    every GPU, or over the logical CPU devices when there is no GPU (one, unless
    the CPU was split with `tf.config.set_logical_device_configuration`).
    `multiworker`: `MultiWorkerMirroredStrategy`, configured by the `TF_CONFIG`
    environment variable (without it: one local worker). Create it before any
    other TensorFlow op of the process: collective ops are configured then.

    One strategy object per name serves the whole process: two strategies over the
    same devices would allocate the same collective-op keys, and their collectives
    would collide in TensorFlow's process-wide collective runtime.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name not in _STRATEGIES:
        if name == "mirrored":
            devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
            _STRATEGIES[name] = tf.distribute.MirroredStrategy([d.name for d in devices])
        elif name == "multiworker":
            _STRATEGIES[name] = tf.distribute.MultiWorkerMirroredStrategy()
        else:
            raise ConfigError(f"unknown strategy {name!r}; use one of: {', '.join(config_lib.STRATEGIES)}")
    return _STRATEGIES[name]


_STRATEGIES: Dict[str, tf.distribute.Strategy] = {}


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True unless this process is a non-chief worker of a multi-worker strategy."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type in ("chief", None) or (task_type == "worker" and task_id == 0
                                             and "chief" not in resolver.cluster_spec().as_dict())


def check_replicas(config: Config, strategy: tf.distribute.Strategy) -> None:
    """The global batch must split evenly over the replicas (losses are means over equal shares)."""
    replicas = strategy.num_replicas_in_sync
    if config.train.batch_size % replicas:
        raise ConfigError(f"--batch_size={config.train.batch_size} does not split over the {replicas} replicas of "
                          f"--strategy={config.train.strategy}; use a multiple of {replicas}")


class _Budget:
    """The wall-clock and CPU-time budgets of one invocation (0 = none)."""

    def __init__(self, minutes: float, cpu_minutes: float = 0.0):
        self.start = time.monotonic()
        self.cpu_start = time.process_time()
        self.seconds = minutes * 60.0
        self.cpu_seconds = cpu_minutes * 60.0

    def exceeded(self) -> Optional[str]:
        """The name of the budget that ran out (the config field), or None."""
        if self.seconds > 0 and time.monotonic() - self.start >= self.seconds:
            return "train_minutes"
        if self.cpu_seconds > 0 and time.process_time() - self.cpu_start >= self.cpu_seconds:
            return "train_cpu_minutes"
        return None

    def used(self) -> Dict[str, float]:
        return {"wall_seconds": time.monotonic() - self.start, "cpu_seconds": time.process_time() - self.cpu_start}


class TrainLoop(keras.callbacks.Callback):
    """Counts steps; logs, draws, checkpoints and stops on schedule."""

    def __init__(self, run: "Run", total_steps: int, budget: _Budget, log: Callable[[str], None]):
        super().__init__()
        self.run = run
        self.total = total_steps
        self.budget = budget
        self.log = log
        self.interrupted: Optional[str] = None
        self.diverged: Optional[str] = None
        self._t0 = time.monotonic()
        self._s0 = int(run.step.numpy())
        self._window_t = self._t0
        self._window_s = self._s0

    def on_train_batch_end(self, batch, logs=None):
        run, cfg = self.run, self.run.config.train
        step = int(run.step.assign_add(1).numpy())
        streak = int(self.model.nonfinite_streak.numpy())
        if streak:
            what = self.model.last_nonfinite_name()
            self.log(f"step {step}: non-finite {what}; update skipped ({streak} in a row)")
            if streak >= cfg.max_nonfinite_steps:
                self.diverged = (f"training diverged: non-finite {what} for {streak} steps in a row, "
                                 f"up to step {step}")
        if step % cfg.log_every == 0 or step == self.total:
            now = time.monotonic()
            rate = (step - self._window_s) * cfg.batch_size / max(now - self._window_t, 1e-9)
            self._window_t, self._window_s = now, step
            scalars = {k: float(np.mean(v)) for k, v in (logs or {}).items()}
            run.write_scalars(step, scalars, rate)
            self.log(self._progress_line(step, rate, scalars))
            for m in self.model.metrics:
                m.reset_state()
        if step % cfg.sample_every == 0:
            run.write_images(step)
        if step % cfg.checkpoint_every == 0 and not streak:
            run.manager.save(checkpoint_number=step)
        if step >= self.total or self.budget.exceeded() or self.interrupted or self.diverged:
            self.model.stop_training = True

    def _progress_line(self, step, rate, scalars):
        frac = step / max(self.total, 1)
        bar = "#" * int(20 * frac) + "-" * (20 - int(20 * frac))
        done = step - self._s0
        elapsed = time.monotonic() - self._t0
        eta = (self.total - step) * elapsed / max(done, 1)
        if self.budget.seconds > 0:
            eta = min(eta, max(self.budget.seconds - (time.monotonic() - self.budget.start), 0.0))
        shown = " ".join(f"{k}={v:.4g}" for k, v in scalars.items() if not k.startswith("active_"))
        return (f"step {step}/{self.total} [{bar}] {rate:.1f} img/s "
                f"ETA {time.strftime('%H:%M:%S', time.gmtime(eta))} | {shown}")


class Run:
    """A model, its checkpoint, writers and fixed summary inputs in one `model_dir`.

    The model and its optimizers are built under `strategy`'s scope. A non-chief
    worker of a multi-worker run (`write_dir` given) restores from `model_dir` but
    writes its checkpoints to `write_dir` (every worker must take part in saving) and
    writes no logs or images.
    """

    def __init__(self, config: Config, model_dir: str, log: Callable[[str], None] = print,
                 strategy: Optional[tf.distribute.Strategy] = None, write_dir: Optional[str] = None):
        self.config = config
        self.model_dir = model_dir
        self.dir = RunDir(model_dir)
        # Where this process writes checkpoints and logs (a non-chief worker: its own temp dir).
        self.writes = RunDir(write_dir) if write_dir else self.dir
        self.log = log
        self.strategy = strategy or tf.distribute.get_strategy()
        self.chief = write_dir is None
        t = config.train
        self.source = load_run_data(config, "train", max_examples=config.data.max_examples, log=log)
        if self.source.streamed:
            log(f"dataset: above the in-memory limit, streamed from the data cache {self.source.cache_path}")
        if self.source.skipped:
            log(f"dataset: skipped {len(self.source.skipped)} unreadable file(s), e.g. "
                + "; ".join(f"{p} ({why})" for p, why in self.source.skipped[:3]))
        check_replicas(config, self.strategy)
        with self.strategy.scope():
            self.model = build_model(config, self.source.num_examples, self.source.image_shape)
            self.model.compile()
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.checkpoint = tf.train.Checkpoint(step=self.step, model=self.model)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, self.writes.checkpoints, max_to_keep=t.keep_checkpoints)
        self.writer = tf.summary.create_file_writer(self.writes.logs)
        n = min(t.num_sample_images, self.source.num_examples)
        self.fixed_images = tf.constant(self.source.take_images(min(n, 32)))
        self.fixed_z = self.model.sample_latents(n)

    def restore(self) -> bool:
        """Restores the newest readable checkpoint; False for a fresh run.

        Unreadable newer checkpoints (a truncated file after a full disk or a half copy) are
        reported and moved, untouched, to checkpoints/unreadable/, so the resumed run's
        next saves cannot overwrite them.
        """
        if not runs.checkpoints_newest_first(self.dir.checkpoints):
            return False
        path, bad = runs.restore_newest_readable(
            lambda p: self.checkpoint.restore(p).assert_existing_objects_matched(), self.dir.checkpoints, self.log)
        if bad and self.chief:
            kept = self.dir.quarantine_checkpoints(bad)
            tf.compat.v1.train.update_checkpoint_state(
                self.dir.checkpoints, path,
                [p for p in reversed(runs.checkpoints_newest_first(self.dir.checkpoints)) if p not in bad])
            self.manager = tf.train.CheckpointManager(self.checkpoint, self.dir.checkpoints,
                                                      max_to_keep=self.config.train.keep_checkpoints)
            self.log(f"moved the unreadable checkpoint files to {kept}")
        self.log(f"resumed from {path} at step {int(self.step.numpy())}")
        return True

    def write_scalars(self, step: int, scalars: Dict[str, float], images_per_sec: float) -> None:
        if not self.chief:
            return
        with self.writer.as_default(step=step):
            for name, value in scalars.items():
                tf.summary.scalar(name, value)
            tf.summary.scalar("images_per_sec", images_per_sec)
        self.writer.flush()

    def write_images(self, step: int) -> Dict[str, str]:
        if not self.chief:
            return {}
        with self.model.averaged_weights():
            batches = self.model.summary_images(self.fixed_images, self.fixed_z)
            grids = {name: image_lib.image_grid(batch.numpy(), ncol=8) for name, batch in batches.items()}
        return self.write_figures(grids, step)

    def write_figures(self, grids: Dict[str, np.ndarray], step: int, stepped: bool = True) -> Dict[str, str]:
        """Writes image grids ([-1, 1]) to TensorBoard and samples/ (named by step when `stepped`)."""
        paths = {}
        with self.writer.as_default(step=step):
            for name, grid in grids.items():
                tf.summary.image(name, np.asarray(grid)[None])
                paths[name] = image_lib.save_png(grid, self.dir.sample_path(name, step if stepped else None),
                                                 scale=2 if stepped else 1)
        self.writer.flush()
        return paths


def train(config: Config, model_dir: str, log: Callable[[str], None] = print) -> dict:
    """Trains (or resumes) the run in `model_dir` and returns a summary dict."""
    config.validate()
    model_dir = os.path.abspath(os.path.expanduser(model_dir))
    config = RunDir(model_dir).check_resume(config)
    strategy = make_strategy(config.train.strategy)
    setup_runtime(config)
    budget = _Budget(config.train.train_minutes, config.train.train_cpu_minutes)
    write_dir = None if is_chief(strategy) else tempfile.mkdtemp(prefix="tf_sparse_gen_worker_")
    try:
        return _train(config, model_dir, log, strategy, write_dir, budget)
    finally:
        if write_dir is not None:
            shutil.rmtree(write_dir, ignore_errors=True)


def _train(config: Config, model_dir: str, log, strategy, write_dir: Optional[str], budget: _Budget) -> dict:
    # Loads the data first: a bad dataset fails before any write.
    run = Run(config, model_dir, log, strategy=strategy, write_dir=write_dir)
    run.writes.make_dirs()
    resumed = run.restore()
    if run.chief:
        run.dir.write_config(config)
        run.dir.write_run_info(run.source.num_examples, run.source.image_shape)
    if not resumed:
        figures = run.model.prepare(run.source)
        if run.chief and figures:
            run.write_figures(figures, 0, stepped=False)
    start = int(run.step.numpy())
    total = config.train.train_steps
    summary = {"model_dir": model_dir, "start_step": start, "resumed": resumed,
               "replicas": strategy.num_replicas_in_sync}
    if start >= total:
        log(f"run already at step {start} >= --train_steps={total}; nothing to do")
        summary.update(final_step=start, stopped_by="train_steps")
        return summary

    loop = TrainLoop(run, total, budget, log)

    def on_signal(signum, frame):
        loop.interrupted = signal.Signals(signum).name
        log(f"{loop.interrupted} received: saving a checkpoint after this step")

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, on_signal)
        except ValueError:  # not the main thread
            pass
    log(f"training {config.model} ({config.preset}) on {run.source.name}: "
        f"{run.source.num_examples} examples of {run.source.image_shape}, steps {start} -> {total}"
        + (f", at most {config.train.train_minutes:g} min" if config.train.train_minutes else ""))
    dataset = run.source.train_dataset(config.train.batch_size, config.train.seed, start_step=start)
    try:
        run.model.fit(dataset, epochs=1, steps_per_epoch=total - start, callbacks=[loop], verbose=0,
                      shuffle=False)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    step = int(run.step.numpy())
    if loop.diverged:
        raise DivergenceError(
            f"{loop.diverged}. The last good checkpoint is kept: {run.manager.latest_checkpoint}. "
            "Lower the learning rates, check the data for NaN/Inf, or raise --set=train.max_nonfinite_steps.")
    if run.manager.latest_checkpoint is None or not run.manager.latest_checkpoint.endswith(f"-{step}"):
        run.manager.save(checkpoint_number=step)
    paths = run.write_images(step)
    stopped_by = loop.interrupted or ("train_steps" if step >= total else budget.exceeded() or "train_minutes")
    log(f"stopped at step {step} ({stopped_by}); checkpoint {run.manager.latest_checkpoint}; "
        f"samples {paths.get('samples')}")
    summary.update(final_step=step, stopped_by=stopped_by, samples=paths,
                   checkpoint=run.manager.latest_checkpoint, **budget.used())
    return summary

"""Loading trained runs from a `model_dir` (config.json + checkpoints/) for inference.

`load_trained_model(model_dir)` rebuilds the model of the stored config and
restores its latest (or a given) checkpoint; no optimizer is built, so the
checkpoint's optimizer slots are ignored (`expect_partial`). The size of the
training split (`num_examples`) and the image shape come from the run's
run.json; for runs older than run.json, `num_examples` is read from the
checkpoint's per-example variables (e.g. the AND-OR model's persistent latents).
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Callable, List, Optional, Tuple

import tensorflow as tf

from tf_sparse_gen.config import Config, ConfigError
from tf_sparse_gen.families import build_model
from tf_sparse_gen.rundir import RunDir

_DIRECT_VARIABLE = re.compile(r"^model/([^/]+)/\.ATTRIBUTES/VARIABLE_VALUE$")


@dataclasses.dataclass
class TrainedModel:
    """A restored run: the model (not compiled), its config, step and checkpoint path."""

    model: object
    config: Config
    step: int
    checkpoint: str
    model_dir: str


def read_config(model_dir: str) -> Config:
    """The resolved config stored in the run directory `model_dir`."""
    return RunDir(model_dir).read_config()


def latest_checkpoint(model_dir: str) -> str:
    rd = RunDir(model_dir)
    path = tf.train.latest_checkpoint(rd.checkpoints)
    if path is None:
        raise ConfigError(f"{rd.checkpoints} holds no checkpoint; train the run first")
    return path


# What reading a damaged checkpoint raises (a truncated data file: IndexError "Read less
# bytes than requested"; a damaged index: DataLossError; a missing shard: NotFoundError).
_READ_ERRORS = (tf.errors.OpError, IndexError, ValueError, OSError)


def checkpoints_newest_first(directory: str) -> list:
    """Checkpoint prefixes in `directory`, newest first (from the state file, else the *.index files)."""
    try:
        state = tf.train.get_checkpoint_state(directory)
    except _READ_ERRORS:
        state = None
    paths = list(state.all_model_checkpoint_paths) if state else []
    if not paths and os.path.isdir(directory):
        found = [f[:-len(".index")] for f in os.listdir(directory) if f.endswith(".index")]
        paths = sorted((os.path.join(directory, f) for f in found),
                       key=lambda p: int(re.sub(r"\D", "", os.path.basename(p)) or 0))
    return [p if os.path.isabs(p) else os.path.join(directory, p) for p in reversed(paths)]


def restore_newest_readable(restore: Callable[[str], None], directory: str,
                            log: Callable[[str], None] = print) -> Tuple[str, List[str]]:
    """Calls `restore(prefix)` on the newest checkpoint that reads; returns (prefix, unreadable ones).

    An unreadable checkpoint is reported by name and the previous one is tried; nothing is
    changed on disk. Raises ConfigError when none is readable.
    """
    skipped = []
    for path in checkpoints_newest_first(directory):
        try:
            restore(path)
            return path, skipped
        except ConfigError:  # readable, but not this model's weights: not a damaged file
            raise
        except _READ_ERRORS as e:
            reason = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
            log(f"checkpoint {path} is unreadable ({type(e).__name__}: {reason}); trying the one before it")
            skipped.append(path)
    if skipped:
        raise ConfigError(f"no readable checkpoint in {directory}: {', '.join(os.path.basename(p) for p in skipped)} "
                          "could not be read (the files are kept for inspection); restore the directory from a "
                          "copy, or start a new run in a new --model_dir")
    raise ConfigError(f"{directory} holds no checkpoint; train the run first")


def num_examples_from_checkpoint(config: Config, checkpoint: str, image_shape) -> int:
    """`num_examples` of the run, from the leading dimension of its per-example variables.

    A model built with num_examples=1 is compared with the checkpoint: a direct
    variable attribute of the model whose first dimension is 1 here and N in
    the checkpoint (other dimensions equal) is per-example state, so the run
    had N examples. Returns 1 when the model has no per-example variables.
    """
    probe = build_model(config, 1, image_shape)
    for key, shape in tf.train.list_variables(checkpoint):
        match = _DIRECT_VARIABLE.match(key)
        if not match or not shape:
            continue
        var = getattr(probe, match.group(1), None)
        if isinstance(var, tf.Variable) and var.shape.rank == len(shape) and var.shape[0] == 1 \
                and shape[0] != 1 and list(var.shape[1:]) == list(shape[1:]):
            return int(shape[0])
    return 1


def _check_weights_restored(status, model, checkpoint: str, model_dir: str) -> None:
    """Raises unless every trainable variable of `model` got a value from the checkpoint.

    Bookkeeping variables added to the model after the checkpoint was written
    (counters, flags) may be missing; network weights may not.
    """
    try:
        status.assert_existing_objects_matched()
        return
    except AssertionError as e:
        error = e
    restored = getattr(getattr(status, "_checkpoint", None), "object_by_proto_id", None)
    if restored is None:  # private TF structure changed: fall back to the strict check
        raise ConfigError(f"{checkpoint} does not match the model of {model_dir}/config.json: {error}")
    restored_ids = {id(obj) for obj in restored.values()}
    missing = [v.path if hasattr(v, "path") else v.name for v in model.trainable_variables
               if id(v) not in restored_ids]
    if missing:
        raise ConfigError(f"{checkpoint} does not match the model of {model_dir}/config.json: "
                          f"{len(missing)} weight(s) have no value in it, e.g. {missing[:5]}")


def load_trained_model(model_dir: str, checkpoint: Optional[str] = None, ema: bool = True,
                       log: Callable[[str], None] = print) -> TrainedModel:
    """Rebuilds the model stored in `model_dir` and restores its weights.

    Args:
        model_dir: a run directory written by `trainer.train`.
        checkpoint: a checkpoint prefix; default the latest in `model_dir/checkpoints`.
        ema: use the averaged generator weights where the run kept them (train.ema_decay > 0);
            False keeps the raw training weights.
        log: where a skipped unreadable checkpoint is reported (the newest readable one is used).

    Raises:
        ConfigError: no config.json or no checkpoint, or the checkpoint does
            not fit the stored config.
    """
    model_dir = os.path.abspath(os.path.expanduser(model_dir))
    config = read_config(model_dir)
    rd = RunDir(model_dir)
    info = rd.read_run_info()
    if info is not None:
        image_shape, num_examples = tuple(info["image_shape"]), int(info["num_examples"])
    else:  # a run written before run.json existed
        image_shape = (config.data.image_size, config.data.image_size, config.data.channels)
        num_examples = num_examples_from_checkpoint(config, checkpoint or latest_checkpoint(model_dir), image_shape)
    model = build_model(config, num_examples, image_shape)
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    ckpt = tf.train.Checkpoint(step=step, model=model)

    def restore(path):
        _check_weights_restored(ckpt.restore(path).expect_partial(), model, path, model_dir)

    if checkpoint:
        restore(checkpoint)
    else:
        checkpoint, _ = restore_newest_readable(restore, rd.checkpoints, log=log)
    if ema:
        model.swap_ema()
    return TrainedModel(model=model, config=config, step=int(step.numpy()), checkpoint=checkpoint,
                        model_dir=model_dir)

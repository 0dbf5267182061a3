"""Shipped trained runs (`pretrained/<family>_<dataset>[_<variant>]/`): slim copies of run directories.

`make_slim_run(model_dir, out_dir)` writes a directory that every loader of a run
directory accepts as it is (evaluate.py, explore.py, `runs.load_trained_model`,
`export.export_model`), holding:

- `config.json`: the run's config, unchanged;
- `checkpoints/`: one checkpoint of the model without optimiser slots and without the
  per-example state (the AND-OR model's persistent latents are stored for one example,
  so loaders read `num_examples` = 1). The generator holds the run's averaged (EMA)
  weights where the run kept them, and so do its averages;
- `export/`: the SavedModel of those weights;
- `pretrained.json`: where it came from (source run, step, command).

Evaluating such a directory writes nowhere inside it unless asked (evaluate.py's
`--out_dir`); see `default_eval_dir`.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Optional

import tensorflow as tf

MARKER = "pretrained.json"


def is_pretrained(model_dir: str) -> bool:
    return os.path.exists(os.path.join(model_dir, MARKER))


def default_eval_dir(model_dir: str) -> str:
    """model_dir/eval for a run; outside the repository for a shipped run (its name under the user's cache)."""
    if not is_pretrained(model_dir):
        return os.path.join(model_dir, "eval")
    root = os.environ.get("TF_SPARSE_GEN_HOME", os.path.join(os.path.expanduser("~"), ".cache", "tf_sparse_gen"))
    return os.path.join(root, "eval", os.path.basename(os.path.abspath(model_dir).rstrip(os.sep)))


def make_slim_run(model_dir: str, out_dir: str, command: Optional[str] = None, export: bool = True) -> dict:
    """Writes the slim copy of the run in `model_dir` to `out_dir` (replaced if present)."""
    from tf_sparse_gen import export as export_lib
    from tf_sparse_gen.models import build_model
    from tf_sparse_gen.runs import load_trained_model

    run = load_trained_model(model_dir)  # generator = averaged weights where kept
    model = run.model
    slim = build_model(run.config, 1, model.image_shape)
    for dst, src in zip(slim.weights, model.weights):
        if dst.shape != src.shape:  # per-example state: not shipped
            continue
        dst.assign(src)
    # The averages of the slim model equal the (averaged) weights it ships.
    for avg, w in zip(slim.ema_weights, slim._ema_sources):
        avg.assign(w)
    tmp = out_dir.rstrip(os.sep) + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.join(tmp, "checkpoints"))
    shutil.copy(os.path.join(run.model_dir, "config.json"), os.path.join(tmp, "config.json"))
    step = tf.Variable(run.step, dtype=tf.int64, trainable=False, name="step")
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(step=step, model=slim),
                                         os.path.join(tmp, "checkpoints"), max_to_keep=1)
    manager.save(checkpoint_number=run.step)
    meta = {"source_run": run.model_dir, "source_checkpoint": run.checkpoint, "step": run.step,
            "model": run.config.model, "ema_decay": run.config.train.ema_decay, "command": command}
    with open(os.path.join(tmp, MARKER), "w") as f:
        json.dump(meta, f, indent=2, sort_keys=True)
    if export:
        export_lib.export_model(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    meta["bytes"] = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out_dir) for f in fs)
    return meta

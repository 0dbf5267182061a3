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
`--out_dir`); see `RunDir.eval_dir`.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import List, Optional

import tensorflow as tf

from tf_sparse_gen.rundir import PRETRAINED_MARKER, RunDir, write_json_atomic

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Where the shipped runs live: pretrained/ of the repository (the package is installed editable).
SHIPPED_ROOT = os.path.join(_REPO, "pretrained")
# Their README galleries (scripts/make_gallery.py): docs/gallery/<name>/, with metrics.md.
GALLERY_ROOT = os.path.join(_REPO, "docs", "gallery")


def gallery_dir(name: str, root: str = GALLERY_ROOT) -> str:
    """The gallery folder of the shipped run `name` (pretrained/<name>/)."""
    return os.path.join(root, name)


def gallery_report(path: str, root: str = GALLERY_ROOT) -> Optional[str]:
    """The gallery's metrics.md of the shipped run at `path`, or None when no gallery was made."""
    report = os.path.join(gallery_dir(os.path.basename(os.path.normpath(path)), root), "metrics.md")
    return report if os.path.isfile(report) else None


def shipped_runs_like(config, root: str = SHIPPED_ROOT) -> List[str]:
    """The shipped runs under `root` of the same model family and dataset as `config` (sorted paths)."""
    found = []
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        run = RunDir(os.path.join(root, name))
        if not run.is_pretrained() or not run.has_config():
            continue
        shipped = run.read_config()
        if shipped.model == config.model and shipped.data.dataset == config.data.dataset:
            found.append(run.path)
    return found


def describe(path: str) -> str:
    """One line about a shipped run: its step and the command that made it (pretrained.json)."""
    with open(os.path.join(path, PRETRAINED_MARKER)) as f:
        meta = json.load(f)
    return f"{path} (step {meta.get('step')}; made by {meta.get('command') or 'an unrecorded command'})"

def make_slim_run(model_dir: str, out_dir: str, command: Optional[str] = None, export: bool = True) -> dict:
    """Writes the slim copy of the run in `model_dir` to `out_dir` (replaced if present)."""
    from tf_sparse_gen import export as export_lib
    from tf_sparse_gen.families import build_model
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
    tmp = RunDir(out_dir.rstrip(os.sep) + ".tmp")
    shutil.rmtree(tmp.path, ignore_errors=True)
    os.makedirs(tmp.checkpoints)
    tmp.write_config(run.config)
    tmp.write_run_info(1, model.image_shape)
    step = tf.Variable(run.step, dtype=tf.int64, trainable=False, name="step")
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(step=step, model=slim), tmp.checkpoints, max_to_keep=1)
    manager.save(checkpoint_number=run.step)
    meta = {"source_run": run.model_dir, "source_checkpoint": run.checkpoint, "step": run.step,
            "model": run.config.model, "ema_decay": run.config.train.ema_decay, "command": command}
    write_json_atomic(tmp.sub(PRETRAINED_MARKER), meta)
    if export:
        export_lib.export_model(tmp.path)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp.path, out_dir)
    meta["bytes"] = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out_dir) for f in fs)
    return meta

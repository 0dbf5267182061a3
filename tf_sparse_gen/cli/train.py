"""Train a tf_sparse_gen model.

With no flags this runs the README's main job: the sparse AND-OR model
(`small` preset) on Fashion-MNIST for 5 minutes into runs/andor_fashion_mnist.
Calling it again on the same --model_dir resumes that run (flags not given are
taken from the stored config.json).

  python train.py --model=andor --dataset=fashion_mnist --model_dir=runs/x --train_minutes=30
  python train.py --model_dir=runs/x --train_steps=5000          # resume, longer
  python train.py --preset=tiny --dataset=digits --set=andor.block_ks=[0.5,0]
"""

from __future__ import annotations

import json
import sys

from absl import app, flags, logging

from tf_sparse_gen.families import MODELS, REGISTRY  # the registry of configs (no TensorFlow)

FLAGS = flags.FLAGS

flags.DEFINE_enum("model", MODELS[0], list(MODELS),
                  "Model family: " + "; ".join(f"{f.name} = {f.title}" for f in REGISTRY.values()) + ".")
flags.DEFINE_string("dataset", "fashion_mnist",
                    "fashion_mnist | digits | shapes | folder:PATH | tfds:NAME[:SPLIT].")
flags.DEFINE_string("model_dir", "runs/andor_fashion_mnist", "Run directory (created or resumed).")
flags.DEFINE_enum("preset", "small", ["tiny", "small", "paper"], "Hyper-parameter preset.")
flags.DEFINE_integer("train_steps", None, "Total training steps of the run (default: the preset's).")
flags.DEFINE_float("train_minutes", 5.0, "Wall-clock budget of this invocation in minutes; 0 = no limit.")
flags.DEFINE_float("train_cpu_minutes", None, "CPU-time budget of this invocation in minutes of process CPU "
                   "time summed over threads (2 busy cores: 2 per wall minute); 0 = no limit.")
flags.DEFINE_integer("batch_size", None, "Batch size (default: the preset's).")
flags.DEFINE_integer("seed", None, "Random seed (default 0).")
flags.DEFINE_integer("image_size", None, "Image side in pixels (default: the preset's).")
flags.DEFINE_integer("channels", None, "Image channels, 1 or 3 (default: the preset's).")
flags.DEFINE_string("data_dir", None, "Where to look for dataset files.")
flags.DEFINE_integer("max_examples", None, "Use only the first N training examples.")
flags.DEFINE_enum("mixed_precision", None, ["off", "bf16", "fp16"], "Mixed precision policy.")
flags.DEFINE_enum("strategy", None, ["default", "mirrored", "multiworker"], "tf.distribute strategy.")
flags.DEFINE_bool("deterministic", None, "Enable TensorFlow op determinism.")
flags.DEFINE_bool("jit_compile", None, "Compile the train step with XLA (slower on CPU).")
# Each family's switches (e.g. --sparsity=off for andor), from the registry.
_SWITCH_FLAGS = {}
for _family in REGISTRY.values():
    for _flag, (_field, _choices, _help) in _family.switches.items():
        flags.DEFINE_enum(_flag, None, list(_choices), f"{_family.name}: {_help}.")
        _SWITCH_FLAGS[_flag] = (_family.name, f"{_family.name}.{_field}")
flags.DEFINE_multi_string("set", [], "Any config field by dotted path, e.g. --set=andor.sigma=0.2 "
                          "or --set=andor.block_widths=[64,32,16] (JSON values).")
flags.DEFINE_bool("export", False, "Export a SavedModel to model_dir/export after training.")

# flag name -> config path
_FIELD_FLAGS = {
    "dataset": "data.dataset", "train_steps": "train.train_steps", "train_minutes": "train.train_minutes",
    "train_cpu_minutes": "train.train_cpu_minutes",
    "batch_size": "train.batch_size", "seed": "train.seed", "image_size": "data.image_size",
    "channels": "data.channels", "data_dir": "data.data_dir", "max_examples": "data.max_examples",
    "mixed_precision": "train.mixed_precision", "strategy": "train.strategy",
    "deterministic": "train.deterministic", "jit_compile": "train.jit_compile",
}

def _parse_set(items):
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set={item!r} must look like field.path=value")
        path, raw = item.split("=", 1)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[path.strip()] = value
    return out


def resolve_config(argv_flags=FLAGS):
    """Builds the run's Config from the flags given (and the stored run, when resuming)."""
    from tf_sparse_gen import config as config_lib

    overrides = {}
    for name, path in _FIELD_FLAGS.items():
        # Flags with a value by default count only when given, so a resume keeps the stored value.
        if argv_flags[name].present:
            overrides[path] = argv_flags[name].value
    from tf_sparse_gen.rundir import RunDir

    run_dir = RunDir(argv_flags.model_dir)
    resuming = run_dir.has_config()
    model = argv_flags["model"].value
    if resuming and not argv_flags["model"].present:
        model = run_dir.read_config().model
    for name, (family, path) in _SWITCH_FLAGS.items():
        if argv_flags[name].value is not None:
            if model != family:
                raise config_lib.ConfigError(f"--{name} applies to --model={family}, not --model={model}")
            value = argv_flags[name].value
            overrides[path] = {"on": True, "off": False}.get(value, value)
    overrides.update(_parse_set(argv_flags.set))
    if not argv_flags["train_minutes"].present or not resuming:
        overrides.setdefault("train.train_minutes", argv_flags.train_minutes)
    if not resuming and not argv_flags["dataset"].present:
        overrides["data.dataset"] = argv_flags.dataset
    given = {name: argv_flags[name].value if argv_flags[name].present or not resuming else None
             for name in ("model", "preset")}
    return run_dir.resolve_config(given["model"], given["preset"], overrides)


def main(argv):
    logging.set_verbosity(logging.WARNING)
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from tf_sparse_gen.config import ConfigError

    try:  # before TensorFlow starts: a bad flag fails in a fraction of a second
        config = resolve_config()
    except ConfigError as e:
        print(f"train.py: error: {e}", file=sys.stderr)
        return 2
    from tf_sparse_gen import trainer
    from tf_sparse_gen.data import DatasetError

    try:
        summary = trainer.train(config, FLAGS.model_dir)
        if FLAGS.export:
            from tf_sparse_gen import export

            path = export.export_model(FLAGS.model_dir)
            print(f"exported SavedModel to {path}")
    except (ConfigError, DatasetError) as e:
        print(f"train.py: error: {e}", file=sys.stderr)
        return 2
    except trainer.DivergenceError as e:
        print(f"train.py: {e}", file=sys.stderr)
        return 3
    from tf_sparse_gen import pretrained

    for path in pretrained.shipped_runs_like(config):
        report = pretrained.gallery_report(path)
        print(f"what longer training gives: the shipped run {pretrained.describe(path)}; "
              + (f"its measured report and figures: {report}; " if report else "")
              + f"`evaluate.py --model_dir={path}` writes a report of your own")
    print(json.dumps(summary, default=str))
    return 0


def run() -> None:
    """Console-script entry point (`tf-sparse-gen-train`, and `tf-sparse-gen train`)."""
    from tf_sparse_gen.cli import run_program

    run_program(__name__, main)


if __name__ == "__main__":
    run()

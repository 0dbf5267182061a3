"""The run directory (`model_dir`): the only module that knows its layout.

```
config.json     the fully resolved config of the run
run.json        what the config does not say: num_examples, image shape, versions
checkpoints/    tf.train.CheckpointManager checkpoints (unreadable ones moved to checkpoints/unreadable/)
logs/           TensorBoard event files
samples/        image grids written during training (and family figures such as dictionary.png)
eval/           evaluate.py's metrics.json, report.html and figures
export/         the SavedModel
explore/        explore.py's outputs
pretrained.json present in a shipped run (pretrained/<name>/): where it came from
```

It also decides what a train invocation runs in an existing directory
(`resolve_config`, `check_resume`): a stored run is resumed with its own config,
where only the `SESSION_FIELDS` (budgets, logging, data location) may change.
"""

from __future__ import annotations

import json
import os
from typing import Optional

from tf_sparse_gen import config as config_lib
from tf_sparse_gen.config import Config, ConfigError

CONFIG = "config.json"
RUN_INFO = "run.json"
PRETRAINED_MARKER = "pretrained.json"
CHECKPOINTS, LOGS, SAMPLES, EVAL, EXPORT, EXPLORE = "checkpoints", "logs", "samples", "eval", "export", "explore"


def write_json_atomic(path: str, payload) -> None:
    """Writes JSON (or a ready string) through a temporary file, so a crash leaves the old file."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(payload if isinstance(payload, str) else json.dumps(payload, indent=2, sort_keys=True))
        f.write("\n")
    os.replace(tmp, path)


class RunDir:
    """Paths and records of one run directory.

    Args:
        path: the directory (need not exist yet); `~` is expanded.
    """

    def __init__(self, path: str):
        self.path = os.path.abspath(os.path.expanduser(path))

    def sub(self, name: str) -> str:
        return os.path.join(self.path, name)

    @property
    def checkpoints(self) -> str:
        return self.sub(CHECKPOINTS)

    @property
    def logs(self) -> str:
        return self.sub(LOGS)

    @property
    def samples(self) -> str:
        return self.sub(SAMPLES)

    @property
    def export(self) -> str:
        return self.sub(EXPORT)

    @property
    def explore(self) -> str:
        return self.sub(EXPLORE)

    def sample_path(self, name: str, step: Optional[int] = None) -> str:
        """samples/<name>_<step>.png, or samples/<name>.png without a step."""
        return os.path.join(self.samples, f"{name}_{step:07d}.png" if step is not None else f"{name}.png")

    def latest_sample(self, name: str) -> Optional[str]:
        if not os.path.isdir(self.samples):
            return None
        found = sorted(f for f in os.listdir(self.samples) if f.startswith(name + "_") and f.endswith(".png"))
        return os.path.join(self.samples, found[-1]) if found else None

    def make_dirs(self) -> None:
        for sub in (CHECKPOINTS, LOGS, SAMPLES):
            os.makedirs(self.sub(sub), exist_ok=True)

    def quarantine_checkpoints(self, prefixes) -> str:
        """Moves the files of checkpoint `prefixes` to checkpoints/unreadable/ (nothing is deleted)."""
        target = os.path.join(self.checkpoints, "unreadable")
        os.makedirs(target, exist_ok=True)
        for prefix in prefixes:
            base = os.path.basename(prefix)
            for name in os.listdir(self.checkpoints):
                if name == base + ".index" or name.startswith(base + ".data-"):
                    os.replace(os.path.join(self.checkpoints, name), os.path.join(target, name))
        return target

    # ------------------------------------------------------------------ config and run info
    def has_config(self) -> bool:
        return os.path.exists(self.sub(CONFIG))

    def read_config(self) -> Config:
        path = self.sub(CONFIG)
        if not os.path.exists(path):
            raise ConfigError(f"{self.path} has no {CONFIG}: not a tf_sparse_gen run directory")
        try:
            with open(path) as f:
                return Config.from_json(f.read())
        except (ValueError, ConfigError) as e:
            raise ConfigError(f"{path} is not a readable tf_sparse_gen config ({e}); restore it from a copy, "
                              "or use a new --model_dir") from None

    def write_config(self, config: Config) -> None:
        write_json_atomic(self.sub(CONFIG), config.to_json())

    def read_run_info(self) -> Optional[dict]:
        """run.json's contents, or None for a run written before run.json existed."""
        path = self.sub(RUN_INFO)
        if not os.path.exists(path):
            return None
        try:
            with open(path) as f:
                return json.load(f)
        except ValueError as e:
            raise ConfigError(f"{path} is not readable JSON ({e}); delete it (it is rebuilt from the "
                              "checkpoint) or restore it from a copy") from None

    def write_run_info(self, num_examples: int, image_shape) -> None:
        import tensorflow as tf

        from tf_sparse_gen import __version__
        write_json_atomic(self.sub(RUN_INFO), {"num_examples": int(num_examples),
                                               "image_shape": [int(s) for s in image_shape],
                                               "tf_sparse_gen": __version__, "tensorflow": tf.__version__})

    # ------------------------------------------------------------------ resume rules
    def resolve_config(self, model: Optional[str], preset: Optional[str], overrides: dict) -> Config:
        """The config a train invocation runs here.

        A new directory: the `preset` of `model` with `overrides`. An existing run:
        its stored config with `overrides` applied (a different `model` or `preset`
        is refused); `check_resume` then refuses any change outside SESSION_FIELDS.
        `model` / `preset` are None when not given explicitly.
        """
        if not self.has_config():
            return config_lib.get_config(model, preset or "small", overrides)
        stored = self.read_config()
        for name, value in (("model", model), ("preset", preset)):
            if value is not None and value != getattr(stored, name):
                raise ConfigError(f"--{name}={value} but {self.path} holds a --{name}={getattr(stored, name)} "
                                  "run; use a new --model_dir for a new run")
        return config_lib.apply_overrides(stored, overrides).validate()

    def check_resume(self, config: Config) -> Config:
        """`config`, unless the stored run differs from it outside SESSION_FIELDS (then ConfigError)."""
        if not self.has_config():
            return config
        stored = self.read_config()
        changed = {k: v for k, v in config_lib.diff(stored, config).items() if k not in config_lib.SESSION_FIELDS}
        if changed:
            lines = "\n".join(f"  {k}: stored {old!r}, requested {new!r}" for k, (old, new) in sorted(changed.items()))
            raise ConfigError(
                f"{self.path} holds a run with another configuration; refusing to resume it with:\n{lines}\n"
                "Use a new --model_dir for a new run, or repeat the stored settings to resume.")
        return config

    # ------------------------------------------------------------------ shipped runs
    def is_pretrained(self) -> bool:
        return os.path.exists(self.sub(PRETRAINED_MARKER))

    def eval_dir(self) -> str:
        """eval/ of a run; for a shipped run a folder outside it (its name under the user's cache)."""
        if not self.is_pretrained():
            return self.sub(EVAL)
        root = os.environ.get("TF_SPARSE_GEN_HOME", os.path.join(os.path.expanduser("~"), ".cache", "tf_sparse_gen"))
        return os.path.join(root, EVAL, os.path.basename(self.path.rstrip(os.sep)))

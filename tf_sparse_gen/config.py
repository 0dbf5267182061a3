"""One typed configuration source for every model family.

A run is fully described by a `Config`: the data, the training loop and the
chosen family's hyper-parameters. `get_config(model, preset)` gives a preset
(`tiny` for tests, `small` for CPU runs, `paper` for the papers' settings);
`apply_overrides` changes fields by dotted path; `Config.to_dict` /
`Config.from_dict` round-trip through JSON (`model_dir/config.json`).

Nothing here reads flags: `train.py` and `evaluate.py` translate flags into
overrides.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any, Optional, Tuple, Union

from tf_sparse_gen.families import MODELS, REGISTRY
from tf_sparse_gen.fields import ConfigError, check_choice, check_positive, get_path
from tf_sparse_gen.sparsity import K, TOPK_IMPLEMENTATIONS  # noqa: F401  (re-exported)

PRESETS = ("tiny", "small", "paper")
MIXED_PRECISION = ("off", "bf16", "fp16")
STRATEGIES = ("default", "mirrored", "multiworker")


@dataclasses.dataclass
class DataConfig:
    dataset: str = "fashion_mnist"
    data_dir: Optional[str] = None
    image_size: int = 32
    channels: int = 1
    # Use only the first N training examples (0 = all); for quick experiments.
    max_examples: int = 0
    # Size of the procedural `shapes` dataset.
    shapes_num_examples: int = 20000


@dataclasses.dataclass
class TrainConfig:
    batch_size: int = 64
    # Total number of training steps of the run (a resumed run continues to it).
    train_steps: int = 20000
    # Wall-clock budget of one train.py invocation in minutes (0 = unlimited).
    train_minutes: float = 0.0
    # CPU-time budget of one invocation in minutes of process CPU time, summed over
    # threads (0 = unlimited). Unlike wall-clock it does not shrink when other work
    # shares the machine, so benchmarks compare variants by it.
    train_cpu_minutes: float = 0.0
    # Exponential moving average of the generator's weights (0 = off). The averaged
    # weights make samples, evaluation and exports; the raw ones keep training.
    ema_decay: float = 0.0
    seed: int = 0
    deterministic: bool = False
    log_every: int = 50
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    sample_every: int = 500
    num_sample_images: int = 64
    mixed_precision: str = "off"
    strategy: str = "default"
    jit_compile: bool = False
    # Consecutive non-finite steps (skipped) tolerated before the run stops.
    max_nonfinite_steps: int = 20


class _ConfigMethods:
    @property
    def family(self):
        """The hyper-parameters of the chosen model family."""
        return getattr(self, self.model)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict):
        return _from_dict(cls, d, "")

    @classmethod
    def from_json(cls, text: str):
        return cls.from_dict(json.loads(text))

    def validate(self):
        _validate(self)
        return self


# The whole configuration: model, preset, data, train, and one section per registered
# family (that family's dataclass; a run uses the section of its `model`).
Config = dataclasses.make_dataclass(
    "Config",
    [("model", str, dataclasses.field(default=MODELS[0])), ("preset", str, dataclasses.field(default="small")),
     ("data", DataConfig, dataclasses.field(default_factory=DataConfig)),
     ("train", TrainConfig, dataclasses.field(default_factory=TrainConfig))]
    + [(f.name, f.config_class, dataclasses.field(default_factory=f.config_class)) for f in REGISTRY.values()],
    bases=(_ConfigMethods,), namespace={"__doc__": "A run's full configuration (see the module docstring)."})
Config.__module__ = __name__


# Fields that may differ between the run on disk and a resumed invocation:
# they change how long or how fast a run goes, not what it computes.
SESSION_FIELDS = frozenset({
    "train.train_steps", "train.train_minutes", "train.train_cpu_minutes", "train.log_every",
    "train.checkpoint_every", "train.keep_checkpoints", "train.sample_every",
    "train.num_sample_images", "train.strategy", "train.jit_compile",
    "train.max_nonfinite_steps", "data.data_dir", "preset",
})


def _from_dict(cls, d: Any, prefix: str):
    if not isinstance(d, dict):
        raise ConfigError(f"config: '{prefix or 'root'}' must be a mapping, got {type(d).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ConfigError(
            f"config: unknown field(s) {sorted(prefix + k for k in unknown)}; "
            f"known fields of '{prefix or 'root'}': {sorted(names)}")
    kwargs = {}
    for name, value in d.items():
        kwargs[name] = _coerce(hints[name], value, prefix + name)
    return cls(**kwargs)


def _coerce(hint, value, path):
    if dataclasses.is_dataclass(hint):
        return _from_dict(hint, value, path + ".")
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Union:
        if value is None and type(None) in args:
            return None
        if set(args) <= {int, float}:  # K
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"config: '{path}' must be a number, got {value!r}")
            return value
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, path)
    if origin in (tuple, Tuple):
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"config: '{path}' must be a list, got {value!r}")
        return tuple(_coerce(args[0], v, path) for v in value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("on", "true", "1", "yes", "off", "false", "0", "no"):
            return value.lower() in ("on", "true", "1", "yes")
        raise ConfigError(f"config: '{path}' must be on/off (true/false), got {value!r}")
    if hint is int:
        if isinstance(value, bool):
            raise ConfigError(f"config: '{path}' must be an integer, got {value!r}")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        if not isinstance(value, int):
            raise ConfigError(f"config: '{path}' must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool):
            raise ConfigError(f"config: '{path}' must be a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config: '{path}' must be a number, got {value!r}") from None
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"config: '{path}' must be a string, got {value!r}")
        return value
    return value


def _validate(c: Config) -> None:
    check_choice("model", c.model, MODELS)
    check_choice("preset", c.preset, PRESETS)
    check_choice("train.mixed_precision", c.train.mixed_precision, MIXED_PRECISION)
    check_choice("train.strategy", c.train.strategy, STRATEGIES)
    for path in ("data.image_size", "data.channels", "train.batch_size", "train.train_steps",
                 "train.log_every", "train.checkpoint_every", "train.keep_checkpoints",
                 "train.sample_every", "train.num_sample_images", "train.max_nonfinite_steps"):
        check_positive(path, get_path(c, path))
    for path in ("train.train_minutes", "train.train_cpu_minutes", "train.seed", "data.max_examples", "data.shapes_num_examples"):
        check_positive(path, get_path(c, path), allow_zero=True)
    check_choice("data.channels", c.data.channels, (1, 3))
    if not 0.0 <= c.train.ema_decay < 1.0:
        raise ConfigError(f"config: 'train.ema_decay'={c.train.ema_decay} must be in [0, 1) (0 = no EMA; "
                          "0.999 is typical)")
    if not c.data.dataset:
        raise ConfigError("config: 'data.dataset' is empty; see --helpfull for the dataset sources")
    REGISTRY[c.model].validate(c)


def apply_overrides(config: Config, overrides: dict) -> Config:
    """Returns a copy of `config` with fields set by dotted path (`train.batch_size`)."""
    d = config.to_dict()
    for path, value in overrides.items():
        node = d
        parts = path.split(".")
        for part in parts[:-1]:
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(f"config: unknown field '{path}'")
            node = node[part]
        if parts[-1] not in node:
            raise ConfigError(f"config: unknown field '{path}'")
        node[parts[-1]] = value
    return Config.from_dict(d)


def diff(a: Config, b: Config) -> dict:
    """{dotted path: (a value, b value)} for every leaf that differs."""
    out = {}

    def walk(x, y, prefix):
        for key in sorted(set(x) | set(y)):
            vx, vy = x.get(key), y.get(key)
            if isinstance(vx, dict) and isinstance(vy, dict):
                walk(vx, vy, prefix + key + ".")
            elif vx != vy:
                out[prefix + key] = (vx, vy)

    walk(a.to_dict(), b.to_dict(), "")
    return out


def get_config(model: Optional[str] = None, preset: str = "small", overrides: Optional[dict] = None) -> Config:
    """The preset `preset` of family `model` (default: the first registered), with `overrides`, validated."""
    model = MODELS[0] if model is None else model
    check_choice("model", model, MODELS)
    check_choice("preset", preset, PRESETS)
    config = Config(model=model, preset=preset)
    config = apply_overrides(config, REGISTRY[model].preset(preset))
    if overrides:
        config = apply_overrides(config, overrides)
    return config.validate()

"""The registry of model families: `--model` name -> config class, presets, model class.

A family lives in its own folder, `families/<name>/`: `config.py` (its hyper-parameter
dataclass, `preset(name) -> overrides` and `validate(config)`, no TensorFlow) and the
TensorFlow side (`model.py` with its `GenerativeModel` subclass, networks, and any
family-specific interpretation or applications). Adding a family is its folder, one
`Family(...)` line below and its tests; nothing else names it.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Callable, Dict, Tuple

from tf_sparse_gen.families.andor import config as andor_config
from tf_sparse_gen.families.selfexgan import config as selfexgan_config
from tf_sparse_gen.families.spgan import config as spgan_config
from tf_sparse_gen.fields import ConfigError


@dataclasses.dataclass(frozen=True)
class Family:
    """One model family.

    Args:
        name: the `--model` value and the config section (`config.<name>`).
        title: one line for help texts.
        config_class: the dataclass of the family's hyper-parameters.
        preset: preset name -> dotted-path overrides of the whole config.
        validate: raises ConfigError for an invalid config of this family.
        model: "module:Class" of its `GenerativeModel`, imported on first use.
        switches: train.py's switches of this family: flag -> (field of the family,
            allowed values, help); "on"/"off" set a boolean field.
        explore_tasks: names of the family's own explore.py tasks (the callables come from
            the model's `explore_tasks()`); listed here so a bad --task fails before a run loads.
    """

    name: str
    title: str
    config_class: type
    preset: Callable[[str], dict]
    validate: Callable
    model: str
    switches: Dict[str, Tuple[str, Tuple[str, ...], str]] = dataclasses.field(default_factory=dict)
    explore_tasks: Tuple[str, ...] = ()


ON_OFF = ("on", "off")


def _family(name, title, module, model, switches=None, explore_tasks=()) -> Family:
    return Family(name, title, module.CONFIG_CLASS, module.preset, module.validate, model, switches or {},
                  tuple(explore_tasks))


REGISTRY: Dict[str, Family] = {f.name: f for f in (
    _family("andor", "Sparse AND-OR generator (Xing et al., CVPR 2020)", andor_config,
            "tf_sparse_gen.families.andor.model:CooperativeAndOrModel",
            {"sparsity": ("sparsity", ON_OFF, "top-k sparsity (off = dense baseline)"),
             "ebm": ("ebm", ON_OFF, "energy-based critic (off = plain ABP)")},
            explore_tasks=("ablate", "swap")),
    _family("spgan", "Sparse GAN (Mahdizadehaghdam et al., 2019)", spgan_config,
            "tf_sparse_gen.families.spgan.model:SparseGAN",
            {"generator": ("generator", ("dcgan", "resnet"), "generator body"),
             "reconstructor": ("reconstructor", ON_OFF, "the third player"),
             "sparse_output": ("sparse_output", ON_OFF, "sparse patch output (off = WGAN-GP)")}),
    _family("selfexgan", "SelfExGAN (Liu, 2018)", selfexgan_config,
            "tf_sparse_gen.families.selfexgan.model:SelfExGAN"),
)}
MODELS = tuple(REGISTRY)


def family(name: str) -> Family:
    if name not in REGISTRY:
        raise ConfigError(f"unknown model {name!r}; use one of: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def model_class(name: str):
    module, cls = family(name).model.split(":")
    return getattr(importlib.import_module(module), cls)


def build_model(config, num_examples: int, image_shape=None):
    """The model of `config.model`, built (all variables exist) but not compiled."""
    if image_shape is None:
        image_shape = (config.data.image_size, config.data.image_size, config.data.channels)
    return model_class(config.model)(config, num_examples, image_shape)

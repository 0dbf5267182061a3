"""Model families, looked up by `--model`."""

from __future__ import annotations

import importlib

from tf_sparse_gen.config import Config, ConfigError

_FAMILIES = {
    "andor": ("tf_sparse_gen.models.cooperative", "CooperativeAndOrModel"),
    "spgan": ("tf_sparse_gen.models.spgan", "SparseGAN"),
    "selfexgan": ("tf_sparse_gen.models.selfexgan", "SelfExGAN"),
}


def model_class(name: str):
    if name not in _FAMILIES:
        raise ConfigError(f"unknown model {name!r}; use one of: {', '.join(_FAMILIES)}")
    module, cls = _FAMILIES[name]
    try:
        return getattr(importlib.import_module(module), cls)
    except ModuleNotFoundError as e:
        if e.name != module:
            raise
        raise ConfigError(f"model family {name!r} is not implemented in this version of tf_sparse_gen") from None


def build_model(config: Config, num_examples: int, image_shape=None):
    """The model of `config.model`, built (all variables exist) but not compiled."""
    if image_shape is None:
        image_shape = (config.data.image_size, config.data.image_size, config.data.channels)
    return model_class(config.model)(config, num_examples, image_shape)

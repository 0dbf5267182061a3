"""tf_sparse_gen: interpretable image generation with sparse generators (TensorFlow 2 / Keras 3).

The public names below are imported on first use, so `import tf_sparse_gen.config` (or the
family registry) does not start TensorFlow.
"""

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "TopKSparsity": "tf_sparse_gen.layers",
    "build_model": "tf_sparse_gen.families",
    "load_dataset": "tf_sparse_gen.data",
    "get_config": "tf_sparse_gen.config",
    "Config": "tf_sparse_gen.config",
    "ConfigError": "tf_sparse_gen.config",
    "DatasetError": "tf_sparse_gen.data",
}
__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'tf_sparse_gen' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)

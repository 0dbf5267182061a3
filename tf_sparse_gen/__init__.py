"""tf_sparse_gen: interpretable image generation with sparse generators (TensorFlow 2 / Keras 3)."""

__version__ = "0.1.0"

from tf_sparse_gen.config import Config, ConfigError, get_config  # noqa: E402
from tf_sparse_gen.data import DatasetError, load_dataset  # noqa: E402
from tf_sparse_gen.layers import TopKSparsity  # noqa: E402
from tf_sparse_gen.models import build_model  # noqa: E402

__all__ = ["TopKSparsity", "build_model", "load_dataset", "get_config", "Config", "ConfigError",
           "DatasetError", "__version__"]

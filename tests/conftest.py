import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402


@pytest.fixture
def tiny_andor():
    """A tiny AND-OR config on the bundled digits data."""
    from tf_sparse_gen.config import get_config

    def make(**overrides):
        base = {"data.dataset": "digits", "train.train_minutes": 0.0}
        base.update(overrides)
        return get_config("andor", "tiny", base)
    return make

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Two logical CPU devices for the tf.distribute tests (MirroredStrategy over them); this must
# happen before TensorFlow's runtime starts. Ops placed by default still run on /cpu:0.
tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                           [tf.config.LogicalDeviceConfiguration()] * 2)


@pytest.fixture
def tiny_andor():
    """A tiny AND-OR config on the bundled digits data."""
    from tf_sparse_gen.config import get_config

    def make(**overrides):
        base = {"data.dataset": "digits", "train.train_minutes": 0.0}
        base.update(overrides)
        return get_config("andor", "tiny", base)
    return make

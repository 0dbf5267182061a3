import fcntl
import hashlib
import json
import os
import shutil

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Two logical CPU devices for the tf.distribute tests (MirroredStrategy over them); this must
# happen before TensorFlow's runtime starts. Ops placed by default still run on /cpu:0.
tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                           [tf.config.LogicalDeviceConfiguration()] * 2)

# Files whose tests take the longest (seconds, measured with --durations=0 on this machine).
# Under xdist (--dist loadfile --no-loadscope-reorder, scripts/run_tests.sh) files are handed
# out in collection order, so the slow ones go first and the short ones fill the tail; the
# order within a file is kept. Only the order depends on these numbers, never a result.
SLOW_FILES = {"test_distribute.py": 280, "test_reliability.py": 277, "test_spgan.py": 194,
              "test_precision.py": 186, "test_ema.py": 175, "test_export.py": 170, "test_cli.py": 132,
              "test_inception.py": 112, "test_family_contract.py": 107, "test_old_runs.py": 107,
              "test_evaluation.py": 100}


def pytest_collection_modifyitems(config, items):
    weight = {}
    for i, item in enumerate(items):
        weight.setdefault(item.path.name, (-SLOW_FILES.get(item.path.name, 0), i))
    items.sort(key=lambda item: weight[item.path.name])


@pytest.fixture
def tiny_andor():
    """A tiny AND-OR config on the bundled digits data."""
    from tf_sparse_gen.config import get_config

    def make(**overrides):
        base = {"data.dataset": "digits", "train.train_minutes": 0.0}
        base.update(overrides)
        return get_config("andor", "tiny", base)
    return make


class TinyRuns:
    """Tiny runs trained once per test session and shared by every test (and xdist worker).

    `tiny_config(family, **overrides)`: the `tiny` preset on digits, 2 steps, generator EMA 0.9.
    `copy(family, dest, **overrides)` trains that config on first use (under a file lock, so two
    workers never train the same run twice) and copies the run to `dest`; a test owns its copy and
    may resume, export or evaluate into it. `summary(...)` is what `train()` returned.
    """

    BASE = {"data.dataset": "digits", "train.train_minutes": 0.0, "train.train_steps": 2,
            "train.ema_decay": 0.9}

    def __init__(self, root):
        self.root = root
        os.makedirs(root, exist_ok=True)

    def tiny_config(self, family, **overrides):
        from tf_sparse_gen.config import get_config
        return get_config(family, "tiny", {**self.BASE, **overrides})

    def _master(self, family, overrides):
        key = json.dumps([family, sorted(overrides.items())], default=list)
        name = family + "_" + hashlib.sha1(key.encode()).hexdigest()[:10]
        path = os.path.join(self.root, name)
        with open(path + ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not os.path.exists(path + ".summary.json"):
                from tf_sparse_gen.trainer import train
                shutil.rmtree(path, ignore_errors=True)
                summary = train(self.tiny_config(family, **overrides), path, log=lambda s: None)
                with open(path + ".summary.json", "w") as f:
                    json.dump(summary, f)
        return path

    def summary(self, family, **overrides):
        with open(self._master(family, overrides) + ".summary.json") as f:
            return json.load(f)

    def copy(self, family, dest, **overrides):
        shutil.copytree(self._master(family, overrides), str(dest))
        return str(dest)


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory, worker_id):
    # Under xdist every worker has its own base temp directory inside one shared parent.
    base = tmp_path_factory.getbasetemp()
    return TinyRuns(str((base.parent if worker_id != "master" else base) / "tiny_runs"))

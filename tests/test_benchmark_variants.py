"""Every budget benchmark's variants are valid train.py invocations that set what they name.

A misspelt field or flag in a benchmark costs a whole 10-60 CPU-minute variant before it shows;
this resolves each variant's flags through train.py's own flag parsing and config resolution
(no TensorFlow, no training) and checks each `--set` and switch landed in the config.
"""

import importlib
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

from tf_sparse_gen.cli import train as train_cli  # noqa: E402
from tf_sparse_gen import config as config_lib  # noqa: E402
from tf_sparse_gen.fields import get_path  # noqa: E402

BENCHMARKS = ("andor_budget", "andor_shapes_budget", "spgan_budget", "selfexgan_budget", "main_job")
CASES = [(name, v) for name in BENCHMARKS for v in importlib.import_module(name).VARIANTS]


@pytest.fixture
def flag_values():
    fv = train_cli.FLAGS
    yield fv
    fv.unparse_flags()


def test_the_benchmarks_have_variants_with_unique_names():
    for name in BENCHMARKS:
        names = [v.name for v in importlib.import_module(name).VARIANTS]
        assert names and len(names) == len(set(names)), name


@pytest.mark.parametrize("bench,variant", CASES, ids=[f"{b}:{v.name}" for b, v in CASES])
def test_variant_flags_resolve_to_the_config_they_name(bench, variant, flag_values, tmp_path):
    config = _resolve(flag_values, tmp_path, [*variant.flags, f"--seed={variant.seed}"])
    assert config.train.seed == variant.seed
    for flag in _last_of_each(variant.flags):
        key, value = flag[2:].split("=", 1)
        if key == "set":
            ((path, parsed),) = train_cli._parse_set([value]).items()
            assert get_path(config, path) == _as_config_value(parsed), (bench, flag)
        elif key in train_cli._SWITCH_FLAGS:
            path = train_cli._SWITCH_FLAGS[key][1]
            assert get_path(config, path) == {"on": True, "off": False}.get(value, value), (bench, flag)
        elif key == "model":
            assert config.model == value
        elif key == "batch_size":
            assert config.train.batch_size == int(value)


def _last_of_each(flags):
    """`flags` without those a later flag overrides (a variant's flags after a benchmark's pinned BASE)."""
    def key(flag):
        name, value = flag[2:].split("=", 1)
        return ("set", value.split("=", 1)[0]) if name == "set" else (name, None)
    last = {key(f): f for f in flags}
    return [f for f in flags if last[key(f)] is f]


def _resolve(flag_values, tmp_path, flags):
    flag_values(["train.py", *flags, f"--model_dir={tmp_path / 'run'}"])
    config = train_cli.resolve_config(flag_values)
    flag_values.unparse_flags()
    return config


def test_the_main_jobs_fast_variant_is_todays_small_preset_and_default_the_old_one(flag_values, tmp_path):
    import main_job

    groups = {v.group: v for v in main_job.VARIANTS}
    today = _resolve(flag_values, tmp_path, ["--model=andor", "--dataset=fashion_mnist", "--preset=small"])
    fast = _resolve(flag_values, tmp_path, groups["fast"].flags)
    default = _resolve(flag_values, tmp_path, groups["default"].flags)
    assert config_lib.diff(today, fast) == {}
    assert (default.train.batch_size, default.andor.langevin_steps, default.andor.g_lr, default.andor.c_lr) == (
        64, 10, 5e-4, 2e-4)
    assert (fast.train.batch_size, fast.andor.langevin_steps, fast.andor.g_lr, fast.andor.c_lr) == (
        32, 5, 1e-3, 4e-4)


def _as_config_value(value):
    return tuple(value) if isinstance(value, list) else value

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
from tf_sparse_gen.fields import get_path  # noqa: E402

BENCHMARKS = ("andor_budget", "spgan_budget", "selfexgan_budget", "main_job")
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
    flag_values(["train.py", *variant.flags, f"--model_dir={tmp_path / 'run'}", f"--seed={variant.seed}"])
    config = train_cli.resolve_config(flag_values)
    assert config.train.seed == variant.seed
    for flag in variant.flags:
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


def _as_config_value(value):
    return tuple(value) if isinstance(value, list) else value

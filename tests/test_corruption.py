"""Run state that survives corruption: truncated checkpoints, unreadable config.json / run.json."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tf_sparse_gen.config import ConfigError, get_config
from tf_sparse_gen.runs import load_trained_model
from tf_sparse_gen.trainer import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(steps):
    return get_config("andor", "tiny", {"data.dataset": "digits", "train.train_minutes": 0.0,
                                        "train.train_steps": steps, "train.checkpoint_every": 2,
                                        "train.keep_checkpoints": 5})


def _truncate(run_dir, step):
    ckpt = os.path.join(run_dir, "checkpoints")
    (data,) = [f for f in os.listdir(ckpt) if f.startswith(f"ckpt-{step}.data-")]
    path = os.path.join(ckpt, data)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    return data


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("corruption") / "run")
    train(_config(4), d, log=lambda s: None)
    return d


@pytest.fixture
def run_dir(trained_once, tmp_path):
    """A fresh copy of one tiny trained run (checkpoints at steps 2 and 4) for each test to damage."""
    d = str(tmp_path / "run")
    shutil.copytree(trained_once, d)
    return d


def test_truncated_latest_checkpoint_resumes_from_the_one_before(run_dir):
    bad = _truncate(run_dir, 4)
    lines = []
    summary = train(_config(6), run_dir, log=lines.append)
    assert summary["start_step"] == 2 and summary["final_step"] == 6
    assert any("ckpt-4" in line and "unreadable" in line for line in lines), lines
    assert any("resumed from" in line and "ckpt-2" in line for line in lines)
    # The damaged files are kept, untouched, where the next saves cannot overwrite them.
    kept = os.path.join(run_dir, "checkpoints", "unreadable", bad)
    assert os.path.exists(kept)
    assert os.path.exists(os.path.join(run_dir, "checkpoints", "ckpt-4.index"))  # re-saved at step 4
    assert load_trained_model(run_dir, log=lambda s: None).step == 6


def test_loading_skips_an_unreadable_latest_checkpoint(run_dir):
    _truncate(run_dir, 4)
    lines = []
    run = load_trained_model(run_dir, log=lines.append)
    assert run.step == 2 and run.checkpoint.endswith("ckpt-2")
    assert any("ckpt-4" in line for line in lines)
    assert os.path.exists(os.path.join(run_dir, "checkpoints", "ckpt-4.index"))  # loading moves nothing


def test_no_readable_checkpoint_is_a_named_error(run_dir):
    _truncate(run_dir, 4)
    _truncate(run_dir, 2)
    with pytest.raises(ConfigError, match=r"no readable checkpoint.*ckpt-4.*ckpt-2"):
        train(_config(6), run_dir, log=lambda s: None)


def _cli(script, *args):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, os.path.join(ROOT, script), *args], env=env, capture_output=True,
                          text=True, timeout=300)


def test_corrupt_config_json_is_a_named_error_without_traceback(run_dir):
    path = os.path.join(run_dir, "config.json")
    with open(path, "w") as f:
        f.write('{"model": "andor", "data": {')
    for script, args in (("train.py", [f"--model_dir={run_dir}", "--train_steps=6"]),
                         ("evaluate.py", [f"--model_dir={run_dir}", "--metrics=mse", "--num_samples=4"])):
        proc = _cli(script, *args)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert "config.json" in proc.stderr and "Traceback" not in proc.stderr
    assert open(path).read() == '{"model": "andor", "data": {'  # left as it was


def test_corrupt_run_json_is_a_named_error(run_dir):
    with open(os.path.join(run_dir, "run.json"), "w") as f:
        f.write("{not json")
    proc = _cli("evaluate.py", f"--model_dir={run_dir}", "--metrics=mse", "--num_samples=4")
    assert proc.returncode == 2 and "run.json" in proc.stderr and "Traceback" not in proc.stderr
    json.loads(open(os.path.join(run_dir, "config.json")).read())  # the rest is untouched

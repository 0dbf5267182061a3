"""Divergence guard, crash-safe resume, determinism, config validation, hygiene."""

import ast
import glob
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings, strategies as st

from tf_sparse_gen import config as config_lib, data as data_lib, trainer
from tf_sparse_gen.config import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_nonfinite_steps_are_skipped_then_the_run_stops_keeping_the_last_good_checkpoint(
        tiny_runs, tmp_path, monkeypatch):
    model_dir = tiny_runs.copy("andor", tmp_path / "run")  # 2 good steps
    good = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))

    original = data_lib.ImageSource.train_dataset

    def poisoned(self, *args, **kwargs):
        return original(self, *args, **kwargs).map(lambda i, x, *rest: (i, x * np.nan, *rest))
    monkeypatch.setattr(data_lib.ImageSource, "train_dataset", poisoned)
    lines = []
    config = tiny_runs.tiny_config("andor", **{"train.train_steps": 20, "train.max_nonfinite_steps": 3})
    with pytest.raises(trainer.DivergenceError, match=r"non-finite \w+ for 3 steps in a row, up to step 5"):
        trainer.train(config, model_dir, log=lines.append)
    assert any("update skipped (1 in a row)" in line for line in lines)
    assert tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints")) == good
    # Skipped steps changed no weight: a fresh load of the model equals the good checkpoint.
    run = trainer.Run(config, model_dir, log=lambda s: None)
    run.restore()
    for v in run.model.generator.trainable_variables[:2]:
        assert np.isfinite(v.numpy()).all()


def _train_cmd(model_dir, steps, *extra):
    return [sys.executable, os.path.join(ROOT, "train.py"), "--preset=tiny", "--dataset=digits",
            f"--model_dir={model_dir}", f"--train_steps={steps}", "--deterministic", "--train_minutes=0",
            "--set=train.checkpoint_every=1", "--set=train.log_every=1", *extra]


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")


def _checkpoint_values(model_dir):
    path = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    return path, {k: tf.train.load_variable(path, k) for k, _ in tf.train.list_variables(path)
                  if "save_counter" not in k and "_CHECKPOINTABLE" not in k and "last_nonfinite" not in k}


def _scalars(model_dir, tag):
    out = {}
    for f in sorted(glob.glob(os.path.join(model_dir, "logs", "events.*"))):
        for event in tf.compat.v1.train.summary_iterator(f):
            for v in event.summary.value:
                if v.tag == tag:
                    out[event.step] = tf.make_ndarray(v.tensor).item()
    return out


STEPS = 12


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted deterministic CLI run of STEPS steps (checkpoint and losses every step)."""
    path = str(tmp_path_factory.mktemp("reliability") / "reference")
    subprocess.run(_train_cmd(path, STEPS), env=_env(), check=True, capture_output=True, timeout=300)
    return path


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_equals_an_uninterrupted_run(reference, tmp_path):
    steps = STEPS

    killed = str(tmp_path / "killed")
    proc = subprocess.Popen(_train_cmd(killed, steps), env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 240
    for line in proc.stdout:  # kill -9 somewhere after step 6
        if line.startswith("step 6/") or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    done = subprocess.run(_train_cmd(killed, steps), env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["resumed"] and 1 <= summary["start_step"] < steps and summary["final_step"] == steps
    ref_path, ref_values = _checkpoint_values(reference)
    got_path, got_values = _checkpoint_values(killed)
    assert ref_path.endswith(f"-{steps}") and got_path.endswith(f"-{steps}")
    assert ref_values.keys() == got_values.keys()
    for key in ref_values:
        np.testing.assert_array_equal(got_values[key], ref_values[key], err_msg=key)


def test_sigterm_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    model_dir = str(tmp_path / "run")
    proc = subprocess.Popen(_train_cmd(model_dir, 10000), env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        if line.startswith("step 3/"):
            break
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["stopped_by"] == "SIGTERM" and summary["final_step"] >= 3
    assert summary["checkpoint"].endswith(f"-{summary['final_step']}")


def test_deterministic_runs_give_bit_identical_losses(reference, tmp_path):
    again = str(tmp_path / "again")
    subprocess.run(_train_cmd(again, STEPS), env=_env(), check=True, capture_output=True, timeout=300)
    losses = [_scalars(r, "recon_loss") for r in (reference, again)]
    assert sorted(losses[0]) == list(range(1, STEPS + 1))
    assert losses[0] == losses[1]
    other = str(tmp_path / "seed1")
    subprocess.run(_train_cmd(other, 4, "--seed=1"), env=_env(), check=True, capture_output=True, timeout=300)
    seed1 = _scalars(other, "recon_loss")
    assert sorted(seed1) == [1, 2, 3, 4]
    assert all(seed1[s] != losses[0][s] for s in seed1)


_values = st.one_of(st.integers(-5, 200), st.floats(-2, 2), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                    st.text(max_size=6), st.lists(st.integers(-2, 40), max_size=4), st.none())
_fields = st.sampled_from(["train.batch_size", "train.mixed_precision", "data.image_size", "andor.fc_k",
                           "andor.block_ks", "andor.block_widths", "andor.sigma", "andor.critic_reg",
                           "train.seed", "data.channels", "andor.langevin_steps", "train.strategy"])


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(_fields, _values, max_size=3))
def test_any_override_either_validates_or_raises_a_config_error(overrides):
    try:
        config = config_lib.get_config("andor", "tiny", overrides)
    except ConfigError as e:
        assert "config:" in str(e)
        return
    assert config_lib.Config.from_json(config.to_json()) == config


def test_no_pickle_eval_or_exec_in_the_package():
    for path in glob.glob(os.path.join(ROOT, "tf_sparse_gen", "**", "*.py"), recursive=True) + \
            glob.glob(os.path.join(ROOT, "*.py")):
        tree = ast.parse(open(path).read())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not any(n.split(".")[0] in ("pickle", "dill", "cloudpickle") for n in names), path
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in ("eval", "exec"), path
            if isinstance(node, ast.keyword) and node.arg in ("allow_pickle", "safe_mode"):
                unsafe = True if node.arg == "allow_pickle" else False
                assert getattr(node.value, "value", None) is not unsafe, (path, node.arg)

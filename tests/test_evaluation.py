"""evaluate.py end to end on a tiny trained model."""

import json
import math
import os
import re
import subprocess
import sys

import pytest


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_runs):
    return tiny_runs.copy("andor", tmp_path_factory.mktemp("eval") / "run", **{"andor.block_ks": [0.25, 0.25]})


def run_evaluate(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, os.path.join(ROOT, "evaluate.py"), *args], env=env,
                          capture_output=True, text=True, timeout=300)


def test_evaluate_writes_finite_metrics_and_a_report_whose_images_exist(tiny_run):
    proc = run_evaluate(f"--model_dir={tiny_run}", "--num_samples=40")
    assert proc.returncode == 0, proc.stderr[-3000:]
    eval_dir = os.path.join(tiny_run, "eval")
    report = json.load(open(os.path.join(eval_dir, "metrics.json")))
    metrics = report["metrics"]
    for name in ("fd_fmnist", "kid_fmnist", "is_fmnist", "mse", "ncc", "active_fc_4x4", "active_block0_8x8"):
        assert name in metrics, name
        assert math.isfinite(metrics[name]["value"]), name
    assert metrics["fd_fmnist"]["feature_net"] == "fmnist" and metrics["fd_fmnist"]["num_samples"] == 40
    assert metrics["fd_fmnist"]["dataset"] == "digits" and metrics["fd_fmnist"]["split"] == "test"
    assert 0.0 <= metrics["mse"]["value"] <= 1.0 and metrics["is_fmnist"]["value"] >= 1.0
    page = open(os.path.join(eval_dir, "report.html")).read()
    images = re.findall(r"<img src='([^']+)'", page)
    assert len(images) >= 4  # samples, reconstructions, basis functions, AND-OR tree
    for rel in images:
        assert os.path.exists(os.path.join(eval_dir, rel)), rel
    assert "http" not in page  # opens with no network


def test_evaluate_rejects_bad_input_clearly(tiny_run, tmp_path):
    proc = run_evaluate(f"--model_dir={tmp_path}")
    assert proc.returncode == 2 and "no config.json" in proc.stderr
    proc = run_evaluate(f"--model_dir={tiny_run}", "--metrics=fd,psnr")
    assert proc.returncode == 2 and "psnr" in proc.stderr

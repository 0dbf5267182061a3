"""train.py as a user runs it: a subprocess in a temp dir."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_train(*args, cwd):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def summary_of(proc):
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_train_then_resume_continues_the_step_count(tmp_path):
    model_dir = str(tmp_path / "run")
    first = summary_of(run_train("--preset=tiny", "--dataset=digits", f"--model_dir={model_dir}",
                                 "--train_steps=2", cwd=tmp_path))
    assert first["final_step"] == 2 and not first["resumed"]
    for sub in ("checkpoints", "logs", "samples"):
        assert os.listdir(os.path.join(model_dir, sub)), sub
    assert os.path.exists(os.path.join(model_dir, "samples", "samples_0000002.png"))
    config = json.load(open(os.path.join(model_dir, "config.json")))
    assert config["model"] == "andor" and config["data"]["dataset"] == "digits"
    # Resume with only the new budget: everything else comes from config.json.
    second = run_train(f"--model_dir={model_dir}", "--train_steps=4", cwd=tmp_path)
    s = summary_of(second)
    assert s["resumed"] and s["start_step"] == 2 and s["final_step"] == 4
    assert "resumed from" in second.stdout and "step 4/4" in second.stdout


def test_refuses_to_resume_with_another_config(tiny_runs, tmp_path):
    model_dir = tiny_runs.copy("andor", tmp_path / "run")
    before = sorted(os.listdir(os.path.join(model_dir, "checkpoints")))
    proc = run_train(f"--model_dir={model_dir}", "--batch_size=2", cwd=tmp_path)
    assert proc.returncode == 2
    assert "train.batch_size" in proc.stderr and "new --model_dir" in proc.stderr
    assert sorted(os.listdir(os.path.join(model_dir, "checkpoints"))) == before


@pytest.mark.parametrize("args,message", [
    (["--dataset=nosuch"], "unknown dataset"),
    (["--image_size=20"], "image_size"),
    (["--set=andor.block_ks=[99,0]"], "block_ks"),
    (["--generator=resnet"], "--generator applies to --model=spgan"),
])
def test_bad_flags_fail_before_any_work_with_a_clear_message(tmp_path, args, message):
    proc = run_train("--preset=tiny", f"--model_dir={tmp_path / 'run'}", *args, cwd=tmp_path)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert not os.path.exists(tmp_path / "run" / "checkpoints")

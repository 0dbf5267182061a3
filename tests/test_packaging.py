"""The package as installed: the wheel's metadata and data, console scripts, imports from anywhere, quiet runs."""

import os
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

from tf_sparse_gen.quiet import CPP_LINE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TF_CPP_MIN_LOG_LEVEL",
                                                               "TF_SPARSE_GEN_TF_LOGS")}


def test_wheel_metadata_and_package_data(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(ROOT, name), src / name)
    shutil.copytree(os.path.join(ROOT, "tf_sparse_gen"), src / "tf_sparse_gen",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = list((tmp_path / "dist").glob("tf_sparse_gen-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("tf_sparse_gen/kernels/topk_mask.cc", "tf_sparse_gen/metrics/weights/fmnist_classifier.weights.h5",
                   "tf_sparse_gen/metrics/weights/fmnist_classifier.json", "tf_sparse_gen/families/andor/model.py",
                   "tf_sparse_gen/cli/train.py"):
        assert needed in names, needed
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(meta).decode()
    requires = re.findall(r"^Requires-Dist: ([A-Za-z0-9_.-]+)", text, re.M)
    for dep in ("tensorflow", "keras", "tensorflow-datasets", "scikit-learn", "absl-py", "pillow", "numpy"):
        assert dep in requires, (dep, requires)
    pins = dict(line.split("==") for line in open(os.path.join(ROOT, "requirements.txt")).read().split()
                if "==" in line)
    assert re.search(r"^Requires-Dist: tensorflow<2\.22,>=2\.21|^Requires-Dist: tensorflow>=2\.21,<2\.22", text, re.M)
    assert pins["tensorflow"].startswith("2.21")
    entry = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "tf-sparse-gen = tf_sparse_gen.cli:main" in entry and "tf-sparse-gen-train" in entry


def test_the_venv_imports_the_package_from_any_directory(tmp_path):
    proc = subprocess.run([sys.executable, "-c", "import tf_sparse_gen, sys; print(tf_sparse_gen.__file__); "
                           "print('tensorflow' in sys.modules)"], cwd=str(tmp_path), env=CLEAN_ENV,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    path, tf_loaded = proc.stdout.split()
    assert path == os.path.join(ROOT, "tf_sparse_gen", "__init__.py")
    assert tf_loaded == "False"  # the package root does not start TensorFlow


@pytest.mark.parametrize("argv", [["tf-sparse-gen", "--help"], ["tf-sparse-gen", "train", "--help"],
                                  ["tf-sparse-gen-evaluate", "--help"], ["tf-sparse-gen-explore", "--help"],
                                  ["tf-sparse-gen-export", "--help"]])
def test_console_scripts_print_their_help(argv, tmp_path):
    exe = os.path.join(BIN, argv[0])
    assert os.path.exists(exe), f"{exe} is missing: scripts/setup.sh installs the package (pip install -e .)"
    proc = subprocess.run([exe, *argv[1:]], cwd=str(tmp_path), env=CLEAN_ENV, capture_output=True, text=True,
                          timeout=120)
    out = proc.stdout + proc.stderr
    if argv == ["tf-sparse-gen", "--help"]:
        assert proc.returncode == 0 and "commands:" in out and "train" in out
    else:  # absl's --help exits 1 after printing the program's flags
        assert proc.returncode in (0, 1) and "--model_dir" in out, out[-2000:]


def _tiny_train(tmp_path, **env):
    return subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), "--preset=tiny", "--dataset=digits",
                           f"--model_dir={tmp_path / 'run'}", "--train_steps=2"], cwd=str(tmp_path),
                          env={**CLEAN_ENV, **env}, capture_output=True, text=True, timeout=300)


def test_a_tiny_training_run_prints_no_tensorflow_cpp_line(tmp_path):
    proc = _tiny_train(tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cpp = [line for line in proc.stderr.splitlines() if CPP_LINE.match(line.encode())]
    assert cpp == [], cpp
    assert '"final_step": 2' in proc.stdout
    # With the logs asked for, the filter lets them through: the check above can fail.
    code = ("from tf_sparse_gen.quiet import quiet_tensorflow; quiet_tensorflow([]); "
            "import tensorflow as tf; tf.constant(1.0) + 1.0")
    loud = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**CLEAN_ENV, "TF_SPARSE_GEN_TF_LOGS": "1"},
                          capture_output=True, text=True, timeout=300)
    assert any(CPP_LINE.match(line.encode()) for line in loud.stderr.splitlines()), loud.stderr[-2000:]


def test_filter_passes_other_lines_and_errors_through(tmp_path):
    code = ("from tf_sparse_gen.quiet import quiet_tensorflow; quiet_tensorflow([]); import os, sys; "
            "os.write(2, b'I0000 00:00:1796151833.332716    2497 port.cc:153] oneDNN custom operations\\n'); "
            "print('kept line', file=sys.stderr); sys.stderr.flush(); raise SystemExit('named error')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=CLEAN_ENV, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1
    assert "oneDNN" not in proc.stderr and "kept line" in proc.stderr and "named error" in proc.stderr

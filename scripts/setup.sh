#!/usr/bin/env bash
# Idempotent set-up: a virtualenv in .venv with the pinned requirements, the compiled
# top-k kernel, and the Fashion-MNIST IDX files (Debian's dataset-fashion-mnist where
# apt and root are available; otherwise train.py falls back to the Keras download).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.requirements.sha
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r requirements.txt
  echo "$want" > "$stamp"
fi
# The package itself, editable (the venv's Python imports it from any directory; console
# scripts tf-sparse-gen*); its dependencies are the pinned requirements above.
root=$(pwd)
if ! (cd / && "$root/.venv/bin/python" -c "import tf_sparse_gen" 2>/dev/null) \
    || [ ! -x .venv/bin/tf-sparse-gen ] || [ pyproject.toml -nt .venv/bin/tf-sparse-gen ]; then
  if ! log=$(cd / && "$root/.venv/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e "$root" 2>&1); then
    echo "$log" | tail -20 >&2
    echo "setup: installing the package (pip install -e .) failed; see above" >&2
    exit 1
  fi
fi
# The compiled top-k kernel (tf_sparse_gen/kernels); a no-op when an up-to-date build exists.
# Without a C++ compiler the project still runs, with TensorFlow's slower CPU top_k.
if out=$(TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python -m tf_sparse_gen.kernels build 2>&1); then
  echo "setup: $(echo "$out" | tail -1)"
else
  echo "$out" | tail -25 >&2
  echo "setup: the top-k kernel was not built (see above); TopKSparsity will use tf.math.top_k" >&2
fi
if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) \
      || echo "setup: apt-get could not install dataset-fashion-mnist; train.py will try the Keras download" >&2
  else
    echo "setup: no root/apt; train.py will use the Keras download of Fashion-MNIST" >&2
  fi
fi
# A headless browser for the report explorer's test (tests/test_explorer_browser.py, driven by
# selenium against the system's browser): Debian's chromium and its chromedriver. Without them
# that test is skipped with the reason.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) \
      || echo "setup: apt-get could not install chromium chromium-driver; the browser test will be skipped" >&2
  else
    echo "setup: no root/apt; the report explorer's browser test will be skipped (needs chromium, chromedriver)" >&2
  fi
fi

#!/usr/bin/env bash
# README command 1: set everything up, then run the main job (AND-OR model on
# Fashion-MNIST, `small` preset, 5 minutes) into runs/andor_fashion_mnist.
# Extra arguments are passed to train.py.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
exec .venv/bin/python train.py "$@"

"""Time and peak memory of the AND-OR interpretation figures at the `paper` preset.

  .venv/bin/python benchmarks/interpret_scale.py            # writes benchmarks/results/interpret_scale/

Builds the `paper` preset's sparse generator (64x64x3, z = 100, FC 4x4x3200 k = 8,
blocks 512/256/128/64 with k = 16/64/256/none; weights at initialisation) and runs what
evaluate.py draws for it: the basis-function grid of every sparse layer and one AND-OR
tree (JSON + figure), for 8 latents, in a fresh process whose peak resident memory
(TensorFlow's runtime included) is read from getrusage.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, "benchmarks", "results", "interpret_scale")

CHILD = r"""
import json, os, resource, sys, time
import tensorflow as tf
from tf_sparse_gen.config import get_config
from tf_sparse_gen.families import build_model
config = get_config("andor", "paper", {"data.dataset": "shapes"})
model = build_model(config, 1, (64, 64, 3))
zs = model.sample_latents(8)
base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t0 = time.monotonic()
figures = model.interpretation_figures(zs, sys.argv[1])
seconds = time.monotonic() - t0
tree = json.load(open(os.path.join(sys.argv[1], "and_or_tree.json")))
def count(n):
    return 1 + sum(count(c) for c in n.get("children", []))
print("RESULT" + json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                             "rss_before_mb": base_rss, "tree_nodes": count(tree), "figures": sorted(figures)}))
"""


def main() -> int:
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, "-c", CHILD, d], env=env, capture_output=True, text=True, cwd=REPO)
        wall = time.monotonic() - t0
        if proc.returncode:
            print(proc.stderr[-3000:], file=sys.stderr)
            return proc.returncode
        result = json.loads(proc.stdout.split("RESULT", 1)[1])
    result["process_wall_seconds"] = wall
    result["goal"] = "under 60 s and 2 GB"
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(result, f, indent=2, sort_keys=True)
    with open(os.path.join(OUT, "results.md"), "w") as f:
        f.write("# AND-OR interpretation figures at the `paper` preset (64x64x3, 8 latents)\n\n"
                "| what | value |\n|---|---|\n"
                f"| basis grids of every sparse layer + one AND-OR tree, seconds | {result['seconds']:.1f} |\n"
                f"| peak resident memory of the process, MB (TF runtime and model included) | {result['peak_rss_mb']:.0f} |\n"
                f"| resident memory before the figures, MB | {result['rss_before_mb']:.0f} |\n"
                f"| nodes of the tree | {result['tree_nodes']} |\n\n"
                "Goal: under 60 s and 2 GB. Before the windowed owner search (same machine): 171 s and "
                "19.1 GB for `evaluate.py --num_samples=16 --metrics=sparsity` on a one-step `paper` run.\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One long AND-OR run on Fashion-MNIST, evaluated after every CPU-time segment: quality against steps.

  nice -n 10 .venv/bin/python benchmarks/andor_long.py --commit                     # 4 segments of 60 CPU-min
  .venv/bin/python benchmarks/andor_long.py --segments=1 --segment_cpu_minutes=0.3 \\
      --results_dir=/tmp/al/results --runs_root=/tmp/al/runs                         # smoke test

Issue #18 asks for a shipped AND-OR model with fd_fmnist <= 6.0 on 10,000 samples; the budget
benchmark (andor_budget.py) stops at 60 CPU-minutes, where the sparse model scores about 15. This
trains one run (the main job's config: `small` preset, EMA 0.999, `--set` flags added with --set)
for `--segments` x `--segment_cpu_minutes` of process CPU time, resuming the same run directory
segment after segment, and after each segment evaluates it like the budget benchmark (fd/kid/is
on 10,000 samples, mse of 1,000 test reconstructions). Each finished segment is written to
`results_dir/segments.json` (+ results.md, the segment's sample grid) and committed with
--commit. A later invocation continues from the last finished segment if the run directory is
still there (same machine, same session); run directories do not outlive a session here, so on
a fresh machine it starts the run again and says so. The finished run is what
`scripts/make_pretrained.py --model_dir=<runs_root>/run --name=andor_fashion_mnist` ships.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from budget import REPO, commit, last_json_line, run_logged  # noqa: E402
from common import andor_small_until_2026_12_07_flags  # noqa: E402
from tf_sparse_gen.rundir import RunDir  # noqa: E402  (TensorFlow-free)

# The `small` recipe until 2026-12-07, pinned so that the variants keep their meaning (benchmarks/common.py).
BASE = (["--model=andor", "--dataset=fashion_mnist", "--preset=small"]
        + andor_small_until_2026_12_07_flags())
EVAL = ["--num_samples=10000", "--num_reconstructions=1000", "--metrics=fd,kid,is,mse"]
COLUMNS = ["fd_fmnist", "kid_fmnist", "is_fmnist", "mse"]


def _markdown(segments: list, flags: list) -> str:
    lines = ["# AND-OR on Fashion-MNIST: quality against training time (one run, seed 0)", "",
             "`benchmarks/andor_long.py`; train.py " + " ".join(flags) + ". Evaluated after every segment "
             "(generator EMA weights): fd/kid/is in the project's Fashion-MNIST classifier space, 10,000 "
             "samples vs the test split; mse: [0, 1]-scale reconstruction error of 1,000 test images "
             "(Langevin from z = 0). The bar of issue #18 is fd_fmnist <= 6.0.", "",
             "| segment | CPU-minutes (total) | steps | " + " | ".join(COLUMNS) + " |",
             "|---" * (len(COLUMNS) + 3) + "|"]
    for s in segments:
        cells = [f"{s['metrics'][c]:.4g}" if s["metrics"].get(c) is not None else "" for c in COLUMNS]
        lines.append(f"| {s['segment']} | {s['cpu_minutes_total']:g} | {s['step']} | " + " | ".join(cells) + " |")
    lines += ["", "Sample grids: `segment<k>_samples.png`.", ""]
    return "\n".join(lines)


def main(argv) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=4)
    parser.add_argument("--segment_cpu_minutes", type=float, default=60.0)
    parser.add_argument("--set", action="append", default=[], help="extra train.py --set values")
    parser.add_argument("--runs_root", default=os.path.expanduser("~/runs/andor_long"))
    parser.add_argument("--results_dir", default=os.path.join(REPO, "benchmarks", "results", "andor_long"))
    parser.add_argument("--commit", action="store_true")
    args = parser.parse_args(argv)
    os.makedirs(args.results_dir, exist_ok=True)
    os.makedirs(args.runs_root, exist_ok=True)
    run_dir = os.path.join(args.runs_root, "run")
    log_path = os.path.join(args.runs_root, "run.log")
    flags = BASE + [f"--set={s}" for s in args.set] + ["--seed=0"]
    results_path = os.path.join(args.results_dir, "segments.json")
    segments = []
    if os.path.exists(results_path):
        with open(results_path) as f:
            stored = json.load(f)
        if stored["flags"] == flags and RunDir(run_dir).has_config():
            segments = stored["segments"]
        else:
            print(f"andor_long: the run directory of the stored segments is gone or its flags differ; "
                  f"starting the run again in {run_dir}", flush=True)
            shutil.rmtree(run_dir, ignore_errors=True)
    elif os.path.isdir(run_dir):
        shutil.rmtree(run_dir)  # a run without recorded segments starts again
    py = sys.executable
    for k in range(len(segments) + 1, args.segments + 1):
        print(f"andor_long: segment {k}/{args.segments} ({args.segment_cpu_minutes:g} CPU-minutes) ...", flush=True)
        train = last_json_line(run_logged(
            [py, "train.py", *flags, f"--model_dir={run_dir}", "--train_minutes=0",
             f"--train_cpu_minutes={args.segment_cpu_minutes}", "--train_steps=100000000",
             "--set=train.sample_every=1000000000"], log_path))
        out_dir = os.path.join(run_dir, f"eval_segment{k}")
        run_logged([py, "evaluate.py", f"--model_dir={run_dir}", f"--out_dir={out_dir}", *EVAL], log_path)
        with open(os.path.join(out_dir, "metrics.json")) as f:
            metrics = {name: m["value"] for name, m in json.load(f)["metrics"].items()}
        segments.append({"segment": k, "step": int(train["final_step"]),
                         "cpu_minutes_total": k * args.segment_cpu_minutes,
                         "train_wall_seconds": train["wall_seconds"], "metrics": metrics,
                         "measured_at": time.strftime("%Y-%m-%d %H:%M:%S")})
        samples = RunDir(run_dir).latest_sample("samples")
        if samples:
            shutil.copy(samples, os.path.join(args.results_dir, f"segment{k}_samples.png"))
        with open(results_path + ".tmp", "w") as f:
            json.dump({"flags": flags, "segments": segments}, f, indent=2, sort_keys=True)
        os.replace(results_path + ".tmp", results_path)
        with open(os.path.join(args.results_dir, "results.md"), "w") as f:
            f.write(_markdown(segments, flags))
        shown = ", ".join(f"{c}={metrics[c]:.4g}" for c in COLUMNS if metrics.get(c) is not None)
        print(f"andor_long: segment {k}: step {segments[-1]['step']}, {shown}", flush=True)
        if args.commit:
            commit(args.results_dir, f"Benchmark andor_long: segment {k} results")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Makes the README gallery of a shipped run: docs/gallery/<name>/ from pretrained/<name>/.

  .venv/bin/python scripts/make_gallery.py --name=andor_shapes_sparse --metrics=mse,purity,ncc,sparsity \
      --explore=ablate,swap

Runs evaluate.py on the shipped run (its output goes to a scratch directory, never into
pretrained/), then each `--explore` task of explore.py, and copies every figure they write
into docs/gallery/<name>/ with metrics.md: the metrics table and the command that made it.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tf_sparse_gen import pretrained  # noqa: E402


def _run(args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"make_gallery: {' '.join(args[:2])} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout


def _copy_pngs(src_dir, dest_dir, prefix=""):
    copied = []
    for path in sorted(glob.glob(os.path.join(src_dir, "*.png"))):
        name = prefix + os.path.basename(path)
        shutil.copy(path, os.path.join(dest_dir, name))
        copied.append(name)
    return copied


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="pretrained/<name>")
    parser.add_argument("--metrics", default="mse,sparsity", help="evaluate.py --metrics")
    parser.add_argument("--num_samples", type=int, default=1000, help="evaluate.py --num_samples")
    parser.add_argument("--explore", default="", help="explore.py tasks, comma-separated (e.g. ablate,swap)")
    parser.add_argument("--num_images", type=int, default=4, help="explore.py --num_images")
    args = parser.parse_args()

    run_dir = os.path.join(pretrained.SHIPPED_ROOT, args.name)
    if not os.path.isdir(run_dir):
        print(f"make_gallery: {run_dir} does not exist; make it with scripts/make_pretrained.py", file=sys.stderr)
        return 2
    out = pretrained.gallery_dir(args.name)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    with tempfile.TemporaryDirectory() as scratch:
        eval_dir = os.path.join(scratch, "eval")
        _run(["evaluate.py", f"--model_dir={run_dir}", f"--metrics={args.metrics}",
              f"--num_samples={args.num_samples}", f"--out_dir={eval_dir}"])
        figures = _copy_pngs(eval_dir, out)
        with open(os.path.join(eval_dir, "metrics.json")) as f:
            metrics = json.load(f)
        for task in filter(None, args.explore.split(",")):
            task_dir = os.path.join(scratch, task)
            _run(["explore.py", f"--model_dir={run_dir}", f"--task={task}", f"--num_images={args.num_images}",
                  f"--out_dir={task_dir}"])
            figures += _copy_pngs(task_dir, out, prefix=f"{task}_")
    with open(os.path.join(run_dir, "pretrained.json")) as f:
        source = json.load(f)
    command = " ".join(["scripts/make_gallery.py", *sys.argv[1:]])
    lines = [f"# Gallery of pretrained/{args.name}", "",
             f"Made by `.venv/bin/python {command}` from the shipped run (step {source.get('step')}).", "",
             "| metric | value |", "|---|---|"]
    for name, entry in metrics["metrics"].items():
        value = entry.get("value")
        lines.append(f"| {name} | {value:.4g} |" if isinstance(value, (int, float)) else f"| {name} | {value} |")
    lines += ["", "Figures: " + ", ".join(f"`{f}`" for f in figures), ""]
    with open(os.path.join(out, "metrics.md"), "w") as f:
        f.write("\n".join(lines))
    print(json.dumps({"out": out, "figures": figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Sparse vs dense AND-OR units under ablation (issue #16): how local is a unit's effect?

Trains (or resumes) a sparse and a dense AND-OR run on the same data for the same
number of steps with train.py, then runs `explore.py --task=ablate` on the sparse
run with `--compare_dir` the dense one (the same held-out scenes), and
`--task=swap` on both. Writes into --out: ablation.json, swap_<variant>.json, the
figures, and results.md with the per-layer summary lines (mean locality of
unit ablations, exact and free, and the support area) and, on `shapes`, each
run's mid-layer part x channel effect table.

  .venv/bin/python benchmarks/andor_ablation.py --steps=800                          # shapes, small preset
  .venv/bin/python benchmarks/andor_ablation.py --sparse_dir=pretrained/andor_shapes_sparse \
      --dense_dir=pretrained/andor_shapes_dense                                     # trained runs, as they are
  .venv/bin/python benchmarks/andor_ablation.py --preset=tiny --steps=2 --image_size=16 --num_images=2   # smoke
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from absl import app, flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FLAGS = flags.FLAGS
flags.DEFINE_integer("steps", 800, "Training steps per variant.")
flags.DEFINE_string("preset", "small", "train.py preset.")
flags.DEFINE_string("dataset", "shapes", "Dataset of both runs.")
flags.DEFINE_integer("channels", 3, "Image channels.")
flags.DEFINE_integer("image_size", 32, "Image side.")
flags.DEFINE_integer("num_images", 8, "Held-out images ablated.")
flags.DEFINE_integer("max_units", 64, "Strongest units ablated one by one per layer and image.")
flags.DEFINE_multi_string("set", [], "Extra train.py --set overrides for both runs.")
flags.DEFINE_string("runs_dir", None, "Where the runs go (not committed); default benchmarks/out/andor_ablation.")
flags.DEFINE_string("out", None, "Results; default benchmarks/results/andor_ablation.")
flags.DEFINE_string("sparse_dir", None, "An existing sparse run (with --dense_dir): nothing is trained.")
flags.DEFINE_string("dense_dir", None, "An existing dense run, compared with --sparse_dir.")


def _run(argv):
    proc = subprocess.run([sys.executable, *argv], cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:2])} failed:\n{proc.stderr[-3000:]}")
    return proc


def main(argv):
    del argv
    runs_dir = FLAGS.runs_dir or os.path.join(REPO, "benchmarks", "out", "andor_ablation")
    out = FLAGS.out or os.path.join(REPO, "benchmarks", "results", "andor_ablation")
    os.makedirs(out, exist_ok=True)
    dirs = {}
    given = {"sparse": FLAGS.sparse_dir, "dense": FLAGS.dense_dir}
    if any(given.values()) and not all(given.values()):
        raise SystemExit("andor_ablation: give both --sparse_dir and --dense_dir, or neither")
    steps = "as trained"
    for name, sparsity in (("sparse", "on"), ("dense", "off")):
        if given[name]:
            dirs[name] = os.path.abspath(given[name])
            continue
        steps = f"{FLAGS.steps} steps each"
        dirs[name] = os.path.join(runs_dir, name)
        _run(["train.py", "--model=andor", f"--preset={FLAGS.preset}", f"--dataset={FLAGS.dataset}",
              f"--channels={FLAGS.channels}", f"--image_size={FLAGS.image_size}", f"--sparsity={sparsity}",
              f"--model_dir={dirs[name]}", f"--train_steps={FLAGS.steps}", "--train_minutes=0",
              *[f"--set={s}" for s in FLAGS.set]])
        print(f"andor_ablation: {name} run at {dirs[name]}", flush=True)
    work = os.path.join(runs_dir, "explore")
    proc = _run(["explore.py", f"--model_dir={dirs['sparse']}", "--task=ablate", f"--compare_dir={dirs['dense']}",
                 f"--num_images={FLAGS.num_images}", f"--max_units={FLAGS.max_units}", f"--out_dir={work}"])
    result = json.loads(proc.stdout)
    with open(result["json"]) as f:
        full = json.load(f)
    for entry in full["runs"].values():  # the per-ablation records (megabytes) stay in the run's folder
        entry["num_ablations"] = len(entry.pop("ablations"))
    full["per_ablation_records"] = result["json"]
    with open(os.path.join(out, "ablation.json"), "w") as f:
        json.dump(full, f, indent=1)
    for path in result["figures"].values():
        shutil.copy(path, out)
    swaps = {}
    for name, d in dirs.items():
        sw = json.loads(_run(["explore.py", f"--model_dir={d}", "--task=swap", "--num_images=4",
                              f"--out_dir={os.path.join(work, 'swap_' + name)}"]).stdout)
        shutil.copy(sw["png"], os.path.join(out, f"swap_{name}.png"))
        shutil.copy(sw["json"], os.path.join(out, f"swap_{name}.json"))
        swaps[name] = sw
    with open(os.path.join(out, "ablation.json")) as f:
        saved = json.load(f)
    lines = [f"# AND-OR ablation: sparse vs dense, {FLAGS.dataset} {FLAGS.image_size}px, preset {FLAGS.preset}, "
             f"{steps}", "", "Runs: " + ", ".join(f"{k} `{os.path.relpath(v, REPO)}`" for k, v in dirs.items()), "",
             f"{FLAGS.num_images} held-out images (Langevin inference); up to {FLAGS.max_units} strongest units "
             "per layer and image ablated one at a time; locality = share of the change's energy inside the "
             f"unit's basis support (|B| > {saved['support_fraction']} of its peak); support = that support's "
             "share of the image.", "", "```", *saved["summary_lines"], "```", ""]
    for key, entry in saved["runs"].items():
        table = entry.get("part_effect")
        if not table or not table["channels"]:
            continue
        label = "sparse" if entry["sparsity"] else "dense"
        lines += [f"## {label}: part x channel effect at {table['layer']} (mean share of change energy)", "",
                  "| channel | n | " + " | ".join(table["parts"]) + " | changed most |",
                  "|---" * (len(table["parts"]) + 3) + "|"]
        for c, info in sorted(table["channels"].items(), key=lambda kv: -kv[1]["fires"])[:16]:
            lines.append(f"| {c} | {info['fires']} | " + " | ".join(f"{s:.2f}" for s in info["shares"])
                         + f" | {info['part_changed']} |")
        lines.append("")
    lines += ["## swap (free re-run): mean MSE of the result to A / to B per position set", ""]
    for name, sw in swaps.items():
        by = {}
        for s in sw["swaps"]:
            by.setdefault(s["positions"], []).append((s["free_mse_to_a"], s["free_mse_to_b"]))
        lines.append(f"- {name}: " + "; ".join(
            f"{k} {sum(a for a, _ in v) / len(v):.4f} / {sum(b for _, b in v) / len(v):.4f}" for k, v in by.items()))
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(saved["summary_lines"]))
    print(f"andor_ablation: wrote {out}/results.md")


if __name__ == "__main__":
    app.run(main)

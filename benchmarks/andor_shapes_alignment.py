"""Why is purity what it is? The andor_shapes_budget runs scored against the alignment baseline.

  .venv/bin/python benchmarks/andor_shapes_alignment.py --commit     # every budget run not yet scored
  .venv/bin/python benchmarks/andor_shapes_alignment.py --list

For every variant of benchmarks/andor_shapes_budget.py that has finished (its results JSON and its
run directory under --budget_runs_root exist), evaluate.py's `purity` metric is computed again on
the same 100 held-out scenes, now with the alignment baseline (families/andor/purity.py): the same
units' bases scored against the part map of the next scene. A unit that paints a part where the
scene has it scores higher on its own scene than on another; a unit whose basis is merely
part-sized, or always in the same place, scores the same on both. So

- `object_purity_lift_<layer>` = object purity - object purity on the mismatched scenes,
- `locality_lift_<layer>` = locality - locality on the mismatched scenes

are what the units owe to the scene's parts, and the mismatched values are chance levels that
account for part areas and basis sizes. Results are written per variant (resumable) and as a
mean +- std table over seeds, with each variant's confusion tables (channels x parts, the 32 most
frequent channels) as `<variant>_confusion_<layer>.png`, and a table of how far the parts move
between scenes.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import andor_shapes_budget  # noqa: E402
from budget import REPO, commit, run_logged, summarise  # noqa: E402

NAME = "andor_shapes_alignment"
LAYERS = andor_shapes_budget.LAYERS
COLUMNS = ([f"object_purity_{layer}" for layer in LAYERS]
           + [f"object_purity_mismatched_{layer}" for layer in LAYERS]
           + [f"locality_{layer}" for layer in LAYERS]
           + [f"locality_mismatched_{layer}" for layer in LAYERS])
NOTES = ("The andor_shapes_budget runs (30 CPU-minutes each, `small`, EMA 0.999), purity re-scored on the "
         "same 100 `shapes` test scenes. `*_mismatched_*`: the same units' bases scored against the part "
         "map of the next scene (the alignment baseline: part areas and basis sizes without the scene's "
         "layout). The lift is the difference. mean ± std over seeds (sample std).")


def score(variant: str, run_dir: str, budget_record: dict, log_path: str, results_dir: str) -> dict:
    """Runs evaluate.py's purity on `run_dir` into a separate out_dir; returns this benchmark's record."""
    out_dir = os.path.join(run_dir, "eval_alignment")
    run_logged([sys.executable, "evaluate.py", f"--model_dir={run_dir}", "--metrics=purity",
                "--num_samples=100", f"--out_dir={out_dir}"], log_path)
    with open(os.path.join(out_dir, "metrics.json")) as f:
        metrics = json.load(f)["metrics"]
    for layer in LAYERS:  # the confusion tables (channels x parts) as figures, beside the JSON
        figure = os.path.join(out_dir, f"purity_confusion_{layer}.png")
        if os.path.exists(figure):
            shutil.copy(figure, os.path.join(results_dir, f"{variant}_confusion_{layer}.png"))
    values = {}
    for layer in LAYERS:
        for key in ("object_purity", "locality"):
            lift = metrics.get(f"{key}_lift_{layer}")
            if lift is None:
                continue
            values[f"{key}_{layer}"] = metrics[f"{key}_{layer}"]["value"]
            values[f"{key}_mismatched_{layer}"] = lift["mismatched"]
            values[f"{key}_lift_{layer}"] = lift["value"]
    return {"variant": variant, "group": budget_record["group"], "seed": budget_record["seed"],
            "steps": budget_record["steps"], "images_per_sec": budget_record["images_per_sec"],
            "run_dir": run_dir, "metrics": values, "measured_at": time.strftime("%Y-%m-%d %H:%M:%S")}


def lift_markdown(table: dict, records: list) -> list:
    """The lifts per layer, mean +- std over seeds."""
    from budget import _mean_std

    lines = ["Lift over the alignment baseline (score - mismatched), per layer:", "",
             "| variant | " + " | ".join(f"object purity lift {layer}" for layer in LAYERS) + " | "
             + " | ".join(f"locality lift {layer}" for layer in LAYERS) + " |",
             "|---" * (2 * len(LAYERS) + 1) + "|"]
    for group in table:
        rs = [r for r in records if r["group"] == group]
        cells = [_mean_std([r["metrics"][f"{key}_lift_{layer}"] for r in rs
                            if f"{key}_lift_{layer}" in r["metrics"]])
                 for key in ("object_purity", "locality") for layer in LAYERS]
        lines.append(f"| {group} | " + " | ".join(cells) + " |")
    return lines + [""] + list(layout_markdown())


@functools.lru_cache(maxsize=None)  # the same data at every summary of one invocation
def layout_markdown(num_scenes: int = 100) -> list:
    """How much the parts move between consecutive test scenes (what the baseline can tell apart)."""
    import numpy as np

    from tf_sparse_gen.data import load_dataset

    src = load_dataset("shapes", "test", 32, 3)
    maps = np.asarray(src.part_maps[:num_scenes])
    following = np.roll(maps, -1, axis=0)
    lines = [f"The data: how far the parts move from one test scene to the next ({num_scenes} scenes). IoU of a "
             "part's mask with the same part's mask in the next scene, where both have it (0 = never where it "
             "was, 1 = the same pixels); area: its share of the image where present.", "",
             "| part | present in | area | IoU with the next scene |", "|---|---|---|---|"]
    for label, name in enumerate(src.part_names):
        present = np.array([(m == label).any() for m in maps])
        if not present.any():
            continue
        ious = [((a == label) & (b == label)).sum() / ((a == label) | (b == label)).sum()
                for a, b in zip(maps, following) if (a == label).any() and (b == label).any()]
        area = float(np.mean([(m == label).mean() for m in maps[present]]))
        lines.append(f"| {name} | {present.mean():.2f} | {area:.3f} | "
                     + (f"{np.mean(ious):.2f} |" if ious else "- |"))
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget_results_dir", default=os.path.join(REPO, "benchmarks", "results",
                                                                     "andor_shapes_budget"))
    parser.add_argument("--budget_runs_root", default=os.path.expanduser("~/runs/andor_shapes_budget"))
    parser.add_argument("--results_dir", default=os.path.join(REPO, "benchmarks", "results", NAME))
    parser.add_argument("--commit", action="store_true", help="git-commit each scored variant's results")
    parser.add_argument("--list", action="store_true", help="print the variants and whether each is scored")
    args = parser.parse_args()
    groups = list(dict.fromkeys(v.group for v in andor_shapes_budget.VARIANTS))
    os.makedirs(args.results_dir, exist_ok=True)
    for v in andor_shapes_budget.VARIANTS:
        out = os.path.join(args.results_dir, v.name + ".json")
        budget_json = os.path.join(args.budget_results_dir, v.name + ".json")
        run_dir = os.path.join(args.budget_runs_root, v.name)
        ready = os.path.exists(budget_json) and os.path.isdir(os.path.join(run_dir, "checkpoints"))
        if args.list:
            state = "done" if os.path.exists(out) else ("ready" if ready else "not trained")
            print(f"{v.name:24s} {state}")
            continue
        if os.path.exists(out) or not ready:
            continue
        print(f"{NAME}: {v.name} ...", flush=True)
        with open(budget_json) as f:
            record = score(v.name, run_dir, json.load(f), os.path.join(args.budget_runs_root, v.name + ".log"),
                           args.results_dir)
        with open(out + ".tmp", "w") as f:
            json.dump(record, f, indent=2, sort_keys=True)
        os.replace(out + ".tmp", out)
        summarise(args.results_dir, NAME, COLUMNS, groups, notes=NOTES, extra_markdown=lift_markdown,
                  sample_grids=False)
        print(f"{NAME}: {v.name}: " + ", ".join(f"{k}={x:.3f}" for k, x in record["metrics"].items()
                                                 if "_lift_" in k), flush=True)
        if args.commit:
            commit(args.results_dir, f"Benchmark {NAME}: {v.name} results")
    if not args.list and not os.path.exists(os.path.join(args.results_dir, "results.md")):
        summarise(args.results_dir, NAME, COLUMNS, groups, notes=NOTES, extra_markdown=lift_markdown,
                  sample_grids=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The AND-OR family's explore.py tasks (`CooperativeAndOrModel.explore_tasks`): ablate, swap.

Each task is called as task(run, out_dir, **options) with `run` a `runs.TrainedModel`
and the explore.py options (num_images, seed, split, compare_dir, positions, ...);
it writes into out_dir and returns a JSON-ready dict.
"""

from __future__ import annotations

import sys

from tf_sparse_gen.families.andor import ablate as ablate_lib


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def ablate(run, out_dir, num_images: int = 4, seed: int = 0, split: str = "test", compare_dir=None,
           max_units: int = 64, num_insert: int = 8, log=_stderr, **_):
    compare_model = compare_config = None
    if compare_dir:
        from tf_sparse_gen.runs import load_trained_model

        other = load_trained_model(compare_dir)
        if not hasattr(other.model, "generator") or not hasattr(other.model, "mid_layer") \
                or "ablate" not in other.model.explore_tasks():
            raise ValueError(f"--compare_dir={compare_dir} holds a {other.config.model!r} run; "
                             "ablation compares two runs of a family with sparse-layer units (andor)")
        compare_model, compare_config = other.model, other.config
    result = ablate_lib.run_ablation(run.model, run.config, out_dir, num_images=num_images, seed=seed, split=split,
                                     max_units=max_units, num_insert=num_insert, compare_model=compare_model,
                                     compare_config=compare_config, log=log,
                                     model_dir=run.model_dir, compare_dir=compare_dir)
    # The per-ablation records stay in ablation.json; what is printed is the summary.
    return {"task": "ablate", "json": result["json"], "figures": result["figures"],
            "summary_lines": result["summary_lines"],
            "summary": {k: v["summary"] for k, v in result["runs"].items()},
            "checks": {k: v["checks"] for k, v in result["runs"].items()}}


def swap(run, out_dir, num_images: int = 4, seed: int = 0, split: str = "test", positions=None, log=_stderr, **_):
    return ablate_lib.run_swap(run.model, run.config, out_dir, num_images=num_images, seed=seed, split=split,
                               positions=positions, log=log)


TASKS = {"ablate": ablate, "swap": swap}

"""Equal-budget quality benchmarks, resumable per variant.

A benchmark is a list of `Variant`s. Each one is trained by `train.py` in its own
process for the same CPU-time budget (`--train_cpu_minutes`: process CPU time over
all threads, so two busy cores spend 2 CPU-minutes per wall minute; unlike
wall-clock it does not shrink when other work shares the machine), evaluated by
`evaluate.py`, and its results are written to `results_dir/<variant>.json` with its
sample grids beside it. A variant whose JSON exists is skipped, so a stopped
benchmark continues where it stopped; `--commit` commits each variant's files as
they are written. The table (`results.md`, `results.json`) is remade after each
variant from every JSON present, as mean +- std over the seeds of each group.

Two optional hooks let a benchmark measure and report more than evaluate.py does:
`extra_metrics(run_dir, py, log_path, metrics) -> {name: value}` runs after the
evaluations (`metrics`: the values so far; run further programs with
`run_logged`) and its values join the record's metrics; `extra_markdown(table,
records) -> [lines]` adds a section (e.g. claims) to results.md.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import math
import os
import shutil
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tf_sparse_gen.rundir import RunDir  # noqa: E402  (TensorFlow-free)

# (run_dir, python executable, log path, metrics so far) -> more metrics of the variant.
ExtraMetrics = Callable[[str, str, str, Dict[str, float]], Dict[str, float]]
# (the table summarise() made, every variant record) -> markdown lines for results.md.
ExtraMarkdown = Callable[[dict, List[dict]], List[str]]


@dataclasses.dataclass
class Variant:
    """One trained model of a benchmark.

    Args:
        group: the row of the table (seeds of one group are averaged).
        seed: the run's seed.
        flags: train.py flags of this variant (besides budget, seed and model_dir).
        extra_metrics: measured after the evaluations (see the module docstring); default
            the benchmark's own (`main(extra_metrics=...)`).
    """

    group: str
    seed: int
    flags: Sequence[str]
    extra_metrics: Optional[ExtraMetrics] = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def name(self) -> str:
        return f"{self.group}_s{self.seed}"


def last_json_line(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError("no JSON summary in the output:\n" + text[-2000:])


def _head_commit() -> Optional[str]:
    proc = subprocess.run(["git", "-C", REPO, "rev-parse", "HEAD"], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


def run_logged(cmd: List[str], log_path: str) -> str:
    """Runs `cmd` in the repository, stderr (and then stdout) appended to `log_path`; returns stdout."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    with open(log_path, "a") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
        log.write(proc.stdout)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed ({proc.returncode}); see {log_path}")
    return proc.stdout


def machine() -> Dict[str, object]:
    """The CPU the variant ran on: its model name and whether it has AVX-512 and bf16 instructions.

    Steps per CPU-second differ by up to 2.6x between this project's machines (an AVX2-only
    AMD EPYC against an AVX-512 one), so a record says which machine made it.
    """
    name, flags = "", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and not name:
                    name = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        import platform

        name = platform.processor()
    return {"cpu": name or "unknown", "cores": os.cpu_count(), "avx512": "avx512f" in flags,
            "bf16": bool(flags & {"avx512_bf16", "amx_bf16"})}


def _machine_label(record: dict) -> str:
    m = record.get("machine")
    if not m:
        return "not recorded"
    extras = [x for x in ("avx512", "bf16") if m.get(x)]
    return f"{m['cpu']}" + (f" ({', '.join(extras)})" if extras else " (no AVX-512)")


def run_variant(v: Variant, cpu_minutes: float, runs_root: str, results_dir: str,
                eval_flags: Sequence[str], raw_eval_flags: Sequence[str] = (),
                extra_metrics: Optional[ExtraMetrics] = None) -> dict:
    """Trains and evaluates one variant from scratch; returns its result record.

    With `raw_eval_flags`, runs that keep a generator EMA are evaluated a second time
    with the raw weights (`--noema`); those metrics are recorded as `<name>_raw`.
    `v.extra_metrics` (else `extra_metrics`) adds its values to the metrics.
    """
    run_dir = os.path.join(runs_root, v.name)
    shutil.rmtree(run_dir, ignore_errors=True)  # a half-trained variant starts again
    os.makedirs(runs_root, exist_ok=True)
    log_path = os.path.join(runs_root, v.name + ".log")
    py = sys.executable
    train = last_json_line(run_logged(
        [py, "train.py", *v.flags, f"--model_dir={run_dir}", f"--seed={v.seed}", "--train_minutes=0",
         f"--train_cpu_minutes={cpu_minutes}", "--train_steps=100000000",
         "--set=train.sample_every=1000000000", "--set=train.checkpoint_every=1000000000"], log_path))
    run_logged([py, "evaluate.py", f"--model_dir={run_dir}", *eval_flags], log_path)
    rd = RunDir(run_dir)
    metrics_path = os.path.join(rd.eval_dir(), "metrics.json")
    with open(metrics_path) as f:
        metrics = json.load(f)
    train_config = rd.read_config().train
    batch = train_config.batch_size
    values = {k: m["value"] for k, m in metrics["metrics"].items()}
    if raw_eval_flags and train_config.ema_decay:
        run_logged([py, "evaluate.py", f"--model_dir={run_dir}", "--noema", *raw_eval_flags], log_path)
        with open(metrics_path) as f:
            values.update({k + "_raw": m["value"] for k, m in json.load(f)["metrics"].items()})
    extra = v.extra_metrics or extra_metrics
    if extra:
        values.update(extra(run_dir, py, log_path, dict(values)))
    steps = int(train["final_step"])
    record = {
        "variant": v.name, "group": v.group, "seed": v.seed, "flags": list(v.flags),
        "cpu_minutes_budget": cpu_minutes, "steps": steps,
        "train_wall_seconds": train["wall_seconds"], "train_cpu_seconds": train["cpu_seconds"],
        "images_per_sec": steps * batch / max(train["wall_seconds"], 1e-9),
        "images_per_cpu_sec": steps * batch / max(train["cpu_seconds"], 1e-9),
        "metrics": values,
        "metric_details": metrics["metrics"], "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine(),
    }
    for kind in ("samples", "reconstructions"):
        path = rd.latest_sample(kind)
        if path:
            shutil.copy(path, os.path.join(results_dir, f"{v.name}_{kind}.png"))
    return record


def _mean_std(values: List[float]) -> str:
    if not values:
        return ""
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.4g} (1 seed)"
    std = math.sqrt(sum((x - mean) ** 2 for x in values) / (len(values) - 1))
    return f"{mean:.4g} ± {std:.2g}"


def ordering_claim(table: dict, groups: Sequence[str], metric: str, higher_is_better: bool = True) -> str:
    """Whether the means over seeds of `metric` improve strictly along `groups`, in words.

    "holds" / "does not hold" with the values (mean ± std over seeds), or "not measured
    yet" naming the groups without a value.
    """
    missing = [g for g in groups if not table.get(g, {}).get(metric)]
    if missing:
        return "not measured yet (no " + ", ".join(missing) + ")"
    means = [sum(table[g][metric]) / len(table[g][metric]) for g in groups]
    holds = all((b > a) if higher_is_better else (b < a) for a, b in zip(means, means[1:]))
    return ("holds" if holds else "does not hold") + f" ({metric}: " + "; ".join(
        f"{g} {_mean_std(table[g][metric])}" for g in groups) + ")"


def summarise(results_dir: str, title: str, columns: Sequence[str], groups: Sequence[str],
              baseline: Optional[str] = None, ratio_metric: str = "fd_fmnist", notes: str = "",
              extra_markdown: Optional[ExtraMarkdown] = None, sample_grids: bool = True) -> dict:
    """Remakes results.md / results.json from every variant JSON in `results_dir`.

    `extra_markdown(table, records)` returns lines added after the table (and the ratios);
    `sample_grids`: the variants' sample grids lie beside the JSONs (results.md says so).
    """
    records = []
    for path in sorted(glob.glob(os.path.join(results_dir, "*_s[0-9]*.json"))):
        with open(path) as f:
            records.append(json.load(f))
    table = {}
    for g in groups:
        rs = [r for r in records if r["group"] == g]
        if not rs:
            continue
        row = {"seeds": sorted(r["seed"] for r in rs), "steps": [r["steps"] for r in rs]}
        for c in columns:
            row[c] = [r["metrics"][c] for r in rs if r["metrics"].get(c) is not None]
        row["images_per_sec"] = [r["images_per_sec"] for r in rs]
        table[g] = row
    lines = [f"# {title}", "", notes, "",
             "| variant | seeds | steps | " + " | ".join(columns) + " | img/s |",
             "|---" * (len(columns) + 4) + "|"]
    for g, row in table.items():
        cells = [_mean_std(row[c]) for c in columns]
        lines.append(f"| {g} | {','.join(map(str, row['seeds']))} | {_mean_std([float(s) for s in row['steps']])} | "
                     + " | ".join(cells) + f" | {_mean_std(row['images_per_sec'])} |")
    lines += ["", "Every run (throughput depends on the machine and the day, and fd on the steps reached):", "",
              "| run | measured at | machine | steps | img per CPU-s |", "|---|---|---|---|---|"]
    for r in sorted(records, key=lambda r: (r.get("measured_at", ""), r["variant"])):
        lines.append(f"| {r['variant']} | {r.get('measured_at', '')} | {_machine_label(r)} | {r['steps']} | "
                     f"{r['images_per_cpu_sec']:.1f} |")
    if baseline and baseline in table and table[baseline].get(ratio_metric):
        base = sum(table[baseline][ratio_metric]) / len(table[baseline][ratio_metric])
        lines += ["", f"{ratio_metric} relative to {baseline} (mean over seeds; < 1 is better):", ""]
        for g, row in table.items():
            if row.get(ratio_metric):
                lines.append(f"- {g}: {sum(row[ratio_metric]) / len(row[ratio_metric]) / base:.3f}x")
    if extra_markdown:
        lines += ["", *extra_markdown(table, records)]
    if sample_grids:
        lines += ["", "Sample grids: `<variant>_samples.png`; reconstructions (original | reconstruction): "
                  "`<variant>_reconstructions.png`."]
    lines.append("")
    with open(os.path.join(results_dir, "results.md"), "w") as f:
        f.write("\n".join(lines))
    with open(os.path.join(results_dir, "results.json"), "w") as f:
        json.dump({"title": title, "table": table, "variants": records}, f, indent=2, sort_keys=True)
    return table


def commit(results_dir: str, message: str) -> None:
    """Commits `results_dir` alone (other staged or modified files are left as they are)."""
    for attempt in range(5):
        add = subprocess.run(["git", "-C", results_dir, "add", "."], capture_output=True, text=True)
        done = add.returncode == 0 and subprocess.run(
            ["git", "-C", results_dir, "commit", "-q", "-m", message, "--", "."],
            capture_output=True, text=True).returncode == 0
        if done:
            return
        time.sleep(2 + attempt)  # another git command held the index lock
    print(f"budget: could not commit {results_dir}; commit it by hand", file=sys.stderr)


def main(argv, benchmark_name: str, variants: List[Variant], columns: Sequence[str], eval_flags: Sequence[str],
         baseline: Optional[str] = None, notes: str = "", raw_eval_flags: Sequence[str] = (),
         extra_metrics: Optional[ExtraMetrics] = None, extra_markdown: Optional[ExtraMarkdown] = None,
         cpu_minutes: float = 60.0) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=f"{benchmark_name}: equal CPU-time budgets, resumable.")
    parser.add_argument("--cpu_minutes", type=float, default=cpu_minutes,
                        help=f"CPU-time budget per variant (default {cpu_minutes:g}; 60 = 30 minutes of both cores "
                             "of an idle 2-core machine)")
    parser.add_argument("--runs_root", default=os.path.expanduser(f"~/runs/{benchmark_name}"))
    parser.add_argument("--results_dir", default=os.path.join(REPO, "benchmarks", "results", benchmark_name))
    parser.add_argument("--only", default="", help="comma-separated variant names or groups to run")
    parser.add_argument("--max_variants", type=int, default=0, help="stop after this many new variants (0 = all)")
    parser.add_argument("--commit", action="store_true", help="git-commit each finished variant's results")
    parser.add_argument("--list", action="store_true", help="print the variants and whether each is done")
    parser.add_argument("--code_commit", default=None,
                        help="the commit the code under test comes from, recorded per variant (default: "
                             "`git rev-parse HEAD` of the repository; pass it when running from an exported copy)")
    args = parser.parse_args(argv)
    code_commit = args.code_commit or _head_commit()
    if not args.list:
        os.makedirs(args.results_dir, exist_ok=True)
    only = {s for s in args.only.split(",") if s}
    todo = [v for v in variants if not only or v.name in only or v.group in only]
    groups = list(dict.fromkeys(v.group for v in variants))
    done = 0
    for v in todo:
        out = os.path.join(args.results_dir, v.name + ".json")
        if args.list:
            print(f"{v.name:24s} {'done' if os.path.exists(out) else 'missing'}  {' '.join(v.flags)}")
            continue
        if os.path.exists(out):
            continue
        if args.max_variants and done >= args.max_variants:
            break
        print(f"{benchmark_name}: {v.name} ({args.cpu_minutes:g} CPU-minutes) ...", flush=True)
        record = run_variant(v, args.cpu_minutes, args.runs_root, args.results_dir, eval_flags, raw_eval_flags,
                             extra_metrics)
        record["code_commit"] = code_commit
        with open(out + ".tmp", "w") as f:
            json.dump(record, f, indent=2, sort_keys=True)
        os.replace(out + ".tmp", out)
        summarise(args.results_dir, benchmark_name, columns, groups, baseline=baseline, notes=notes,
                  extra_markdown=extra_markdown)
        shown = {k: record["metrics"][k] for k in columns if record["metrics"].get(k) is not None}
        print(f"{benchmark_name}: {v.name}: {record['steps']} steps, "
              + ", ".join(f"{k}={x:.4g}" for k, x in shown.items()), flush=True)
        if args.commit:
            commit(args.results_dir, f"Benchmark {benchmark_name}: {v.name} results")
        done += 1
    if not args.list:
        summarise(args.results_dir, benchmark_name, columns, groups, baseline=baseline, notes=notes,
                  extra_markdown=extra_markdown)
    return 0

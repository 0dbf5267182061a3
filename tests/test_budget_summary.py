"""benchmarks/budget.py's table: mean ± sample std over seeds and the per-run machine listing."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))

import budget  # noqa: E402


def _record(results_dir, group, seed, fd, steps, cpu_seconds, machine=None, at="2026-12-07 08:00:00"):
    record = {"variant": f"{group}_s{seed}", "group": group, "seed": seed, "steps": steps,
              "images_per_sec": steps * 64 / 100.0, "images_per_cpu_sec": steps * 64 / cpu_seconds,
              "metrics": {"fd_fmnist": fd}, "measured_at": at}
    if machine:
        record["machine"] = machine
    with open(os.path.join(results_dir, f"{group}_s{seed}.json"), "w") as f:
        json.dump(record, f)


def test_summary_means_ratios_and_machines(tmp_path):
    d = str(tmp_path)
    epyc = {"cpu": "AMD EPYC", "cores": 2, "avx512": False, "bf16": False}
    xeon = {"cpu": "Intel Xeon", "cores": 2, "avx512": True, "bf16": True}
    _record(d, "a", 0, 10.0, 1000, 500.0, xeon, at="2026-12-05 10:00:00")
    _record(d, "a", 1, 14.0, 400, 500.0, epyc)
    _record(d, "b", 0, 6.0, 2000, 1000.0)
    table = budget.summarise(d, "t", ["fd_fmnist"], ["a", "b"], baseline="a", sample_grids=False)
    assert table["a"]["fd_fmnist"] == [10.0, 14.0] and table["a"]["seeds"] == [0, 1]
    text = open(os.path.join(d, "results.md")).read()
    # mean 12, sample std sqrt(((10-12)^2 + (14-12)^2) / 1) = 2.83
    assert "| a | 0,1 | 700 ± 4.2e+02 | 12 ± 2.8 |" in text
    assert "| b | 0 | 2000 (1 seed) | 6 (1 seed) |" in text
    assert "- b: 0.500x" in text  # 6 / 12
    # One line per run, oldest first, with its machine: 1000 * 64 / 500 = 128.0 images per CPU-second.
    rows = [line for line in text.splitlines() if line.startswith("| a_s") or line.startswith("| b_s")]
    assert rows == ["| a_s0 | 2026-12-05 10:00:00 | Intel Xeon (avx512, bf16) | 1000 | 128.0 |",
                    "| a_s1 | 2026-12-07 08:00:00 | AMD EPYC (no AVX-512) | 400 | 51.2 |",
                    "| b_s0 | 2026-12-07 08:00:00 | not recorded | 2000 | 128.0 |"]


def test_machine_reads_this_cpu():
    m = budget.machine()
    assert m["cpu"] and m["cores"] >= 1 and isinstance(m["avx512"], bool) and isinstance(m["bf16"], bool)

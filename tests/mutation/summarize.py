"""Markdown tables of scripts/mutation.sh's sessions (and recheck_survivors.py's results), for REPORT.md.

    .venv/bin/python tests/mutation/summarize.py > tests/mutation/raw/summary.md
"""

import os
import re
import sqlite3
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORK = os.environ.get("MUTATION_WORKDIR", "/tmp/tfsg-mutation")
ORDER = ["losses", "cooperative", "spgan", "selfexgan", "layers", "stats"]


def recheck():
    path = os.path.join(ROOT, "tests", "mutation", "raw", "recheck.txt")
    out = {}
    if os.path.exists(path):
        for line in open(path):
            if line.startswith("#") or not line.strip():
                continue
            target, job, outcome, *rest = line.rstrip("\n").split("\t")
            out[job] = (outcome, rest[0] if rest else "")
    return out


def main():
    again = recheck()
    targets = [t for t in ORDER if os.path.exists(os.path.join(WORK, t, "session.sqlite"))]
    print("| target | generated | filtered: operator | filtered: outside the functions | not sampled | run | "
          "killed | survived | killed by the survivor tests | still surviving | pending |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    survivors = []
    for t in targets:
        db = sqlite3.connect(os.path.join(WORK, t, "session.sqlite"))
        total = db.execute("SELECT count(*) FROM work_items").fetchone()[0]
        rows = db.execute("SELECT job_id, worker_outcome, test_outcome, output, diff FROM work_results").fetchall()
        skipped = [r for r in rows if r[1] == "SKIPPED"]
        op = sum("operator" in (r[3] or "") for r in skipped)
        lines = sum("line-filter" in (r[3] or "") for r in skipped)
        sampled = sum("not sampled" in (r[3] or "") for r in skipped)
        run = [r for r in rows if r[1] != "SKIPPED"]
        killed = sum(r[2] in ("KILLED",) for r in run)
        incompetent = sum(r[2] == "INCOMPETENT" for r in run)
        surv = [r for r in run if r[2] == "SURVIVED"]
        later = sum(again.get(r[0], ("",))[0] == "killed" for r in surv)
        pending = total - len(rows)
        print(f"| {t} | {total} | {op} | {lines} | {sampled} | {len(run)} | {killed + incompetent} | {len(surv)} | "
              f"{later} | {len(surv) - later} | {pending} |")
        for r in surv:
            diff = "\n".join(ln for ln in (r[4] or "").splitlines()
                             if re.match(r"^[-+] ", ln) or re.match(r"^[-+]\s", ln) and not ln.startswith(("---", "+++")))
            survivors.append((t, r[0], again.get(r[0], ("not rechecked", ""))[0], diff))
    print()
    for t, job, outcome, diff in survivors:
        print(f"- `{t}` {job[:8]} ({outcome}):\n```diff\n{diff}\n```")


if __name__ == "__main__":
    sys.exit(main())

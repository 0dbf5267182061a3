"""Re-runs the survivors of scripts/mutation.sh against the current tests (issue #13).

    .venv/bin/python tests/mutation/recheck_survivors.py [TARGET ...]   # default: every session found

For every mutant that survived in $MUTATION_WORKDIR/<target>/session.sqlite, the stored diff is
applied (with `patch`, so it still applies after the module moved or gained lines elsewhere) to a
scratch copy of the committed tree, and the target's test command runs with
tests/test_equation_survivors.py added first (the tests written for the survivors). Writes
tests/mutation/raw/recheck.txt after each survivor: target, job id, "killed" or "survived", the first
failing test. Survivors already listed there are not run again (delete the file to redo them).
"""

import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORK = os.environ.get("MUTATION_WORKDIR", "/tmp/tfsg-mutation")
MOVED = {"tf_sparse_gen/models/cooperative.py": "tf_sparse_gen/families/andor/model.py",
         "tf_sparse_gen/models/spgan.py": "tf_sparse_gen/families/spgan/model.py",
         "tf_sparse_gen/models/selfexgan.py": "tf_sparse_gen/families/selfexgan/model.py"}
SURVIVOR_TESTS = "tests/test_equation_survivors.py"
# Also run for a target's survivors: tests/test_distribute.py's one-device-vs-two-replica andor tests
# (selected by the target's -k "andor or langevin ...") for the replica-count mutants of the Langevin code.
EXTRA = {"cooperative": ["tests/test_distribute.py"]}


def test_args(session_dir, target):
    toml = open(os.path.join(session_dir, "cosmic-ray.toml")).read()
    cmd = re.search(r'^test-command = "(.*)"$', toml, re.M).group(1).replace('\\"', '"')
    args = shlex.split(cmd)
    args = args[args.index("--") + 1:]
    # the survivors' tests go in after the target's files (before -k, which then also selects them)
    k = args.index("-k") if "-k" in args else len(args)
    # The survivor tests first: with -x a killed survivor then costs only those.
    files = [SURVIVOR_TESTS] + [a for a in args[:k] if a != SURVIVOR_TESTS] + EXTRA.get(target, [])
    rest = args[k:]
    if rest and rest[0] == "-k" and not rest[1].startswith("not "):
        rest = ["-k", f"({rest[1]}) or test_equation_survivors"]  # every survivor test, whatever its name
    return files + rest


def main():
    targets = sys.argv[1:] or sorted(d for d in os.listdir(WORK) if os.path.exists(os.path.join(WORK, d, "session.sqlite")))
    copy = tempfile.mkdtemp(prefix="tfsg-recheck-")
    subprocess.run(f"git -C {ROOT} archive HEAD | tar -x -C {copy}", shell=True, check=True)
    for so in os.listdir(os.path.join(ROOT, "tf_sparse_gen", "kernels")):
        if so.endswith(".so"):
            shutil.copy(os.path.join(ROOT, "tf_sparse_gen", "kernels", so), os.path.join(copy, "tf_sparse_gen", "kernels"))
    runner = os.path.join(ROOT, "scripts", "mutation_runner.py")
    sock = os.path.join(copy, "runner.sock")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONDONTWRITEBYTECODE="1")
    server = subprocess.Popen([sys.executable, runner, "serve", sock], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    out = os.path.join(ROOT, "tests", "mutation", "raw", "recheck.txt")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    done = {}  # job id -> row, from an earlier (interrupted) recheck: not run again
    if os.path.exists(out):
        for ln in open(out):
            if ln.strip() and not ln.startswith("#"):
                row = tuple(ln.rstrip("\n").split("\t"))
                if len(row) >= 3:
                    done[row[1]] = row

    def write(rows):
        with open(out, "w") as f:
            f.write("# tests/mutation/recheck_survivors.py: survivors of mutation.sh re-run with the survivor tests\n")
            for row in sorted(rows, key=lambda r: (r[0], r[1])):
                f.write("\t".join(row) + "\n")
    rows = list(done.values())
    try:
        for _ in range(300):
            if os.path.exists(sock):
                break
            time.sleep(0.2)
        for target in targets:
            sdir = os.path.join(WORK, target)
            args = test_args(sdir, target)
            if "--noconftest" in args:  # NumPy-only target: keep TensorFlow out of it as mutation.sh does
                args.remove("--noconftest")
            db = sqlite3.connect(os.path.join(sdir, "session.sqlite"))
            for job_id, diff in db.execute("SELECT job_id, diff FROM work_results WHERE test_outcome = 'SURVIVED'"):
                if job_id in done:
                    continue
                old = re.search(r"^--- a/(\S+)", diff, re.M).group(1)
                new = MOVED.get(old, old) if not os.path.exists(os.path.join(copy, old)) else old
                target_file = os.path.join(copy, new)
                source = open(target_file).read()
                patch = subprocess.run(["patch", "-s", "-p1", "--no-backup-if-mismatch", target_file],
                                       input=diff, text=True, capture_output=True, cwd=copy)
                if patch.returncode != 0:
                    rows.append((target, job_id, "not applied", " ".join(patch.stdout.split())[:200]))
                    open(target_file, "w").write(source)
                    continue
                try:
                    proc = subprocess.run([sys.executable, runner, "run", sock, "--", "-x", "-q", "-p", "no:cacheprovider",
                                           *args], cwd=copy, env=env, capture_output=True, text=True, timeout=600)
                    failed = [ln.split(" - ")[0] for ln in proc.stdout.splitlines() if ln.startswith("FAILED")]
                    outcome = "killed" if proc.returncode != 0 else "survived"
                except subprocess.TimeoutExpired:
                    outcome, failed = "killed", ["timeout"]
                finally:
                    open(target_file, "w").write(source)
                rows.append((target, job_id, outcome, failed[0] if failed else ""))
                print(*rows[-1], sep="\t", flush=True)
                write(rows)
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(copy, ignore_errors=True)
    write(rows)
    print(f"{sum(r[2] == 'killed' for r in rows)}/{len(rows)} survivors now killed; wrote {out}")


if __name__ == "__main__":
    main()

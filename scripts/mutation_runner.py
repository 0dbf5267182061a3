"""A fork server for scripts/mutation.sh: one mutant's pytest run without re-importing TensorFlow.

    python scripts/mutation_runner.py serve SOCKET [--no-tf]   # imports TF, NumPy, SciPy, pytest once
    python scripts/mutation_runner.py run SOCKET -- PYTEST_ARGS # cosmic-ray's test command

The server imports the heavy third-party modules (never tf_sparse_gen, which is the code being
mutated) and forks one child per request; the child imports tf_sparse_gen afresh from the
mutated files on disk, runs pytest.main(PYTEST_ARGS) in the requesting directory and exits with
pytest's code, which `run` returns. TensorFlow's runtime is only started in the children (the
server runs no op), so the fork is safe and the tests' conftest can still configure devices.
If the client is killed (cosmic-ray's per-mutant timeout), the server kills the child. If the
server cannot be reached, `run` runs pytest in a fresh interpreter instead (slower, same result).
"""

import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile


def serve(path, with_tf=True):
    sys.dont_write_bytecode = True
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    import numpy  # noqa: F401
    import pytest  # noqa: F401
    import scipy.linalg  # noqa: F401
    import scipy.special  # noqa: F401
    if with_tf:
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
    if os.path.exists(path):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(4)
    print(f"mutation_runner: serving on {path}", flush=True)
    while True:
        conn, _ = server.accept()
        with conn:
            data = b""
            while not data.endswith(b"\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            if not data.endswith(b"\n"):
                continue
            req = json.loads(data)
            log = tempfile.NamedTemporaryFile(prefix="mutant-", suffix=".log", delete=False)
            pid = os.fork()
            if pid == 0:  # child
                try:
                    server.close()
                    os.chdir(req["cwd"])
                    sys.path.insert(0, req["cwd"])
                    os.dup2(log.fileno(), 1)
                    os.dup2(log.fileno(), 2)
                    import pytest
                    code = int(pytest.main(req["args"]))
                    sys.stdout.flush()
                    sys.stderr.flush()
                except BaseException as exc:  # noqa: BLE001
                    print(f"mutation_runner child error: {exc!r}", file=sys.stderr, flush=True)
                    code = 3
                os._exit(code)
            status = None
            while status is None:
                done, st = os.waitpid(pid, os.WNOHANG)
                if done:
                    status = os.waitstatus_to_exitcode(st)
                    break
                readable, _, _ = select.select([conn], [], [], 0.05)
                if readable and not conn.recv(1, socket.MSG_PEEK):  # client gone (timeout): stop the child
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    break
            log.close()
            if status is not None:
                output = open(log.name, errors="replace").read()[-20000:]
                try:
                    conn.sendall(json.dumps({"code": status, "output": output}).encode() + b"\n")
                except OSError:
                    pass
            os.unlink(log.name)


def run(path, args):
    try:
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(path)
    except OSError:
        return subprocess.call([sys.executable, "-m", "pytest", *args])
    client.sendall(json.dumps({"cwd": os.getcwd(), "args": args}).encode() + b"\n")
    data = b""
    while not data.endswith(b"\n"):
        chunk = client.recv(65536)
        if not chunk:  # the server went away: run the tests here rather than report a false kill
            print("mutation_runner: the server closed the connection; running pytest directly", file=sys.stderr)
            return subprocess.call([sys.executable, "-m", "pytest", *args])
        data += chunk
    reply = json.loads(data)
    sys.stdout.write(reply["output"])
    return reply["code"]


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2], with_tf="--no-tf" not in sys.argv)
    elif sys.argv[1] == "run":
        args = sys.argv[3:]
        if args and args[0] == "--":
            args = args[1:]
        sys.exit(run(sys.argv[2], args))
    else:
        sys.exit(__doc__)

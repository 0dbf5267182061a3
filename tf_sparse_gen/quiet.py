"""Keeps TensorFlow's C++ log lines off a command's console (entry points only).

TensorFlow's C++ runtime prints start-up lines (oneDNN, "failed call to cuInit",
"remapper failed", CPU-feature notes) through absl logging before absl is
initialised, so TF_CPP_MIN_LOG_LEVEL does not hold them back, and users read them
as errors. `quiet_tensorflow()`, called by an entry point before anything imports
TensorFlow, sets TF_CPP_MIN_LOG_LEVEL=2 and passes the process's stderr (file
descriptor 2) through a filter that drops exactly those lines: absl-C++ lines
with the zeroed date TensorFlow's early logging writes (`I0000 00:00:<seconds>`),
absl's "before absl::InitializeLog()" notice and the CPU-feature guard's
continuation line. Everything else (Python warnings, tracebacks, absl-py logs, which
carry a real date) passes unchanged.

`TF_SPARSE_GEN_TF_LOGS=1`, or any `--verbosity`/`-v` flag on the command line, keeps
them all.
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import threading
from typing import Optional, Sequence

ENV = "TF_SPARSE_GEN_TF_LOGS"
_ACTIVE = False
CPP_LINE = re.compile(
    rb"^(?:[IWEF]0000 00:00:\d+\.\d+\s+\d+ \S+:\d+\] "
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|To enable the following instructions: .* in other operations, rebuild TensorFlow)")


def wants_tf_logs(argv: Sequence[str]) -> bool:
    if os.environ.get(ENV, "") not in ("", "0"):
        return True
    return any(a == "-v" or a.startswith("--verbosity") or a.startswith("-v=") for a in argv)


def quiet_tensorflow(argv: Optional[Sequence[str]] = None) -> bool:
    """Filters TensorFlow's C++ lines from stderr for the rest of the process; returns whether it does."""
    global _ACTIVE
    argv = sys.argv[1:] if argv is None else argv
    if _ACTIVE or wants_tf_logs(argv):
        return _ACTIVE
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        sys.stderr.flush()
        original = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
    except OSError:  # no usable fd 2: nothing to filter
        return False

    def pump():
        pending = b""
        while True:
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            out = b"".join(line + b"\n" for line in lines if not CPP_LINE.match(line))
            if out:
                os.write(original, out)
        if pending and not CPP_LINE.match(pending):
            os.write(original, pending)
        os.close(read_end)

    _ACTIVE = True
    thread = threading.Thread(target=pump, name="tf-log-filter", daemon=True)
    thread.start()

    def restore():
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(original, 2)  # the pipe loses its last writer: the pump drains it and stops
        thread.join(timeout=5)

    atexit.register(restore)
    return True

"""Compiled CPU kernels: `TopKMask`, the selection of `TopKSparsity` (see topk_mask.cc).

TensorFlow's CPU `TopK` made the sparse AND-OR generator's forward pass 1.7x
slower than the dense one; the compiled kernel finds each row's k-th value by
a vectorised bisection and returns the same mask as the scatter of
`tf.math.top_k`'s indices (ties keep the lowest indices), ~3x faster.

It is built once per TensorFlow version with the system's C++ compiler and
TensorFlow's own compile flags (`tf.sysconfig`):

    python -m tf_sparse_gen.kernels build     # scripts/setup.sh runs this
    python -m tf_sparse_gen.kernels status

The library is written next to this file as `_topk_mask.<tag>.so`, where the
tag hashes the source, the TensorFlow version and the flags, so an upgraded
TensorFlow or an edited source is never served a stale build. Where it is not
built, `TopKSparsity` uses `tf.math.top_k` (same mask, slower on CPU) and
`unavailable_reason()` says why; GPUs, XLA and SavedModel exports always use
`tf.math.top_k` (see `TopKSparsity`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from typing import List, Optional

import tensorflow as tf

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "topk_mask.cc")
OPTIMIZATION = ["-O3", "-fPIC", "-shared"]


class KernelBuildError(RuntimeError):
    """The C++ kernel could not be compiled; the message says what was run and what failed."""


def _compiler() -> str:
    """$CXX if set, else the first of g++, c++, clang++ on PATH."""
    named = os.environ.get("CXX")
    if named:
        found = shutil.which(named)
        if found is None:
            raise KernelBuildError(f"$CXX={named!r} is not an executable; set CXX to a C++ compiler or unset it")
        return found
    for candidate in ("g++", "c++", "clang++"):
        found = shutil.which(candidate)
        if found:
            return found
    raise KernelBuildError(
        "no C++ compiler found (looked for $CXX, g++, c++, clang++); install one, e.g. "
        "`apt-get install g++`, then run `python -m tf_sparse_gen.kernels build`")


def _flags() -> List[str]:
    return OPTIMIZATION + list(tf.sysconfig.get_compile_flags()) + list(tf.sysconfig.get_link_flags())


def library_path() -> str:
    """Where the library for this source, TensorFlow version and flag set is (or will be) built."""
    digest = hashlib.sha256()
    with open(SOURCE, "rb") as f:
        digest.update(f.read())
    digest.update(tf.__version__.encode())
    digest.update(" ".join(_flags()).encode())
    return os.path.join(os.path.dirname(SOURCE), f"_topk_mask.{digest.hexdigest()[:16]}.so")


def build(force: bool = False, verbose: bool = False) -> str:
    """Compiles the kernel library (unless an up-to-date one exists); returns its path.

    Raises `KernelBuildError` naming the compiler command and its error output when there is
    no C++ compiler or the compilation fails.
    """
    path = library_path()
    if os.path.exists(path) and not force:
        return path
    cxx = _compiler()
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".build-", suffix=".so", dir=directory)
    os.close(fd)
    command = [cxx, SOURCE, "-o", tmp, *_flags()]
    if verbose:
        print(" ".join(command), file=sys.stderr)
    try:
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            tail = "\n".join(result.stderr.strip().splitlines()[-20:])
            raise KernelBuildError(f"compiling the top-k kernel failed ({result.returncode}):\n"
                                   f"  {' '.join(command)}\n{tail}")
        os.replace(tmp, path)  # atomic: concurrent builds each write their own temporary file
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    for stale in os.listdir(directory):
        if stale.startswith("_topk_mask.") and stale.endswith(".so") and os.path.join(directory, stale) != path:
            os.remove(os.path.join(directory, stale))
    return path


class _Library:
    """The loaded op library, loaded at most once per process."""

    def __init__(self):
        self.module = None
        self.reason: Optional[str] = None
        self.tried = False

    def load(self):
        if not self.tried:
            self.tried = True
            path = library_path()
            if not os.path.exists(path):
                self.reason = (f"the compiled top-k kernel is not built ({path} is missing); run "
                               "`python -m tf_sparse_gen.kernels build` (scripts/setup.sh does)")
            else:
                try:
                    self.module = tf.load_op_library(path)
                    tf.no_gradient("TopKMask")
                except (tf.errors.NotFoundError, OSError) as e:
                    self.reason = (f"the compiled top-k kernel at {path} did not load ({e}); rebuild it with "
                                   "`python -m tf_sparse_gen.kernels build --force`")
        return self.module


_LIBRARY = _Library()


def topk_mask_op():
    """The `top_k_mask(x, k, spatial)` op function, or None when the kernel is not available."""
    module = _LIBRARY.load()
    return None if module is None else module.top_k_mask


def available() -> bool:
    return topk_mask_op() is not None


def unavailable_reason() -> Optional[str]:
    """Why the kernel is not available (None when it is)."""
    _LIBRARY.load()
    return _LIBRARY.reason

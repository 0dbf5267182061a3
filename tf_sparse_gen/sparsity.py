"""k of a sparse layer: its type, validation and resolution to a count (no TensorFlow).

A k is an int >= 1 (that many entries kept), a float in (0, 1) (that fraction of
the reduced axis, rounded, at least 1), or 0 for "no sparsity at this layer".
The config validates ks with `check_k` (naming the field); `TopKSparsity` resolves
them with `resolve_k` against the size of the axis it reduces.
"""

from __future__ import annotations

from typing import Union

K = Union[int, float]

# TopKSparsity's selection: "auto" = the compiled kernel where it applies, else
# tf.math.top_k; "kernel" = always the kernel; "tf" = always tf.math.top_k.
TOPK_IMPLEMENTATIONS = ("auto", "kernel", "tf")


class SparsityError(ValueError):
    """A k is not 0, an int >= 1 or a fraction in (0, 1), or it keeps more than it selects from."""


def check_k(k, what: str = "k", allow_off: bool = True) -> None:
    """Raises SparsityError (naming `what`) unless k is 0 (when allowed), an int >= 1 or a fraction in (0, 1)."""
    if isinstance(k, bool) or not isinstance(k, (int, float)):
        raise SparsityError(f"{what} must be a number, got {k!r}")
    if isinstance(k, float) and not k.is_integer():
        if not 0.0 < k < 1.0:
            raise SparsityError(f"{what} = {k}: a fractional k must lie in (0, 1)")
    elif k < 0 or (k == 0 and not allow_off):
        allowed = "0 (off), " if allow_off else ""
        raise SparsityError(f"{what} = {k}: k must be {allowed}an integer >= 1 or a fraction in (0, 1)")


def kept_count(k: K, n: int) -> int:
    """Entries a valid non-zero k keeps out of `n`: an int k as is, a fraction as round(k * n) (>= 1).

    May exceed n for an int k; `resolve_k` refuses that.
    """
    if isinstance(k, float) and not k.is_integer():
        return max(1, int(round(k * n)))
    return int(k)


def resolve_k(k: K, n: int, what: str = "k") -> int:
    """Number of entries kept out of `n`, checked: k valid and non-zero, and at most n."""
    check_k(k, what, allow_off=False)
    k = kept_count(k, n)
    if k > n:
        raise SparsityError(f"{what}={k} is larger than the {n} entries it selects from; "
                            f"use k <= {n} or a fraction")
    return k

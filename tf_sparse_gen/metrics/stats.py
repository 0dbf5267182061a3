"""Distribution metrics on feature vectors: Fréchet distance, KID, Inception Score.

All the math is NumPy/SciPy in float64. Statistics are accumulated in a
streaming way (`FeatureStats`, `InceptionScoreStats`): memory is O(D^2) for the
mean/covariance and O(splits * K) for the inception score, independent of the
number of images; only KID needs the features themselves (`keep_features=True`).

Feature extraction lives in `tf_sparse_gen.metrics.feature_nets`.
"""

from __future__ import annotations

import os
from typing import Dict, Optional, Tuple

import numpy as np


# ----------------------------------------------------------------------------- streaming mean / covariance

class FeatureStats:
    """Streaming mean and covariance of feature vectors (float64).

    Keeps the count, the sum and the sum of outer products of the features
    *relative to a shift* (the mean of the first batch), which avoids the
    cancellation of the naive `E[xx^T] - mu mu^T` when |mean| >> std:

        mu    = shift + S1 / n
        Sigma = (S2 - S1 S1^T / n) / (n - 1)       (S1 = sum(x - shift), S2 = sum (x - shift)(x - shift)^T)

    Args:
        keep_features: also keep the features (float32) for KID; off, memory does
            not grow with the number of images.
    """

    def __init__(self, keep_features: bool = False):
        self.keep_features = keep_features
        self.count = 0
        self.dim: Optional[int] = None
        self._shift = None
        self._sum = None
        self._sum_outer = None
        self._kept = []

    def update(self, features) -> "FeatureStats":
        """Adds a batch of features [B, D]."""
        x = np.asarray(features)
        if x.ndim != 2:
            raise ValueError(f"features must be [B, D], got shape {x.shape}")
        if self.dim is None:
            self.dim = x.shape[1]
        elif x.shape[1] != self.dim:
            raise ValueError(f"features have dimension {x.shape[1]}, earlier batches had {self.dim}")
        if x.shape[0] == 0:
            return self
        if not np.all(np.isfinite(x)):
            raise ValueError("features contain NaN or Inf")
        x64 = x.astype(np.float64)
        if self._shift is None:
            self._shift = x64.mean(axis=0)
            self._sum = np.zeros(self.dim)
            self._sum_outer = np.zeros((self.dim, self.dim))
        xc = x64 - self._shift
        self._sum += xc.sum(axis=0)
        self._sum_outer += xc.T @ xc
        self.count += x.shape[0]
        if self.keep_features:
            self._kept.append(x.astype(np.float32, copy=True))
        return self

    def merge(self, other: "FeatureStats") -> "FeatureStats":
        """Adds all the features of another accumulator (e.g. from another worker)."""
        if other.count == 0:
            return self
        if self.count == 0:
            self.dim, self._shift = other.dim, other._shift.copy()
            self._sum, self._sum_outer = np.zeros(self.dim), np.zeros((self.dim, self.dim))
        if other.dim != self.dim:
            raise ValueError(f"cannot merge features of dimension {other.dim} into {self.dim}")
        # Re-express the other's sums about our shift: x - a = (x - b) + d, d = b - a.
        d = other._shift - self._shift
        s1 = other._sum + other.count * d
        s2 = other._sum_outer + np.outer(other._sum, d) + np.outer(d, other._sum) + other.count * np.outer(d, d)
        self._sum += s1
        self._sum_outer += s2
        self.count += other.count
        if self.keep_features:
            if not other.keep_features:
                raise ValueError("cannot merge stats without kept features into stats that keep them")
            self._kept.extend(other._kept)
        return self

    def mean(self) -> np.ndarray:
        """float64 [D] mean."""
        if self.count == 0:
            raise ValueError("no features accumulated")
        return self._shift + self._sum / self.count

    def cov(self) -> np.ndarray:
        """float64 [D, D] unbiased covariance (divides by n - 1, like np.cov)."""
        if self.count < 2:
            raise ValueError(f"need at least 2 feature vectors for a covariance, have {self.count}")
        c = (self._sum_outer - np.outer(self._sum, self._sum) / self.count) / (self.count - 1)
        return (c + c.T) / 2.0

    def features(self) -> np.ndarray:
        """float32 [N, D]: all features seen (only with keep_features=True)."""
        if not self.keep_features:
            raise ValueError("features were not kept; create FeatureStats(keep_features=True) (needed for KID)")
        if not self._kept:
            return np.zeros((0, self.dim or 0), np.float32)
        if len(self._kept) > 1:
            self._kept = [np.concatenate(self._kept)]
        return self._kept[0]

    # -- persistence (e.g. cached statistics of a real data set)
    def state(self) -> Dict[str, np.ndarray]:
        s = {"count": np.array(self.count), "dim": np.array(self.dim or 0),
             "keep_features": np.array(self.keep_features)}
        if self.count:
            s.update(shift=self._shift, sum=self._sum, sum_outer=self._sum_outer)
            if self.keep_features:
                s["features"] = self.features()
        return s

    @classmethod
    def from_state(cls, s) -> "FeatureStats":
        st = cls(keep_features=bool(s["keep_features"]))
        st.count = int(s["count"])
        st.dim = int(s["dim"]) or None
        if st.count:
            st._shift, st._sum, st._sum_outer = (np.asarray(s[k], np.float64) for k in ("shift", "sum", "sum_outer"))
            if st.keep_features:
                st._kept = [np.asarray(s["features"], np.float32)]
        return st

    def save(self, path: str, **extra) -> str:
        os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
        tmp = path + ".tmp.npz"
        np.savez(tmp, **self.state(), **extra)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str) -> "FeatureStats":
        with np.load(path, allow_pickle=False) as z:
            return cls.from_state({k: z[k] for k in z.files})


# ----------------------------------------------------------------------------- Fréchet distance

def _sqrtm_psd(a: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix (negative eigenvalues from round-off clipped to 0)."""
    w, v = np.linalg.eigh((a + a.T) / 2.0)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr((S1 S2)^{1/2}) for symmetric PSD S1, S2, computed stably.

    S1 S2 is similar to the symmetric PSD matrix M = S1^{1/2} S2 S1^{1/2}
    (S1 S2 = S1^{1/2} M S1^{-1/2}), so both have the same eigenvalues, all real and
    >= 0, and Tr((S1 S2)^{1/2}) = sum_i sqrt(lambda_i(M)). No complex arithmetic.
    """
    s1_half = _sqrtm_psd(sigma1)
    m = s1_half @ sigma2 @ s1_half
    w = np.linalg.eigvalsh((m + m.T) / 2.0)
    return float(np.sum(np.sqrt(np.clip(w, 0.0, None))))


def frechet_distance(mu1, sigma1, mu2, sigma2, method: str = "eigh", eps: float = 1e-6) -> float:
    """Fréchet (2-Wasserstein) distance between two Gaussians N(mu1, S1) and N(mu2, S2).

        d^2 = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2})

    With Inception pool features of real and generated images this is the FID
    (Heusel et al. 2017); with other features, an FD in that feature space.

    Args:
        mu1, mu2: [D] means.
        sigma1, sigma2: [D, D] covariances (symmetric PSD).
        method: "eigh" (default): Tr((S1 S2)^{1/2}) from the eigenvalues of the symmetric
            S1^{1/2} S2 S1^{1/2} (exact for PSD inputs, no complex parts, robust to
            singular covariances). "sqrtm": `scipy.linalg.sqrtm(S1 S2)` as in the
            reference FID code: if the result is not finite, `eps * I` is added to both
            covariances; imaginary parts (from round-off) are dropped, and an error is
            raised if they are not tiny.
        eps: the diagonal offset of the "sqrtm" fallback.

    Returns:
        The squared distance d^2 (a Python float, >= 0 up to round-off).
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shape mismatch: mu {mu1.shape} / {mu2.shape}, sigma {sigma1.shape} / {sigma2.shape}")
    diff = mu1 - mu2
    if method == "eigh":
        tr_covmean = trace_sqrt_product(sigma1, sigma2)
    elif method == "sqrtm":
        from scipy import linalg

        covmean = linalg.sqrtm(sigma1 @ sigma2)
        if not np.all(np.isfinite(covmean)):
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
        if np.iscomplexobj(covmean):
            imag = np.max(np.abs(np.diagonal(covmean).imag))
            if imag > 1e-3 * max(1.0, np.max(np.abs(covmean.real))):
                raise ValueError(f"sqrtm(S1 S2) has a large imaginary component ({imag:.3g}); use method='eigh'")
            covmean = covmean.real
        tr_covmean = float(np.trace(covmean))
    else:
        raise ValueError(f"method must be 'eigh' or 'sqrtm', not {method!r}")
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)


def frechet_distance_from_stats(stats1: FeatureStats, stats2: FeatureStats, **kwargs) -> float:
    """`frechet_distance` of the means and covariances of two accumulators."""
    return frechet_distance(stats1.mean(), stats1.cov(), stats2.mean(), stats2.cov(), **kwargs)


# ----------------------------------------------------------------------------- KID

def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x . y / d + 1)^3 for all pairs of rows: [n, d] x [m, d] -> [n, m]."""
    d = x.shape[1]
    return (x @ y.T / d + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with the cubic polynomial kernel between samples x [m, d] and y [n, d].

        MMD^2_u = 1/(m(m-1)) sum_{i != j} k(x_i, x_j) + 1/(n(n-1)) sum_{i != j} k(y_i, y_j)
                  - 2/(mn) sum_{i, j} k(x_i, y_j)
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError(f"unbiased MMD needs at least 2 samples on each side, got {m} and {n}")
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1))
                 + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2.0 * kxy.sum() / (m * n))


def kernel_inception_distance(feats1, feats2, num_subsets: int = 100, subset_size: int = 1000,
                              seed: Optional[int] = 0) -> Tuple[float, float]:
    """Kernel Inception Distance (Bińkowski et al. 2018): unbiased MMD^2, cubic polynomial kernel.

        k(x, y) = (x . y / d + 1)^3
        KID = mean over subsets of MMD^2_u(X_s, Y_s)

    Each of `num_subsets` subsets draws m = min(subset_size, N1, N2) rows from each set
    without replacement (as in the reference implementation); the estimate is unbiased,
    so it can be slightly negative when the distributions are equal.

    Args:
        feats1, feats2: [N1, D], [N2, D] features.
        num_subsets: number of random subsets.
        subset_size: rows per subset and set (clipped to the available count).
        seed: seed of the subset draws (numpy Generator).

    Returns:
        (mean, std) of MMD^2_u over the subsets (std with ddof=0).
    """
    f1, f2 = np.asarray(feats1), np.asarray(feats2)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1]:
        raise ValueError(f"features must be [N, D] with the same D, got {f1.shape} and {f2.shape}")
    m = min(subset_size, len(f1), len(f2))
    if m < 2:
        raise ValueError(f"KID needs at least 2 feature vectors per set, got {len(f1)} and {len(f2)}")
    rng = np.random.default_rng(seed)
    values = np.empty(num_subsets)
    for s in range(num_subsets):
        x = f1[rng.choice(len(f1), m, replace=False)]
        y = f2[rng.choice(len(f2), m, replace=False)]
        values[s] = mmd2_unbiased(x, y)
    return float(values.mean()), float(values.std())


# ----------------------------------------------------------------------------- Inception score

def _split_terms(p: np.ndarray) -> Tuple[np.ndarray, float]:
    """(sum_x p(y|x) [K], sum_x sum_y p log p) of probabilities p [n, K] (0 log 0 = 0)."""
    from scipy.special import xlogy

    return p.sum(axis=0), float(xlogy(p, p).sum())


def _score_from_terms(count: int, sum_p: np.ndarray, sum_plogp: float) -> float:
    # E_x KL(p(y|x) || p(y)) = E_x sum_y p log p - sum_y p(y) log p(y),  p(y) = mean_x p(y|x)
    from scipy.special import xlogy

    py = sum_p / count
    return float(np.exp(sum_plogp / count - xlogy(py, py).sum()))


def _check_probs(probs) -> np.ndarray:
    p = np.asarray(probs, np.float64)
    if p.ndim != 2:
        raise ValueError(f"probabilities must be [N, K], got shape {p.shape}")
    if p.size and (np.any(p < 0) or not np.all(np.isfinite(p))
                   or np.max(np.abs(p.sum(axis=1) - 1.0)) > 1e-3):
        raise ValueError("rows of probs must be probability vectors (softmax outputs, not logits)")
    return p


def inception_score(probs, num_splits: int = 10) -> Tuple[float, float]:
    """Inception Score (Salimans et al. 2016) of class probabilities p(y|x).

        IS = exp( E_x KL( p(y|x) || p(y) ) ),   p(y) = E_x p(y|x)

    computed on each of `num_splits` consecutive splits (np.array_split, so no example
    is dropped) with p(y) the marginal of that split, as in the reference code.

    Args:
        probs: [N, K] softmax outputs (rows sum to 1).
        num_splits: number of splits (clipped to N).

    Returns:
        (mean, std) of the per-split scores (std with ddof=0). Uniform predictions give
        1; confident predictions spread evenly over K classes give K.
    """
    p = _check_probs(probs)
    if len(p) == 0:
        raise ValueError("no probabilities")
    scores = []
    for part in np.array_split(p, min(num_splits, len(p))):
        sum_p, sum_plogp = _split_terms(part)
        scores.append(_score_from_terms(len(part), sum_p, sum_plogp))
    return float(np.mean(scores)), float(np.std(scores))


class InceptionScoreStats:
    """Streaming inception score: per split, the count, sum_x p(y|x) and sum_x sum_y p log p.

    Example i (in the order seen) goes to split i mod `num_splits`, so the splits are
    interleaved rather than consecutive: on i.i.d. samples this is the same estimator as
    `inception_score`, and equals it exactly on the reordered
    `concatenate([probs[s::num_splits] for s in range(num_splits)])`.
    """

    def __init__(self, num_splits: int = 10):
        if num_splits < 1:
            raise ValueError("num_splits must be >= 1")
        self.num_splits = num_splits
        self.counts = np.zeros(num_splits, np.int64)
        self.sum_p = None
        self.sum_plogp = np.zeros(num_splits)

    @property
    def count(self) -> int:
        return int(self.counts.sum())

    def update(self, probs) -> "InceptionScoreStats":
        p = _check_probs(probs)
        if self.sum_p is None:
            self.sum_p = np.zeros((self.num_splits, p.shape[1]))
        elif p.shape[1] != self.sum_p.shape[1]:
            raise ValueError(f"probabilities have {p.shape[1]} classes, earlier batches had {self.sum_p.shape[1]}")
        start = self.count
        for s in range(self.num_splits):
            part = p[(s - start) % self.num_splits::self.num_splits]
            if len(part):
                sp, spl = _split_terms(part)
                self.sum_p[s] += sp
                self.sum_plogp[s] += spl
                self.counts[s] += len(part)
        return self

    def result(self) -> Tuple[float, float]:
        """(mean, std) over the non-empty splits."""
        scores = [_score_from_terms(int(c), self.sum_p[s], self.sum_plogp[s])
                  for s, c in enumerate(self.counts) if c > 0]
        if not scores:
            raise ValueError("no probabilities accumulated")
        return float(np.mean(scores)), float(np.std(scores))

    def state(self) -> Dict[str, np.ndarray]:
        k = 0 if self.sum_p is None else self.sum_p.shape[1]
        return {"counts": self.counts, "sum_p": self.sum_p if k else np.zeros((self.num_splits, 0)),
                "sum_plogp": self.sum_plogp}

    @classmethod
    def from_state(cls, s) -> "InceptionScoreStats":
        st = cls(len(s["counts"]))
        st.counts = np.asarray(s["counts"], np.int64).copy()
        st.sum_plogp = np.asarray(s["sum_plogp"], np.float64).copy()
        sp = np.asarray(s["sum_p"], np.float64)
        st.sum_p = sp.copy() if sp.shape[1] else None
        return st

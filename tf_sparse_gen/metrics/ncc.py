"""Normalised cross-correlation template matching (the AND-OR paper's interpretability score).

Table 4 of the sparse AND-OR generator paper: every basis function of a mid
layer is template-matched against the training images with (fast) normalised
cross-correlation; each basis function scores its best match; the
interpretability score is the mean over basis functions.

The NCC here is the zero-mean one of OpenCV's ``TM_CCOEFF_NORMED`` and
scikit-image's ``match_template``: for a template T (n = h*w*C values) and the
image window W at position (y, x),

    ncc(y, x) = sum (T - mean T)(W - mean W) / sqrt( sum (T - mean T)^2 * sum (W - mean W)^2 )

in [-1, 1], invariant to positive affine changes of intensity of T or W.
Channels are matched jointly: the h x w x C block is one vector (one mean over
all its values, as scikit-image does for a 3-D template). A window (or template)
with zero variance scores 0 (the value is undefined; never NaN).

Computed with FFTs (numerator) and integral images (window sums) in float64,
for all positions and all images of a chunk at once; the image FFTs of a chunk
are shared by all the templates matched against it.
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Sequence, Tuple

import numpy as np

_LUMA = np.array([0.299, 0.587, 0.114])
# A window whose standard deviation is below FLAT_TOL times the images' peak |value| counts as flat.
FLAT_TOL = 1e-6


@dataclasses.dataclass(frozen=True)
class NCCMatch:
    """The best match of one template: score and where (image index, top-left y, x)."""

    score: float
    image_index: int
    y: int
    x: int


def _to_nhwc(images) -> np.ndarray:
    a = np.asarray(images, np.float64)
    if a.ndim == 2:
        a = a[None, :, :, None]
    elif a.ndim == 3:
        a = a[..., None]  # [N, H, W] grayscale
    if a.ndim != 4:
        raise ValueError(f"images must be [N, H, W, C] or [N, H, W], got shape {np.shape(images)}")
    return a


def _to_hwc(template) -> np.ndarray:
    t = np.asarray(template, np.float64)
    if t.ndim == 2:
        t = t[..., None]
    if t.ndim != 3:
        raise ValueError(f"a template must be [h, w] or [h, w, C], got shape {t.shape}")
    return t


def _gray(a: np.ndarray) -> np.ndarray:
    """[..., 3] -> [..., 1] luma; other channel counts: channel mean."""
    if a.shape[-1] == 3:
        return (a @ _LUMA)[..., None]
    return a.mean(axis=-1, keepdims=True)


def _match_channels(t: np.ndarray, images: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    if t.shape[-1] == images.shape[-1]:
        return t, images
    return (_gray(t) if t.shape[-1] != 1 else t), (_gray(images) if images.shape[-1] != 1 else images)


def _window_sums(a: np.ndarray, h: int, w: int) -> np.ndarray:
    """Sums over every h x w window (valid positions) of [N, H, W] via an integral image."""
    n, hh, ww = a.shape
    ii = np.zeros((n, hh + 1, ww + 1))
    np.cumsum(np.cumsum(a, axis=1), axis=2, out=ii[:, 1:, 1:])
    return ii[:, h:, w:] - ii[:, :-h, w:] - ii[:, h:, :-w] + ii[:, :-h, :-w]


class _ImageChunk:
    """The images of one chunk with their FFTs and integral images, ready for many templates."""

    def __init__(self, images: np.ndarray, max_h: int, max_w: int):
        from scipy import fft

        self.images = images
        n, hh, ww, c = images.shape
        # Linear (not circular) correlation for every template up to max_h x max_w.
        self.shape = (fft.next_fast_len(hh + max_h - 1, real=True), fft.next_fast_len(ww + max_w - 1, real=True))
        self.spec = fft.rfftn(images, s=self.shape, axes=(1, 2), workers=-1)  # [N, P, Q//2+1, C]
        self.sum1 = images.sum(axis=-1)
        self.sum2 = (images ** 2).sum(axis=-1)
        self._window_cache = {}

    def window_stats(self, h: int, w: int):
        key = (h, w)
        if key not in self._window_cache:
            self._window_cache = {key: (_window_sums(self.sum1, h, w), _window_sums(self.sum2, h, w))}
        return self._window_cache[key]

    def ncc_maps(self, t0: np.ndarray, t_norm: float, flat_tol: float) -> np.ndarray:
        """NCC maps [N, H-h+1, W-w+1] of a zero-mean template t0 [h, w, C] (norm t_norm > 0)."""
        from scipy import fft

        h, w, c = t0.shape
        n, hh, ww, _ = self.images.shape
        # Correlation = convolution with the flipped template; then keep the valid positions.
        tspec = fft.rfftn(t0[::-1, ::-1, :], s=self.shape, axes=(0, 1))
        prod = self.spec[..., 0] * tspec[None, ..., 0]
        for ch in range(1, c):  # sum over channels without a [N, P, Q, C] temporary
            prod += self.spec[..., ch] * tspec[None, ..., ch]
        corr = fft.irfftn(prod, s=self.shape, axes=(1, 2), workers=-1)
        num = corr[:, h - 1:hh, w - 1:ww]
        s1, s2 = self.window_stats(h, w)
        count = h * w * c
        var_sum = s2 - s1 * s1 / count  # sum (W - mean W)^2
        scale = max(np.max(np.abs(self.images)), 1e-300)
        flat = var_sum <= count * (flat_tol * scale) ** 2
        den = t_norm * np.sqrt(np.where(flat, 1.0, var_sum))
        return np.where(flat, 0.0, np.clip(num / den, -1.0, 1.0))


def _prepare_template(template):
    t = _to_hwc(template)
    if not np.all(np.isfinite(t)):
        raise ValueError("template contains NaN or Inf")
    return t


def _auto_chunk(images: np.ndarray, max_h: int, max_w: int, budget_bytes: float = 64e6) -> int:
    """Images per chunk so that one chunk's spectra take about `budget_bytes`."""
    n, hh, ww, c = images.shape
    per_image = 16.0 * (hh + max_h) * ((ww + max_w) // 2 + 1) * c
    return int(max(1, min(n, budget_bytes // per_image)))


def match_templates(templates: Sequence, images, chunk_size: Optional[int] = None,
                    flat_tol: float = FLAT_TOL) -> List[NCCMatch]:
    """The best zero-mean NCC match of each template over all images and positions.

    Args:
        templates: a sequence of [h, w] or [h, w, C] arrays (sizes may differ; each must fit
            in the images).
        images: [N, H, W, C] or [N, H, W] (any intensity scale; NCC is affine invariant).
            If a template's channel count differs from the images', both are converted
            to grayscale (luma weights for 3 channels).
        chunk_size: images per FFT chunk; default: as many as fit in about 64 MB of spectra
            (peak memory is a few times that).
        flat_tol: windows whose std is below flat_tol x max|images| score 0.

    Returns:
        One `NCCMatch` per template (score 0 at image 0, (0, 0) for a flat template).
    """
    imgs = _to_nhwc(images)
    if len(imgs) == 0:
        raise ValueError("no images to match against")
    if not np.all(np.isfinite(imgs)):
        raise ValueError("images contain NaN or Inf")
    ts = [_prepare_template(t) for t in templates]
    for i, t in enumerate(ts):
        if t.shape[0] > imgs.shape[1] or t.shape[1] > imgs.shape[2]:
            raise ValueError(f"template {i} ({t.shape[0]}x{t.shape[1]}) is larger than the images "
                             f"({imgs.shape[1]}x{imgs.shape[2]})")
    # Group templates by the channel count they are matched in.
    variants = {}  # channels -> images in that channel count
    prepared = []  # (channels, zero-mean template, norm) or None for a flat template
    for t in ts:
        t, im = _match_channels(t, imgs)
        variants.setdefault(im.shape[-1], im)
        t0 = t - t.mean()
        norm = float(np.sqrt(np.sum(t0 * t0)))
        flat = norm <= np.sqrt(t.size) * flat_tol * max(np.max(np.abs(t)), 1e-300)
        prepared.append(None if flat else (im.shape[-1], t0, norm))
    best = [NCCMatch(0.0, 0, 0, 0) for _ in ts]
    for c, im_c in variants.items():
        idx = [i for i, p in enumerate(prepared) if p is not None and p[0] == c]
        if not idx:
            continue
        max_h = max(prepared[i][1].shape[0] for i in idx)
        max_w = max(prepared[i][1].shape[1] for i in idx)
        step = chunk_size or _auto_chunk(im_c, max_h, max_w)
        for start in range(0, len(im_c), step):
            chunk = _ImageChunk(im_c[start:start + step], max_h, max_w)
            # Same-size templates share the window statistics: visit them together.
            for i in sorted(idx, key=lambda i: prepared[i][1].shape[:2]):
                _, t0, norm = prepared[i]
                maps = chunk.ncc_maps(t0, norm, flat_tol)
                k = int(np.argmax(maps))
                score = float(maps.reshape(-1)[k])
                if score > best[i].score:
                    n_i, y, x = np.unravel_index(k, maps.shape)
                    best[i] = NCCMatch(score, int(start + n_i), int(y), int(x))
    return best


def ncc_map(template, images, flat_tol: float = FLAT_TOL) -> np.ndarray:
    """The full NCC map [N, H-h+1, W-w+1] of one template (for figures and tests)."""
    imgs = _to_nhwc(images)
    t, imgs = _match_channels(_prepare_template(template), imgs)
    t0 = t - t.mean()
    norm = float(np.sqrt(np.sum(t0 * t0)))
    if norm <= np.sqrt(t.size) * flat_tol * max(np.max(np.abs(t)), 1e-300):
        return np.zeros((len(imgs), imgs.shape[1] - t.shape[0] + 1, imgs.shape[2] - t.shape[1] + 1))
    return _ImageChunk(imgs, t.shape[0], t.shape[1]).ncc_maps(t0, norm, flat_tol)


def best_ncc(template, images, chunk_size: Optional[int] = None) -> float:
    """max over images and positions of the zero-mean NCC of `template` [h, w(, C)] in images [N, H, W(, C)]."""
    return match_templates([template], images, chunk_size)[0].score


def interpretability_score(templates: Sequence, images, chunk_size: Optional[int] = None,
                           return_matches: bool = False):
    """Mean best-match NCC over templates (AND-OR paper, Table 4).

    Args:
        templates: the basis functions (cropped to their support), [h, w] or [h, w, C] each.
        images: training images [N, H, W, C].

    Returns:
        (mean score, per-template list of best scores), plus the list of `NCCMatch`
        if `return_matches`.
    """
    if len(templates) == 0:
        raise ValueError("no templates")
    matches = match_templates(templates, images, chunk_size)
    scores = [m.score for m in matches]
    mean = float(np.mean(scores))
    return (mean, scores, matches) if return_matches else (mean, scores)

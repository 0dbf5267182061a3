"""Image grids and PNG files."""

from __future__ import annotations

import math
import os
from typing import Optional

import numpy as np


def to_uint8(images) -> np.ndarray:
    """[-1, 1] floats -> uint8 [0, 255]."""
    images = np.asarray(images, dtype=np.float32)
    return np.clip(np.rint((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def image_grid(images, ncol: Optional[int] = None, pad: int = 1, pad_value: int = 255) -> np.ndarray:
    """[N, H, W, C] images in [-1, 1] -> one uint8 [rows*(H+pad)+pad, ncol*(W+pad)+pad, C] grid."""
    images = to_uint8(images)
    if images.ndim == 3:
        images = images[..., None]
    n, h, w, c = images.shape
    ncol = ncol or max(1, int(math.ceil(math.sqrt(n))))
    nrow = max(1, int(math.ceil(n / ncol)))
    grid = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), pad_value, np.uint8)
    for i in range(n):
        r, col = divmod(i, ncol)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + col * (w + pad): pad + col * (w + pad) + w] = images[i]
    return grid


def save_png(array: np.ndarray, path: str, scale: int = 1) -> str:
    """Writes a uint8 [H, W, C] array (C = 1 or 3) as PNG, optionally enlarged by `scale` (nearest)."""
    from PIL import Image

    array = np.asarray(array)
    if scale > 1:
        array = array.repeat(scale, axis=0).repeat(scale, axis=1)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    Image.fromarray(array).save(tmp, format="PNG")
    os.replace(tmp, path)
    return path

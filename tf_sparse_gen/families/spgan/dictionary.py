"""Patch dictionary of the Sparse GAN (Mahdizadehaghdam, Panahi, Krim 2019, eq. 5).

Overlapping p x p x C patches are sampled from the training images (seeded),
vectorised in (row, column, channel) order -- the order of a conv kernel
`[p, p, C]` -- and a dictionary Omega of unit-norm atoms is learned by online
dictionary learning (Mairal et al. 2009; scikit-learn's
`MiniBatchDictionaryLearning`):

    min_{Omega, R} 1/2 ||G - Omega R||_F^2 + alpha ||R||_1,  ||omega_k||_2 = 1.

Choice recorded here: **mean-centred patches plus explicit DC atoms.**
Each patch is centred per channel before learning (the atoms then come out as
crisp edges, bars and corners instead of mostly flat blobs; colour patches
would otherwise give mostly flat colours). A dictionary of zero-mean atoms
cannot represent the flat background that dominates Fashion-MNIST (an image
assembled from zero-mean patches has zero mean in its interior), so the
first C atoms are the constant unit-norm patch of each channel (1/p in that
channel, 0 elsewhere) and the remaining K - C atoms are learned. Every atom
has unit L2 norm, as eq. 5's constraint set C requires.

Atoms are returned as a float32 `[K, p * p * C]` array (one atom per row);
`atoms_as_patches` reshapes them to `[K, p, p, C]`.
"""

from __future__ import annotations

import time
from typing import Dict, Tuple

import numpy as np


def extract_patches(images: np.ndarray, patch_size: int = 3, num_patches: int = 100000,
                    seed: int = 0) -> np.ndarray:
    """Randomly sampled patches of `images`, as float32 vectors in [-1, 1].

    Args:
        images: uint8 `[N, H, W, C]` (`ImageSource.images`) or float `[N, H, W, C]` in [-1, 1].
        patch_size: side p of the square patches.
        num_patches: how many patches to sample (image and position uniform,
            with replacement; only positions where the patch lies inside the image).
        seed: NumPy generator seed.

    Returns float32 `[num_patches, p * p * C]`, each row in (row, column, channel) order.
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"extract_patches expects [N, H, W, C] images, got shape {images.shape}")
    n, h, w, c = images.shape
    p = int(patch_size)
    if p > h or p > w:
        raise ValueError(f"patch_size={p} is larger than the {h}x{w} images")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, num_patches)
    rows = rng.integers(0, h - p + 1, num_patches)
    cols = rng.integers(0, w - p + 1, num_patches)
    dy, dx = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    # [P, 1, 1] + [p, p] -> [P, p, p]; indexing gives [P, p, p, C]
    patches = images[idx[:, None, None], rows[:, None, None] + dy, cols[:, None, None] + dx]
    if patches.dtype == np.uint8:
        patches = patches.astype(np.float32) / 127.5 - 1.0
    # [P, p, p, C] -> [P, p*p*C]
    return patches.reshape(num_patches, p * p * c).astype(np.float32)


def center_patches(patches: np.ndarray, channels: int) -> np.ndarray:
    """Subtracts each patch's mean per channel (vectors in (row, column, channel) order)."""
    p2 = patches.shape[1] // channels
    # [P, p*p*C] -> [P, p*p, C]
    x = patches.reshape(len(patches), p2, channels)
    return (x - x.mean(axis=1, keepdims=True)).reshape(patches.shape)


def dc_atoms(patch_size: int, channels: int) -> np.ndarray:
    """The C constant unit-norm atoms `[C, p * p * C]` (value 1/p on one channel)."""
    p2 = patch_size * patch_size
    atoms = np.zeros((channels, p2, channels), np.float32)
    for ch in range(channels):
        atoms[ch, :, ch] = 1.0 / patch_size
    # [C, p*p, C] -> [C, p*p*C]
    return atoms.reshape(channels, p2 * channels)


def normalize_atoms(atoms: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit L2 norm (a zero row becomes a unit basis vector)."""
    atoms = np.asarray(atoms, np.float64).copy()
    norms = np.linalg.norm(atoms, axis=1)
    dead = norms < eps
    atoms[dead] = 0.0
    atoms[dead, 0] = 1.0
    norms[dead] = 1.0
    return (atoms / norms[:, None]).astype(np.float32)


def random_atoms(num_atoms: int, dim: int, seed: int = 0) -> np.ndarray:
    """`[num_atoms, dim]` random Gaussian atoms of unit norm (a baseline, and an initial value)."""
    rng = np.random.default_rng(seed)
    return normalize_atoms(rng.standard_normal((num_atoms, dim)))


def learn_dictionary(patches: np.ndarray, num_atoms: int, channels: int, alpha: float = 1.0,
                     batch_size: int = 256, seed: int = 0, center: bool = True) -> Tuple[np.ndarray, Dict]:
    """Learns `num_atoms` unit-norm atoms for `patches` (eq. 5).

    Args:
        patches: float32 `[P, p * p * C]` from `extract_patches`.
        num_atoms: K, the dictionary size (including the C DC atoms when `center`).
        channels: C.
        alpha: the L1 weight of eq. 5 (scikit-learn's `alpha`).
        batch_size: mini-batch size of the online algorithm.
        seed: `random_state` of scikit-learn.
        center: learn K - C atoms on per-channel mean-centred patches and
            prepend the C DC atoms (see the module docstring); False learns all
            K atoms on the raw patches.

    Returns `(atoms float32 [K, p * p * C], info dict)`; info has the number of
    mini-batch steps, the seconds taken and the settings.
    """
    from sklearn.decomposition import MiniBatchDictionaryLearning

    dim = patches.shape[1]
    learned = num_atoms - channels if center else num_atoms
    if learned < 1:
        raise ValueError(f"num_atoms={num_atoms} leaves no atom to learn next to the {channels} DC atom(s)")
    data = center_patches(patches, channels) if center else patches
    t0 = time.monotonic()
    # Defaults otherwise: max_iter=1 pass at most, early stopping on the
    # smoothed cost (about 100 mini-batch steps on 100k 3x3 patches).
    dl = MiniBatchDictionaryLearning(n_components=learned, alpha=alpha, batch_size=batch_size,
                                     random_state=seed)
    dl.fit(data.astype(np.float64))
    atoms = normalize_atoms(dl.components_)
    if center:
        atoms = np.concatenate([dc_atoms(int(round((dim // channels) ** 0.5)), channels), atoms], axis=0)
    info = {"steps": int(dl.n_steps_), "seconds": time.monotonic() - t0, "alpha": alpha,
            "batch_size": batch_size, "center": center, "num_patches": int(len(patches)),
            "num_atoms": int(num_atoms)}
    return atoms.astype(np.float32), info


def atoms_as_patches(atoms, patch_size: int, channels: int) -> np.ndarray:
    """`[K, p * p * C]` -> `[K, p, p, C]`."""
    atoms = np.asarray(atoms)
    return atoms.reshape(len(atoms), patch_size, patch_size, channels)


def atoms_for_display(atoms, patch_size: int, channels: int, zoom: int = 4) -> np.ndarray:
    """Atoms as images in [-1, 1] `[K, p * zoom, p * zoom, C]`, each scaled by its max |value|.

    A DC atom (constant) shows as white; zero is mid-gray.
    """
    x = atoms_as_patches(atoms, patch_size, channels).astype(np.float32)
    scale = np.abs(x).reshape(len(x), -1).max(axis=1)
    x = x / np.maximum(scale, 1e-12)[:, None, None, None]
    return x.repeat(zoom, axis=1).repeat(zoom, axis=2)


def dictionary_grid(atoms, patch_size: int, channels: int, ncol: int = 10) -> np.ndarray:
    """The atoms as one image grid in [-1, 1] (each atom 8x enlarged, scaled by its max |value|)."""
    from tf_sparse_gen import images as image_lib

    return image_lib.image_grid(atoms_for_display(atoms, patch_size, channels, zoom=8), ncol=ncol, pad=2)


def save_dictionary_png(atoms, patch_size: int, channels: int, path: str, ncol: int = 10) -> str:
    """Writes `dictionary_grid` as a PNG."""
    from tf_sparse_gen import images as image_lib

    return image_lib.save_png(dictionary_grid(atoms, patch_size, channels, ncol), path, scale=1)


def sparse_code_error(atoms: np.ndarray, patches: np.ndarray, n_nonzero: int = 3) -> float:
    """Mean squared residual of `patches` coded by OMP with `n_nonzero` atoms of `atoms`."""
    from sklearn.decomposition import SparseCoder

    coder = SparseCoder(dictionary=np.asarray(atoms, np.float64), transform_algorithm="omp",
                        transform_n_nonzero_coefs=n_nonzero)
    codes = coder.transform(np.asarray(patches, np.float64))
    return float(np.mean((patches - codes @ atoms) ** 2))

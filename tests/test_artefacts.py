"""Stripe and speckle ratios (tf_sparse_gen.metrics.artefacts)."""

import numpy as np

from tf_sparse_gen.metrics.artefacts import SecondDifferenceStats, artefact_ratios


def test_second_differences_by_hand():
    # One 3x3 image: only the centre pixel is interior. Rows 0, 1, 2 = 0, 1, 0; columns equal.
    img = np.array([[0, 0, 0], [1, 1, 1], [0, 0, 0]], np.float64)[None, :, :, None]
    s = SecondDifferenceStats()
    s.update(img)
    assert s.count == 1
    assert s.yy == 2.0  # |0 - 2*1 + 0|
    assert s.xx == 0.0  # |1 - 2*1 + 1|
    assert s.lap == 2.0


def test_ratios_of_identical_sets_are_one_and_stripes_raise_them():
    rng = np.random.default_rng(0)
    noise = rng.uniform(-1, 1, size=(8, 16, 16, 1))
    real = sum(np.roll(noise, (dy, dx), (1, 2)) for dy in range(3) for dx in range(3)) / 9  # smooth
    a, b = SecondDifferenceStats(), SecondDifferenceStats()
    a.update(real)
    b.update(real)
    r = artefact_ratios(a, b)
    assert r == {"stripe_ratio": 1.0, "stripe_excess": 1.0, "hf_ratio": 1.0}
    striped = real.copy()
    striped[:, ::2] += 0.5  # every other row brighter: horizontal stripes
    s = SecondDifferenceStats()
    s.update(striped)
    assert artefact_ratios(s, a)["stripe_ratio"] > 3.0
    blurred = sum(np.roll(real, (dy, dx), (1, 2)) for dy in range(3) for dx in range(3)) / 9
    bl = SecondDifferenceStats()
    bl.update(blurred)
    assert artefact_ratios(bl, a)["hf_ratio"] < 0.7


def test_stripe_excess_counts_vertical_stripes_like_horizontal_ones():
    # 3x3 images: only the centre pixel is interior. Horizontal stripe: rows 0, 1, 0 (|d_yy| = 2,
    # d_xx = 0); the same image transposed is a vertical stripe (d_yy = 0, |d_xx| = 2).
    rows = np.array([[0, 0, 0], [1, 1, 1], [0, 0, 0]], np.float64)
    # Real set: one horizontal and one vertical stripe, |d_yy| = |d_xx| = 2 in all: anisotropy 1.
    real = SecondDifferenceStats()
    real.update(np.stack([rows, rows.T])[..., None])
    # Samples: anisotropy (2 + 1 + 0) / (0 + 0 + 1) = 3 with a half-strength vertical stripe beside a
    # horizontal one, and its mirror 1 / 3 with the roles swapped.
    horiz, vert = SecondDifferenceStats(), SecondDifferenceStats()
    horiz.update(np.stack([rows, rows / 2, rows.T / 2])[..., None])
    vert.update(np.stack([rows.T, rows.T / 2, rows / 2])[..., None])
    h, v = artefact_ratios(horiz, real), artefact_ratios(vert, real)
    assert h["stripe_ratio"] == 3.0 and h["stripe_excess"] == 3.0
    assert abs(v["stripe_ratio"] - 1.0 / 3.0) < 1e-15 and abs(v["stripe_excess"] - 3.0) < 1e-12

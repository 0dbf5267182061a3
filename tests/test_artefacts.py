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
    assert r == {"stripe_ratio": 1.0, "hf_ratio": 1.0}
    striped = real.copy()
    striped[:, ::2] += 0.5  # every other row brighter: horizontal stripes
    s = SecondDifferenceStats()
    s.update(striped)
    assert artefact_ratios(s, a)["stripe_ratio"] > 3.0
    blurred = sum(np.roll(real, (dy, dx), (1, 2)) for dy in range(3) for dx in range(3)) / 9
    bl = SecondDifferenceStats()
    bl.update(blurred)
    assert artefact_ratios(bl, a)["hf_ratio"] < 0.7

"""FD, KID and IS of tf_sparse_gen.metrics.stats against independent reference computations (#13).

References: scipy.linalg.sqrtm for the Fréchet distance, the textbook unbiased MMD^2 with
the cubic polynomial kernel written as explicit loops for KID, and the definition
exp(E_x KL(p(y|x) || p(y))) per split for IS; all in float64, to 1e-6 relative, on fixed
features. NumPy/SciPy only (no TensorFlow), so the module runs in about a second.
"""

import numpy as np
import pytest
from scipy import linalg

from tf_sparse_gen.metrics import stats
from tf_sparse_gen.metrics.stats import (FeatureStats, InceptionScoreStats, frechet_distance,
                                         frechet_distance_from_stats, inception_score,
                                         kernel_inception_distance, mmd2_unbiased, polynomial_kernel)


def fixed_features(seed, n, d, shift=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    return (rng.normal(size=(n, d)) @ mix) * scale + shift


# ----------------------------------------------------------------------------- Fréchet distance

def fd_reference(x, y):
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrtm(S1 S2)), np.cov (n - 1) covariances."""
    mu1, mu2 = x.mean(axis=0), y.mean(axis=0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


@pytest.mark.parametrize("method", ["eigh", "sqrtm"])
def test_fd_of_streamed_features_equals_the_scipy_reference(method):
    x = fixed_features(0, 400, 6)
    y = fixed_features(1, 300, 6, shift=0.3, scale=1.4)
    expected = fd_reference(x, y)
    assert expected > 0.5
    a, b = FeatureStats(), FeatureStats()
    for chunk in np.array_split(x, 3):
        a.update(chunk)
    for chunk in np.array_split(y, 4):
        b.update(chunk)
    assert frechet_distance_from_stats(a, b, method=method) == pytest.approx(expected, rel=1e-6)
    got = frechet_distance(x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False), method=method)
    assert got == pytest.approx(expected, rel=1e-6)
    # Symmetric, and 0 for identical statistics.
    assert frechet_distance_from_stats(b, a, method=method) == pytest.approx(expected, rel=1e-6)
    assert abs(frechet_distance_from_stats(a, a, method=method)) < 1e-8


def test_fd_by_hand_in_one_and_two_dimensions():
    # 1-D: (mu1 - mu2)^2 + (s1 - s2)^2 for std s: (1 - 4)^2 + (2 - 3)^2 = 10.
    assert frechet_distance([1.0], [[4.0]], [4.0], [[9.0]]) == pytest.approx(10.0, rel=1e-12)
    assert frechet_distance([1.0], [[4.0]], [4.0], [[9.0]], method="sqrtm") == pytest.approx(10.0, rel=1e-12)
    # 2-D diagonal: |mu|^2 = 1 + 4; traces: (1 - 2)^2 + (3 - 1)^2 = 5.
    got = frechet_distance([0.0, 0.0], np.diag([1.0, 9.0]), [1.0, 2.0], np.diag([4.0, 1.0]))
    assert got == pytest.approx(10.0, rel=1e-12)
    # Singular covariances (the sqrtm fallback adds eps * I) still agree with the eigh path.
    s = np.array([[1.0, 1.0], [1.0, 1.0]])
    a = frechet_distance([0, 0], s, [0, 1], 2 * s)
    assert frechet_distance([0, 0], s, [0, 1], 2 * s, method="sqrtm") == pytest.approx(a, abs=1e-4)
    # S^2 = 2S, so (S 2S)^1/2 = (4S)^1/2 = 2 S / sqrt(2): Tr = 2 sqrt(2). d^2 = 1 + 2 + 4 - 4 sqrt(2).
    assert a == pytest.approx(7 - 4 * np.sqrt(2), abs=1e-9)


def test_fd_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        frechet_distance([0.0, 1.0], np.eye(2), [0.0], np.eye(1))
    with pytest.raises(ValueError, match="method"):
        frechet_distance([0.0], [[1.0]], [0.0], [[1.0]], method="svd")


def test_feature_stats_mean_cov_merge_and_state_against_numpy():
    x = fixed_features(2, 50, 3, shift=5.0)
    y = fixed_features(3, 30, 3, shift=-2.0)
    a = FeatureStats(keep_features=True)
    for chunk in np.array_split(x, 5):
        a.update(chunk)
    a.update(np.zeros((0, 3)))  # an empty batch changes nothing
    np.testing.assert_allclose(a.mean(), x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(a.cov(), np.cov(x, rowvar=False), rtol=1e-10)
    b = FeatureStats(keep_features=True).update(y)
    both = np.concatenate([x, y])
    a.merge(b)
    assert a.count == 80
    np.testing.assert_allclose(a.mean(), both.mean(0), rtol=1e-12)
    np.testing.assert_allclose(a.cov(), np.cov(both, rowvar=False), rtol=1e-10)
    np.testing.assert_allclose(a.features(), both.astype(np.float32))
    # Merging into an empty accumulator copies; merging an empty one is a no-op.
    c = FeatureStats().merge(FeatureStats().update(y)).merge(FeatureStats())
    np.testing.assert_allclose(c.mean(), y.mean(0), rtol=1e-12)
    np.testing.assert_allclose(c.cov(), np.cov(y, rowvar=False), rtol=1e-10)
    back = FeatureStats.from_state(a.state())
    np.testing.assert_array_equal(back.mean(), a.mean())
    np.testing.assert_array_equal(back.cov(), a.cov())
    assert back.count == 80 and back.keep_features


def test_feature_stats_errors():
    st = FeatureStats()
    with pytest.raises(ValueError, match="no features"):
        st.mean()
    with pytest.raises(ValueError, match=r"\[B, D\]"):
        st.update(np.zeros(3))
    st.update(np.ones((1, 2)))
    with pytest.raises(ValueError, match="at least 2"):
        st.cov()
    with pytest.raises(ValueError, match="dimension"):
        st.update(np.ones((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        st.update(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="merge"):
        st.merge(FeatureStats().update(np.ones((2, 3))))
    with pytest.raises(ValueError, match="kept"):
        FeatureStats(keep_features=True).merge(FeatureStats().update(np.ones((2, 2))))


# ----------------------------------------------------------------------------- KID

def mmd2_textbook(x, y):
    """1/(m(m-1)) sum_{i!=j} k(x_i,x_j) + 1/(n(n-1)) sum_{i!=j} k(y_i,y_j) - 2/(mn) sum k(x_i,y_j)."""
    d = x.shape[1]

    def k(a, b):
        return (float(np.dot(a, b)) / d + 1.0) ** 3
    m, n = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    syy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j)
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n))
    return sxx / (m * (m - 1)) + syy / (n * (n - 1)) - 2.0 * sxy / (m * n)


def test_mmd_by_hand():
    # d = 1, k(a, b) = (ab + 1)^3. x = {0, 1}: k(0, 1) = 1 -> 2 / 2 = 1. y = {0, -1}: 1.
    # Cross: k(0,0) + k(0,-1) + k(1,0) + k(1,-1) = 1 + 1 + 1 + 0 -> 2 * 3 / 4 = 1.5. MMD^2 = 0.5.
    assert mmd2_unbiased(np.array([[0.0], [1.0]]), np.array([[0.0], [-1.0]])) == pytest.approx(0.5, rel=1e-12)
    # Unequal sizes m = 2, n = 3: x = {0, 1}, y = {0, 0, 0}: sxx = 1, syy = 1, cross all 1 -> 1 + 1 - 2 = 0.
    assert mmd2_unbiased(np.array([[0.0], [1.0]]), np.zeros((3, 1))) == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(polynomial_kernel(np.array([[1.0, 2.0]]), np.array([[2.0, 0.0], [0.0, -1.0]])),
                               [[(2 / 2 + 1) ** 3, (-2 / 2 + 1) ** 3]])
    with pytest.raises(ValueError, match="at least 2"):
        mmd2_unbiased(np.zeros((1, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="at least 2"):
        mmd2_unbiased(np.zeros((3, 2)), np.zeros((1, 2)))


def test_mmd_equals_the_textbook_loops_for_unequal_sizes():
    x = fixed_features(4, 17, 5)
    y = fixed_features(5, 11, 5, shift=0.4)
    assert mmd2_unbiased(x, y) == pytest.approx(mmd2_textbook(x, y), rel=1e-9)


def test_kid_mean_and_std_over_subsets_equal_the_textbook_estimate():
    f1 = fixed_features(6, 40, 4)
    f2 = fixed_features(7, 30, 4, shift=0.5, scale=0.8)
    # Subsets: m = min(subset_size, N1, N2) rows of each set without replacement, numpy Generator(seed).
    rng = np.random.default_rng(3)
    values = []
    for _ in range(4):
        x = f1[rng.choice(40, 12, replace=False)]
        y = f2[rng.choice(30, 12, replace=False)]
        values.append(mmd2_textbook(x, y))
    mean, std = kernel_inception_distance(f1, f2, num_subsets=4, subset_size=12, seed=3)
    assert mean == pytest.approx(np.mean(values), rel=1e-6)
    assert std == pytest.approx(np.std(values), rel=1e-6)
    assert std > 0
    # subset_size larger than a set: clipped to the smaller set (30 rows each).
    rng = np.random.default_rng(0)
    x, y = f1[rng.choice(40, 30, replace=False)], f2[rng.choice(30, 30, replace=False)]
    assert kernel_inception_distance(f1, f2, num_subsets=1, subset_size=1000, seed=0)[0] == \
        pytest.approx(mmd2_textbook(x, y), rel=1e-6)
    with pytest.raises(ValueError, match="same D"):
        kernel_inception_distance(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="at least 2"):
        kernel_inception_distance(np.zeros((1, 2)), np.zeros((5, 2)))


# ----------------------------------------------------------------------------- Inception score

def is_reference(p):
    py = p.mean(axis=0)
    kl = [sum(pi[k] * np.log(pi[k] / py[k]) for k in range(len(py)) if pi[k] > 0) for pi in p]
    return float(np.exp(np.mean(kl)))


def softmax_rows(seed, n, k, temperature=2.0):
    logits = np.random.default_rng(seed).normal(size=(n, k)) * temperature
    p = np.exp(logits - logits.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


def test_inception_score_per_split_equals_the_definition():
    p = softmax_rows(8, 23, 5)
    p[0] = [1.0, 0, 0, 0, 0]  # a zero probability (0 log 0 = 0)
    splits = np.array_split(p, 3)
    scores = [is_reference(s) for s in splits]
    mean, std = inception_score(p, num_splits=3)
    assert mean == pytest.approx(np.mean(scores), rel=1e-9)
    assert std == pytest.approx(np.std(scores), rel=1e-9)
    assert inception_score(p, num_splits=1) == pytest.approx((is_reference(p), 0.0), rel=1e-9)
    # More splits than rows: clipped to one row per split (each scores exp(0) = 1).
    assert inception_score(p[:2], num_splits=10) == pytest.approx((1.0, 0.0))
    # By hand: two one-hot rows of different classes: p(y) = (1/2, 1/2), KL = log 2 each: IS = 2.
    assert inception_score(np.eye(2), num_splits=1)[0] == pytest.approx(2.0, rel=1e-12)


def test_streamed_inception_score_equals_the_definition_on_interleaved_splits():
    p = softmax_rows(9, 31, 4)
    acc = InceptionScoreStats(num_splits=3)
    for chunk in np.array_split(p, 4):
        acc.update(chunk)
    assert acc.count == 31
    scores = [is_reference(p[s::3]) for s in range(3)]
    mean, std = acc.result()
    assert mean == pytest.approx(np.mean(scores), rel=1e-9)
    assert std == pytest.approx(np.std(scores), rel=1e-9)
    back = InceptionScoreStats.from_state(acc.state())
    assert back.result() == pytest.approx(acc.result(), rel=1e-12)
    assert InceptionScoreStats.from_state(InceptionScoreStats(2).state()).sum_p is None


def test_inception_score_errors():
    with pytest.raises(ValueError, match="num_splits"):
        InceptionScoreStats(0)
    with pytest.raises(ValueError, match="no probabilities"):
        InceptionScoreStats(2).result()
    with pytest.raises(ValueError, match="no probabilities"):
        inception_score(np.zeros((0, 3)))
    with pytest.raises(ValueError, match=r"\[N, K\]"):
        inception_score(np.ones(3) / 3)
    with pytest.raises(ValueError, match="probability"):
        inception_score(np.array([[0.5, 0.6]]))
    with pytest.raises(ValueError, match="probability"):
        inception_score(np.array([[1.5, -0.5]]))
    acc = InceptionScoreStats(2).update(np.ones((2, 3)) / 3)
    with pytest.raises(ValueError, match="classes"):
        acc.update(np.ones((2, 4)) / 4)
    # Two one-hot rows of different classes: sum p log p = 0, p(y) = (1/2, 1/2): exp(log 2) = 2.
    assert stats._score_from_terms(2, np.array([1.0, 1.0]), 0.0) == pytest.approx(2.0)


def test_feature_stats_state_keeps_the_dimension_and_errors_name_the_shapes():
    st = FeatureStats().update(np.ones((4, 3)))
    assert FeatureStats.from_state(st.state()).dim == 3
    assert FeatureStats.from_state(FeatureStats().state()).dim is None
    with pytest.raises(ValueError, match="features have dimension 2, earlier batches had 3"):
        st.update(np.ones((5, 2)))
    # sqrtm on a non-PSD covariance is complex (sqrt(-1) = i): refused, not silently made real.
    with pytest.raises(ValueError, match="imaginary"):
        frechet_distance([0.0, 0.0], np.diag([1.0, -1.0]), [0.0, 0.0], np.eye(2), method="sqrtm")


def test_saved_feature_stats_never_unpickle(tmp_path):
    path = str(tmp_path / "bad.npz")
    np.savez(path, count=np.array(0), dim=np.array(0), keep_features=np.array(False),
             extra=np.array([{"not": "numbers"}], dtype=object))
    with pytest.raises(ValueError, match="allow_pickle"):
        FeatureStats.load(path)

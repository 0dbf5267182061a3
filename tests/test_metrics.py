"""Tests of tf_sparse_gen.metrics: FD / KID / IS math, NCC matching, feature nets."""

import numpy as np
import pytest
from scipy import linalg

from tf_sparse_gen.metrics import ncc, stats
from tf_sparse_gen.metrics.stats import (FeatureStats, InceptionScoreStats, frechet_distance,
                                         inception_score, kernel_inception_distance)


def random_spd(rng, d, rank=None):
    a = rng.normal(size=(d, rank or d))
    return a @ a.T / (rank or d) + (0 if rank else 0.1 * np.eye(d))


# ----------------------------------------------------------------------------- Fréchet distance

@pytest.mark.parametrize("method", ["eigh", "sqrtm"])
def test_frechet_distance_diagonal_closed_form(method):
    rng = np.random.default_rng(0)
    d = 16
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    a, b = rng.uniform(0.1, 3.0, d), rng.uniform(0.1, 3.0, d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = frechet_distance(mu1, np.diag(a), mu2, np.diag(b), method=method)
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_frechet_distance_matches_scipy_sqrtm_on_random_spd():
    rng = np.random.default_rng(1)
    d = 30
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = random_spd(rng, d), random_spd(rng, d)
    covmean = linalg.sqrtm(s1 @ s2).real
    reference = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(reference, rel=1e-8)
    assert frechet_distance(mu1, s1, mu2, s2, method="sqrtm") == pytest.approx(reference, rel=1e-8)
    # Symmetric, zero on identical Gaussians.
    assert frechet_distance(mu2, s2, mu1, s1) == pytest.approx(reference, rel=1e-8)
    assert abs(frechet_distance(mu1, s1, mu1, s1)) < 1e-9


def test_frechet_distance_singular_covariances_are_finite():
    rng = np.random.default_rng(2)
    d = 40
    s1, s2 = random_spd(rng, d, rank=5), random_spd(rng, d, rank=7)  # rank-deficient (few samples)
    fd = frechet_distance(np.zeros(d), s1, np.zeros(d), s2)
    assert np.isfinite(fd) and fd > 0
    # sqrt of the round-off eigenvalues (~1e-16) of the null space costs ~1e-8 each: relative 1e-6.
    assert abs(frechet_distance(np.zeros(d), s1, np.zeros(d), s1)) < 1e-6 * np.trace(s1)


# ----------------------------------------------------------------------------- streaming statistics

def test_feature_stats_streaming_equals_numpy():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1003, 12)) * rng.uniform(0.5, 2, 12) + 1e4  # large offset: cancellation test
    x = x.astype(np.float32)
    st = FeatureStats(keep_features=True)
    for chunk in np.array_split(x, 7):
        st.update(chunk)
    x64 = x.astype(np.float64)
    assert st.count == 1003
    np.testing.assert_allclose(st.mean(), x64.mean(0), rtol=1e-12)
    np.testing.assert_allclose(st.cov(), np.cov(x64, rowvar=False), rtol=1e-7, atol=1e-9)
    np.testing.assert_array_equal(st.features(), x)

    # merge() of two halves equals one accumulator over everything
    a, b = FeatureStats().update(x[:400]), FeatureStats().update(x[400:] - 3.0)
    a.merge(b)
    ref = np.concatenate([x64[:400], x64[400:] - 3.0])
    np.testing.assert_allclose(a.mean(), ref.mean(0), rtol=1e-12)
    np.testing.assert_allclose(a.cov(), np.cov(ref, rowvar=False), rtol=1e-7, atol=1e-9)


def test_feature_stats_save_load_roundtrip(tmp_path):
    rng = np.random.default_rng(4)
    st = FeatureStats(keep_features=True).update(rng.normal(size=(50, 5)))
    path = st.save(str(tmp_path / "stats.npz"))
    back = FeatureStats.load(path)
    np.testing.assert_array_equal(back.mean(), st.mean())
    np.testing.assert_array_equal(back.cov(), st.cov())
    np.testing.assert_array_equal(back.features(), st.features())
    with pytest.raises(ValueError, match="keep_features"):
        FeatureStats().update(rng.normal(size=(3, 5))).features()


# ----------------------------------------------------------------------------- KID

def mmd2_unbiased_reference(x, y):
    """Direct O(n^2) loops of the unbiased MMD^2 with k(a, b) = (a.b/d + 1)^3."""
    d = x.shape[1]
    k = lambda a, b: (np.dot(a, b) / d + 1.0) ** 3  # noqa: E731
    m, n = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    syy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return sxx + syy - 2 * sxy


def test_kid_equals_direct_reference():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(20, 6)), rng.normal(0.3, 1.2, size=(20, 6))
    ref = mmd2_unbiased_reference(x, y)
    assert stats.mmd2_unbiased(x, y) == pytest.approx(ref, rel=1e-10)
    # One subset of all rows is a permutation of the full sets: the same value, std 0.
    mean, std = kernel_inception_distance(x, y, num_subsets=1, subset_size=1000, seed=0)
    assert mean == pytest.approx(ref, rel=1e-10) and std == 0.0


def test_kid_same_vs_shifted_distribution():
    rng = np.random.default_rng(6)
    d = 32
    a, b = rng.normal(size=(1500, d)), rng.normal(size=(1500, d))
    shifted = rng.normal(size=(1500, d)) + 0.5
    same, same_std = kernel_inception_distance(a, b, num_subsets=20, subset_size=500, seed=0)
    diff, _ = kernel_inception_distance(a, shifted, num_subsets=20, subset_size=500, seed=0)
    assert abs(same) < 0.01
    assert diff > 0.1 and diff > 20 * max(abs(same), same_std)
    # subset size is clipped to the available count, and the seed makes it reproducible
    assert kernel_inception_distance(a[:30], b, 5, 1000, seed=1) == kernel_inception_distance(a[:30], b, 5, 1000, seed=1)


# ----------------------------------------------------------------------------- Inception score

def test_inception_score_uniform_and_one_hot():
    k, n = 10, 1000
    mean, std = inception_score(np.full((n, k), 1.0 / k), num_splits=10)
    assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)
    one_hot = np.eye(k)[np.arange(n) % k]
    mean, std = inception_score(one_hot, num_splits=10)
    assert mean == pytest.approx(k, rel=1e-12) and std == pytest.approx(0.0, abs=1e-9)
    # all images confidently in one class: IS = 1
    assert inception_score(np.eye(k)[np.zeros(n, int)])[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="probability"):
        inception_score(np.random.default_rng(0).normal(size=(10, 3)))  # logits, not probabilities


def test_inception_score_streaming_equals_batch():
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(997, 10)) * 3
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    acc = InceptionScoreStats(num_splits=10)
    for chunk in np.array_split(p, 13):
        acc.update(chunk)
    reordered = np.concatenate([p[s::10] for s in range(10)])
    np.testing.assert_allclose(acc.result(), inception_score(reordered, num_splits=10), rtol=1e-12)
    # Direct definition on one split.
    py = p.mean(0)
    direct = np.exp(np.mean(np.sum(p * (np.log(p) - np.log(py)), axis=1)))
    assert inception_score(p, num_splits=1)[0] == pytest.approx(direct, rel=1e-12)


# ----------------------------------------------------------------------------- NCC

def structured_template(h=9, w=9):
    yy, xx = np.mgrid[:h, :w]
    return np.sin(xx * 0.9) * np.cos(yy * 0.6) + (xx > w // 2)


def test_ncc_planted_template_scores_one():
    rng = np.random.default_rng(8)
    t = structured_template()
    images = rng.uniform(-1, 1, size=(6, 32, 32, 1))
    images[4, 10:19, 13:22, 0] = 0.37 * t - 5.0  # scaled and offset in intensity
    match = ncc.match_templates([t], images)[0]
    assert match.score == pytest.approx(1.0, abs=1e-4)
    assert (match.image_index, match.y, match.x) == (4, 10, 13)
    assert ncc.best_ncc(t, images) == pytest.approx(1.0, abs=1e-4)
    # chunking does not change the result
    assert ncc.match_templates([t], images, chunk_size=4)[0] == match


def test_ncc_map_equals_brute_force():
    rng = np.random.default_rng(9)
    images = rng.normal(size=(2, 12, 11, 3))
    t = rng.normal(size=(4, 5, 3))
    got = ncc.ncc_map(t, images)
    t0 = t - t.mean()
    ref = np.zeros((2, 9, 7))
    for n in range(2):
        for y in range(9):
            for x in range(7):
                w = images[n, y:y + 4, x:x + 5]
                w0 = w - w.mean()
                ref[n, y, x] = np.sum(t0 * w0) / np.sqrt(np.sum(t0 ** 2) * np.sum(w0 ** 2))
    np.testing.assert_allclose(got, ref, atol=1e-10)


def test_ncc_noise_is_low_and_flat_windows_are_safe():
    rng = np.random.default_rng(10)
    t = structured_template(12, 12)
    noise = rng.uniform(-1, 1, size=(200, 32, 32, 1))
    assert ncc.best_ncc(t, noise) < 0.5
    # Flat regions (exact zeros after bright pixels, as in Fashion-MNIST backgrounds): score 0, no NaN.
    images = np.zeros((3, 32, 32, 1))
    images[0, :5, :5] = 1000.0
    m = ncc.ncc_map(t, images)
    assert np.all(np.isfinite(m)) and np.all(m[:, 6:, 6:] == 0.0)
    # A flat template scores 0.
    assert ncc.best_ncc(np.ones((5, 5)), noise) == 0.0
    mean, scores = ncc.interpretability_score([t, np.ones((5, 5)), noise[3, 2:10, 4:12, 0]], noise)
    assert scores[1] == 0.0 and scores[2] == pytest.approx(1.0, abs=1e-6)
    assert mean == pytest.approx(np.mean(scores))


def test_ncc_channel_conversion():
    rng = np.random.default_rng(11)
    gray = rng.uniform(size=(4, 20, 20, 1))
    rgb_template = np.repeat(gray[2, 3:10, 5:12], 3, axis=-1)  # a gray patch as an RGB template
    assert ncc.best_ncc(rgb_template, gray) == pytest.approx(1.0, abs=1e-6)
    rgb_images = np.repeat(gray, 3, axis=-1)
    assert ncc.best_ncc(gray[1, :6, :6, 0], rgb_images) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="larger"):
        ncc.best_ncc(np.ones((30, 30)), gray)


# ----------------------------------------------------------------------------- feature nets

@pytest.fixture(scope="module")
def fmnist_net():
    from tf_sparse_gen.metrics.feature_nets import load_feature_net

    return load_feature_net("fmnist")


@pytest.fixture(scope="module")
def fmnist_data():
    from tf_sparse_gen.data import fashion_mnist_arrays, to_size_and_channels

    out = {}
    for split, n in (("train", 3000), ("test", 3000)):
        raw, labels = fashion_mnist_arrays(split)
        out[split] = (to_size_and_channels(raw[:n], 32, 1).astype(np.float32) / 127.5 - 1.0, labels[:n])
    return out


def test_fmnist_classifier_accuracy(fmnist_net, fmnist_data):
    x, y = fmnist_data["test"]
    feats, probs = fmnist_net.features_and_probs(x[:2000])
    assert feats.shape == (2000, fmnist_net.feature_dim) and probs.shape == (2000, 10)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    acc = np.mean(np.argmax(probs, 1) == y[:2000])
    assert acc >= 0.9, acc
    assert fmnist_net.info.get("test_accuracy", 0) >= 0.9


def test_fmnist_features_are_normalised(fmnist_net, fmnist_data):
    # Fixed constants from the JSON: training features ~ mean 0, E||x||^2 / D = 1.
    assert "feature_normalization" in fmnist_net.info
    f = fmnist_net.features(fmnist_data["train"][0]).astype(np.float64)
    assert np.all(np.abs(f.mean(0)) < 0.5)
    assert np.mean(np.sum(f ** 2, axis=1)) / f.shape[1] == pytest.approx(1.0, abs=0.15)
    assert np.all(f.std(0) > 0)  # no dead dimensions (pre-activation features)


def test_fmnist_fd_real_vs_noise(fmnist_net, fmnist_data):
    rng = np.random.default_rng(12)
    real_train = fmnist_net.collect(fmnist_data["train"][0])
    real_test = fmnist_net.collect(np.array_split(fmnist_data["test"][0], 5))  # streamed in batches
    noise = fmnist_net.collect(rng.uniform(-1, 1, size=(3000, 32, 32, 1)).astype(np.float32))
    real_real = fmnist_net.compare(real_train, real_test, kid_subsets=10, kid_subset_size=500)
    real_noise = fmnist_net.compare(real_train, noise, kid_subsets=10, kid_subset_size=500)
    assert set(real_real) >= {"fd_fmnist", "kid_fmnist", "kid_fmnist_std", "is_fmnist", "is_fmnist_std"}
    assert real_noise["fd_fmnist"] > 10 * real_real["fd_fmnist"] > 0
    assert real_noise["kid_fmnist"] > 10 * max(real_real["kid_fmnist"], 1e-6)
    assert real_real["is_fmnist"] > 5  # real images: confident and spread over the 10 classes


def test_fmnist_net_converts_size_and_channels(fmnist_net, fmnist_data):
    x = fmnist_data["test"][0][:8]
    f = fmnist_net.features(x)
    # RGB copies of a gray image give the same features (luma weights sum to 1).
    np.testing.assert_allclose(fmnist_net.features(np.repeat(x, 3, axis=-1)), f, rtol=1e-4, atol=1e-4)
    # uint8 input is rescaled; other sizes are resized inside.
    u8 = np.clip(np.rint((x + 1) * 127.5), 0, 255).astype(np.uint8)
    np.testing.assert_allclose(fmnist_net.features(u8), f, rtol=1e-4, atol=1e-4)
    assert fmnist_net.features(np.zeros((2, 28, 28), np.float32)).shape == (2, fmnist_net.feature_dim)
    assert fmnist_net.features(np.zeros((2, 64, 64, 3), np.float32)).shape == (2, fmnist_net.feature_dim)
    assert fmnist_net.metric_names == {"fd": "fd_fmnist", "kid": "kid_fmnist", "is": "is_fmnist"}


def test_collected_stats_save_load(fmnist_net, fmnist_data, tmp_path):
    from tf_sparse_gen.metrics.feature_nets import CollectedStats

    c = fmnist_net.collect(fmnist_data["test"][0][:100])
    back = CollectedStats.load(c.save(str(tmp_path / "ref.npz")))
    assert back.net_name == "fmnist" and back.count == 100
    assert back.is_stats.result() == c.is_stats.result()
    np.testing.assert_array_equal(back.features.cov(), c.features.cov())


def test_inception_builds_with_random_weights():
    from tf_sparse_gen.metrics.feature_nets import load_feature_net

    net = load_feature_net("inception", _testing_random_weights=True)
    images = np.random.default_rng(13).uniform(-1, 1, size=(2, 32, 32, 1)).astype(np.float32)
    feats, probs = net.features_and_probs(images)
    assert feats.shape == (2, 2048) and probs.shape == (2, 1000)
    assert np.all(np.isfinite(feats))
    assert net.metric_names == {"fd": "fid", "kid": "kid_inception", "is": "is_inception"}


def test_inception_missing_weights_error(tmp_path, monkeypatch):
    from tf_sparse_gen.metrics.feature_nets import FeatureNetWeightsError, load_feature_net

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr("tf_sparse_gen.metrics.feature_nets.keras_cache_dirs",
                        lambda: [str(tmp_path / "keras" / "models"), str(tmp_path / "home" / ".keras" / "models")])
    with pytest.raises(FeatureNetWeightsError) as e:
        load_feature_net("inception")
    msg = str(e.value)
    assert str(tmp_path / "keras" / "models") in msg
    assert "keras.applications.InceptionV3(weights='imagenet')" in msg and "--inception_weights" in msg
    with pytest.raises(FeatureNetWeightsError, match="does not exist"):
        load_feature_net("inception", weights_path=str(tmp_path / "nope.h5"))
    with pytest.raises(FeatureNetWeightsError, match="train_fmnist_classifier"):
        load_feature_net("fmnist", weights_path=str(tmp_path / "nope.weights.h5"))
    with pytest.raises(ValueError, match="unknown feature net"):
        load_feature_net("vgg")

"""The Inception feature net end to end with a local weights file (issue #17, item 6).

The ImageNet weights are not downloaded: an InceptionV3 with random weights, built the way
`feature_nets.InceptionNet` builds it, is saved to a temp file, and evaluation loads that file
through `--inception_weights`, so the loading, the resize to 299x299 and the grayscale tiling
run for real on a tiny trained model (a few samples, a small batch).
"""

import json
import math
import os

import numpy as np
import pytest

from tf_sparse_gen import evaluation
from tf_sparse_gen.metrics import feature_nets


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_runs):
    return tiny_runs.copy("andor", tmp_path_factory.mktemp("inception") / "run", **{"andor.block_ks": [0.25, 0.25]})


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """InceptionV3 (with its top) with random weights, saved as a local weights file."""
    import keras

    keras.utils.set_random_seed(0)
    net = keras.applications.InceptionV3(include_top=True, weights=None,
                                         input_shape=(feature_nets.INCEPTION_SIZE, feature_nets.INCEPTION_SIZE, 3))
    path = str(tmp_path_factory.mktemp("weights") / "inception_v3_random.weights.h5")
    net.save_weights(path)
    return path, net


def test_inception_net_loads_a_local_weights_file_and_resizes(weights_file):
    path, reference = weights_file
    net = feature_nets.load_feature_net("inception", path)
    assert net.weights_path == path and net.has_probs
    # The loaded weights are the saved ones, not a fresh random draw.
    # (Layer names differ between the two builds; the weights are in the same order.)
    loaded = net.model.weights
    assert len(loaded) == len(reference.weights)
    for i in (0, 1, 2, len(loaded) - 2, len(loaded) - 1):
        np.testing.assert_array_equal(loaded[i].numpy(), reference.weights[i].numpy())
    gray = np.random.default_rng(0).uniform(-1, 1, (3, 16, 16, 1)).astype(np.float32)
    features, probs = net.features_and_probs(gray, batch_size=2)
    assert features.shape == (3, 2048) and probs.shape == (3, 1000)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-4)
    # Grayscale is tiled to RGB: the same picture in 3 channels has the same features.
    rgb_features = net.features(np.repeat(gray, 3, axis=-1), batch_size=2)
    np.testing.assert_allclose(rgb_features, features, rtol=1e-4, atol=1e-4)


def test_evaluate_with_inception_weights_file(tiny_run, weights_file, tmp_path):
    # "fd" is left out to keep this fast: the Frechet distance of 2048-d features costs two
    # 2048x2048 eigendecompositions (~30 s here), and its code is the one every net uses
    # (fd_fmnist in test_evaluation.py). KID and IS go through the same features and probabilities.
    path, _ = weights_file
    out = str(tmp_path / "eval")
    evaluation.evaluate(tiny_run, metrics=("kid", "is"), num_samples=6, batch_size=3,
                        feature_net="inception", inception_weights=path, out_dir=out, log=lambda s: None)
    written = json.load(open(os.path.join(out, "metrics.json")))["metrics"]
    for name in ("kid_inception", "is_inception"):
        assert name in written, (name, sorted(written))
        assert math.isfinite(written[name]["value"]), name
        assert written[name]["feature_net"] == "inception" and written[name]["num_samples"] == 6
    assert written["is_inception"]["value"] >= 1.0

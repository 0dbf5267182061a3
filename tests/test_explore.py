"""The encoder-generator applications (tf_sparse_gen.explore, explore.py) and run loading (runs.py)."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tf_sparse_gen import applications as explore
from tf_sparse_gen.config import ConfigError, get_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_runs):
    """The session's tiny SelfExGAN (2 steps on digits)."""
    return tiny_runs.copy("selfexgan", tmp_path_factory.mktemp("selfex") / "run")


def _png(path, min_size=16):
    assert os.path.exists(path), path
    with Image.open(path) as im:
        im.load()
        assert min(im.size) >= min_size
        return np.asarray(im)


def _json(path):
    with open(path) as f:
        return json.load(f)


def test_reconstruct(trained, tmp_path):
    r = explore.run_task("reconstruct", trained, str(tmp_path), num_images=6)
    img = _png(r["png"])
    assert img.shape[1] > img.shape[0]  # 6 pairs side by side in one row
    saved = _json(r["json"])
    assert saved["num_images"] == 6 and 0.0 <= saved["mse"] <= 1.0 and len(saved["mse_per_image"]) == 6


def test_chain(trained, tmp_path):
    r = explore.run_task("chain", trained, str(tmp_path), num_images=4, steps=3)
    _png(r["png"])
    saved = _json(r["json"])
    assert len(saved["mse_to_start"]) == 3 and len(saved["mse_to_previous"]) == 3
    # The first generation is the reconstruction: its distance to the start equals its distance to the previous.
    assert saved["mse_to_start"][0] == pytest.approx(saved["mse_to_previous"][0])


def test_labelled_writes_a_class_folder_and_csv(trained, tmp_path):
    r = explore.run_task("labelled", trained, str(tmp_path), num_images=6, per_image=2, noise=0.3)
    _png(r["png"])
    with open(r["labels_csv"]) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12
    for row in rows:
        path = os.path.join(r["folder"], row["path"])
        assert os.path.exists(path)
        assert os.path.basename(os.path.dirname(path)).split("_")[0] == row["label"]
    # The labels follow the sources (first 6 digits of the test split) two by two.
    images, labels, _ = explore.load_images(get_config("selfexgan", "tiny", {"data.dataset": "digits"}), "test", 6)
    assert [int(r_["label"]) for r_ in rows] == list(np.repeat(labels, 2))
    saved = _json(r["json"])
    # digits: the Fashion-MNIST classifier does not apply; a null with the reason.
    assert saved["generated"]["accuracy"] is None and "fashion_mnist" in saved["generated"]["reason"]


def test_classifier_accuracy_reports_why_it_is_missing():
    out = explore.classifier_accuracy(np.zeros([2, 32, 32, 1], np.float32), [0, 1], "digits")
    assert out["accuracy"] is None and out["reason"]


def test_similarity(trained, tmp_path):
    r = explore.run_task("similarity", trained, str(tmp_path), num_images=8)
    _png(r["png"])
    saved = _json(r["json"])
    assert len(saved["pairs"]) == 2
    for p in saved["pairs"]:
        assert 0.0 <= p["similarity"] <= 1.0 and p["latent_distance"] >= 0.0


def test_similarity_of_an_image_with_itself_is_one(trained):
    from tf_sparse_gen.runs import load_trained_model

    model = load_trained_model(trained).model
    images, _, _ = explore.load_images(get_config("selfexgan", "tiny", {"data.dataset": "digits"}), "test", 2)
    same = explore.neighbourhood_similarity(model, images[0], images[0], noise=0.5, samples=8)
    assert same["latent_distance"] == pytest.approx(0.0, abs=1e-5) and same["similarity"] == 1.0


def test_design(trained, tmp_path):
    r = explore.run_task("design", trained, str(tmp_path), num_images=2)
    _png(r["png"])
    scales = _json(r["json"])["scales"]
    assert [s["scale"] for s in scales] == [0.25, 0.5, 1.0, 2.0]
    # Larger noise moves the designs further (a smooth generator near its reconstruction).
    assert scales[-1]["mse_to_reconstruction"] > scales[0]["mse_to_reconstruction"]


def test_tsne(trained, tmp_path):
    from tf_sparse_gen.runs import load_trained_model

    model = load_trained_model(trained).model
    images, labels, names = explore.load_images(get_config("selfexgan", "tiny", {"data.dataset": "digits"}),
                                                "test", 40)
    r = explore.tsne(model, images, labels, str(tmp_path), names, max_iter=250)
    img = _png(r["png"], min_size=200)
    assert img.ndim == 3 and len(np.unique(img.reshape(-1, 3), axis=0)) > 5  # coloured points, a legend
    saved = _json(r["json"])
    assert saved["num_images"] == 40 and 0.0 <= saved["knn5_accuracy_latent"] <= 1.0
    with open(r["csv"]) as f:
        assert len(list(csv.reader(f))) == 41


def test_knn_accuracy():
    pts = np.array([[0, 0], [0, 0.1], [0.1, 0], [5, 5], [5, 5.1], [5.1, 5]], np.float32)
    assert explore.knn_accuracy(pts, [0, 0, 0, 1, 1, 1], k=2) == 1.0
    assert explore.knn_accuracy(pts, [0, 1, 0, 1, 0, 1], k=2) < 0.5


def test_knn_accuracy_in_blocks_equals_the_full_distance_matrix():
    rng = np.random.default_rng(3)
    pts, labels = rng.normal(size=(23, 3, 2)), rng.integers(0, 3, 23)
    flat = pts.reshape(23, -1)
    d = ((flat[:, None] - flat[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    votes = labels[np.argsort(d, axis=1, kind="stable")[:, :5]]
    want = np.mean([np.bincount(v).argmax() == y for v, y in zip(votes, labels)])
    for block in (1, 6 * 23 * 4, 1 << 24):  # one row, four rows, all rows at a time
        assert explore.knn_accuracy(pts, labels, k=5, block_elements=block) == want


def test_unknown_task_and_missing_run(tmp_path):
    with pytest.raises(ValueError, match="unknown task"):
        explore.run_task("paint", str(tmp_path))
    with pytest.raises(ConfigError, match="config.json"):
        explore.run_task("reconstruct", str(tmp_path))


def test_load_trained_model_reads_num_examples_from_the_checkpoint(tmp_path):
    """A family with per-example state (the AND-OR latents) is rebuilt with the stored N."""
    from tf_sparse_gen.families import build_model
    from tf_sparse_gen.runs import load_trained_model

    config = get_config("andor", "tiny", {"data.dataset": "digits"})
    model = build_model(config, 37, (16, 16, 1))
    model.latents.assign(tf.random.stateless_normal(model.latents.shape, seed=[5, 5]))
    step = tf.Variable(9, dtype=tf.int64)
    os.makedirs(tmp_path / "checkpoints")
    tf.train.Checkpoint(step=step, model=model).save(str(tmp_path / "checkpoints" / "ckpt"))
    (tmp_path / "config.json").write_text(config.to_json())
    loaded = load_trained_model(str(tmp_path))
    assert loaded.model.num_examples == 37 and loaded.step == 9
    np.testing.assert_array_equal(loaded.model.latents.numpy(), model.latents.numpy())


def test_cli(trained, tmp_path):
    out = tmp_path / "cli"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "explore.py"), f"--model_dir={trained}",
                           "--task=design", "--num_images=1", f"--out_dir={out}"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert os.path.exists(out / "design.png") and os.path.exists(out / "design.json")


def test_load_trained_model_refuses_a_checkpoint_without_the_weights(trained, tmp_path):
    from tf_sparse_gen.runs import load_trained_model

    os.makedirs(tmp_path / "checkpoints")
    with open(os.path.join(trained, "config.json")) as f:
        (tmp_path / "config.json").write_text(f.read())
    tf.train.Checkpoint(step=tf.Variable(3, dtype=tf.int64)).save(str(tmp_path / "checkpoints" / "ckpt"))
    with pytest.raises(ConfigError, match="no value"):
        load_trained_model(str(tmp_path))

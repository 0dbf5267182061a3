"""Slim shipped runs (tf_sparse_gen.pretrained): loadable by every run-directory loader, writing nowhere inside."""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tf_sparse_gen import evaluation, export, pretrained
from tf_sparse_gen.rundir import RunDir
from tf_sparse_gen.runs import load_trained_model


def test_slim_run_loads_in_evaluate_and_export(tiny_runs, tmp_path, monkeypatch):
    run_dir, slim_dir = tiny_runs.copy("andor", tmp_path / "run"), str(tmp_path / "slim")  # EMA 0.9
    config = tiny_runs.tiny_config("andor")
    meta = pretrained.make_slim_run(run_dir, slim_dir, command="train.py --preset=tiny")
    assert meta["step"] == 2 and meta["bytes"] < 10 * 2 ** 20
    assert RunDir(slim_dir).is_pretrained() and not RunDir(run_dir).is_pretrained()
    # train.py points at shipped runs of the same family and dataset (not at plain runs, not at others).
    assert pretrained.shipped_runs_like(config, root=str(tmp_path)) == [slim_dir]
    assert pretrained.shipped_runs_like(tiny_runs.tiny_config("spgan"), root=str(tmp_path)) == []
    other_data = dataclasses.replace(config, data=dataclasses.replace(config.data, dataset="shapes"))
    assert pretrained.shipped_runs_like(other_data, root=str(tmp_path)) == []
    assert "train.py --preset=tiny" in pretrained.describe(slim_dir)
    # ... and at its gallery report, once scripts/make_gallery.py has made one.
    gallery = tmp_path / "gallery"
    assert pretrained.gallery_report(slim_dir, root=str(gallery)) is None
    os.makedirs(gallery / "slim")
    (gallery / "slim" / "metrics.md").write_text("| fd_fmnist | 1 |\n")
    assert pretrained.gallery_report(slim_dir + "/", root=str(gallery)) == str(gallery / "slim" / "metrics.md")
    ckpt = tf.train.latest_checkpoint(os.path.join(slim_dir, "checkpoints"))
    names = dict(tf.train.list_variables(ckpt))
    assert names["model/latents/.ATTRIBUTES/VARIABLE_VALUE"] == [1, config.andor.z_dim]
    assert not any("optimizer" in n for n in names)
    full = load_trained_model(run_dir).model
    slim = load_trained_model(slim_dir).model
    assert slim.num_examples == 1
    z = full.sample_latents(3)
    np.testing.assert_allclose(slim.generate(z).numpy(), full.generate(z).numpy(), atol=1e-6)
    # The export inside the slim run serves the same (averaged) generator.
    served = export.load_exported(os.path.join(slim_dir, "export"))
    np.testing.assert_allclose(served.generate(z.numpy()), full.generate(z).numpy(), atol=1e-5)
    # Evaluating the shipped run writes outside it (the user's cache), never into it.
    monkeypatch.setenv("TF_SPARSE_GEN_HOME", str(tmp_path / "home"))
    before = sorted(os.listdir(slim_dir))
    report = evaluation.evaluate(slim_dir, metrics=["mse", "sparsity"], num_samples=8, log=lambda s: None)
    assert sorted(os.listdir(slim_dir)) == before
    out = tmp_path / "home" / "eval" / "slim"
    assert (out / "metrics.json").exists() and (out / "report.html").exists()
    assert report["step"] == 2 and 0.0 < report["metrics"]["mse"]["value"] < 1.0
    assert json.load(open(out / "metrics.json"))["ema"]["averaged_weights_used"]


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = sorted(d for d in os.listdir(os.path.join(REPO, "pretrained"))
                 if os.path.isfile(os.path.join(REPO, "pretrained", d, "pretrained.json")))
# The issue bars a shipped run is held to, here on 16 held-out images or 64 samples (the README's
# figures are over 1,000): the [0, 1]-scale mse of the export's `reconstruct`, and how far the share
# of zero codes of samples may lie from the run's configured target (`spgan.zero_fraction`).
# andor_fashion_mnist's issue bar is fd_fmnist <= 6.0 on 10,000 samples (too slow here; its gallery
# measures it); its mse bar is the project's: 0.015 measured on 1,000 images, the mean image 0.077.
MSE_BARS = {"andor_shapes_sparse": 0.026, "andor_shapes_dense": 0.026, "andor_fashion_mnist": 0.02,
            "selfexgan_fashion_mnist": 0.035}
ZERO_SHARE_TOLERANCE = {"spgan_fashion_mnist": 0.05}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_run_loads_serves_and_meets_its_bar(name, tmp_path):
    from tf_sparse_gen.data import load_run_data

    d = os.path.join(REPO, "pretrained", name)
    before = sorted(os.listdir(d))
    meta = json.load(open(os.path.join(d, "pretrained.json")))
    size = sum(os.path.getsize(os.path.join(r, f)) for r, _, files in os.walk(d) for f in files)
    assert size <= 10 * 2 ** 20 and meta["command"] and meta["step"] > 0
    run = load_trained_model(d)
    assert run.step == meta["step"] and RunDir(d).is_pretrained()
    z = run.model.sample_latents(2)
    images = run.model.generate(z).numpy()
    assert np.abs(images).max() <= 1.0
    served = tf.saved_model.load(os.path.join(d, "export"))
    np.testing.assert_allclose(served.signatures["generate"](z=z)["images"].numpy(), images, atol=1e-5)
    if name in MSE_BARS:
        test = load_run_data(run.config, "test", max_examples=16).take_images(16)
        recon = served.signatures["reconstruct"](images=tf.constant(test))["images"].numpy()
        assert np.mean(((test - recon) / 2.0) ** 2) <= MSE_BARS[name]
    if name in ZERO_SHARE_TOLERANCE:
        zero_share = 1.0 - run.model.active_fractions(run.model.sample_latents(64))["codes"]
        assert abs(zero_share - run.config.spgan.zero_fraction) <= ZERO_SHARE_TOLERANCE[name]
    assert sorted(os.listdir(d)) == before

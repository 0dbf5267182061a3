"""Run directories written by the release before the redesign still load, evaluate, export and resume."""

import os
import shutil

import numpy as np
import pytest

from tf_sparse_gen import evaluation, export
from tf_sparse_gen.families import MODELS
from tf_sparse_gen.rundir import RunDir
from tf_sparse_gen.runs import load_trained_model
from tf_sparse_gen.trainer import train

OLD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "runs_v0.1")


@pytest.mark.parametrize("family", MODELS)
def test_an_old_run_loads_serves_and_resumes(family, tmp_path):
    d = str(tmp_path / family)
    shutil.copytree(os.path.join(OLD, family), d)
    rd = RunDir(d)
    assert rd.read_run_info() is None  # written before run.json existed
    run = load_trained_model(d, log=lambda s: None)
    assert run.step == 4 and run.config.model == family
    z = run.model.sample_latents(2)
    images = run.model.generate(z).numpy()
    assert images.shape == (2, 16, 16, 1) and np.isfinite(images).all()
    served = export.load_exported(export.export_model(d))
    np.testing.assert_allclose(served.generate(z.numpy()), images, atol=1e-5)
    report = evaluation.evaluate(d, metrics=["mse"], num_samples=4, log=lambda s: None)
    assert 0.0 < report["metrics"]["mse"]["value"] < 1.0
    summary = train(rd.resolve_config(None, None, {"train.train_steps": 6}), d, log=lambda s: None)
    assert summary["resumed"] and summary["start_step"] == 4 and summary["final_step"] == 6
    info = rd.read_run_info()  # written on resume
    assert info["image_shape"] == [16, 16, 1] and info["num_examples"] == 1437  # digits' training split
    if hasattr(run.model, "latents"):  # per-example state: its size was read from the checkpoint
        assert run.model.num_examples == 1437

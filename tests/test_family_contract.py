"""One contract, run over every registered family (tf_sparse_gen.families.REGISTRY).

Build, two training steps through the harness (the session's shared tiny run, tests/conftest.py), run.json, a checkpoint round trip, the
SavedModel export served back and the slim copy that shipped runs are made of. Over the same registry: mirrored == one device
(test_distribute.py), the EMA round trip (test_ema.py), old run directories
(test_old_runs.py) and the export's serving checks (test_export.py); mixed precision per family
is test_precision.py. A new family gets all of these by registering.
"""

import numpy as np
import pytest
import tensorflow as tf

from tf_sparse_gen import export, pretrained
from tf_sparse_gen.config import get_config
from tf_sparse_gen.families import MODELS, REGISTRY
from tf_sparse_gen.families.base import GenerativeModel
from tf_sparse_gen.rundir import RunDir
from tf_sparse_gen.runs import load_trained_model


def test_registry_is_consistent():
    assert MODELS and list(MODELS) == list(REGISTRY)
    for name, fam in REGISTRY.items():
        config = get_config(name, "tiny")
        assert isinstance(getattr(config, name), fam.config_class)
        for preset in ("tiny", "small", "paper"):
            assert isinstance(fam.preset(preset), dict)
        for field, choices, _ in fam.switches.values():
            assert hasattr(fam.config_class(), field) and choices


@pytest.mark.parametrize("family", MODELS)
def test_family_contract(family, tiny_runs, tmp_path):
    d = tiny_runs.copy(family, tmp_path / family)
    summary = tiny_runs.summary(family)
    assert summary["final_step"] == 2 and not summary["resumed"]
    info = RunDir(d).read_run_info()
    assert info["image_shape"] == [16, 16, 1] and info["num_examples"] > 0
    run = load_trained_model(d)
    model = run.model
    assert isinstance(model, GenerativeModel) and run.step == 2
    z = model.sample_latents(3)
    images = model.generate(z).numpy()
    assert images.shape == (3, 16, 16, 1) and np.all(np.abs(images) <= 1.0)
    assert model.encode(tf.constant(images)).shape == (3, model.latent_dim)
    assert model.reconstruct(tf.constant(images)).shape == images.shape
    again = load_trained_model(d).model
    np.testing.assert_allclose(again.generate(z).numpy(), images, atol=1e-6)
    served = export.load_exported(export.export_model(d))
    np.testing.assert_allclose(served.generate(z.numpy()), images, atol=1e-5)
    assert model.encode_method()["method"]
    # The slim copy a shipped run is made of (pretrained/) generates and encodes the same.
    meta = pretrained.make_slim_run(d, str(tmp_path / "slim"), command="tiny", export=False)
    assert meta["step"] == 2
    slim = load_trained_model(str(tmp_path / "slim")).model
    np.testing.assert_allclose(slim.generate(z).numpy(), images, atol=1e-6)
    np.testing.assert_allclose(slim.encode(tf.constant(images)).numpy(), model.encode(tf.constant(images)).numpy(),
                               atol=1e-5)

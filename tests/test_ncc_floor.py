"""The NCC floor: the same architecture and seed at initialisation, same latents and unit sample."""

import keras
import numpy as np

from tf_sparse_gen import evaluation
from tf_sparse_gen.families import build_model
from tf_sparse_gen.metrics import interpretability_score


def test_lift_is_zero_for_a_model_at_initialisation(tiny_andor):
    config = tiny_andor(**{"andor.block_ks": [0.25, 0.25]})
    keras.utils.set_random_seed(config.train.seed)
    model = build_model(config, 4)
    copy = model.untrained_copy()
    for a, b in zip(model.generator.weights, copy.generator.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    zs = model.sample_latents(3)
    t_model = model.interpretability_templates(zs, units_per_latent=5)
    t_copy = copy.interpretability_templates(zs, units_per_latent=5)
    assert len(t_model) == len(t_copy) > 0 and all(np.array_equal(a, b) for a, b in zip(t_model, t_copy))
    images = np.random.default_rng(0).uniform(-1, 1, (6, 16, 16, 1)).astype(np.float32)
    assert interpretability_score(t_model, images)[0] - interpretability_score(t_copy, images)[0] == 0.0


def test_untrained_copy_leaves_the_callers_generators_alone(tiny_andor):
    import random

    config = tiny_andor()
    keras.utils.set_random_seed(config.train.seed)
    model = build_model(config, 4)
    random.seed(123)
    np.random.seed(456)
    expected = (random.random(), np.random.random())
    random.seed(123)
    np.random.seed(456)
    copy = model.untrained_copy()
    assert (random.random(), np.random.random()) == expected
    # ...and it is still the run's initialisation although the caller's state was not the run's seed.
    for a, b in zip(model.generator.weights, copy.generator.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_unit_sample_is_seeded_and_bounded(tiny_andor):
    model = build_model(tiny_andor(), 4)
    zs = model.sample_latents(2)
    a = model.interpretability_templates(zs, units_per_latent=3, seed=1)
    b = model.interpretability_templates(zs, units_per_latent=3, seed=1)
    assert len(a) <= 6 and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_evaluate_reports_ncc_floor_and_lift(tiny_runs, tmp_path):
    d = tiny_runs.copy("andor", tmp_path / "run")
    r = evaluation.evaluate(d, metrics=["ncc"], num_samples=8, ncc_latents=2, ncc_images=20, log=lambda s: None)
    m = r["metrics"]
    assert set(m) == {"ncc", "ncc_untrained", "ncc_lift"}
    assert m["ncc_lift"]["value"] == m["ncc"]["value"] - m["ncc_untrained"]["value"]
    assert 0.0 < m["ncc_untrained"]["value"] <= 1.0 and m["ncc"]["num_latents"] == 2

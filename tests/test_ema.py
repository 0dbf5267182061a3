"""Generator EMA (train.ema_decay): the update rule, checkpoints, and what inference uses."""

import numpy as np
import pytest
import tensorflow as tf

from tf_sparse_gen import export
from tf_sparse_gen.config import ConfigError, get_config
from tf_sparse_gen.families import MODELS, build_model
from tf_sparse_gen.runs import load_trained_model
from tf_sparse_gen.trainer import train

FAMILIES = MODELS


def _config(family, **overrides):
    return get_config(family, "tiny", {"data.dataset": "digits", "train.train_minutes": 0.0, **overrides})


def test_update_rule_by_hand():
    """avg_t = d_t * avg_{t-1} + (1 - d_t) * w_t with d_t = min(decay, (1 + t) / (10 + t))."""
    model = build_model(_config("andor", **{"train.ema_decay": 0.5}), 4)
    w = model.generator.fc.bias
    start = w.numpy().copy()
    expected = start.copy()
    for t, value in enumerate([1.0, -2.0, 4.0], start=1):
        w.assign(np.full(w.shape, value, np.float32))
        model.update_ema()
        d = min(0.5, (1 + t) / (10 + t))  # 2/11, 3/12, then 0.5 (4/13 < 0.5 at t = 3)
        expected = d * expected + (1 - d) * value
    avg = next(a for a, src in zip(model.ema_weights, model._ema_sources) if src is w).numpy()
    np.testing.assert_allclose(avg, expected, rtol=1e-6)
    # t = 3: d = min(0.5, 4/13) = 4/13; by hand for a start of 0:
    # 2/11*0 + 9/11*1 = 0.81818; 3/12*0.81818 + 9/12*-2 = -1.29545; 4/13*-1.29545 + 9/13*4 = 2.37063
    if not start.any():
        np.testing.assert_allclose(avg, 2.370629, rtol=1e-5)
    assert int(model.ema_updates.numpy()) == 3


def test_off_by_default_and_validated():
    model = build_model(_config("andor"), 4)
    assert model.ema_weights == []
    model.update_ema()  # a no-op
    with model.averaged_weights():
        pass
    with pytest.raises(ConfigError, match="ema_decay"):
        _config("andor", **{"train.ema_decay": 1.0})


def test_swap_is_an_exchange():
    model = build_model(_config("selfexgan", **{"train.ema_decay": 0.9}), 4)
    w = model.generator.weights[0]
    raw = w.numpy().copy()
    avg = model.ema_weights[0]
    avg.assign(raw + 1.0)
    with model.averaged_weights():
        np.testing.assert_array_equal(w.numpy(), raw + 1.0)
        assert model.ema_in_use
    np.testing.assert_array_equal(w.numpy(), raw)
    np.testing.assert_array_equal(avg.numpy(), raw + 1.0)
    assert not model.ema_in_use


@pytest.mark.parametrize("family", FAMILIES)
def test_checkpoint_round_trip_and_inference_weights(family, tiny_runs, tmp_path):
    """The averages are checkpointed; a loaded run generates with them, or with the raw weights."""
    d = tiny_runs.copy(family, tmp_path / family)  # 2 steps, decay 0.9
    ckpt = tf.train.latest_checkpoint(d + "/checkpoints")
    averaged = load_trained_model(d)
    raw = load_trained_model(d, ema=False)
    assert averaged.model.ema_in_use and not raw.model.ema_in_use
    g_avg = [w.numpy() for w in averaged.model._ema_sources]
    g_raw = [w.numpy() for w in raw.model._ema_sources]
    assert any(not np.array_equal(a, r) for a, r in zip(g_avg, g_raw))
    # The loaded raw model's averages are what the checkpoint holds for them.
    stored = {name: tf.train.load_variable(ckpt, name) for name, _ in tf.train.list_variables(ckpt)
              if name.startswith("model/ema_slots/averages/")}
    assert len(stored) == len(g_avg)
    for i, a in enumerate(g_avg):
        np.testing.assert_array_equal(stored[f"model/ema_slots/averages/{i}/.ATTRIBUTES/VARIABLE_VALUE"], a)
    z = averaged.model.sample_latents(3)
    # Generating with the averaged weights is the raw model after a swap.
    raw.model.swap_ema()
    np.testing.assert_allclose(averaged.model.generate(z).numpy(), raw.model.generate(z).numpy(), atol=1e-6)


def test_resume_continues_the_average(tiny_runs, tmp_path):
    d = tiny_runs.copy("andor", tmp_path / "run")  # 2 steps, decay 0.9
    assert int(load_trained_model(d).model.ema_updates.numpy()) == 2
    train(tiny_runs.tiny_config("andor", **{"train.train_steps": 4}), d, log=lambda s: None)
    model = load_trained_model(d).model
    assert int(model.ema_updates.numpy()) == 4


def test_export_serves_the_averaged_weights(tiny_runs, tmp_path):
    d = tiny_runs.copy("andor", tmp_path / "run")
    path = export.export_model(d)
    served = export.load_exported(path)
    averaged = load_trained_model(d).model
    raw = load_trained_model(d, ema=False).model
    z = averaged.sample_latents(2)
    out = served.generate(z.numpy())
    np.testing.assert_allclose(out, averaged.generate(z).numpy(), atol=1e-5)
    assert np.abs(out - raw.generate(z).numpy()).max() > 1e-4

"""Mixed precision (bf16, fp16 with loss scaling) for the GAN families, and XLA compilation."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_sparse_gen import trainer
from tf_sparse_gen.config import get_config
from tf_sparse_gen.data import load_dataset
from tf_sparse_gen.families import build_model


@pytest.fixture
def float32_policy_after():
    yield
    keras.mixed_precision.set_global_policy("float32")


def _config(family, **overrides):
    base = {"data.dataset": "digits", "train.train_minutes": 0.0, "train.train_steps": 2}
    base.update(overrides)
    return get_config(family, "tiny", base)


def _optimizers(model):
    return [v for k, v in vars(model).items() if k.endswith("optimizer") and v is not None]


@pytest.mark.parametrize("family", ["spgan", "selfexgan"])
@pytest.mark.parametrize("precision,dtype", [("bf16", "bfloat16"), ("fp16", "float16")])
def test_gan_families_train_in_mixed_precision(family, precision, dtype, tmp_path, float32_policy_after):
    config = _config(family, **{"train.mixed_precision": precision})
    trainer.setup_runtime(config)
    source = load_dataset("digits", "train", config.data.image_size, config.data.channels)
    model = build_model(config, source.num_examples, source.image_shape)
    model.compile()
    assert model.generator.compute_dtype == dtype
    # Images leave the generator in float32 whatever the compute dtype.
    assert model.generate(tf.zeros([2, model.latent_dim])).dtype == tf.float32
    scaled = [isinstance(o, keras.optimizers.LossScaleOptimizer) for o in _optimizers(model)]
    assert scaled and all(scaled) == (precision == "fp16") and any(scaled) == (precision == "fp16")
    if family == "spgan":
        model.learn_dictionary(source)
        assert model.dictionary.dtype == "float32"
    index, images = next(iter(source.train_dataset(4, seed=0)))[:2]
    before = [v.numpy().copy() for v in model.generator.trainable_variables]
    logs = tf.function(model.train_step)((index, images))
    assert all(np.isfinite(float(v)) for v in logs.values()), logs
    moved = [not np.array_equal(a, b.numpy()) for a, b in zip(before, model.generator.trainable_variables)]
    if precision == "bf16":  # fp16's first steps may be skipped while the loss scale settles
        assert any(moved)
    else:  # through the harness too: checkpoints hold the loss-scale optimizers' state
        summary = trainer.train(config, str(tmp_path / "run"), log=lambda s: None)
        assert summary["final_step"] == 2


def test_jit_compile_reaches_keras_and_compiles_the_andor_step(tmp_path):
    config = _config("andor", **{"train.jit_compile": True})
    model = build_model(config, 16)
    model.compile()
    assert model.jit_compile is True
    default = build_model(_config("andor"), 16)
    default.compile()
    assert default.jit_compile is False  # never Keras' "auto", which would turn XLA on with a GPU
    summary = trainer.train(config, str(tmp_path / "run"), log=lambda s: None)
    assert summary["final_step"] == 2

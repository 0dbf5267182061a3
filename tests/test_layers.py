import numpy as np
import pytest
import tensorflow as tf
import keras

from tf_sparse_gen import TopKSparsity
from tf_sparse_gen.layers import resolve_k


def reference_topk(x, k, axis):
    """NumPy reference: keep the k largest per row of the reduced axis."""
    x = np.asarray(x, np.float64)
    if x.ndim == 4 and axis == "spatial":
        b, h, w, c = x.shape
        rows = x.transpose(0, 3, 1, 2).reshape(b * c, h * w)
    else:
        rows = x.reshape(-1, x.shape[-1])
    out = np.zeros_like(rows)
    idx = np.argsort(-rows, axis=1)[:, :k]
    np.put_along_axis(out, idx, np.take_along_axis(rows, idx, 1), 1)
    if x.ndim == 4 and axis == "spatial":
        return out.reshape(b, c, h, w).transpose(0, 2, 3, 1)
    return out.reshape(x.shape)


@pytest.mark.parametrize("shape,k,axis", [((3, 10), 4, "channels"), ((2, 4, 4, 6), 2, "channels"),
                                          ((2, 8, 8, 3), 16, "spatial"), ((2, 8, 8, 3), 0.25, "spatial"),
                                          ((2, 5, 5, 7), 0.3, "channels")])
@pytest.mark.parametrize("implementation", ["kernel", "tf"])
def test_values_match_reference(shape, k, axis, implementation):
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    layer = TopKSparsity(k, axis=axis, implementation=implementation)
    kk = resolve_k(k, shape[1] * shape[2] if axis == "spatial" and len(shape) == 4 else shape[-1])
    np.testing.assert_allclose(layer(x).numpy(), reference_topk(x, kk, axis), rtol=0, atol=0)


def test_fraction_of_8x8_keeps_16():
    x = np.random.default_rng(1).uniform(0.1, 1.0, size=(2, 8, 8, 5)).astype(np.float32)
    y = TopKSparsity(0.25, axis="spatial")(x).numpy()
    assert (np.count_nonzero(y, axis=(1, 2)) == 16).all()


def test_gradient_is_one_on_kept_and_zero_elsewhere():
    x = tf.constant(np.random.default_rng(2).normal(size=(2, 6, 6, 4)).astype(np.float32))
    layer = TopKSparsity(5, axis="spatial")
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        total = tf.reduce_sum(y)
    grad = tape.gradient(total, x).numpy()
    kept = y.numpy() != 0
    assert set(np.unique(grad[kept])) == {1.0}
    assert set(np.unique(grad[~kept])) == {0.0}


@pytest.mark.parametrize("implementation", ["kernel", "tf"])
def test_ties_never_keep_more_than_k(implementation):
    # Every value ties: a threshold alone would keep all of them.
    x = np.ones((2, 4, 4, 3), np.float32)
    for axis, k in (("spatial", 5), ("channels", 2)):
        y = TopKSparsity(k, axis=axis, implementation=implementation)(x).numpy()
        counts = np.count_nonzero(y, axis=(1, 2)) if axis == "spatial" else np.count_nonzero(y, axis=-1)
        assert (counts == k).all(), (axis, counts)


def test_graph_mode_unknown_batch_and_mixed_precision_dtypes():
    layer = TopKSparsity(3, axis="spatial")
    fn = tf.function(layer.__call__, input_signature=[tf.TensorSpec([None, 4, 4, 2], tf.float32)])
    for batch in (1, 5):
        x = np.random.default_rng(batch).normal(size=(batch, 4, 4, 2)).astype(np.float32)
        np.testing.assert_array_equal(fn(x).numpy(), reference_topk(x, 3, "spatial"))
    for policy, dtype in (("mixed_bfloat16", tf.bfloat16), ("mixed_float16", tf.float16)):
        x = tf.random.stateless_normal([2, 4, 4, 2], seed=[1, 2])
        y = TopKSparsity(3, axis="spatial", dtype=policy)(x)
        assert y.dtype == dtype
        assert (np.count_nonzero(tf.cast(y, tf.float32).numpy(), axis=(1, 2)) <= 3).all()


def test_serialization_round_trip_and_output_shape(tmp_path):
    layer = TopKSparsity(0.25, axis="spatial", name="s")
    clone = TopKSparsity.from_config(layer.get_config())
    assert (clone.k, clone.axis, clone.name, clone.implementation) == (0.25, "spatial", "s", "auto")
    assert layer.compute_output_shape((None, 8, 8, 3)) == (None, 8, 8, 3)
    model = keras.Sequential([keras.Input((8, 8, 3)), TopKSparsity(4, axis="spatial")])
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)  # safe_mode is on by default
    x = np.random.default_rng(3).normal(size=(2, 8, 8, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())


def test_invalid_implementation_is_refused():
    with pytest.raises(ValueError, match="implementation must be one of"):
        TopKSparsity(3, implementation="cuda")


@pytest.mark.parametrize("k", [0, -1, 1.5, True, "3"])
def test_invalid_k_is_refused(k):
    with pytest.raises(ValueError, match="k"):
        TopKSparsity(k)


def test_k_larger_than_axis_is_refused():
    with pytest.raises(ValueError, match="larger than"):
        TopKSparsity(20, axis="spatial")(np.zeros((1, 4, 4, 1), np.float32))

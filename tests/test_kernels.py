"""The compiled TopKMask kernel: same selection as tf.math.top_k, used where it applies."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tf_sparse_gen import TopKSparsity, kernels


def top_k_scatter(x, k, spatial):
    """The 0/1 mask of tf.math.top_k's indices (ties: lowest index first)."""
    x = tf.convert_to_tensor(x)
    shape = tf.shape(x)
    if spatial:
        # [B, H, W, C] -> [B*C, H*W]
        rows = tf.reshape(tf.transpose(x, [0, 3, 1, 2]), [-1, shape[1] * shape[2]])
    else:
        rows = tf.reshape(x, [-1, shape[-1]])
    idx = tf.math.top_k(rows, k=k).indices
    row_ids = tf.broadcast_to(tf.range(tf.shape(rows)[0])[:, None], tf.shape(idx))
    flat = tf.scatter_nd(tf.stack([row_ids, idx], -1), tf.ones(tf.shape(idx)), tf.shape(rows))
    if spatial:
        # [B*C, H*W] -> [B, H, W, C]
        return tf.transpose(tf.reshape(flat, [shape[0], shape[3], shape[1], shape[2]]), [0, 2, 3, 1]).numpy()
    return tf.reshape(flat, shape).numpy()


def op_types(fn, *args):
    return {op.type for op in fn.get_concrete_function(*args).graph.get_operations()}


def test_kernel_is_built():
    assert kernels.available(), kernels.unavailable_reason()
    assert os.path.basename(kernels.library_path()).startswith("_topk_mask.")


def _inputs(rng, shape, kind):
    x = rng.normal(size=shape).astype(np.float32)
    if kind == "relu":  # half exact zeros, as after the generator's ReLU
        return np.maximum(x, 0)
    if kind == "mostly_zero":  # most rows have fewer than k positives: the k-th value is a tied 0
        return np.maximum(x - 1.5, 0)
    if kind == "ties":  # few distinct values: ties at the k-th value in most rows
        return np.round(x * 2) / 2
    if kind == "signed_zeros_and_infs":
        x = np.round(x).astype(np.float32)
        x[x == 0] = np.where(rng.random(size=(x == 0).sum()) < 0.5, -0.0, 0.0)
        x.flat[rng.choice(x.size, size=max(1, x.size // 10), replace=False)] = np.inf
        x.flat[rng.choice(x.size, size=max(1, x.size // 10), replace=False)] = -np.inf
        return x
    return x


@pytest.mark.parametrize("kind", ["normal", "relu", "mostly_zero", "ties", "signed_zeros_and_infs"])
@pytest.mark.parametrize("shape,k,spatial", [((5, 10), 1, False), ((5, 10), 4, False), ((5, 10), 10, False),
                                             ((3, 4, 7), 3, False), ((8, 4, 4, 32), 13, False),
                                             ((6, 8, 8, 16), 16, True), ((4, 16, 16, 8), 64, True),
                                             ((3, 3, 5, 2), 15, True), ((2, 4, 4, 3), 1, True)])
def test_mask_equals_the_scatter_of_top_k_indices(shape, k, spatial, kind):
    rng = np.random.default_rng(abs(hash((shape, k, kind))) % 2 ** 32)
    op = kernels.topk_mask_op()
    for _ in range(3):
        x = _inputs(rng, shape, kind)
        mask = op(x, k=k, spatial=spatial).numpy()
        np.testing.assert_array_equal(mask, top_k_scatter(x, k, spatial))


def test_rows_with_nan_keep_exactly_k():
    x = np.random.default_rng(9).normal(size=(6, 4, 4, 5)).astype(np.float32)
    x[0, 1, 2, :] = np.nan
    x[3, :, :, 1] = -np.nan
    for spatial, k in ((True, 5), (False, 2)):
        mask = kernels.topk_mask_op()(x, k=k, spatial=spatial).numpy()
        assert (mask.sum(axis=(1, 2) if spatial else -1) == k).all()
        clean = top_k_scatter(np.nan_to_num(x, nan=0.0), k, spatial)
        rows_clean = ~np.isnan(x).any(axis=(1, 2) if spatial else -1)
        np.testing.assert_array_equal(np.moveaxis(mask, -1, 1)[rows_clean] if spatial else mask[rows_clean],
                                      np.moveaxis(clean, -1, 1)[rows_clean] if spatial else clean[rows_clean])


def test_empty_batch_and_bad_arguments():
    op = kernels.topk_mask_op()
    assert op(np.zeros((0, 4, 4, 3), np.float32), k=2, spatial=True).shape == (0, 4, 4, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="larger than"):
        op(np.zeros((2, 5), np.float32), k=6)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"\[B, H, W, C\]"):
        op(np.zeros((2, 5), np.float32), k=2, spatial=True)


@pytest.mark.parametrize("axis,shape,k", [("channels", (4, 4, 4, 32), 5), ("spatial", (4, 8, 8, 6), 0.25)])
def test_implementations_agree_on_outputs_and_gradients(axis, shape, k):
    x = tf.nn.relu(tf.random.stateless_normal(shape, seed=[3, 4]))
    results = {}
    for implementation in ("kernel", "tf"):
        layer = TopKSparsity(k, axis=axis, implementation=implementation)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(tf.square(y))
        results[implementation] = (y.numpy(), tape.gradient(loss, x).numpy())
    np.testing.assert_array_equal(results["kernel"][0], results["tf"][0])
    np.testing.assert_array_equal(results["kernel"][1], results["tf"][1])


def test_auto_uses_the_kernel_in_graphs_and_top_k_under_xla():
    layer = TopKSparsity(0.25, axis="spatial")
    x = tf.nn.relu(tf.random.stateless_normal([2, 8, 8, 4], seed=[5, 6]))
    graph = tf.function(layer.__call__)
    assert "TopKMask" in op_types(graph, x) and "TopKV2" not in op_types(graph, x)
    xla = tf.function(layer.__call__, jit_compile=True)  # XLA has no TopKMask: this would fail to compile
    np.testing.assert_array_equal(xla(x).numpy(), graph(x).numpy())


def test_float64_is_selected_by_top_k_and_refused_by_the_kernel():
    x = tf.random.stateless_normal([2, 6], seed=[7, 8], dtype=tf.float64)
    auto = tf.function(TopKSparsity(2, dtype="float64").__call__)  # a float32 layer would cast x
    assert "TopKV2" in op_types(auto, x) and "TopKMask" not in op_types(auto, x)
    with pytest.raises(ValueError, match="float64"):
        TopKSparsity(2, implementation="kernel", dtype="float64")(x)


def test_standard_ops_switches_every_layer_and_restores_them(tiny_andor):
    from tf_sparse_gen.layers import standard_ops
    from tf_sparse_gen.families import build_model

    model = build_model(tiny_andor(), 8, (16, 16, 1))
    layers = [layer for layer in model._flatten_layers() if isinstance(layer, TopKSparsity)]
    assert len(layers) == 2
    with standard_ops(model):
        assert {layer.implementation for layer in layers} == {"tf"}
        fn = tf.function(model.generator.__call__)
        assert "TopKMask" not in op_types(fn, tf.zeros([2, 8]))
    assert {layer.implementation for layer in layers} == {"auto"}


def test_build_names_a_missing_compiler_and_keeps_the_built_library(monkeypatch):
    before = os.path.getmtime(kernels.library_path())
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    with pytest.raises(kernels.KernelBuildError, match=r"\$CXX='/nonexistent/c\+\+'"):
        kernels.build(force=True)
    assert os.path.getmtime(kernels.library_path()) == before
    monkeypatch.delenv("CXX")
    assert kernels.build() == kernels.library_path()  # up to date: not rebuilt
    assert os.path.getmtime(kernels.library_path()) == before

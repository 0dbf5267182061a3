import json

import numpy as np
import pytest
import tensorflow as tf

from tf_sparse_gen import losses, trainer
from tf_sparse_gen.families.andor import interpret
from tf_sparse_gen.data import load_dataset
from tf_sparse_gen.families import build_model


def make_model(config, n=64):
    model = build_model(config, n)
    model.compile()
    return model


def batch_of(n=4, seed=0):
    src = load_dataset("digits", "train", image_size=16)
    idx = np.arange(seed, seed + n)
    return tf.constant(idx, tf.int64), tf.constant(src.take_images(n, seed))


@pytest.mark.parametrize("block_ks,upsample", [([0.25, 0], "nearest"), ([0.25, 0.5], "nearest"),
                                               ([0.25, 0.5], "bilinear")])
def test_basis_identity_holds_at_every_layer(tiny_andor, block_ks, upsample):
    model = make_model(tiny_andor(**{"andor.block_ks": block_ks, "andor.upsample": upsample}))
    g = model.generator
    z = tf.random.stateless_normal([g.z_dim], seed=[4, 2]) * 2.0
    rec = interpret.record(g, z)
    for layer in range(len(g.layer_stages)):
        units, values = interpret.active_units(g, rec, layer)
        assert len(units) > 0
        bases = interpret.basis_functions(g, rec, layer)
        rebuilt = np.tensordot(values, bases, axes=1) + interpret.bias_part(g, rec, layer)
        np.testing.assert_allclose(rebuilt, rec.fm, atol=1e-4, rtol=1e-4)
        # The bias part alone does not explain the output: the bases carry the image.
        assert np.abs(rec.fm - interpret.bias_part(g, rec, layer)).max() > 1e-3


def test_topk_counts_per_position_and_channel(tiny_andor):
    model = make_model(tiny_andor(**{"andor.block_ks": [0.25, 0.25]}))
    g = model.generator
    z = tf.random.stateless_normal([16, g.z_dim], seed=[1, 1]) * 3.0
    _, _, acts, _ = g.forward(z, record=True)
    # Recompute each stage's pre-top-k ReLU output to know how many positives it had.
    h = tf.cast(z, tf.float32)
    for s in range(len(g.stage_layers)):
        relu = tf.nn.relu(g._affine(s, h)).numpy()
        out = acts[s].numpy()
        topk = g.stage_topk[s]
        if topk is not None:
            k = topk.kept_count(relu.shape)
            axes = -1 if topk.axis == "channels" else (1, 2)
            kept, positives = np.count_nonzero(out, axis=axes), np.count_nonzero(relu, axis=axes)
            assert (kept <= k).all()
            assert (kept[positives >= k] == k).all()
            assert (kept == np.minimum(positives, k)).all()
        h = acts[s]


def test_langevin_lowers_the_energy_on_average(tiny_andor):
    config = tiny_andor(**{"andor.delta": 0.05})
    model = make_model(config)
    _, images = batch_of(8)
    z0 = tf.random.stateless_normal([8, config.andor.z_dim], seed=[3, 3]) * 2.0
    z1, mse0, mse1 = model.langevin(images, z0, 20, tf.constant([5, 6]))
    sigma = config.andor.sigma
    e0 = losses.langevin_energy(images, model.generate(z0), z0, sigma).numpy()
    e1 = losses.langevin_energy(images, model.generate(z1), z1, sigma).numpy()
    assert e1.mean() < e0.mean()
    assert float(mse1) < float(mse0)


def test_train_step_moves_networks_and_only_the_batch_latents_then_restores(tiny_andor, tmp_path):
    config = tiny_andor()
    model = make_model(config)
    index, images = batch_of(4, seed=10)
    g0 = [v.numpy().copy() for v in model.generator.trainable_variables]
    c0 = [v.numpy().copy() for v in model.critic.trainable_variables]
    lat0 = model.latents.numpy().copy()
    logs = model.train_step((index, images))
    assert all(np.isfinite(float(v)) for v in logs.values())
    assert all(not np.allclose(a, b.numpy()) for a, b in zip(g0, model.generator.trainable_variables))
    assert any(not np.allclose(a, b.numpy()) for a, b in zip(c0, model.critic.trainable_variables))
    changed = np.nonzero(np.any(model.latents.numpy() != lat0, axis=1))[0]
    np.testing.assert_array_equal(changed, np.arange(10, 14))

    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    twin = make_model(config)
    tf.train.Checkpoint(model=twin).restore(path).assert_existing_objects_matched()
    np.testing.assert_array_equal(twin.latents.numpy(), model.latents.numpy())
    index2, images2 = batch_of(4, seed=20)
    model.train_step((index2, images2))
    twin.train_step((index2, images2))
    np.testing.assert_allclose(twin.latents.numpy(), model.latents.numpy(), atol=1e-5)
    for a, b in zip(model.generator.trainable_variables, twin.generator.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)


@pytest.mark.parametrize("overrides", [{"andor.sparsity": False}, {"andor.ebm": False},
                                       {"andor.critic_reg": "sn"}])
def test_variants_build_and_train(tiny_andor, tmp_path, overrides):
    config = tiny_andor(**{"train.train_steps": 2, **overrides})
    summary = trainer.train(config, str(tmp_path / "run"), log=lambda s: None)
    assert summary["final_step"] == 2
    model = trainer.Run(config, str(tmp_path / "run"), log=lambda s: None).model
    if not config.andor.sparsity:
        assert all(t is None for t in model.generator.stage_topk)
    if not config.andor.ebm:
        assert model.critic is None and "critic_loss" not in [m.name for m in model.metrics]


def test_infer_latent_reconstructs_unseen_images_better_than_zero(tiny_andor):
    model = make_model(tiny_andor())
    _, images = batch_of(4, seed=30)
    z = model.infer_latent(images, steps=30)
    err = tf.reduce_mean(tf.square(model.generate(z) - images))
    err0 = tf.reduce_mean(tf.square(model.generate(tf.zeros_like(z)) - images))
    assert float(err) < float(err0)
    assert model.reconstruct(images).shape == images.shape


def test_and_or_tree_json_and_pictures(tiny_andor, tmp_path):
    model = make_model(tiny_andor(**{"andor.block_ks": [0.25, 0.25]}))
    g = model.generator
    z = tf.random.stateless_normal([g.z_dim], seed=[9, 9]) * 2.0
    paths = interpret.write_and_or_tree(g, z, str(tmp_path), mid_layer=1)
    tree = json.load(open(paths["json"]))
    image = tree["children"][0]
    assert tree["type"] == "OR" and image["type"] == "AND" and image["grid"] == [8, 8]
    rec = interpret.record(g, z)
    mid_units, _ = interpret.active_units(g, rec, 1)
    parts = [p for o in image["children"] for p in o["children"]]
    assert len(parts) == len(mid_units)
    for o in image["children"]:
        assert o["type"] == "OR"
        assert all(p["position"] == o["position"] and p["layer"] == 1 for p in o["children"])
    leaves = [c for p in parts for c in p["children"]]
    assert leaves and all(c["layer"] == 2 and c["activation"] > 0 for c in leaves)
    from PIL import Image
    assert Image.open(paths["png"]).size[0] > 100
    counts = interpret.layer_basis_figure(g, [z, z * 0.5], 1, str(tmp_path / "basis.png"), top=8)
    assert 0 < len(counts) <= 8 and (tmp_path / "basis.png").exists()


@pytest.mark.parametrize("overrides", [{}, {"andor.critic_reg": "sn"}])
def test_checkpoint_restores_every_variable_without_optimizers(tiny_andor, tmp_path, overrides):
    config = tiny_andor(**overrides)
    model = make_model(config)
    model.train_step(batch_of(4))
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    bare = build_model(config, 64)  # not compiled: no optimizer to reach variables through
    tf.train.Checkpoint(model=bare).restore(path).expect_partial().assert_existing_objects_matched()
    assert len(bare.weights) == len(model.weights)
    for a, b in zip(model.weights, bare.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


@pytest.fixture
def float32_policy_after():
    import keras
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("precision,dtype", [("bf16", "bfloat16"), ("fp16", "float16")])
def test_mixed_precision_trains_with_float32_outputs_and_loss_scaling(tiny_andor, tmp_path, precision, dtype,
                                                                      float32_policy_after):
    import keras

    config = tiny_andor(**{"train.train_steps": 2, "train.mixed_precision": precision})
    trainer.setup_runtime(config)
    model = make_model(config)
    assert model.generator.compute_dtype == dtype
    images_out = model.generate(tf.zeros([2, config.andor.z_dim]))
    assert images_out.dtype == tf.float32
    assert isinstance(model.g_optimizer, keras.optimizers.LossScaleOptimizer) == (precision == "fp16")
    before = [v.numpy().copy() for v in model.generator.trainable_variables]
    logs = model.train_step(batch_of(4))
    assert all(np.isfinite(float(v)) for k, v in logs.items())
    moved = [not np.array_equal(a, b.numpy()) for a, b in zip(before, model.generator.trainable_variables)]
    if precision == "bf16":
        assert all(moved)
    summary = trainer.train(config, str(tmp_path / "run"), log=lambda s: None)
    assert summary["final_step"] == 2


@pytest.mark.parametrize("block_ks,chunk,upsample", [([0.25, 0.5, 0], 7, "nearest"),
                                                     ([0.25, 0.25, 0.25], 256, "nearest"),
                                                     ([0.25, 0.5, 0], 7, "bilinear")])
def test_windowed_contributions_equal_the_full_propagation(tiny_andor, block_ks, chunk, upsample):
    """The bounded (chunked, windowed) owner search gives the tree of the full computation."""
    model = make_model(tiny_andor(**{"data.image_size": 32, "andor.block_widths": [8, 6, 4],
                                     "andor.block_ks": block_ks, "andor.convs_per_block": 2,
                                     "andor.upsample": upsample}))
    g = model.generator
    z = tf.random.stateless_normal([g.z_dim], seed=[4, 2]) * 2.0
    rec = interpret.record(g, z)
    for parent, child in ((1, 2), (2, 3)):
        if not g.layer_sparse(child) and child == 3:
            continue
        p_units, p_vals = interpret.active_units(g, rec, parent)
        c_units, _ = interpret.active_units(g, rec, child)
        ps, cs = g.layer_stages[parent], g.layer_stages[child]
        # Reference: every parent's one-hot through the whole maps, all at once.
        onehot = np.zeros((len(p_units), *rec.acts[ps].shape), np.float32)
        onehot[np.arange(len(p_units)), p_units[:, 0], p_units[:, 1], p_units[:, 2]] = 1.0
        x = tf.convert_to_tensor(onehot)
        for s in range(ps + 1, cs + 1):
            x = g._affine(s, x, False) * rec.gates[s]
        full = np.abs(x.numpy()[:, c_units[:, 0], c_units[:, 1], c_units[:, 2]] * p_vals[:, None])
        strength, owner = interpret.unit_contributions(g, rec, ps, cs, p_units, p_vals, c_units, chunk=chunk)
        np.testing.assert_array_equal(owner, np.argmax(full, axis=0))
        np.testing.assert_allclose(strength, full.max(axis=0), rtol=1e-5, atol=1e-7)
    # 2 convs at 2x: 1/2 + 1/2; bilinear upsampling adds one input pixel (1 cell): 2.
    want = {"nearest": 1, "bilinear": 2}[upsample]
    assert interpret._receptive_margin(g, g.layer_stages[1], g.layer_stages[2]) == want


def test_bilinear_doubling_by_hand(tiny_andor):
    """Half-pixel bilinear x2 of [a, b] along a row: a, .75a + .25b, .25a + .75b, b (edges clamped)."""
    g = make_model(tiny_andor(**{"andor.upsample": "bilinear"})).generator
    row = tf.constant([[[[1.0], [5.0]]]])  # [1, 1, 2, 1]
    np.testing.assert_allclose(g._double(row).numpy()[0, :, :, 0], [[1.0, 2.0, 4.0, 5.0]] * 2, atol=1e-6)
    nearest = make_model(tiny_andor()).generator
    np.testing.assert_array_equal(nearest._double(row).numpy()[0, :, :, 0], [[1.0, 1.0, 5.0, 5.0]] * 2)

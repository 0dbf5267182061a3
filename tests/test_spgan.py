import os

import numpy as np
import pytest
import tensorflow as tf

from tf_sparse_gen.families.spgan import dictionary as dictionary_lib
from tf_sparse_gen import losses, trainer
from tf_sparse_gen.config import ConfigError, get_config
from tf_sparse_gen.layers import PatchDictionaryDecoder, SoftThreshold
from tf_sparse_gen.families import build_model


def tiny(**overrides):
    base = {"data.dataset": "digits", "train.train_minutes": 0.0}
    base.update(overrides)
    return get_config("spgan", "tiny", base)


def make_model(config, n=64):
    model = build_model(config, n)
    model.compile()
    return model


def real_batch(n=4):
    from tf_sparse_gen.data import load_dataset

    src = load_dataset("digits", "train", image_size=16)
    return tf.constant(np.arange(n), tf.int64), tf.constant(src.take_images(n))


# ----------------------------------------------------------------------------- layers

def overlap_add_reference(codes, atoms, p, channels):
    """Places Omega s_ij centred on every pixel, one patch at a time, and averages the overlaps."""
    b, h, w, _ = codes.shape
    total = np.zeros((b, h, w, channels))
    count = np.zeros((h, w))
    patches = atoms.reshape(len(atoms), p, p, channels)
    c = p // 2
    for i in range(h):
        for j in range(w):
            patch = np.tensordot(codes[:, i, j, :], patches, axes=1)  # [B, p, p, C]
            for a in range(p):
                for bb in range(p):
                    y, x = i + a - c, j + bb - c
                    if 0 <= y < h and 0 <= x < w:
                        total[:, y, x, :] += patch[:, a, bb, :]
                        count[y, x] += 1
    return total / count[None, :, :, None], count


@pytest.mark.parametrize("channels,p,shape", [(1, 3, (5, 6)), (3, 3, (4, 4)), (1, 5, (7, 6))])
def test_patch_decoder_equals_numpy_overlap_add(channels, p, shape):
    k = 7
    rng = np.random.default_rng(0)
    atoms = dictionary_lib.random_atoms(k, p * p * channels, seed=1)
    codes = rng.standard_normal((2, *shape, k)).astype(np.float32)
    layer = PatchDictionaryDecoder(k, p, channels, initial_atoms=atoms)
    out = layer(tf.constant(codes)).numpy()
    expected, count = overlap_add_reference(codes, atoms, p, channels)
    assert out.shape == (2, *shape, channels)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    np.testing.assert_allclose(layer.overlap_count(*shape).numpy()[0, :, :, 0], count)
    if p == 3:
        assert count[0, 0] == 4 and count[0, 2] == 6 and count[2, 2] == 9
    # set_dictionary changes the output accordingly; the atoms are not trainable.
    layer.set_dictionary(-atoms)
    np.testing.assert_allclose(layer(tf.constant(codes)).numpy(), -expected, atol=1e-5)
    assert not layer.trainable_weights and len(layer.non_trainable_weights) == 1
    assert layer.compute_output_shape((None, *shape, k)) == (None, *shape, channels)
    assert PatchDictionaryDecoder.from_config(layer.get_config()).get_config()["patch_size"] == p


def test_soft_threshold_zeros_below_lambda_and_shrinks_above():
    layer = SoftThreshold(0.5)
    a = tf.constant([-2.0, -0.5, -0.49, 0.0, 0.3, 0.5, 0.51, 3.0])
    with tf.GradientTape() as tape:
        tape.watch(a)
        out = layer(a)
    np.testing.assert_allclose(out.numpy(), [-1.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.01, 2.5], atol=1e-6)
    assert (out.numpy()[1:6] == 0.0).all()  # exact zeros, not small numbers
    np.testing.assert_allclose(tape.gradient(out, a).numpy(), [1, 0, 0, 0, 0, 0, 1, 1])
    assert not layer.trainable_weights
    learned = SoftThreshold(0.2, learnable=True)
    assert len(learned.trainable_weights) == 1
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(learned(tf.constant([1.0, -1.0, 0.1])))
    # d/dlambda of (1 - l) + (-1 + l) + 0 = 0; of the first entry alone = -1.
    np.testing.assert_allclose(tape.gradient(y, learned.trainable_weights[0]).numpy(), 0.0)
    assert SoftThreshold.from_config(learned.get_config()).learnable
    with pytest.raises(ValueError):
        SoftThreshold(-0.1)


def test_generator_codes_are_sparse_and_images_are_the_averaged_patches():
    model = make_model(tiny(**{"spgan.threshold": 0.05}))
    g = model.generator
    z = tf.random.stateless_normal([3, g.z_dim], seed=[1, 2])
    images, codes = g.forward(z)
    assert codes.shape == (3, 16, 16, 8) and images.shape == (3, 16, 16, 1)
    zero = float(tf.reduce_mean(tf.cast(codes == 0.0, tf.float32)))
    assert 0.0 < zero < 1.0
    pre = g.features(z)
    np.testing.assert_array_equal((codes.numpy() == 0), np.abs(pre.numpy()) <= 0.05)
    np.testing.assert_allclose(images.numpy(), np.tanh(g.decoder(codes).numpy()), atol=1e-6)
    assert float(tf.reduce_max(tf.abs(images))) <= 1.0
    # A larger threshold gives more zeros; lambda = 0 gives (almost) none.
    g.soft_threshold.lam.assign(0.0)
    assert float(tf.reduce_mean(tf.cast(model.codes(z) == 0.0, tf.float32))) < 0.01 < zero
    g.soft_threshold.lam.assign(0.5)
    assert float(tf.reduce_mean(tf.cast(model.codes(z) == 0.0, tf.float32))) > zero


def test_clip_output_and_dense_baseline():
    g = make_model(tiny(**{"spgan.output": "clip"})).generator
    z = tf.random.stateless_normal([2, g.z_dim], seed=[3, 2]) * 5
    images, codes = g.forward(z)
    np.testing.assert_allclose(images.numpy(), np.clip(g.decoder(codes).numpy(), -1, 1), atol=1e-6)
    dense = make_model(tiny(**{"spgan.sparse_output": False}))
    assert dense.dictionary is None and dense.generator.decoder is None
    out = dense.generate(z)
    assert out.shape == (2, 16, 16, 1)
    np.testing.assert_allclose(out.numpy(), np.tanh(dense.generator.features(z).numpy()), atol=1e-6)
    with pytest.raises(ValueError, match="no sparse codes"):
        dense.generator.codes(z)


# ----------------------------------------------------------------------------- gradient penalty

def test_gradient_penalty_of_a_linear_critic_is_hand_computable():
    rng = np.random.default_rng(0)
    w = tf.constant(rng.standard_normal((1, 4, 4, 2)).astype(np.float32) * 0.3)
    critic = lambda x: tf.reduce_sum(x * w, axis=[1, 2, 3])[:, None]  # noqa: E731
    real = tf.constant(rng.uniform(-1, 1, (5, 4, 4, 2)).astype(np.float32))
    fake = tf.constant(rng.uniform(-1, 1, (5, 4, 4, 2)).astype(np.float32))
    eps = tf.constant(rng.uniform(0, 1, (5, 1, 1, 1)).astype(np.float32))
    gp = float(losses.wasserstein_gradient_penalty(critic, real, fake, eps))
    expected = (np.linalg.norm(w.numpy()) - 1.0) ** 2
    assert abs(gp - expected) < 1e-5 and expected > 0.01


def test_gradient_penalty_gradient_is_finite_at_a_zero_input_gradient():
    w = tf.Variable(tf.zeros([1, 4, 4, 1]))
    b = tf.Variable(0.5)
    critic = lambda x: tf.reduce_sum(x * w, axis=[1, 2, 3])[:, None] + b  # noqa: E731  constant in x at w = 0
    real, fake = tf.ones([3, 4, 4, 1]), -tf.ones([3, 4, 4, 1])
    with tf.GradientTape() as tape:
        gp = losses.wasserstein_gradient_penalty(critic, real, fake, tf.fill([3, 1, 1, 1], 0.3))
    gw, gb = tape.gradient(gp, [w, b])
    assert abs(float(gp) - 1.0) < 1e-4
    assert np.isfinite(gw.numpy()).all()
    assert gb is None or np.isfinite(gb.numpy()).all()


# ----------------------------------------------------------------------------- Algorithm 1

def _snapshot(net):
    return [v.numpy().copy() for v in net.trainable_variables]


def _moved(before, net):
    return any(not np.array_equal(a, v.numpy()) for a, v in zip(before, net.trainable_variables))


def test_one_iteration_runs_the_phases_in_order_and_each_moves_only_its_network():
    n_critic, n_reconst = 3, 2
    model = make_model(tiny(**{"spgan.n_critic": n_critic, "spgan.n_reconst": n_reconst}))
    nets = {"D": model.critic, "G": model.generator, "E": model.encoder}
    calls = []
    for phase, owner in (("critic_step", "D"), ("generator_step", "G"), ("encoder_step", "E"),
                         ("reconstruction_step", "G")):
        original = getattr(model, phase)

        def wrapped(*args, _original=original, _phase=phase, _owner=owner):
            before = {k: _snapshot(n) for k, n in nets.items()}
            out = _original(*args)
            calls.append((_phase, sorted(k for k, n in nets.items() if _moved(before[k], n))))
            return out
        setattr(model, phase, wrapped)
    logs = model.train_step(real_batch())  # eager: the wrappers see every call
    expected = ([("critic_step", ["D"])] * n_critic + [("generator_step", ["G"])]
                + [("encoder_step", ["E"]), ("reconstruction_step", ["G"])] * n_reconst)
    assert calls == expected
    assert model.d_optimizer.iterations.numpy() == n_critic
    assert model.g_optimizer.iterations.numpy() == 1 + n_reconst
    assert model.e_optimizer.iterations.numpy() == n_reconst
    for name in ("d_loss", "gradient_penalty", "g_loss", "e_loss", "recon_loss", "code_zero_fraction",
                 "d_grad_norm", "g_grad_norm", "e_grad_norm", "r_grad_norm"):
        assert np.isfinite(float(logs[name])), name
    assert 0.0 < float(logs["code_zero_fraction"]) < 1.0


def test_compiled_step_counts_optimizer_iterations_and_uses_fresh_randomness():
    model = make_model(tiny(**{"spgan.n_critic": 2, "spgan.n_reconst": 1}))
    ds = tf.data.Dataset.from_tensors(real_batch()).repeat(3)
    model.fit(ds, epochs=1, steps_per_epoch=3, verbose=0)
    assert model.d_optimizer.iterations.numpy() == 6
    assert model.g_optimizer.iterations.numpy() == 6
    assert model.e_optimizer.iterations.numpy() == 3
    # Two critic steps draw different z: the seed generator advanced.
    z1, z2 = model._latents(2), model._latents(2)
    assert not np.allclose(z1.numpy(), z2.numpy())


def test_encoder_step_lowers_its_loss_and_encode_without_reconstructor_optimises_z():
    model = make_model(tiny(**{"spgan.e_lr": 1e-2}))
    first = [float(model.encoder_step(4)["e_loss"]) for _ in range(30)]
    assert np.mean(first[-5:]) < np.mean(first[:5])
    # lambda = 0: the untrained generator's codes are all tiny, a threshold would zero them all.
    plain = make_model(tiny(**{"spgan.reconstructor": False, "spgan.infer_lr": 0.1, "spgan.threshold": 0.0}))
    assert plain.encoder is None and not hasattr(plain, "e_optimizer")
    target = plain.generate(tf.random.stateless_normal([3, 8], seed=[9, 9]))
    z0 = plain.infer_latent(target, steps=0)  # the starting point
    z = plain.infer_latent(target, steps=40)
    err0 = float(tf.reduce_mean(tf.square(plain.generate(z0) - target)))
    err = float(tf.reduce_mean(tf.square(plain.generate(z) - target)))
    assert err < 0.5 * err0 and err0 > 1e-6
    assert plain.encode(target).shape == (3, 8) and plain.reconstruct(target).shape == (3, 16, 16, 1)


def test_config_validation_names_the_field():
    with pytest.raises(ConfigError, match="spgan.generator"):
        tiny(**{"spgan.generator": "vgg"})
    with pytest.raises(ConfigError, match="4 \\* 2\\^n"):
        tiny(**{"data.image_size": 24})
    with pytest.raises(ConfigError, match="g_widths"):
        tiny(**{"spgan.g_widths": [8, 8, 8]})
    with pytest.raises(ConfigError, match="patch_size"):
        tiny(**{"spgan.patch_size": 4})
    assert get_config("spgan", "paper").spgan.g_widths == (2048, 1024, 512)


# ----------------------------------------------------------------------------- the harness

# One critic step, images and checkpoints only at the end of a call: the harness tests check wiring, not
# the algorithm (tested above), and must stay fast.
FAST = {"spgan.n_critic": 1, "train.sample_every": 100, "train.checkpoint_every": 100,
        "train.log_every": 100}

# Both switches off at once (the plain WGAN-GP) and the ResNet body with both on: every branch of
# the switches runs in one of the two.
@pytest.mark.parametrize("overrides", [{"spgan.reconstructor": False, "spgan.sparse_output": False},
                                       {"spgan.generator": "resnet"}])
def test_variants_train_through_the_harness(tmp_path, overrides):
    config = tiny(**overrides, **FAST, **{"train.train_steps": 2})
    summary = trainer.train(config, str(tmp_path), log=lambda s: None)
    assert summary["final_step"] == 2
    samples = os.listdir(tmp_path / "samples")
    assert any(s.startswith("samples_") for s in samples)
    assert ("dictionary.png" in samples) == config.spgan.sparse_output


def _dictionary_in(checkpoint):
    reader = tf.train.load_checkpoint(checkpoint)
    keys = [k for k in reader.get_variable_to_shape_map() if "dictionary" in k and "OPTIMIZER" not in k]
    assert keys, "the dictionary is not in the checkpoint"
    return reader.get_tensor(keys[0])


def test_resume_continues_and_restores_the_dictionary(tmp_path, monkeypatch):
    config = tiny(**FAST, **{"train.train_steps": 2})
    first = trainer.train(config, str(tmp_path), log=lambda s: None)
    assert first["final_step"] == 2 and not first["resumed"]
    atoms = _dictionary_in(first["checkpoint"])
    np.testing.assert_allclose(atoms[0], 1.0 / 3.0, atol=1e-6)  # learned (DC atom first), not the random init
    np.testing.assert_allclose(np.linalg.norm(atoms, axis=1), 1.0, atol=1e-5)
    assert (tmp_path / "samples" / "dictionary.png").exists()

    def fail(*a, **k):
        raise AssertionError("the dictionary must not be re-learned on resume")
    monkeypatch.setattr(dictionary_lib, "learn_dictionary", fail)
    second = trainer.train(tiny(**FAST, **{"train.train_steps": 4}), str(tmp_path), log=lambda s: None)
    assert second["resumed"] and second["start_step"] == 2 and second["final_step"] == 4
    np.testing.assert_array_equal(_dictionary_in(second["checkpoint"]), atoms)
    assert tf.train.load_checkpoint(second["checkpoint"]).get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == 4

    # summary_images shows the atoms.
    model = make_model(config)
    model.set_dictionary(atoms)
    shown = model.summary_images(real_batch()[1], model.sample_latents(2))
    assert shown["dictionary"].shape == (8, 12, 12, 1)
    assert shown["samples"].shape == (2, 16, 16, 1) and shown["reconstructions"].shape == (8, 16, 16, 1)


def test_learned_threshold_is_trained_by_the_generator_steps_and_fixed_one_is_not():
    for learn in (True, False):
        model = make_model(tiny(**{"spgan.learn_threshold": learn, "spgan.threshold": 0.01}))
        lam = model.generator.soft_threshold.lam
        assert any(v is lam for v in model.generator.trainable_variables) == learn
        model.generator_step(4)
        assert (lam.numpy() != np.float32(0.01)) == learn


@pytest.mark.parametrize("body", ["dcgan", "resnet"])
def test_checkpoint_holds_every_variable(body):
    config = tiny(**{"spgan.generator": body, "spgan.critic_norm": "layer"})
    a = make_model(config)
    a.set_dictionary(dictionary_lib.random_atoms(8, 9, seed=7))
    a.train_step(real_batch())
    ckpt = tf.train.Checkpoint(model=a)
    import tempfile

    path = ckpt.write(os.path.join(tempfile.mkdtemp(), "ck"))
    b = make_model(tiny(**{"spgan.generator": body, "spgan.critic_norm": "layer", "train.seed": 3}))
    tf.train.Checkpoint(model=b).read(path).assert_consumed()
    assert len(a.weights) == len(b.weights) > 20
    for va, vb in zip(a.weights, b.weights):
        np.testing.assert_array_equal(va.numpy(), vb.numpy(), err_msg=va.path)
    for net in ("generator", "critic", "encoder"):
        for va, vb in zip(getattr(a, net).weights, getattr(b, net).weights):
            np.testing.assert_array_equal(va.numpy(), vb.numpy(), err_msg=va.path)


def test_non_finite_real_batch_skips_the_updates_that_see_it():
    model = make_model(tiny())
    d0, g0 = _snapshot(model.critic), _snapshot(model.generator)
    index, images = real_batch()
    bad = tf.tensor_scatter_nd_update(images, [[0, 0, 0, 0]], [float("nan")])
    model.train_step((index, bad))
    assert not _moved(d0, model.critic)  # every critic step saw the NaN image: skipped
    assert _moved(g0, model.generator)  # the adversarial step on fresh z is finite
    assert int(model.nonfinite_streak.numpy()) == 1
    assert model.last_nonfinite_name().startswith("d_loss")
    model.train_step((index, images))
    assert int(model.nonfinite_streak.numpy()) == 0 and _moved(d0, model.critic)


# ----------------------------------------------------------------------------- sparsity controller (#19)

def test_sparsity_controller_steps_towards_the_target_share_of_zero_codes():
    model = make_model(tiny(**{"spgan.zero_fraction": 0.5, "spgan.threshold_gain": 2.0, "spgan.threshold": 0.2}))
    lam = model.generator.soft_threshold.lam
    assert not any(v is lam for v in model.generator.trainable_variables)
    model.steer_threshold(tf.constant(0.3))  # too few zeros: the threshold rises
    np.testing.assert_allclose(lam.numpy(), 0.2 * np.exp(2.0 * 0.2), rtol=1e-6)
    model.steer_threshold(tf.constant(0.9))  # too many: it falls
    np.testing.assert_allclose(lam.numpy(), 0.2 * np.exp(2.0 * 0.2) * np.exp(2.0 * -0.4), rtol=1e-6)
    before = lam.numpy()
    model.steer_threshold(tf.constant(0.9), finite=tf.constant(False))  # a skipped step leaves it
    assert lam.numpy() == before
    lam.assign(0.0)  # a multiplicative step starts from MIN_THRESHOLD, never stuck at 0
    model.steer_threshold(tf.constant(0.0))
    assert lam.numpy() > 0.0


def test_sparsity_controller_under_a_mirrored_strategy_uses_the_global_share():
    strategy = trainer.make_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        model = make_model(tiny(**{"spgan.zero_fraction": 0.5, "spgan.threshold_gain": 1.0}))

    @tf.function
    def run():
        def step():
            rid = tf.distribute.get_replica_context().replica_id_in_sync_group
            model.steer_threshold(tf.cast(rid, tf.float32) * 0.4)  # shares 0.0 and 0.4: mean 0.2
        strategy.run(step)
    run()
    copies = strategy.experimental_local_results(model.generator.soft_threshold.lam.value)
    assert len(copies) == 2
    for value in copies:  # every replica's copy
        np.testing.assert_allclose(value.numpy(), 0.1 * np.exp(0.3), rtol=1e-6)


def test_sparsity_controller_holds_the_target_and_its_threshold_is_checkpointed(tmp_path):
    from tf_sparse_gen.data import load_dataset

    target = 0.6
    config = tiny(**{"spgan.zero_fraction": target, "spgan.n_critic": 1, "spgan.reconstructor": False})
    src = load_dataset("digits", "train", image_size=16)
    model = make_model(config)
    model.prepare(src)
    step = tf.function(model.train_step)
    batches = iter(src.train_dataset(4, seed=0).repeat())
    shares = []
    for _ in range(40):
        for tracker in model.metrics:
            tracker.reset_state()
        logs = step(next(batches)[:2])
        shares.append(float(logs["code_zero_fraction"]))
    assert shares[0] < target - 0.1  # the fixed threshold's share is far below the target
    assert abs(np.mean(shares[-10:]) - target) < 0.05, shares
    lam = float(model.generator.soft_threshold.lam.numpy())
    assert abs(lam - 0.1) > 0.01 and float(logs["threshold"]) > 0.1
    # The threshold is in the checkpoint and comes back in a fresh model (whose threshold is 0.1).
    path = tf.train.Checkpoint(model=model).write(str(tmp_path / "ck"))
    reader = tf.train.load_checkpoint(path)
    keys = [k for k in reader.get_variable_to_shape_map() if "soft_threshold" in k and "OPTIMIZER" not in k]
    assert keys and np.isclose(reader.get_tensor(keys[0]), lam)
    fresh = make_model(config)
    assert np.isclose(fresh.generator.soft_threshold.lam.numpy(), 0.1)
    tf.train.Checkpoint(model=fresh).read(path).assert_consumed()
    assert fresh.generator.soft_threshold.lam.numpy() == np.float32(lam)


def test_sparsity_controller_config_is_validated():
    assert tiny().spgan.zero_fraction == 0.0  # off by default: the fixed threshold of old runs
    with pytest.raises(ConfigError, match="zero_fraction"):
        tiny(**{"spgan.zero_fraction": 1.0})
    with pytest.raises(ConfigError, match="learn_threshold"):
        tiny(**{"spgan.zero_fraction": 0.5, "spgan.learn_threshold": True})
    with pytest.raises(ConfigError, match="sparse_output"):
        tiny(**{"spgan.zero_fraction": 0.5, "spgan.sparse_output": False})
    with pytest.raises(ConfigError, match="threshold_gain"):
        tiny(**{"spgan.zero_fraction": 0.5, "spgan.threshold_gain": 0.0})


def test_resnet_blocks_shapes_and_config_round_trip():
    from tf_sparse_gen.families.spgan.nets import _ResDownBlock, _ResUpBlock

    up = _ResUpBlock(6, 0.9, name="up")
    assert tuple(up(tf.zeros([2, 4, 4, 3])).shape) == (2, 8, 8, 6)
    clone = _ResUpBlock.from_config(up.get_config())
    assert (clone.width, clone.bn_momentum, clone.name) == (6, 0.9, "up")
    down = _ResDownBlock(5)
    assert tuple(down(tf.zeros([2, 7, 7, 3])).shape) == (2, 4, 4, 5)
    assert _ResDownBlock.from_config(down.get_config()).width == 5

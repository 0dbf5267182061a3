"""SelfExGAN: sphere projection, batch KL, D2's pairs, one training step, training + resume."""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tf_sparse_gen import losses
from tf_sparse_gen.config import ConfigError, get_config
from tf_sparse_gen.layers import SphereProjection
from tf_sparse_gen.families import build_model


def _tiny(**overrides):
    base = {"data.dataset": "digits", "train.train_minutes": 0.0}
    base.update(overrides)
    return get_config("selfexgan", "tiny", base)


@pytest.fixture(scope="module")
def model():
    m = build_model(_tiny(), 50, (16, 16, 1))
    m.compile()
    return m


def _images(n=4, seed=0):
    return tf.random.stateless_uniform([n, 16, 16, 1], seed=[seed, 1], minval=-1.0, maxval=1.0)


# ----------------------------------------------------------------------------- sphere + KL

def test_sphere_projection_puts_every_code_on_the_sphere():
    z = tf.random.stateless_normal([64, 7], seed=[1, 2]) * tf.constant([[0.01], [100.0]] * 32)
    out = SphereProjection(radius=3.0, center=0.5)(z).numpy()
    np.testing.assert_allclose(np.linalg.norm(out - 0.5, axis=-1), 3.0, rtol=1e-5)
    # Direction kept: the projection moves along the ray from the centre.
    cos = np.sum((out - 0.5) * (z.numpy() - 0.5), -1) / (3.0 * np.linalg.norm(z.numpy() - 0.5, axis=-1))
    np.testing.assert_allclose(cos, 1.0, rtol=1e-5)
    # Default radius sqrt(d), and the layer round-trips its config.
    layer = SphereProjection()
    np.testing.assert_allclose(np.linalg.norm(layer(z).numpy(), axis=-1), np.sqrt(7.0), rtol=1e-5)
    assert SphereProjection.from_config(SphereProjection(2.0, 1.0).get_config()).radius == 2.0


def test_encoder_codes_lie_on_the_sphere(model):
    codes = model.encode(_images(8)).numpy()
    np.testing.assert_allclose(np.linalg.norm(codes, axis=-1), np.sqrt(model.latent_dim), rtol=1e-5)


def test_batch_kl_is_zero_for_standard_batch_statistics_and_positive_otherwise():
    z = np.random.default_rng(0).normal(size=(256, 6)) * 3.0 + 2.0
    z = (z - z.mean(0)) / z.std(0)  # exactly mean 0, (population) std 1 per dimension
    assert abs(float(losses.batch_kl_to_standard_normal(z))) < 1e-6
    for shifted in (z + 0.5, z * 2.0, z * 0.5, np.concatenate([z[:, :3], z[:, 3:] * 3.0], 1)):
        assert float(losses.batch_kl_to_standard_normal(shifted)) > 1e-3
    # Matches the closed form for one dimension with mean m, std s.
    one = np.array([[-1.0], [3.0]])  # m = 1, s = 2
    expected = (4.0 + 1.0) / 2.0 - np.log(2.0) - 0.5
    np.testing.assert_allclose(float(losses.batch_kl_to_standard_normal(one)), expected, rtol=1e-5)


def test_cycle_reconstruction_loss_is_the_pixel_mean_of_the_squared_error():
    x = np.array([[[[1.0], [-1.0]]], [[[0.5], [0.0]]]], np.float32)  # [2, 1, 2, 1]
    r = np.array([[[[0.0], [0.0]]], [[[0.5], [-0.5]]]], np.float32)
    # squared errors 1, 1, 0, 0.25 -> mean 2.25 / 4
    assert float(losses.cycle_reconstruction_loss(x, r)) == pytest.approx(0.5625)


def test_minimax_losses_from_logits():
    big = tf.constant([30.0, 30.0])
    assert float(losses.minimax_discriminator_loss(big, -big)) < 1e-6
    np.testing.assert_allclose(float(losses.minimax_discriminator_loss([0.0], [0.0])), 2 * np.log(2.0), rtol=1e-6)
    np.testing.assert_allclose(float(losses.minimax_generator_loss([0.0])), np.log(2.0), rtol=1e-6)
    assert float(losses.minimax_generator_loss(big)) < 1e-6


# ----------------------------------------------------------------------------- pairs

def test_generator_inputs_are_anchors_then_prior_samples_on_the_sphere(model):
    codes = model.encode(_images(8))
    z = model.generator_inputs(codes, 3).numpy()
    np.testing.assert_array_equal(z[:3], codes.numpy()[:3])
    # The others are prior samples N(0, I) projected onto E's sphere (what `generate` feeds G), not codes.
    np.testing.assert_allclose(np.linalg.norm(z[3:], axis=-1), np.sqrt(model.latent_dim), rtol=1e-5)
    d = np.linalg.norm(z[3:, None] - codes.numpy()[None], axis=-1).min(axis=1)
    assert np.all(d > 1e-3)
    # Fresh draws every call (the model's seed state), never the same rows twice.
    assert not np.allclose(model.generator_inputs(codes, 3).numpy()[3:], z[3:])
    # All anchors: no draw at all.
    np.testing.assert_array_equal(model.generator_inputs(codes, 8).numpy(), codes.numpy())


def test_generate_feeds_G_the_projection_of_z(model):
    z = model.sample_latents(5)
    projected = model.prior_projection(z)
    np.testing.assert_allclose(np.linalg.norm(projected.numpy(), axis=-1), np.sqrt(model.latent_dim), rtol=1e-5)
    np.testing.assert_allclose(model.generate(z).numpy(), model.generator(projected, training=False).numpy(),
                               atol=1e-6)
    # Scaling z does not change the sample; E's codes are already on the sphere (reconstruct = G(E(x))).
    np.testing.assert_allclose(model.generate(3.0 * z).numpy(), model.generate(z).numpy(), atol=1e-5)
    x = _images(3)
    np.testing.assert_allclose(model.reconstruct(x).numpy(),
                               model.generator(model.encode(x), training=False).numpy(), atol=1e-5)
    assert np.all(np.isfinite(model.generate(tf.zeros([2, model.latent_dim])).numpy()))


def test_num_anchors_keeps_one_anchor_for_d2(model):
    assert [model.num_anchors(b) for b in (1, 2, 4, 8)] == [1, 1, 2, 4]
    m = build_model(_tiny(**{"selfexgan.anchor_fraction": 0.1}), 50, (16, 16, 1))
    assert m.num_anchors(4) == 1 and m.num_anchors(40) == 4


def test_d2_pairs_real_first_with_label_one(model):
    x = _images(4)
    codes = model.encode(x)
    z_g = model.generator_inputs(codes, 2)
    fakes = model.generate(z_g)
    px, pz, labels = model.d2_pairs(x, codes, fakes, z_g)
    np.testing.assert_array_equal(labels.numpy(), [1, 1, 1, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(px.numpy()[:4], x.numpy())
    np.testing.assert_array_equal(pz.numpy()[:4], codes.numpy())
    np.testing.assert_array_equal(px.numpy()[4:], fakes.numpy())
    np.testing.assert_array_equal(pz.numpy()[4:], z_g.numpy())
    real, fake = model.split_by_label(tf.range(8, dtype=tf.float32)[:, None], labels)
    np.testing.assert_array_equal(real.numpy(), [0, 1, 2, 3])
    np.testing.assert_array_equal(fake.numpy(), [4, 5, 6, 7])


def test_train_step_gives_d2_real_pairs_x_E_x_and_fake_pairs_G_a_a_of_the_anchors_only():
    m = build_model(_tiny(), 50, (16, 16, 1))
    m.compile()
    x = _images(4, seed=3)
    expected_codes = m.encoder(x, training=True).numpy()  # batch-stat BN: same as inside the step
    seen, inputs = [], []
    real_pairs = type(m).d2_pairs
    real_inputs = m.generator_inputs
    a = m.num_anchors(4)

    def spy_inputs(codes, num_anchors):
        inputs.append(real_inputs(codes, num_anchors))
        return inputs[-1]

    def spy(images, codes, fakes, fake_codes):
        out = real_pairs(images, codes, fakes, fake_codes)
        # G's images of the anchors at the time of the call (G is only updated after both calls),
        # made in the batch of all of G's inputs (batch-statistic BN).
        seen.append([t.numpy() for t in out] + [m.generator(inputs[-1], training=True).numpy()[:a]])
        return out

    m.d2_pairs = spy
    m.generator_inputs = spy_inputs
    m.train_step((tf.range(4, dtype=tf.int64), x))
    assert len(inputs) == 1
    assert a == 2
    assert len(seen) == 2  # the D2 update and the G/E update
    px, pz, labels, g_of_z = seen[0]
    np.testing.assert_array_equal(labels, [1, 1, 1, 1] + [0] * a)  # B real pairs, A fake pairs
    np.testing.assert_allclose(px[:4], x.numpy())
    np.testing.assert_allclose(pz[:4], expected_codes, atol=1e-5)
    # Fake pairs: (G(a), a) for the anchors a = E(x_1..A) only; no prior sample reaches D2.
    np.testing.assert_allclose(pz[4:], expected_codes[:a], atol=1e-5)
    np.testing.assert_allclose(px[4:], g_of_z, atol=1e-5)
    # The G/E step pairs the same anchors with G's images and the real images with E's (new) codes.
    np.testing.assert_allclose(seen[1][1][4:], pz[4:])
    np.testing.assert_allclose(seen[1][0][4:], seen[1][3], atol=1e-5)
    np.testing.assert_allclose(seen[1][0][:4], x.numpy())


# ----------------------------------------------------------------------------- training

def _weights(net):
    return [v.numpy().copy() for v in net.trainable_variables]


def test_one_step_updates_d1_d2_g_and_e():
    m = build_model(_tiny(), 50, (16, 16, 1))
    m.compile()
    nets = {"d1": m.d1, "d2": m.d2, "generator": m.generator, "encoder": m.encoder}
    before = {k: _weights(n) for k, n in nets.items()}
    logs = tf.function(m.train_step)((tf.range(4, dtype=tf.int64), _images(4, seed=5)))  # eager: ~10x slower
    for k, n in nets.items():
        moved = max(float(np.abs(a - b).max()) for a, b in zip(before[k], _weights(n)))
        assert moved > 0, f"{k} did not move"
    for name in ("d1_loss", "d2_loss", "g_loss", "e_loss", "kl", "recon_mse", "g_grad_norm", "e_grad_norm",
                 "d1_grad_norm", "d2_grad_norm", "e_fake_term"):
        assert np.isfinite(float(logs[name])), name
    assert 0.0 <= float(logs["recon_mse"]) <= 1.0


def test_without_d2_the_step_runs_and_has_no_pair_critic():
    m = build_model(_tiny(**{"selfexgan.d2": False}), 50, (16, 16, 1))
    m.compile()
    assert m.d2 is None
    before = _weights(m.encoder)
    logs = m.train_step((tf.range(4, dtype=tf.int64), _images(4)))
    assert "d2_loss" not in logs
    assert max(float(np.abs(a - b).max()) for a, b in zip(before, _weights(m.encoder))) > 0  # KL moves E


def test_config_tables_and_validation():
    c = get_config("selfexgan", "paper", {"data.channels": 3})
    hp = c.selfexgan.resolved(32, 3)
    assert hp.z_dim == 128 and hp.e_kernel == 5 and hp.d2_joint_widths == (256, 512, 256, 128, 64)
    hp = get_config("selfexgan", "paper").selfexgan.resolved(32, 1)
    assert (hp.z_dim, hp.g_widths, hp.d2_x_widths, hp.lr, hp.beta1, hp.beta2) == (64, (128, 64), (1024, 256),
                                                                                 1e-3, 0.9, 0.99)
    assert get_config("selfexgan", "paper", {"data.image_size": 64, "data.channels": 3}).selfexgan.resolved(
        64, 3).d2_x_convs == (64, 64, 128)
    with pytest.raises(ConfigError, match="g_widths"):
        _tiny(**{"selfexgan.g_widths": [8, 8]})
    with pytest.raises(ConfigError, match="anchor_fraction"):
        _tiny(**{"selfexgan.anchor_fraction": 1.5})
    with pytest.raises(ConfigError, match="arch"):
        _tiny(**{"selfexgan.arch": "table9"})
    with pytest.raises(ConfigError, match="anchor_fraction"):
        _tiny(**{"selfexgan.anchor_fraction": 0.0})  # D2 would have no fake pair
    assert _tiny(**{"selfexgan.anchor_fraction": 0.0, "selfexgan.d2": False}).selfexgan.anchor_fraction == 0.0
    with pytest.raises(ConfigError, match="recon_weight"):  # no anchors to reconstruct
        _tiny(**{"selfexgan.anchor_fraction": 0.0, "selfexgan.d2": False, "selfexgan.recon_weight": 1.0})
    with pytest.raises(ConfigError, match="recon_weight"):
        _tiny(**{"selfexgan.recon_weight": -1.0})
    with pytest.raises(ConfigError, match="e_fake_weight"):
        _tiny(**{"selfexgan.e_fake_weight": -1.0})


def test_train_resume_and_reload(tmp_path):
    from tf_sparse_gen import trainer
    from tf_sparse_gen.runs import load_trained_model

    model_dir = str(tmp_path / "run")
    first = trainer.train(_tiny(), model_dir, log=lambda s: None)
    assert first["final_step"] == 4 and not first["resumed"]
    second = trainer.train(_tiny(**{"train.train_steps": 6}), model_dir, log=lambda s: None)
    assert second["resumed"] and second["start_step"] == 4 and second["final_step"] == 6
    assert os.path.exists(second["samples"]["samples"])
    # Every variable of the four networks is in the checkpoint (not only the directly held layers).
    keys = {k for k, _ in tf.train.list_variables(second["checkpoint"])}
    loaded = load_trained_model(model_dir)
    for net in ("encoder", "generator", "d1", "d2"):
        n = sum(1 for k in keys if k.startswith(f"model/{net}/") and "OPTIMIZER_SLOT" not in k)
        assert n == len(getattr(loaded.model, net).weights), net
    assert loaded.step == 6
    with open(os.path.join(model_dir, "config.json")) as f:
        assert json.load(f)["model"] == "selfexgan"
    # The reloaded model is the trained one: its encoder matches the checkpointed weights.
    reader = tf.train.load_checkpoint(second["checkpoint"])
    np.testing.assert_array_equal(reader.get_tensor("model/encoder/fc/_kernel/.ATTRIBUTES/VARIABLE_VALUE"),
                                  loaded.model.encoder.fc.kernel.numpy())


def test_nan_batch_skips_every_update_and_counts_the_streak():
    m = build_model(_tiny(), 50, (16, 16, 1))
    m.compile()
    nets = {"d1": m.d1, "d2": m.d2, "generator": m.generator, "encoder": m.encoder}
    step = tf.function(m.train_step)
    good = (tf.range(4, dtype=tf.int64), _images(4, seed=5))
    bad = (tf.range(4, dtype=tf.int64), tf.fill([4, 16, 16, 1], float("nan")))
    step(good)  # builds everything; the streak stays 0 on a finite step
    assert int(m.nonfinite_streak.numpy()) == 0
    before = {k: _weights(n) for k, n in nets.items()}
    stats_before = [v.numpy().copy() for v in m.moving_statistics()]
    assert stats_before  # BatchNorm moving statistics exist
    for expected_streak in (1, 2):
        logs = step(bad)
        for k, n in nets.items():
            for a, b in zip(before[k], _weights(n)):
                np.testing.assert_array_equal(a, b, err_msg=f"{k} changed on a NaN batch")
        # The moving statistics the NaN forward passes wrote are put back.
        for a, v in zip(stats_before, m.moving_statistics()):
            np.testing.assert_array_equal(a, v.numpy())
        assert int(m.nonfinite_streak.numpy()) == expected_streak
        assert m.last_nonfinite_name() == "d1_loss"  # the first update of the step
        # Trackers leave the non-finite values out (the good step's values remain).
        assert np.isfinite(float(logs["d1_loss"])) and np.isfinite(float(logs["e_loss"]))
    logs = step(good)
    assert int(m.nonfinite_streak.numpy()) == 0
    for k, n in nets.items():
        moved = max(float(np.abs(a - b).max()) for a, b in zip(before[k], _weights(n)))
        assert moved > 0, f"{k} did not move on the good step after the bad ones"
    assert np.all(np.isfinite(m.generate(tf.zeros([2, m.latent_dim])).numpy()))


def test_a_non_finite_loss_of_one_network_skips_only_that_update():
    m = build_model(_tiny(), 50, (16, 16, 1))
    m.compile()
    m.hp = dataclasses.replace(m.hp, kl_weight=float("inf"))  # e_loss = inf * KL > 0
    before = {k: _weights(n) for k, n in {"encoder": m.encoder, "generator": m.generator}.items()}
    m.train_step((tf.range(4, dtype=tf.int64), _images(4, seed=6)))
    assert int(m.nonfinite_streak.numpy()) == 1
    assert m.last_nonfinite_name() == "e_loss"
    for a, b in zip(before["encoder"], _weights(m.encoder)):
        np.testing.assert_array_equal(a, b)
    assert max(float(np.abs(a - b).max()) for a, b in zip(before["generator"], _weights(m.generator))) > 0

"""Exact small cases of the layers' equations (issue #13), computed by hand.

TopKSparsity (eq. 6 of Xing et al.), SphereProjection (Liu eqs. 4.1-4.4), SoftThreshold
(S_lambda(a) = sign(a) max(|a| - lambda, 0)) and PatchDictionaryDecoder (overlap-averaged patches).
"""

import numpy as np
import pytest
import tensorflow as tf

from tf_sparse_gen.layers import PatchDictionaryDecoder, SoftThreshold, SphereProjection, TopKSparsity


@pytest.mark.parametrize("implementation", ["tf", "kernel"])
def test_topk_by_hand_channels_and_spatial(implementation):
    x = tf.constant([[3.0, -1.0, 5.0, 2.0], [0.5, 0.25, -2.0, 4.0]])
    out = TopKSparsity(2, implementation=implementation)(x)
    np.testing.assert_array_equal(out.numpy(), [[3, 0, 5, 0], [0.5, 0, 0, 4]])
    # k equal to the axis keeps everything; k = 1 keeps the maximum only.
    np.testing.assert_array_equal(TopKSparsity(4, implementation=implementation)(x).numpy(), x.numpy())
    np.testing.assert_array_equal(TopKSparsity(1, implementation=implementation)(x).numpy(),
                                  [[0, 0, 5, 0], [0, 0, 0, 4]])
    # Spatial: the top 2 of the 2x2 positions in each channel separately.
    img = np.zeros((1, 2, 2, 2), np.float32)
    img[0, :, :, 0] = [[1, 4], [3, 2]]
    img[0, :, :, 1] = [[-1, -4], [-3, -2]]
    out = TopKSparsity(2, axis="spatial", implementation=implementation)(tf.constant(img)).numpy()
    np.testing.assert_array_equal(out[0, :, :, 0], [[0, 4], [3, 0]])
    np.testing.assert_array_equal(out[0, :, :, 1], [[-1, 0], [0, -2]])
    # Channels at each position of an NHWC map: top 1 of the 2 channels.
    out = TopKSparsity(1, axis="channels", implementation=implementation)(tf.constant(img)).numpy()
    np.testing.assert_array_equal(out[..., 0], img[..., 0])
    np.testing.assert_array_equal(out[..., 1], np.zeros((1, 2, 2)))


def test_topk_kept_count_of_fractions_and_counts():
    assert TopKSparsity(0.25, axis="spatial").kept_count((2, 8, 8, 3)) == 16    # of H*W = 64
    assert TopKSparsity(0.25, axis="channels").kept_count((2, 8, 8, 12)) == 3   # of C = 12
    assert TopKSparsity(0.25, axis="spatial").kept_count((2, 12)) == 3          # rank 2: the last axis
    assert TopKSparsity(0.01, axis="spatial").kept_count((1, 4, 4, 1)) == 1     # at least one
    assert TopKSparsity(0.3, axis="spatial").kept_count((1, 5, 5, 1)) == 8      # round(7.5) = 8
    assert TopKSparsity(5, axis="spatial").kept_count((1, 5, 1, 2)) == 5        # k = n is allowed
    assert TopKSparsity(1).kept_count((3, 7)) == 1
    with pytest.raises(ValueError):
        TopKSparsity(6, axis="spatial").kept_count((1, 5, 1, 2))
    with pytest.raises(ValueError, match="rank"):
        TopKSparsity(1).mask(tf.zeros([2, 3, 4]))


def test_topk_ties_at_the_kth_value_keep_exactly_k_lowest_indices_first():
    x = tf.constant([[2.0, 1.0, 1.0, 1.0, 0.0]])
    out = TopKSparsity(2, implementation="tf")(x).numpy()
    assert np.count_nonzero(out) == 2 and out[0, 0] == 2.0 and out[0, 1:4].sum() == 1.0
    mask = TopKSparsity(3, implementation="tf").mask(tf.constant([[1.0, 1.0, 1.0, 1.0]])).numpy()
    assert mask.sum() == 3


def test_sphere_projection_by_hand_with_a_centre_and_the_default_radius():
    z = tf.constant([[3.0, 4.0], [1.0, 1.0]])
    # Default radius sqrt(d) = sqrt(2), centre 0: z / ||z|| * sqrt(2).
    np.testing.assert_allclose(SphereProjection()(z).numpy(), [[0.6 * 2 ** 0.5, 0.8 * 2 ** 0.5], [1.0, 1.0]],
                               rtol=1e-6)
    # Centre c = 1, radius 5: 1 + 5 (z - 1) / ||z - 1||; (3, 4) - 1 = (2, 3), norm sqrt(13).
    out = SphereProjection(radius=5.0, center=1.0)(tf.constant([[3.0, 4.0]])).numpy()
    np.testing.assert_allclose(out, [[1 + 10 / 13 ** 0.5, 1 + 15 / 13 ** 0.5]], rtol=1e-6)
    # At the centre the epsilon keeps it finite: 0 / sqrt(1e-12) = 0 -> c.
    np.testing.assert_allclose(SphereProjection(radius=2.0, center=1.0)(tf.ones([1, 3])).numpy(), np.ones((1, 3)))
    assert SphereProjection().resolved_radius(16) == 4.0 and SphereProjection(radius=3.0).resolved_radius(16) == 3.0
    with pytest.raises(ValueError, match="codes"):
        SphereProjection()(tf.zeros([2, 2, 2]))


def test_soft_threshold_by_hand_and_its_clamped_learned_lambda():
    a = tf.constant([-2.0, -0.5, -0.3, 0.0, 0.3, 0.5, 2.0])
    np.testing.assert_allclose(SoftThreshold(0.5)(a).numpy(), [-1.5, 0, 0, 0, 0, 0, 1.5])
    np.testing.assert_allclose(SoftThreshold(0.25)(a).numpy(), [-1.75, -0.25, -0.05, 0, 0.05, 0.25, 1.75],
                               rtol=1e-6)
    np.testing.assert_allclose(SoftThreshold(0.0)(a).numpy(), a.numpy())
    layer = SoftThreshold(0.25, learnable=True)
    layer.lam.assign(-0.5)  # a learned lambda below 0 acts as 0
    assert float(layer.current_threshold()) == 0.0
    np.testing.assert_allclose(layer(a).numpy(), a.numpy())


def test_patch_decoder_overlap_counts_and_a_single_code_by_hand():
    dec = PatchDictionaryDecoder(num_atoms=2, patch_size=3, channels=1,
                                 initial_atoms=np.stack([np.arange(9.0), np.ones(9)]).astype(np.float32))
    counts = dec.overlap_count(3, 4).numpy()[0, :, :, 0]
    np.testing.assert_array_equal(counts, [[4, 6, 6, 4], [6, 9, 9, 6], [4, 6, 6, 4]])
    # One code at the centre (1, 1) of a 3x3 grid: atom 0 (values 0..8, row-major) x 2 painted on the
    # whole image, each pixel divided by its overlap count.
    codes = np.zeros((1, 3, 3, 2), np.float32)
    codes[0, 1, 1, 0] = 2.0
    out = dec(tf.constant(codes)).numpy()[0, :, :, 0]
    c3 = dec.overlap_count(3, 3).numpy()[0, :, :, 0]
    np.testing.assert_allclose(out, 2.0 * np.arange(9.0).reshape(3, 3) / c3, rtol=1e-6)
    # A code at the corner (0, 0): only the patch's lower-right 2x2 (values 4, 5, 7, 8) lands in the image.
    codes = np.zeros((1, 3, 3, 2), np.float32)
    codes[0, 0, 0, 1] = 1.0
    codes[0, 0, 0, 0] = 1.0
    out = dec(tf.constant(codes)).numpy()[0, :, :, 0]
    expected = np.zeros((3, 3))
    expected[:2, :2] = np.array([[4, 5], [7, 8]]) + 1.0
    np.testing.assert_allclose(out, expected / c3, rtol=1e-6)
    np.testing.assert_array_equal(dec.kernel().numpy()[:, :, 0, 0], np.arange(9.0).reshape(3, 3))
    with pytest.raises(ValueError, match="shape"):
        dec.set_dictionary(np.zeros((3, 9)))
    dec.set_dictionary(np.ones((2, 9)))
    np.testing.assert_array_equal(dec.dictionary.numpy(), np.ones((2, 9)))

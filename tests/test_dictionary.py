import numpy as np
import pytest

from tf_sparse_gen.families.spgan import dictionary as D
from tf_sparse_gen.data import load_dataset


@pytest.fixture(scope="module")
def digit_patches():
    train = load_dataset("digits", "train", image_size=16).images
    test = load_dataset("digits", "test", image_size=16).images
    return D.extract_patches(train, 3, 4000, seed=0), D.extract_patches(test, 3, 1000, seed=1)


def test_extract_patches_are_crops_of_the_images_and_seeded():
    # 16x16 image whose 256 pixels are all different: a patch's top-left value gives its position.
    img = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
    patches = D.extract_patches(img, 3, 200, seed=5)
    assert patches.shape == (200, 9) and patches.dtype == np.float32
    raw = np.rint((patches + 1.0) * 127.5).astype(int)
    for row in raw:
        r, c = divmod(row[0], 16)
        assert r <= 13 and c <= 13
        np.testing.assert_array_equal(row, img[0, r:r + 3, c:c + 3, 0].reshape(-1))
    np.testing.assert_array_equal(patches, D.extract_patches(img, 3, 200, seed=5))
    assert not np.array_equal(patches, D.extract_patches(img, 3, 200, seed=6))


def test_colour_patches_are_in_row_column_channel_order():
    img = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3)).astype(np.uint8)
    patches = D.extract_patches(img, 3, 50, seed=1)
    crops = {tuple(np.rint((img[n, r:r + 3, c:c + 3, :] / 127.5 - 1.0).reshape(-1) * 1e4).astype(int))
             for n in range(2) for r in range(6) for c in range(6)}
    for p in patches:
        assert tuple(np.rint(p * 1e4).astype(int)) in crops


def test_learned_atoms_have_unit_norm_and_code_held_out_patches_better_than_random(digit_patches):
    train, held_out = digit_patches
    atoms, info = D.learn_dictionary(train, 16, channels=1, alpha=0.2, batch_size=128, seed=0)
    assert atoms.shape == (16, 9) and atoms.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(atoms, axis=1), 1.0, atol=1e-5)
    # The first atom is the DC atom; the learned ones are zero-mean (learned on centred patches).
    np.testing.assert_allclose(atoms[0], np.full(9, 1.0 / 3.0), atol=1e-6)
    np.testing.assert_allclose(atoms[1:].mean(axis=1), 0.0, atol=1e-5)
    assert info["steps"] > 0 and info["center"]
    learned = D.sparse_code_error(atoms, held_out, n_nonzero=3)
    rand = D.sparse_code_error(D.random_atoms(16, 9, seed=3), held_out, n_nonzero=3)
    assert learned < 0.5 * rand, (learned, rand)
    # The patches are not trivially easy: coding with the DC atom alone leaves a larger error.
    assert learned < 0.5 * D.sparse_code_error(atoms[:1], held_out, n_nonzero=1)


def test_uncentred_dictionary_has_no_dc_atoms_but_unit_norm(digit_patches):
    train, _ = digit_patches
    atoms, info = D.learn_dictionary(train[:1000], 6, channels=1, alpha=0.2, batch_size=128, seed=0,
                                     center=False)
    assert atoms.shape == (6, 9) and not info["center"]
    np.testing.assert_allclose(np.linalg.norm(atoms, axis=1), 1.0, atol=1e-5)


def test_dc_atoms_and_display(tmp_path):
    dc = D.dc_atoms(3, 3)
    assert dc.shape == (3, 27)
    np.testing.assert_allclose(np.linalg.norm(dc, axis=1), 1.0)
    # Channel ch of atom ch is constant, the other channels are zero.
    patches = D.atoms_as_patches(dc, 3, 3)
    for ch in range(3):
        np.testing.assert_allclose(patches[ch, :, :, ch], 1.0 / 3.0)
        assert np.count_nonzero(patches[ch]) == 9
    shown = D.atoms_for_display(dc, 3, 3, zoom=4)
    assert shown.shape == (3, 12, 12, 3) and shown.max() <= 1.0 and shown.min() >= -1.0
    path = D.save_dictionary_png(D.random_atoms(10, 9), 3, 1, str(tmp_path / "d.png"))
    from PIL import Image

    assert Image.open(path).size[0] > 0
    with pytest.raises(ValueError, match="no atom to learn"):
        D.learn_dictionary(np.zeros((10, 27), np.float32), 3, channels=3)

import os

import numpy as np
import pytest
from PIL import Image

from tf_sparse_gen import data as data_lib
from tf_sparse_gen.data import DatasetError, load_dataset


def test_digits_splits_sizes_ranges_and_labels():
    train = load_dataset("digits", "train", image_size=16, channels=1)
    test = load_dataset("digits", "test", image_size=16, channels=3)
    assert train.num_examples + test.num_examples == 1797
    assert train.images.shape[1:] == (16, 16, 1) and test.images.shape[1:] == (16, 16, 3)
    assert train.images.dtype == np.uint8 and set(np.unique(train.labels)) == set(range(10))
    idx, images, labels = next(iter(train.eval_dataset(8)))
    assert images.shape == (8, 16, 16, 1)
    assert -1.0 <= images.numpy().min() < 0.0 < images.numpy().max() <= 1.0
    np.testing.assert_array_equal(idx.numpy(), np.arange(8))
    np.testing.assert_array_equal(labels.numpy(), train.labels[:8])


def test_fashion_mnist_from_the_system_files():
    src = load_dataset("fashion_mnist", "test", image_size=32, channels=1, max_examples=50)
    assert src.images.shape == (50, 32, 32, 1) and src.labels.shape == (50,)
    raw, labels = data_lib.fashion_mnist_arrays("test")
    assert raw.shape == (10000, 28, 28) and labels.max() == 9


def test_missing_fashion_mnist_says_where_it_looked(tmp_path, monkeypatch):
    import keras

    monkeypatch.setattr(data_lib, "FASHION_MNIST_SYSTEM_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))

    def offline():
        raise OSError("no network")
    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", offline)
    with pytest.raises(DatasetError) as err:
        data_lib.fashion_mnist_arrays("train", data_dir=str(tmp_path / "given"))
    message = str(err.value)
    assert str(tmp_path / "given") in message and str(tmp_path / "none") in message
    assert "apt-get install dataset-fashion-mnist" in message and "--data_dir" in message


def _write_odd_images(root):
    rng = np.random.default_rng(0)
    (root / "cats").mkdir(parents=True)
    (root / "dogs").mkdir()
    Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(root / "cats" / "rgb.png")
    Image.fromarray(rng.integers(0, 255, (24, 24), dtype=np.uint8)).save(root / "cats" / "gray.jpg")
    Image.fromarray(rng.integers(0, 65535, (16, 16), dtype=np.uint16)).save(root / "cats" / "deep16.png")
    Image.fromarray(rng.integers(0, 255, (16, 16, 4), dtype=np.uint8), "RGBA").save(root / "dogs" / "rgba.png")
    Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).convert("P").save(root / "dogs" / "pal.gif")
    Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).convert("CMYK").save(root / "dogs" / "cmyk.jpg")
    (root / "dogs" / "empty.png").write_bytes(b"")
    (root / "dogs" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    good = root / "dogs" / "truncated.png"
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(good)
    good.write_bytes(good.read_bytes()[:60])


def test_folder_handles_odd_files_and_reports_bad_ones(tmp_path):
    _write_odd_images(tmp_path / "imgs")
    src = load_dataset(f"folder:{tmp_path / 'imgs'}", image_size=12, channels=3)
    assert src.num_examples == 6
    assert src.images.shape == (6, 12, 12, 3)
    assert list(src.class_names) == ["cats", "dogs"]
    assert sorted(src.labels.tolist()) == [0, 0, 0, 1, 1, 1]
    bad = sorted(os.path.basename(p) for p, _ in src.skipped)
    assert bad == ["corrupt.jpg", "empty.png", "truncated.png"]
    gray = load_dataset(f"folder:{tmp_path / 'imgs'}", image_size=12, channels=1)
    assert gray.images.shape == (6, 12, 12, 1)


@pytest.mark.parametrize("make,message", [
    (lambda p: None, "does not exist"),
    (lambda p: p.mkdir(), "holds no image files"),
])
def test_folder_errors_name_the_path(tmp_path, make, message):
    root = tmp_path / "missing"
    make(root)
    with pytest.raises(DatasetError, match=message) as err:
        load_dataset(f"folder:{root}")
    assert str(root) in str(err.value)


def test_tfds_source_through_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=12):
        src = load_dataset("tfds:mnist:test", image_size=16, channels=1)
    assert src.num_examples == 12 and src.images.shape == (12, 16, 16, 1)
    assert src.labels.shape == (12,) and src.class_names is not None
    with tfds.testing.mock_data(num_examples=4):
        with pytest.raises(DatasetError, match="no 'image' feature"):
            load_dataset("tfds:imdb_reviews")


@pytest.mark.parametrize("name,message", [("imagenet_please", "unknown dataset"),
                                          ("tfds:", "needs a dataset name")])
def test_bad_dataset_names(name, message):
    with pytest.raises(DatasetError, match=message):
        load_dataset(name)


def test_train_order_is_a_function_of_seed_and_step():
    src = load_dataset("digits", "test", image_size=8)  # 360 examples
    batches = [b[0].numpy() for b in src.train_dataset(40, seed=3).take(12)]
    first_epoch = np.concatenate(batches[:9])
    assert sorted(first_epoch.tolist()) == list(range(360))  # each example once per epoch
    assert not np.array_equal(batches[0], batches[9])  # the next epoch is reshuffled
    resumed = [b[0].numpy() for b in src.train_dataset(40, seed=3, start_step=5).take(7)]
    for a, b in zip(batches[5:], resumed):
        np.testing.assert_array_equal(a, b)
    other = next(iter(src.train_dataset(40, seed=4)))[0].numpy()
    assert not np.array_equal(other, batches[0])
    with pytest.raises(DatasetError, match="batch"):
        src.train_dataset(1000, seed=0)


def test_shapes_source_has_part_maps_and_disjoint_deterministic_splits():
    train = load_dataset("shapes", "train", image_size=16, channels=3, shapes_num_examples=40, seed=1)
    again = load_dataset("shapes", "train", image_size=16, channels=3, shapes_num_examples=40, seed=1)
    test = load_dataset("shapes", "test", image_size=16, channels=1, shapes_num_examples=40, seed=1)
    np.testing.assert_array_equal(train.images, again.images)
    assert train.part_maps.shape == (40, 16, 16) and test.num_examples == 8
    assert test.images.shape[-1] == 1 and train.part_names[0] == "background"
    assert not np.array_equal(train.part_maps[:8], test.part_maps)
    assert set(np.unique(train.labels)) <= set(range(len(train.class_names)))
    with pytest.raises(DatasetError, match="image_size >= 16"):
        load_dataset("shapes", image_size=8)

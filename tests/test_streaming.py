"""Sources above the in-memory limit stream from the on-disk data cache (issue #17, item 5).

Tiny folders (a few dozen 10x12 PNGs) and a lowered limit stand in for LSUN-sized sets.
"""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tf_sparse_gen import data as data_lib
from tf_sparse_gen.data import DatasetError, load_dataset, streaming

N = 40  # 39 good files + 1 unreadable one


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("streamed") / "imgs"
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(20 if c == "a" else 19):
            Image.fromarray(rng.integers(0, 255, (10, 12, 3), dtype=np.uint8)).save(root / c / f"{i:03d}.png")
    (root / "a" / "010bad.png").write_bytes(b"not a png")
    return root


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty data cache for this test (also the default one, so nothing goes to ~/.cache)."""
    monkeypatch.setenv(streaming.CACHE_ENV, str(tmp_path / "cache"))
    return str(tmp_path / "cache")


def _streamed(folder, cache, **kw):
    return load_dataset(f"folder:{folder}", image_size=8, channels=3, in_memory_limit=1000, cache_dir=cache,
                        log=kw.pop("log", lambda s: None), **kw)


def _scaled(uint8_images):
    return uint8_images.astype(np.float32) / np.float32(127.5) - np.float32(1.0)


def _ids(ds, count):
    return [b[0].numpy() for b in ds.take(count)]


def test_folder_above_the_limit_streams_with_stable_indices(folder, cache):
    memory = load_dataset(f"folder:{folder}", image_size=8, channels=3)
    logged = []
    src = _streamed(folder, cache, log=logged.append)
    assert not memory.streamed and src.streamed and isinstance(src.images, np.memmap)
    assert src.cache_path.startswith(cache) and any("converting" in m for m in logged)
    assert src.num_examples == memory.num_examples == N - 1
    assert [os.path.basename(p) for p, _ in src.skipped] == ["010bad.png"]
    assert list(src.class_names) == ["a", "b"]
    np.testing.assert_array_equal(src.labels, memory.labels)
    np.testing.assert_array_equal(np.asarray(src.images), memory.images)
    # index i is the i-th readable file in sorted order, in memory and streamed alike
    idx, images, labels = next(iter(src.eval_dataset(N)))
    np.testing.assert_array_equal(idx.numpy(), np.arange(N - 1))
    np.testing.assert_array_equal(images.numpy(), _scaled(memory.images))
    np.testing.assert_array_equal(src.take_images(5, 3), memory.take_images(5, 3))
    # a second load reuses the cache without decoding anything
    again_log = []
    again = _streamed(folder, cache, log=again_log.append)
    assert again.cache_path == src.cache_path and not again_log and again.skipped == src.skipped
    # evaluation's "test" split of a folder is the same images: the same cache
    test_split = _streamed(folder, cache, split="test")
    assert test_split.cache_path == src.cache_path and test_split.split == "test"


def test_streamed_order_epochs_seeds_and_resume(folder, cache):
    src = load_dataset(f"folder:{folder}", image_size=8, channels=3, max_examples=33, in_memory_limit=1000,
                       cache_dir=cache, log=lambda s: None)
    n = src.num_examples
    assert src.streamed and n == 32  # 33 files, one unreadable
    batches = _ids(src.train_dataset(8, seed=5), 12)  # 3 epochs of 4 batches
    for e in range(3):
        assert sorted(np.concatenate(batches[4 * e:4 * e + 4]).tolist()) == list(range(n)), e
    assert not np.array_equal(np.concatenate(batches[:4]), np.concatenate(batches[4:8]))
    np.testing.assert_array_equal(np.stack(_ids(src.train_dataset(8, seed=5), 12)), np.stack(batches))
    assert not np.array_equal(_ids(src.train_dataset(8, seed=6), 1)[0], batches[0])
    for start in (1, 4, 7):  # within and at the start of an epoch
        np.testing.assert_array_equal(np.stack(_ids(src.train_dataset(8, seed=5, start_step=start), 12 - start)),
                                      np.stack(batches[start:]))
    # a batch that spans two epochs (batch 5 does not divide 32): same as uninterrupted
    uninterrupted = list(src.train_dataset(5, seed=5).take(9))
    resumed = list(src.train_dataset(5, seed=5, start_step=6).take(3))
    for a, b in zip(uninterrupted[6:], resumed):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x.numpy(), y.numpy())
    # the images and labels are those of the indices
    idx, images, labels = uninterrupted[7]
    np.testing.assert_array_equal(images.numpy(), _scaled(np.asarray(src.images)[idx.numpy()]))
    np.testing.assert_array_equal(labels.numpy(), src.labels[idx.numpy()])


def test_streamed_batches_equal_the_in_memory_ones(folder, cache):
    memory = load_dataset(f"folder:{folder}", image_size=8, channels=3)
    src = _streamed(folder, cache)
    for a, b in zip(memory.train_dataset(8, seed=2, start_step=3).take(6), src.train_dataset(8, seed=2, start_step=3).take(6)):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x.numpy(), y.numpy())


def test_size_is_decided_before_decoding_and_conversion_goes_by_chunks(folder, cache, monkeypatch):
    monkeypatch.setattr(data_lib, "_CHUNK", 8)
    pending = {"now": 0, "max": 0}
    load, append = data_lib._try_load, streaming._Writer.append

    def counting_load(*a):
        pending["now"] += 1
        pending["max"] = max(pending["max"], pending["now"])
        return load(*a)

    def counting_append(self, images, *a, **k):
        pending["now"] = 0
        return append(self, images, *a, **k)
    monkeypatch.setattr(data_lib, "_try_load", counting_load)
    monkeypatch.setattr(streaming._Writer, "append", counting_append)
    src = _streamed(folder, cache)
    assert src.streamed and src.num_examples == N - 1
    assert pending["max"] <= 8  # never more than a chunk decoded and not yet written


def test_cache_is_rebuilt_when_the_folder_changes(tmp_path, cache):
    root = tmp_path / "imgs"
    root.mkdir()
    rng = np.random.default_rng(1)
    for i in range(12):
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / f"{i:02d}.png")
    first = _streamed(root, cache)
    assert first.num_examples == 12 and first.labels is None
    Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / "99.png")
    logged = []
    second = _streamed(root, cache, log=logged.append)
    assert second.num_examples == 13 and second.cache_path == first.cache_path
    assert any("rebuilding" in m for m in logged)


def test_not_enough_disk_space_is_a_clear_error(folder, cache, monkeypatch):
    import collections
    import shutil

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(1, 1, 1000))
    with pytest.raises(DatasetError, match="GiB free"):
        _streamed(folder, cache)
    assert not [d for d in os.listdir(cache) if not d.endswith(".lock")]


def test_array_sources_stream_too(cache):
    memory = load_dataset("digits", "test", image_size=8)
    src = load_dataset("digits", "test", image_size=8, in_memory_limit=10000, log=lambda s: None)
    assert src.streamed and src.cache_path.startswith(cache) and src.num_examples == memory.num_examples
    np.testing.assert_array_equal(np.asarray(src.images), memory.images)
    np.testing.assert_array_equal(src.labels, memory.labels)
    shapes = load_dataset("shapes", "train", image_size=16, channels=3, shapes_num_examples=12, seed=1,
                          in_memory_limit=1000, log=lambda s: None)
    shapes_memory = load_dataset("shapes", "train", image_size=16, channels=3, shapes_num_examples=12, seed=1)
    assert shapes.streamed and shapes.part_maps.shape == (12, 16, 16)
    np.testing.assert_array_equal(np.asarray(shapes.part_maps), shapes_memory.part_maps)
    np.testing.assert_array_equal(np.asarray(shapes.images), shapes_memory.images)


def test_tfds_above_the_limit_streams(cache):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=12):
        memory = load_dataset("tfds:mnist:test", image_size=16, channels=1)
        src = load_dataset("tfds:mnist:test", image_size=16, channels=1, in_memory_limit=1000, log=lambda s: None)
    assert src.streamed and src.num_examples == 12
    np.testing.assert_array_equal(np.asarray(src.images), memory.images)
    np.testing.assert_array_equal(src.labels, memory.labels)


def test_replicas_and_workers_split_every_global_batch(folder, cache):
    from tensorflow.python.distribute import input_ops

    src = _streamed(folder, cache)
    global_batches = _ids(src.train_dataset(8, seed=3), 3)
    # One machine, two replicas (the logical CPUs of conftest): each gets half of every batch.
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    dist = iter(strategy.experimental_distribute_dataset(src.train_dataset(8, seed=3)))
    for expected in global_batches:
        parts = strategy.experimental_local_results(next(dist)[0])
        np.testing.assert_array_equal(np.concatenate([p.numpy() for p in parts]), expected)
    # Two workers, as MultiWorkerMirroredStrategy auto-shards (DATA: every worker keeps its part).
    shards = [input_ops.auto_shard_dataset(src.train_dataset(8, seed=3).rebatch(4), 2, i, 2) for i in range(2)]
    per_worker = [_ids(s, 3) for s in shards]
    for t, expected in enumerate(global_batches):
        np.testing.assert_array_equal(np.concatenate([per_worker[0][t], per_worker[1][t]]), expected)
    # distribute_datasets_from_function: the input context picks the pipeline's slice.
    contexts = [tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=i, num_replicas_in_sync=2)
                for i in range(2)]
    sliced = [_ids(src.train_dataset(8, seed=3, input_context=c), 3) for c in contexts]
    for t, expected in enumerate(global_batches):
        np.testing.assert_array_equal(np.concatenate([sliced[0][t], sliced[1][t]]), expected)


def test_train_on_a_streamed_folder_and_resume(folder, cache, tmp_path, monkeypatch):
    from tf_sparse_gen import trainer
    from tf_sparse_gen.config import get_config

    monkeypatch.setattr(data_lib, "IN_MEMORY_LIMIT_BYTES", 1000)
    logged = []

    def config(steps):
        return get_config("andor", "tiny", {"data.dataset": f"folder:{folder}", "data.image_size": 16,
                                            "data.channels": 3, "train.batch_size": 8, "train.train_steps": steps,
                                            "train.train_minutes": 0.0})
    model_dir = str(tmp_path / "run")
    first = trainer.train(config(2), model_dir, log=logged.append)
    assert first["final_step"] == 2 and not first["resumed"]
    assert any("39 examples" in m for m in logged) and any("skipped 1" in m for m in logged)
    assert [d for d in os.listdir(cache) if not d.endswith(".lock")]  # it went through the data cache
    resumed = trainer.train(config(4), model_dir, log=logged.append)
    assert resumed["resumed"] and resumed["start_step"] == 2 and resumed["final_step"] == 4

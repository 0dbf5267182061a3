"""Dataset sources and tf.data pipelines.

Every source (`fashion_mnist`, `digits`, `folder:PATH`, `tfds:NAME[:SPLIT]`,
`shapes`) is loaded into an `ImageSource`: uint8 images at the requested size
and channel count, optional labels, and for `shapes` the ground-truth part
maps. Its pipelines yield `(index, image)` or `(index, image, label)` batches
with images as float32 in [-1, 1]; `index` is the example's stable position in
the split, which the AND-OR model needs for its persistent latents.

Training order is a pure function of (seed, step): each epoch is a stateless
shuffle of the indices, so a resumed run sees exactly the batches an
uninterrupted run would have seen. Indices are shuffled, not images, and the
images are gathered per batch.

Sources whose decoded size (examples x image_size^2 x channels bytes, estimated
before decoding) is above `IN_MEMORY_LIMIT_BYTES` are converted once, chunk by
chunk, into the on-disk data cache (`tf_sparse_gen.data.streaming`) and streamed
from it: `images` is then a read-only `np.memmap` and batches are read from disk
by index, in the same order (the same batches) as if they had been in memory.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import gzip
import hashlib
import os
import struct
import time
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
FASHION_MNIST_SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot")
_FMNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                 "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
# Decoded datasets larger than this are streamed from disk (the data cache) instead of held in
# memory; read at each load_dataset call (tests lower it), or pass load_dataset(in_memory_limit=).
IN_MEMORY_LIMIT_BYTES = 1 << 30
# Images decoded (and, when streaming, written to the cache) per chunk.
_CHUNK = 1024


class DatasetError(ValueError):
    """A dataset cannot be loaded; the message says where it looked and how to fix it."""


@dataclasses.dataclass
class ImageSource:
    """A split of a dataset, decoded to uint8 at the requested size.

    Attributes:
        name: the `--dataset` string.
        split: split name ("train", "test", ...).
        images: uint8 `[N, H, W, C]`: in memory up to `IN_MEMORY_LIMIT_BYTES`, larger
            sources a read-only `np.memmap` of the data cache (`cache_path`).
        labels: int64 `[N]` or None.
        class_names: names of the label values, if known.
        part_maps: uint8 `[N, H, W]` ground-truth part labels (`shapes` only).
        part_names: names of the part-map values (`shapes` only).
        skipped: `(path, reason)` of every file that could not be used.
        cache_path: the data-cache directory a streamed source is read from (None: in memory).
    """

    name: str
    split: str
    image_size: int
    channels: int
    num_examples: int
    images: np.ndarray = None
    labels: Optional[np.ndarray] = None
    class_names: Optional[Sequence[str]] = None
    part_maps: Optional[np.ndarray] = None
    part_names: Optional[Sequence[str]] = None
    skipped: List[Tuple[str, str]] = dataclasses.field(default_factory=list)
    cache_path: Optional[str] = None

    @property
    def streamed(self) -> bool:
        """True if the images are read from the on-disk data cache, not held in memory."""
        return self.cache_path is not None

    @property
    def image_shape(self) -> Tuple[int, int, int]:
        return (self.image_size, self.image_size, self.channels)

    @property
    def has_labels(self) -> bool:
        return self.labels is not None

    def _gather_fn(self):
        """Returns fn(int64 indices [B]) -> (uint8 images [B,H,W,C], labels [B] or None)."""
        labels_t = tf.constant(self.labels, tf.int64) if self.labels is not None else None
        if self.streamed:
            from tf_sparse_gen.data import streaming

            mm = self.images

            def read(idx):
                return streaming.read_rows(mm, idx)

            def images_of(idx):
                return tf.numpy_function(read, [idx], tf.uint8, stateful=False)
        else:
            images_t = tf.constant(self.images)

            def images_of(idx):
                return tf.gather(images_t, idx)

        def gather(idx):
            images = tf.ensure_shape(images_of(idx), [None, *self.image_shape])
            return images, (tf.gather(labels_t, idx) if labels_t is not None else None)
        return gather

    def _to_elements(self, idx_ds: tf.data.Dataset) -> tf.data.Dataset:
        gather = self._gather_fn()

        def to_element(idx):
            images, labels = gather(idx)
            # uint8 [0, 255] -> float32 [-1, 1]
            images = tf.cast(images, tf.float32) / 127.5 - 1.0
            return (idx, images) if labels is None else (idx, images, labels)

        ds = idx_ds.map(to_element, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)
        # Multi-worker auto-sharding splits every global batch over the workers (DATA), as it
        # does by default for the in-memory sources; a streamed source has no file-reading op
        # to shard by, and sharding by files would break the global order.
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return ds.with_options(options)

    def train_index_batches(self, batch_size: int, seed: int, start_step: int = 0) -> tf.data.Dataset:
        """The endless int64 index batches `[batch_size]` of `train_dataset` (no images).

        The examples form one stream, epoch after epoch (epoch e is a stateless shuffle of
        range(N) seeded by (seed, e)); batch t holds stream positions t*B .. (t+1)*B - 1.
        Starting at `start_step` begins at that position directly (no batches are replayed).
        """
        if batch_size > self.num_examples:
            raise DatasetError(
                f"dataset '{self.name}' ({self.split}) has {self.num_examples} examples, fewer than "
                f"--batch_size={batch_size}; use a smaller batch size or more data")
        if start_step < 0:
            raise ValueError(f"start_step={start_step} must be >= 0")
        n = self.num_examples
        first_epoch, offset = divmod(int(start_step) * int(batch_size), n)

        def epoch_indices(epoch):
            perm = tf.random.experimental.stateless_shuffle(
                tf.range(n, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), epoch]))
            return perm[tf.where(tf.equal(epoch, first_epoch), tf.constant(offset, tf.int64), 0):]

        return (tf.data.Dataset.range(first_epoch, 1 << 62).map(epoch_indices).unbatch()
                .batch(batch_size, drop_remainder=True))

    def train_dataset(self, batch_size: int, seed: int, start_step: int = 0,
                      input_context: Optional[tf.distribute.InputContext] = None) -> tf.data.Dataset:
        """An endless dataset of shuffled batches, starting at batch `start_step`.

        Batch t of this dataset is the same for every call with the same
        `(seed, batch_size)`, so resuming at `start_step` continues the
        uninterrupted sequence. In memory or streamed, the batches are the same.

        `batch_size` is the global batch. Given to `model.fit` under a strategy, each
        global batch is split over the replicas (and, multi-worker, over the workers by
        auto-sharding). With `input_context` (`strategy.distribute_datasets_from_function`)
        this input pipeline yields only its part of every global batch: slice
        `input_pipeline_id` of `num_input_pipelines` equal slices.
        """
        idx_ds = self.train_index_batches(batch_size, seed, start_step)
        if input_context is not None and input_context.num_input_pipelines > 1:
            k, i = input_context.num_input_pipelines, input_context.input_pipeline_id
            if batch_size % k:
                raise DatasetError(f"--batch_size={batch_size} does not split over {k} input pipelines")
            per = batch_size // k
            idx_ds = idx_ds.map(lambda b: b[i * per:(i + 1) * per])
        ds = self._to_elements(idx_ds)
        if input_context is not None:
            options = tf.data.Options()
            options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
            ds = ds.with_options(options)
        return ds

    def eval_dataset(self, batch_size: int, limit: Optional[int] = None) -> tf.data.Dataset:
        """The first `limit` (default all) examples in order, in batches."""
        n = self.num_examples if limit is None else min(limit, self.num_examples)
        return self._to_elements(tf.data.Dataset.range(n).batch(batch_size))

    def take_images(self, count: int, offset: int = 0) -> np.ndarray:
        """float32 images in [-1, 1] of examples offset..offset+count-1 (for figures)."""
        count = min(count, self.num_examples - offset)
        images, _ = self._gather_fn()(tf.range(offset, offset + count, dtype=tf.int64))
        return images.numpy().astype(np.float32) / 127.5 - 1.0


# ----------------------------------------------------------------------------- helpers

def to_size_and_channels(images: np.ndarray, image_size: int, channels: int) -> np.ndarray:
    """uint8 [N, h, w, c] -> uint8 [N, S, S, channels] (antialiased bilinear resize)."""
    if images.ndim == 3:
        images = images[..., None]
    c = images.shape[-1]
    if c == 4:
        images = images[..., :3]
        c = 3
    if c == 3 and channels == 1:
        weights = np.array([0.299, 0.587, 0.114], np.float32)
        images = np.clip(np.rint(images.astype(np.float32) @ weights), 0, 255).astype(np.uint8)[..., None]
    elif c == 1 and channels == 3:
        images = np.repeat(images, 3, axis=-1)
    if images.shape[1:3] != (image_size, image_size):
        out = []
        for start in range(0, len(images), 4096):
            chunk = tf.image.resize(images[start:start + 4096], [image_size, image_size],
                                    method="bilinear", antialias=True)
            out.append(np.clip(np.rint(chunk.numpy()), 0, 255).astype(np.uint8))
        images = np.concatenate(out) if out else images.reshape(0, image_size, image_size, channels)
    return np.ascontiguousarray(images)


def _read_idx(path: str) -> np.ndarray:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise DatasetError(f"{path} is not an uint8 IDX file (bad magic number); re-download it")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise DatasetError(f"{path} is truncated ({arr.size} of {int(np.prod(dims))} values); re-download it")
    return arr.reshape(dims)


def fashion_mnist_dirs(data_dir: Optional[str] = None) -> List[str]:
    """The directories searched for the Fashion-MNIST IDX files, in order."""
    keras_home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    dirs = [data_dir] if data_dir else []
    return dirs + [FASHION_MNIST_SYSTEM_DIR, os.path.join(keras_home, "datasets", "fashion-mnist")]


def fashion_mnist_arrays(split: str = "train", data_dir: Optional[str] = None) -> Tuple[np.ndarray, np.ndarray]:
    """The original Fashion-MNIST split: uint8 images [N, 28, 28] and int64 labels [N].

    Looks in `data_dir`, then Debian's `/usr/share/datasets/fashion-mnist`, then the
    Keras cache; if none has the files, tries the Keras download.
    """
    if split not in _FMNIST_FILES:
        raise DatasetError(f"fashion_mnist has splits 'train' and 'test', not {split!r}")
    image_name, label_name = _FMNIST_FILES[split]
    searched = fashion_mnist_dirs(data_dir)
    for d in searched:
        for suffix in (".gz", ""):
            ip, lp = os.path.join(d, image_name + suffix), os.path.join(d, label_name + suffix)
            if os.path.exists(ip) and os.path.exists(lp):
                images, labels = _read_idx(ip), _read_idx(lp).astype(np.int64)
                if len(images) != len(labels):
                    raise DatasetError(f"{ip} and {lp} disagree on the example count; re-download them")
                return images, labels
    try:
        import keras
        (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    except Exception as e:  # offline: the download fails
        raise DatasetError(
            f"Fashion-MNIST not found. Looked for {image_name}[.gz] in: " + ", ".join(searched) + f"; the Keras download failed too ({type(e).__name__}: {e}). "
            "Fix: `apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or put the four IDX files in "
            "a folder and pass --data_dir=FOLDER, or run once with internet access.") from None
    return (x_train, y_train.astype(np.int64)) if split == "train" else (x_test, y_test.astype(np.int64))


def _load_image_file(path: str, image_size: int, channels: int) -> np.ndarray:
    """Decodes any PIL-readable image to uint8 [S, S, channels]: centre crop, resize."""
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im.load()
        im = ImageOps.exif_transpose(im)
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(im, dtype=np.float64)
            peak = 65535.0 if arr.max() > 255 else 255.0
            im = Image.fromarray(np.clip(arr / peak * 255.0, 0, 255).astype(np.uint8), "L")
        if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
            im = im.convert("RGBA")
            background = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(background, im)
        im = im.convert("L" if channels == 1 else "RGB")
        w, h = im.size
        if w == 0 or h == 0:
            raise ValueError("image has zero size")
        side = min(w, h)
        im = im.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side))
        im = im.resize((image_size, image_size), Image.Resampling.LANCZOS)
        arr = np.asarray(im, dtype=np.uint8)
    return arr.reshape(image_size, image_size, channels)


def _scan_folder(root: str) -> Tuple[List[str], Optional[List[str]], Optional[List[str]]]:
    """All image paths below root (sorted), and labels from first-level sub-folders if all have one."""
    paths = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for f in sorted(filenames):
            if f.lower().endswith(IMAGE_EXTENSIONS):
                paths.append(os.path.join(dirpath, f))
    rels = [os.path.relpath(p, root) for p in paths]
    if paths and all(os.sep in r for r in rels):
        names = [r.split(os.sep, 1)[0] for r in rels]
        return paths, names, sorted(set(names))
    return paths, None, None


def _try_load(path: str, image_size: int, channels: int):
    try:
        return _load_image_file(path, image_size, channels), None
    except Exception as e:  # any undecodable file is reported by path, never fatal
        return None, f"{type(e).__name__}: {e}"


def _limit(in_memory_limit: Optional[int]) -> int:
    return IN_MEMORY_LIMIT_BYTES if in_memory_limit is None else int(in_memory_limit)


def _streamed_source(name: str, split: str, image_size: int, channels: int, spec: dict, fingerprint: str,
                     estimated_bytes: int, convert, cache_dir: Optional[str], log,
                     class_names=None, part_names=None) -> ImageSource:
    """An ImageSource read from the data cache, converting it first if needed (see streaming.py)."""
    from tf_sparse_gen.data import streaming

    log = log or streaming.stderr_log
    root = cache_dir or streaming.default_cache_root()
    # A folder has one set of images whatever the split is called (evaluation loads "test").
    key_split = "" if spec.pop("one_split", False) else split
    spec = dict(spec, name=name, split=key_split, image_size=image_size, channels=channels)
    directory, meta = streaming.build_or_open(
        root, streaming.cache_key(spec), fingerprint, (image_size, image_size, channels), estimated_bytes,
        convert, f"{name} ({split})", log)
    images, labels, parts = streaming.open_arrays(directory, meta)
    return ImageSource(name=name, split=split, image_size=image_size, channels=channels,
                       num_examples=int(meta["num_examples"]), images=images, labels=labels,
                       class_names=meta.get("class_names", class_names), part_maps=parts, part_names=part_names,
                       skipped=[tuple(x) for x in meta.get("skipped", [])], cache_path=directory)


def _folder_source(root: str, split: str, image_size: int, channels: int, max_examples: int,
                   in_memory_limit: Optional[int] = None, cache_dir: Optional[str] = None,
                   log=None) -> ImageSource:
    root = os.path.abspath(os.path.expanduser(root))
    if not os.path.isdir(root):
        raise DatasetError(f"folder:{root} does not exist or is not a directory; pass --dataset=folder:PATH "
                           "with a directory of images (PNG/JPEG/BMP/GIF, optionally in class sub-folders)")
    paths, names, classes = _scan_folder(root)
    if not paths:
        raise DatasetError(f"folder:{root} holds no image files ({', '.join(IMAGE_EXTENSIONS)}); "
                           "point --dataset=folder:PATH at a directory that does")
    if max_examples:
        paths, names = paths[:max_examples], (names[:max_examples] if names else None)
    label_of = {c: i for i, c in enumerate(classes)} if names else None
    workers = os.cpu_count() or 2

    def none_decoded(skipped):
        return DatasetError(f"folder:{root}: none of its {len(paths)} image files could be decoded "
                            f"(first error: {skipped[0][0]}: {skipped[0][1]})")

    # The size is decided before decoding: every file at image_size^2 x channels bytes.
    estimated = len(paths) * image_size * image_size * channels
    if estimated > _limit(in_memory_limit):
        from tf_sparse_gen.data import streaming

        def convert(writer):
            skipped, done, reported = [], 0, time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
                for start in range(0, len(paths), _CHUNK):
                    chunk = paths[start:start + _CHUNK]
                    results = list(pool.map(lambda p: _try_load(p, image_size, channels), chunk))
                    keep = [j for j, (img, _) in enumerate(results) if img is not None]
                    skipped += [(chunk[j], err) for j, (img, err) in enumerate(results) if img is None]
                    if keep:
                        labels = (np.array([label_of[names[start + j]] for j in keep], np.int64)
                                  if names else None)
                        writer.append(np.stack([results[j][0] for j in keep]), labels)
                    done += len(chunk)
                    if time.monotonic() - reported > 30:
                        reported = time.monotonic()
                        (log or streaming.stderr_log)(f"folder:{root}: {done} of {len(paths)} files converted")
            if writer.count == 0:
                raise none_decoded(skipped)
            return {"source": f"folder:{root}", "class_names": classes, "skipped": skipped}

        return _streamed_source(f"folder:{root}", split, image_size, channels,
                                {"max_examples": int(max_examples or 0), "one_split": True},
                                streaming.folder_fingerprint(root, paths), estimated, convert, cache_dir, log,
                                class_names=classes)

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda p: _try_load(p, image_size, channels), paths))
    keep = [i for i, (img, _) in enumerate(results) if img is not None]
    skipped = [(paths[i], err) for i, (img, err) in enumerate(results) if img is None]
    if not keep:
        raise none_decoded(skipped)
    images = np.stack([results[i][0] for i in keep])
    labels = np.array([label_of[names[i]] for i in keep], np.int64) if names else None
    return ImageSource(name=f"folder:{root}", split=split, image_size=image_size, channels=channels,
                       num_examples=len(images), images=images, labels=labels, class_names=classes,
                       skipped=skipped)


def _tfds_num_examples(builder, split: str) -> Optional[int]:
    """The example count of a (possibly sliced) TFDS split from its metadata, or None if unknown."""
    try:
        n = int(builder.info.splits[split].num_examples)
    except Exception:
        return None
    return n if n > 0 else None


def _tfds_source(spec: str, split: str, data_dir: Optional[str], image_size: int, channels: int,
                 max_examples: int, in_memory_limit: Optional[int] = None, cache_dir: Optional[str] = None,
                 log=None) -> ImageSource:
    import tensorflow_datasets as tfds

    parts = spec.split(":")
    name = parts[0]
    if not name:
        raise DatasetError("--dataset=tfds:NAME[:SPLIT] needs a dataset name, e.g. tfds:cifar10 or tfds:celeb_a:train")
    if len(parts) > 1 and parts[1]:
        split = parts[1] if split == "train" else split
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as e:
        raise DatasetError(f"tfds:{name}: no such TFDS builder ({e}); see `tfds.list_builders()`") from None
    features = builder.info.features
    image_key = next((k for k in ("image", "img") if k in features), None)
    if image_key is None:
        raise DatasetError(f"tfds:{name} has no 'image' feature (features: {list(features)}); "
                           "it is not an image dataset")
    label_key = "label" if "label" in features else None
    known_splits = list(builder.info.splits)  # empty until the dataset is prepared
    if known_splits and split not in known_splits and "[" not in split:
        raise DatasetError(f"tfds:{name} has no split {split!r}; splits: {known_splits}")
    try:
        ds = tfds.load(name, split=split, data_dir=data_dir, shuffle_files=False, download=True)
    except Exception as e:
        raise DatasetError(f"tfds:{name}:{split} could not be loaded or prepared ({type(e).__name__}: {e}). "
                           "Prepare it on a machine with internet (`tfds build " + name + "`) and pass "
                           "--data_dir=that TFDS data directory") from None
    if max_examples:
        ds = ds.take(max_examples)

    def convert(example):
        image = example[image_key]
        if image.shape.rank == 2:
            image = image[..., None]
        image = image[..., :3]
        h, w = tf.shape(image)[0], tf.shape(image)[1]
        side = tf.minimum(h, w)
        image = tf.image.crop_to_bounding_box(image, (h - side) // 2, (w - side) // 2, side, side)
        image = tf.image.resize(image, [image_size, image_size], method="bilinear", antialias=True)
        if image.shape[-1] == 3 and channels == 1:
            image = tf.image.rgb_to_grayscale(image)
        elif image.shape[-1] == 1 and channels == 3:
            image = tf.image.grayscale_to_rgb(image)
        image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
        label = tf.cast(example[label_key], tf.int64) if label_key else tf.constant(-1, tf.int64)
        return image, label

    class_names = None
    if label_key and hasattr(features[label_key], "names"):
        class_names = list(features[label_key].names)
    batches = ds.map(convert, num_parallel_calls=AUTOTUNE).batch(_CHUNK)
    count = _tfds_num_examples(builder, split)
    if count is not None and max_examples:
        count = min(count, int(max_examples))
    per_example = image_size * image_size * channels
    limit = _limit(in_memory_limit)

    def streamed():
        def convert_all(writer):
            for image_batch, label_batch in tfds.as_numpy(batches):
                writer.append(image_batch, label_batch if label_key else None)
            return {"source": f"tfds:{name}", "class_names": class_names}
        fingerprint = f"{builder.info.full_name}|{count}|{os.path.abspath(data_dir) if data_dir else ''}"
        return _streamed_source(f"tfds:{name}", split, image_size, channels,
                                {"max_examples": int(max_examples or 0), "data_dir": data_dir or ""},
                                fingerprint, (count or 0) * per_example, convert_all, cache_dir, log,
                                class_names=class_names)

    if count is not None and count * per_example > limit:
        return streamed()
    images, labels = [], []
    for image_batch, label_batch in tfds.as_numpy(batches):
        images.append(image_batch)
        labels.append(label_batch)
        if sum(map(len, images)) * per_example > limit:  # the split's size was not in its metadata
            del images, labels
            return streamed()
    if not images:
        raise DatasetError(f"tfds:{name}:{split} is empty")
    images = np.concatenate(images)
    return ImageSource(name=f"tfds:{name}", split=split, image_size=image_size, channels=channels,
                       num_examples=len(images), images=images,
                       labels=np.concatenate(labels) if label_key else None, class_names=class_names)


def load_run_data(config, split: str = "train", *, dataset: Optional[str] = None, max_examples: int = 0,
                  fallback_to_train: bool = False, log: Optional[Callable[[str], None]] = None) -> ImageSource:
    """`load_dataset` with a run config's data settings: its image size, channels, data_dir,
    `shapes` size and seed.

    Args:
        config: a resolved `tf_sparse_gen.config.Config`.
        split: the split to load.
        dataset: another dataset than the run's (`evaluate.py --dataset`).
        max_examples: keep only the first N examples (0 = all).
        fallback_to_train: a dataset without `split` (a `folder:`) gives its training split instead.
        log: progress lines of a conversion into the data cache.
    """
    d = config.data
    kwargs = dict(image_size=d.image_size, channels=d.channels, data_dir=d.data_dir, max_examples=max_examples,
                  seed=config.train.seed, shapes_num_examples=d.shapes_num_examples, log=log)
    try:
        return load_dataset(dataset or d.dataset, split, **kwargs)
    except DatasetError:
        if not fallback_to_train or split == "train":
            raise
        return load_dataset(dataset or d.dataset, "train", **kwargs)


def load_dataset(name: str, split: str = "train", image_size: int = 32, channels: int = 1,
                 data_dir: Optional[str] = None, max_examples: int = 0, seed: int = 0,
                 shapes_num_examples: int = 20000, cache_dir: Optional[str] = None,
                 in_memory_limit: Optional[int] = None,
                 log: Optional[Callable[[str], None]] = None) -> ImageSource:
    """Loads a dataset source by its `--dataset` name.

    Args:
        name: `fashion_mnist`, `digits`, `shapes`, `folder:PATH` or `tfds:NAME[:SPLIT]`.
        split: "train" or "test" (for `tfds:` any TFDS split; `folder:` has one).
        image_size, channels: every image is converted to `[image_size, image_size, channels]`.
        data_dir: where to look for the files (`fashion_mnist`, `tfds:`).
        max_examples: keep only the first N examples (0 = all).
        seed: generator seed of `shapes`.
        shapes_num_examples: size of the `shapes` train split (its test split is a fifth of it).
        cache_dir: root of the data cache that sources above the in-memory limit are converted
            into and streamed from (default `$TF_SPARSE_GEN_DATA_CACHE`, else
            `~/.cache/tf_sparse_gen/data`); each conversion gets a sub-directory named by a hash
            of (source, split, image_size, channels, max_examples[, seed]).
        in_memory_limit: decoded bytes above which the source is streamed (default
            `IN_MEMORY_LIMIT_BYTES`, 1 GiB).
        log: where conversion progress goes (default: stderr).
    """
    if image_size < 8:
        raise DatasetError(f"--image_size={image_size} is too small; use 8 or more")
    if channels not in (1, 3):
        raise DatasetError(f"channels={channels}: only 1 (grayscale) or 3 (RGB) are supported")
    labels = class_names = part_maps = part_names = None
    if name == "fashion_mnist":
        raw, labels = fashion_mnist_arrays(split, data_dir)
        class_names = FASHION_MNIST_CLASSES
    elif name == "digits":
        from sklearn.datasets import load_digits

        if split not in ("train", "test"):
            raise DatasetError(f"digits has splits 'train' and 'test', not {split!r}")
        d = load_digits()
        raw = np.clip(np.rint(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
        labels = d.target.astype(np.int64)
        # A fixed, documented split: every fifth example is test.
        mask = (np.arange(len(raw)) % 5 == 0) == (split == "test")
        raw, labels = raw[mask], labels[mask]
        class_names = tuple(str(i) for i in range(10))
    elif name == "shapes":
        from tf_sparse_gen.data import shapes

        if split not in ("train", "test"):
            raise DatasetError(f"shapes has splits 'train' and 'test', not {split!r}")
        if image_size < shapes.MIN_IMAGE_SIZE:
            raise DatasetError(f"shapes scenes need --image_size >= {shapes.MIN_IMAGE_SIZE}, got {image_size}")
        if seed < 0:
            raise DatasetError(f"shapes needs a seed >= 0, got {seed}")
        count = shapes_num_examples if split == "train" else max(1, shapes_num_examples // 5)
        if max_examples:
            count = min(count, max_examples)
        # The test split uses another seed stream so it never repeats a training scene.
        scene_seed = seed * 2 + (split == "test")
        class_names, part_names = shapes.CLASS_NAMES, shapes.PART_NAMES
        if count * image_size * image_size * (channels + 1) > _limit(in_memory_limit):  # images + part maps
            def convert(writer):
                for start in range(0, count, _CHUNK):
                    rgb, lab, parts = shapes.generate_scenes(min(_CHUNK, count - start), image_size,
                                                             seed=scene_seed, start=start)
                    writer.append(to_size_and_channels(rgb, image_size, channels), lab, parts)
                return {"source": "shapes"}
            return _streamed_source(name, split, image_size, channels, {"count": int(count), "seed": int(scene_seed),
                                                                 "scene_version": shapes.SCENE_VERSION},
                                    "generated", count * image_size * image_size * (channels + 1), convert,
                                    cache_dir, log, class_names=list(class_names), part_names=part_names)
        raw, labels, part_maps = shapes.generate_scenes(count, image_size, seed=scene_seed)
    elif name.startswith("folder:"):
        return _folder_source(name[len("folder:"):], split, image_size, channels, max_examples,
                              in_memory_limit, cache_dir, log)
    elif name.startswith("tfds:"):
        return _tfds_source(name[len("tfds:"):], split, data_dir, image_size, channels, max_examples,
                            in_memory_limit, cache_dir, log)
    else:
        raise DatasetError(f"unknown dataset {name!r}; use one of: fashion_mnist, digits, shapes, "
                           "folder:PATH, tfds:NAME[:SPLIT]")
    if max_examples:
        raw, labels = raw[:max_examples], labels[:max_examples] if labels is not None else None
        part_maps = part_maps[:max_examples] if part_maps is not None else None
    if len(raw) * image_size * image_size * channels > _limit(in_memory_limit):
        def convert(writer):
            for start in range(0, len(raw), _CHUNK):
                writer.append(to_size_and_channels(raw[start:start + _CHUNK], image_size, channels),
                              labels[start:start + _CHUNK] if labels is not None else None)
            return {"source": name}
        fingerprint = hashlib.sha256(raw[:64].tobytes()).hexdigest() + f"|{len(raw)}"
        return _streamed_source(name, split, image_size, channels,
                                {"max_examples": int(max_examples or 0), "data_dir": data_dir or ""}, fingerprint,
                                len(raw) * image_size * image_size * channels, convert, cache_dir, log,
                                class_names=list(class_names) if class_names else None)
    images = to_size_and_channels(raw, image_size, channels)
    if part_maps is not None and part_maps.shape[1] != image_size:
        raise DatasetError("internal: shapes part maps do not match the image size")
    return ImageSource(name=name, split=split, image_size=image_size, channels=channels,
                       num_examples=len(images), images=images, labels=labels, class_names=class_names,
                       part_maps=part_maps, part_names=part_names)

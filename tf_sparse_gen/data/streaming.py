"""The on-disk data cache of sources larger than `IN_MEMORY_LIMIT_BYTES`.

A source above the limit is converted once, chunk by chunk (never held in memory whole),
into a directory of the data cache:

    <cache root>/<key>/meta.json      what was converted: source, split, size, channels,
                                      example count, class names, skipped files, fingerprint
    <cache root>/<key>/images.u8      uint8 [N, S, S, C], example i at byte i * S * S * C
    <cache root>/<key>/labels.npy     int64 [N] (sources with labels)
    <cache root>/<key>/part_maps.u8   uint8 [N, S, S] (`shapes` only)

`key` is a hash of (source, split, image size, channels, max_examples, generator seed);
`meta.json` also keeps a fingerprint of the inputs (a folder's file names, sizes and
modification times; a TFDS builder's version and example count), and a cache whose
fingerprint no longer matches is rebuilt. The images are read back through a read-only
`np.memmap`: fixed-size records give random access by index, so training keeps the exact
per-epoch global shuffle of the in-memory sources (the same batches, bit for bit, as if the
source had fitted in memory) and resuming at any step costs nothing. The operating
system's page cache holds whatever part of the file memory allows.

The cache root is `cache_dir` if given, else `$TF_SPARSE_GEN_DATA_CACHE`, else
`$TF_SPARSE_GEN_HOME/data`, else `~/.cache/tf_sparse_gen/data`. Conversions of the same key
by several processes (the workers of a multi-worker run on one machine) are serialised by
a lock file; the first converts, the others wait and reuse its result.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
import shutil
import sys
import tempfile
import time
from typing import Callable, Iterable, Optional, Sequence, Tuple

import numpy as np

FORMAT_VERSION = 1
CACHE_ENV = "TF_SPARSE_GEN_DATA_CACHE"
META_FILE = "meta.json"
IMAGES_FILE = "images.u8"
LABELS_FILE = "labels.npy"
PART_MAPS_FILE = "part_maps.u8"


def default_cache_root() -> str:
    if os.environ.get(CACHE_ENV):
        return os.environ[CACHE_ENV]
    home = os.environ.get("TF_SPARSE_GEN_HOME", os.path.join(os.path.expanduser("~"), ".cache", "tf_sparse_gen"))
    return os.path.join(home, "data")


def cache_key(spec: dict) -> str:
    """A short stable hash of the conversion's parameters (a JSON-able dict)."""
    text = json.dumps(dict(spec, format=FORMAT_VERSION), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def folder_fingerprint(root: str, paths: Sequence[str]) -> str:
    """A hash of every file's relative path, size and modification time."""
    h = hashlib.sha256()
    for p in paths:
        st = os.stat(p)
        h.update(f"{os.path.relpath(p, root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


@contextlib.contextmanager
def _locked(path: str):
    import fcntl

    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def read_meta(directory: str) -> Optional[dict]:
    try:
        with open(os.path.join(directory, META_FILE)) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return None
    if meta.get("format") != FORMAT_VERSION:
        return None
    expected = meta["num_examples"] * meta["image_size"] ** 2 * meta["channels"]
    try:
        if os.path.getsize(os.path.join(directory, IMAGES_FILE)) != expected:
            return None
    except OSError:
        return None
    return meta


class _Writer:
    """Appends uint8 chunks to the files of a cache directory being built."""

    def __init__(self, directory: str, image_shape: Tuple[int, int, int]):
        self.directory = directory
        self.image_shape = tuple(image_shape)
        self.count = 0
        self.labels = []
        self._images = open(os.path.join(directory, IMAGES_FILE), "wb")
        self._parts = None

    def append(self, images: np.ndarray, labels: Optional[np.ndarray] = None,
               part_maps: Optional[np.ndarray] = None) -> None:
        images = np.ascontiguousarray(images, dtype=np.uint8)
        if images.shape[1:] != self.image_shape:
            raise ValueError(f"internal: chunk of shape {images.shape} for a cache of {self.image_shape}")
        self._images.write(images.tobytes())
        if labels is not None:
            self.labels.append(np.asarray(labels, np.int64))
        if part_maps is not None:
            if self._parts is None:
                self._parts = open(os.path.join(self.directory, PART_MAPS_FILE), "wb")
            self._parts.write(np.ascontiguousarray(part_maps, dtype=np.uint8).tobytes())
        self.count += len(images)

    def close(self) -> None:
        for f in (self._images, self._parts):
            if f is not None:
                f.flush()
                os.fsync(f.fileno())
                f.close()
        if self.labels:
            np.save(os.path.join(self.directory, LABELS_FILE), np.concatenate(self.labels))


def build_or_open(root: str, key: str, fingerprint: str, image_shape: Tuple[int, int, int], needed_bytes: int,
                  convert: Callable[[_Writer], dict], describe: str,
                  log: Callable[[str], None]) -> Tuple[str, dict]:
    """The cache directory of `key` (converting with `convert(writer) -> extra meta` if absent or stale).

    Returns (directory, meta).
    """
    root = os.path.abspath(os.path.expanduser(root))
    os.makedirs(root, exist_ok=True)
    directory = os.path.join(root, key)
    with _locked(os.path.join(root, key + ".lock")):
        meta = read_meta(directory)
        if meta is not None and meta.get("fingerprint") == fingerprint:
            return directory, meta
        if meta is not None:
            log(f"data cache {directory} was made from other files than {describe} has now; rebuilding it")
        free = shutil.disk_usage(root).free
        if free < needed_bytes * 1.02 + (64 << 20):
            from tf_sparse_gen.data import DatasetError

            raise DatasetError(
                f"{describe} needs {needed_bytes / 2**30:.2f} GiB in the data cache {root}, which has "
                f"{free / 2**30:.2f} GiB free; free some space or point the cache elsewhere "
                f"(load_dataset(cache_dir=...) or ${CACHE_ENV})")
        tmp = tempfile.mkdtemp(prefix=f".{key}.building-", dir=root)
        try:
            writer = _Writer(tmp, image_shape)
            t0 = time.monotonic()
            log(f"{describe}: converting to the data cache {directory} (once; about "
                f"{needed_bytes / 2**30:.2f} GiB)")
            extra = convert(writer)
            writer.close()
            if writer.count == 0:
                from tf_sparse_gen.data import DatasetError

                raise DatasetError(f"{describe}: no examples to convert")
            s = image_shape[0]
            meta = dict(extra, format=FORMAT_VERSION, num_examples=writer.count, image_size=s,
                        channels=image_shape[2], has_labels=bool(writer.labels),
                        has_part_maps=os.path.exists(os.path.join(tmp, PART_MAPS_FILE)),
                        fingerprint=fingerprint, seconds=round(time.monotonic() - t0, 1))
            with open(os.path.join(tmp, META_FILE), "w") as f:
                json.dump(meta, f, indent=1)
            old = None
            if os.path.exists(directory):
                old = tempfile.mkdtemp(prefix=f".{key}.old-", dir=root)
                os.rename(directory, os.path.join(old, "d"))
            os.rename(tmp, directory)
            if old:
                shutil.rmtree(old, ignore_errors=True)  # readers holding the old memmap keep its inode
            log(f"{describe}: {writer.count} examples converted in {meta['seconds']:.0f} s")
            return directory, meta
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def open_arrays(directory: str, meta: dict):
    """(images memmap [N,S,S,C], labels [N] or None, part_maps memmap [N,S,S] or None)."""
    n, s, c = meta["num_examples"], meta["image_size"], meta["channels"]
    images = np.memmap(os.path.join(directory, IMAGES_FILE), dtype=np.uint8, mode="r", shape=(n, s, s, c))
    try:  # batches are random rows: no read-around of 128 KiB per page fault on a cold cache
        images._mmap.madvise(mmap.MADV_RANDOM)
    except (AttributeError, OSError, ValueError):
        pass
    labels = np.load(os.path.join(directory, LABELS_FILE)) if meta.get("has_labels") else None
    parts = (np.memmap(os.path.join(directory, PART_MAPS_FILE), dtype=np.uint8, mode="r", shape=(n, s, s))
             if meta.get("has_part_maps") else None)
    return images, labels, parts


def _will_need(array: np.ndarray, rows: np.ndarray) -> None:
    """Asks the kernel to read the pages of `rows` of a memmap now, all at once (MADV_WILLNEED).

    On a cold cache the reads are then queued together instead of one page fault after the
    other, so a batch costs about one disk latency, not one per image.
    """
    mapped = getattr(array, "_mmap", None)
    if mapped is None or not hasattr(mapped, "madvise") or array.offset:
        return
    row = array.strides[0]
    page = mmap.PAGESIZE
    try:
        for i in rows.tolist():
            start = (i * row) // page * page
            mapped.madvise(mmap.MADV_WILLNEED, start, (i + 1) * row - start)
    except (OSError, ValueError):
        pass


def read_rows(array: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """array[idx] for a memmap, read in ascending offset order (sequential where indices are close)."""
    idx = np.asarray(idx, np.int64)
    order = np.argsort(idx, kind="stable")
    if isinstance(array, np.memmap):
        _will_need(array, idx[order])
    out = np.empty((len(idx),) + array.shape[1:], array.dtype)
    out[order] = array[idx[order]]
    return out


def stderr_log(message: str) -> None:
    print(f"tf_sparse_gen.data: {message}", file=sys.stderr, flush=True)


def chunked(items: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]

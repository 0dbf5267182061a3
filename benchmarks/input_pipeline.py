"""Does the input pipeline keep up with the training step? Images/s of `train_dataset` alone.

For each dataset source, iterates `source.train_dataset(64, seed=0)` (the
harness's pipeline: stateless per-epoch shuffle of indices, batched gather from
the decoded in-memory images, scaling to [-1, 1], prefetch) for a number of
batches after a warm-up and reports batches/s and images/s, next to the fastest
training step measured by `benchmarks/throughput.py` (read from its results.json,
if present) as the margin the pipeline has. Writes `<out>/results.json` and
`<out>/results.md`.

Streaming (sources above the in-memory limit, issue #17): generates a folder of
`--stream_examples` small PNGs (`--stream_size`, RGB, 100 class sub-folders) in a temp dir,
loads it with the in-memory limit lowered below its size, so it is converted once to the
data cache (timed) and streamed from disk by index, and measures `train_dataset(64)` on it:
warm (the cache file in the page cache) and cold (its pages dropped first with
posix_fadvise(DONTNEED), so the batches are read from the disk), next to the same images
held in memory. The goal: at least 10x the fastest training step.

  TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python benchmarks/input_pipeline.py
  TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python benchmarks/input_pipeline.py --stream_examples=0   # in-memory only
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

FLAGS = flags.FLAGS
flags.DEFINE_integer("batches", 300, "Timed batches per source.")
flags.DEFINE_integer("warmup", 20, "Untimed batches first.")
flags.DEFINE_string("out", os.path.join(ROOT, "benchmarks", "results", "input_pipeline"), "Where results go.")
flags.DEFINE_integer("stream_examples", 100000, "Images of the generated streaming folder (0: skip streaming).")
flags.DEFINE_integer("stream_size", 32, "Side of the generated images (and of the streamed ones).")
flags.DEFINE_string("stream_dir", None, "Where to generate the folder and its data cache (default: a temp dir, removed).")
flags.DEFINE_bool("in_memory", True, "Also measure the in-memory sources.")

# (dataset, channels): the sources a CPU user trains on here (tfds and folder: decode once, then the same path).
SOURCES = [("fashion_mnist", 1), ("shapes", 3), ("digits", 1)]


def _rate(source, warmup: int, batches: int, before_timing=None) -> dict:
    it = iter(source.train_dataset(64, seed=0, start_step=1000))
    for _ in range(warmup):
        next(it)
    if before_timing:
        before_timing()
    t0 = time.monotonic()
    for _ in range(batches):
        batch = next(it)
    batch[1].numpy()
    seconds = time.monotonic() - t0
    return {"batches_per_sec": batches / seconds, "images_per_sec": 64 * batches / seconds}


def pipeline_rate(dataset: str, channels: int) -> dict:
    from tf_sparse_gen.data import load_dataset

    t0 = time.monotonic()
    source = load_dataset(dataset, "train", 32, channels, seed=0)
    load_seconds = time.monotonic() - t0
    return {"examples": source.num_examples, "load_and_decode_seconds": load_seconds,
            **_rate(source, FLAGS.warmup, FLAGS.batches)}


def generate_folder(root: str, count: int, size: int) -> float:
    """`count` small RGB PNGs (smooth colour fields with a random box) in 100 class sub-folders."""
    import numpy as np
    from PIL import Image

    t0 = time.monotonic()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    for i in range(count):
        d = os.path.join(root, f"c{i % 100:02d}")
        if i < 100:
            os.makedirs(d, exist_ok=True)
        a, b, c = rng.uniform(0, 255, 3), rng.uniform(-120, 120, 3), rng.uniform(-120, 120, 3)
        img = a + b * yy[..., None] + c * xx[..., None]
        y0, x0 = rng.integers(0, size // 2, 2)
        img[y0:y0 + size // 3, x0:x0 + size // 3] = rng.uniform(0, 255, 3)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(os.path.join(d, f"{i:06d}.png"), compress_level=1)
    return time.monotonic() - t0


def drop_page_cache(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def resident_bytes(path: str):
    """Bytes of `path` in the page cache (util-linux fincore), or None if unknown."""
    try:
        out = subprocess.run(["fincore", "--bytes", "--noheadings", "--raw", "-o", "RES", path],
                             capture_output=True, text=True, timeout=30).stdout.split()
        return int(out[0])
    except Exception:
        return None


def streaming_rate(count: int, size: int) -> dict:
    import numpy as np

    from tf_sparse_gen import data as data_lib
    from tf_sparse_gen.data import load_dataset, streaming

    work = FLAGS.stream_dir or tempfile.mkdtemp(prefix="tf_sparse_gen_stream_bench_")
    folder, cache = os.path.join(work, "images"), os.path.join(work, "cache")
    try:
        generate_seconds = generate_folder(folder, count, size) if not os.path.isdir(folder) else None
        shutil.rmtree(cache, ignore_errors=True)
        decoded = count * size * size * 3
        # The one-time conversion runs in a child process, so that no mapping of the cache file
        # is left here (TensorFlow keeps the pipelines' Python functions, and their memmaps,
        # alive): only unmapped pages can be dropped from the page cache for the cold run.
        code = ("import json, sys, time; sys.path.insert(0, %r); from tf_sparse_gen.data import load_dataset; "
                "t0 = time.monotonic(); s = load_dataset(%r, 'train', %d, 3, in_memory_limit=%d, cache_dir=%r); "
                "print(json.dumps([time.monotonic() - t0, s.cache_path, s.streamed, s.num_examples]))"
                % (ROOT, f"folder:{folder}", size, decoded // 4, cache))
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        convert_seconds, cache_path, streamed, examples = json.loads(proc.stdout.strip().splitlines()[-1])
        assert streamed and examples == count, (streamed, examples)
        images_file = os.path.join(cache_path, streaming.IMAGES_FILE)
        drop_page_cache(images_file)
        dropped_to = resident_bytes(images_file)
        t0 = time.monotonic()
        source = load_dataset(f"folder:{folder}", "train", size, 3, in_memory_limit=decoded // 4, cache_dir=cache)
        reopen_seconds = time.monotonic() - t0
        assert source.cache_path == cache_path
        # Cold: batches read from the disk (fincore says how much of the file was cached).
        cold = dict(_rate(source, 0, FLAGS.batches), resident_bytes_before=dropped_to,
                    resident_bytes_after=resident_bytes(images_file))
        # Reading all of it (the in-memory copy) leaves the whole file in the page cache: warm.
        memory = data_lib.ImageSource(name="in memory", split="train", image_size=size, channels=3,
                                      num_examples=count, images=np.array(source.images), labels=source.labels)
        warm = dict(_rate(source, FLAGS.warmup, FLAGS.batches), resident_bytes_before=resident_bytes(images_file))
        in_memory = _rate(memory, FLAGS.warmup, FLAGS.batches)
        return {"examples": count, "image_shape": [size, size, 3], "batches": FLAGS.batches, "folder_bytes": _du(folder),
                "cache_bytes": os.path.getsize(images_file), "generate_seconds": generate_seconds,
                "convert_seconds": convert_seconds, "convert_images_per_sec": count / convert_seconds,
                "reopen_seconds": reopen_seconds,
                "warm": warm, "cold": cold, "same_images_in_memory": in_memory}
    finally:
        if not FLAGS.stream_dir:
            shutil.rmtree(work, ignore_errors=True)


def _du(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def main(argv):
    del argv
    fastest_step = None
    throughput = os.path.join(ROOT, "benchmarks", "results", "throughput", "results.json")
    if os.path.exists(throughput):
        with open(throughput) as f:
            variants = json.load(f).get("training", {}).get("variants", {})
        rates = {name: v["images_per_sec"] for name, v in variants.items() if name != "wgan_gp"}
        if rates:
            name = max(rates, key=rates.get)
            fastest_step = {"variant": name, "images_per_sec": rates[name]}
    results = {"batch_size": 64, "batches": FLAGS.batches, "fastest_training_step": fastest_step,
               "cpus": os.cpu_count(), "load_average_at_start": list(os.getloadavg()),
               "sources": ({f"{d}, {c} channel(s)": pipeline_rate(d, c) for d, c in SOURCES}
                           if FLAGS.in_memory else {})}
    if FLAGS.stream_examples:
        results["streaming"] = streaming_rate(FLAGS.stream_examples, FLAGS.stream_size)
    os.makedirs(FLAGS.out, exist_ok=True)
    with open(os.path.join(FLAGS.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    lines = ["| source | examples | load + decode s | pipeline img/s | x fastest training step |", "|---|---|---|---|---|"]
    for name, r in results["sources"].items():
        margin = f"{r['images_per_sec'] / fastest_step['images_per_sec']:.1f}" if fastest_step else "-"
        lines.append(f"| {name} | {r['examples']} | {r['load_and_decode_seconds']:.1f} | "
                     f"{r['images_per_sec']:.0f} | {margin} |")
    head = "# Input pipeline alone (batch 64, 32x32)\n\n"
    if fastest_step:
        head += (f"Fastest training step in benchmarks/results/throughput: {fastest_step['variant']} "
                 f"at {fastest_step['images_per_sec']:.0f} img/s.\n\n")
    if "streaming" in results:
        r = results["streaming"]
        s = r["image_shape"][0]

        def margin(rate):
            return f"{rate / fastest_step['images_per_sec']:.1f}" if fastest_step else "-"
        lines += ["", f"## Streamed from the data cache: folder of {r['examples']} {s}x{s} RGB PNGs", "",
                  f"Folder {r['folder_bytes'] / 2**20:.0f} MiB of PNGs"
                  + (f" (generated in {r['generate_seconds']:.0f} s)" if r["generate_seconds"] else "")
                  + f"; one-time conversion to the cache ({r['cache_bytes'] / 2**20:.0f} MiB): "
                  f"{r['convert_seconds']:.0f} s ({r['convert_images_per_sec']:.0f} img/s); "
                  f"re-opening the cache: {r['reopen_seconds']:.1f} s.", "",
                  "| pipeline | img/s | x fastest training step |", "|---|---|---|",
                  f"| streamed, warm (cache file in the page cache) | {r['warm']['images_per_sec']:.0f} | "
                  f"{margin(r['warm']['images_per_sec'])} |",
                  f"| streamed, cold (page cache dropped: random reads from disk) | {r['cold']['images_per_sec']:.0f} | "
                  f"{margin(r['cold']['images_per_sec'])} |",
                  f"| the same images in memory | {r['same_images_in_memory']['images_per_sec']:.0f} | "
                  f"{margin(r['same_images_in_memory']['images_per_sec'])} |"]
        if r["cold"].get("resident_bytes_before") is not None:
            lines += ["", f"Cold: {r['cold']['resident_bytes_before'] / 2**20:.1f} MiB of the cache file were still in "
                      f"the page cache when timing began, {r['cold']['resident_bytes_after'] / 2**20:.1f} MiB after "
                      f"{r['batches']} batches (MADV_RANDOM: a page fault reads 4 KiB pages, not 128 KiB)."]
    lines += ["", f"{results['cpus']} CPUs, load average {results['load_average_at_start'][0]:.1f} at the start "
              "(other jobs were running)."]
    with open(os.path.join(FLAGS.out, "results.md"), "w") as f:
        f.write(head + "\n".join(lines) + "\n")
    print(head + "\n".join(lines))


if __name__ == "__main__":
    app.run(main)

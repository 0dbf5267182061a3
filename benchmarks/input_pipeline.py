"""Does the input pipeline keep up with the training step? Images/s of `train_dataset` alone.

For each dataset source, iterates `source.train_dataset(64, seed=0)` (the
harness's pipeline: stateless per-epoch shuffle of indices, batched gather from
the decoded in-memory images, scaling to [-1, 1], prefetch) for a number of
batches after a warm-up and reports batches/s and images/s, next to the fastest
training step measured by `benchmarks/throughput.py` (read from its results.json,
if present) as the margin the pipeline has. Writes `<out>/results.json` and
`<out>/results.md`.

  TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python benchmarks/input_pipeline.py
"""

from __future__ import annotations

import json
import os
import sys
import time

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

FLAGS = flags.FLAGS
flags.DEFINE_integer("batches", 300, "Timed batches per source.")
flags.DEFINE_integer("warmup", 20, "Untimed batches first.")
flags.DEFINE_string("out", os.path.join(ROOT, "benchmarks", "results", "input_pipeline"), "Where results go.")

# (dataset, channels): the sources a CPU user trains on here (tfds and folder: decode once, then the same path).
SOURCES = [("fashion_mnist", 1), ("shapes", 3), ("digits", 1)]


def pipeline_rate(dataset: str, channels: int) -> dict:
    from tf_sparse_gen.data import load_dataset

    t0 = time.monotonic()
    source = load_dataset(dataset, "train", 32, channels, seed=0)
    load_seconds = time.monotonic() - t0
    it = iter(source.train_dataset(64, seed=0))
    for _ in range(FLAGS.warmup):
        next(it)
    t0 = time.monotonic()
    for _ in range(FLAGS.batches):
        batch = next(it)
    batch[1].numpy()
    seconds = time.monotonic() - t0
    return {"examples": source.num_examples, "load_and_decode_seconds": load_seconds,
            "batches_per_sec": FLAGS.batches / seconds, "images_per_sec": 64 * FLAGS.batches / seconds}


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
               "sources": {f"{d}, {c} channel(s)": pipeline_rate(d, c) for d, c in SOURCES}}
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
    with open(os.path.join(FLAGS.out, "results.md"), "w") as f:
        f.write(head + "\n".join(lines) + "\n")
    print(head + "\n".join(lines))


if __name__ == "__main__":
    app.run(main)

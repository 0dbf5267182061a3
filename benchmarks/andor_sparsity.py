"""Sparse vs dense AND-OR generator at the same budget (Fashion-MNIST 32x32 by default).

Trains the `small` preset twice (sparsity on / off) for the same number of
steps, evaluates both (fd_fmnist, kid_fmnist, is_fmnist, test-split
reconstruction MSE, the NCC interpretability score, active fractions), and
measures training and Langevin-inference throughput side by side in one
process (alternating rounds, so both variants see the same machine load).

Writes `<out>/results.json`, `<out>/results.md` and per-variant pictures
(samples, reconstructions, mid-layer basis functions, an AND-OR tree).

  .venv/bin/python benchmarks/andor_sparsity.py --steps=800 --num_samples=2000
  .venv/bin/python benchmarks/andor_sparsity.py --dataset=shapes --channels=3 \
      --metrics=fd,kid,mse,ncc,sparsity,purity --num_samples=1000     # issue: part purity
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import ANDOR_SMALL_UNTIL_2026_12_07, same_budget_configs  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("steps", 600, "Training steps per variant (batch 64).")
flags.DEFINE_integer("num_samples", 2000, "Samples / test images per evaluation.")
flags.DEFINE_integer("throughput_rounds", 3, "Alternating timing rounds.")
flags.DEFINE_integer("timed_steps", 10, "Steps per timing round.")
flags.DEFINE_string("dataset", "fashion_mnist", "Training and reference dataset.")
flags.DEFINE_integer("channels", 1, "Image channels.")
flags.DEFINE_list("metrics", "fd,kid,is,mse,ncc,sparsity", "Metrics of evaluate().")
flags.DEFINE_string("runs_dir", None, "Where the runs go (not committed); default benchmarks/out/andor_<dataset>.")
flags.DEFINE_string("out", None, "Where results and pictures go; default benchmarks/results/andor_<dataset>.")

# The `small` recipe these results were measured with (see benchmarks/common.py).
VARIANTS = {"sparse": {**ANDOR_SMALL_UNTIL_2026_12_07, "andor.sparsity": True},
            "dense": {**ANDOR_SMALL_UNTIL_2026_12_07, "andor.sparsity": False}}


def throughput(configs, rounds, timed_steps, dataset, channels):
    """Images/s of the training step and of Langevin inference, alternating between variants."""
    import tensorflow as tf

    from tf_sparse_gen.data import load_dataset
    from tf_sparse_gen.families import build_model

    source = load_dataset(dataset, "train", 32, channels, max_examples=5000)
    batches = list(source.train_dataset(64, seed=0).take(4))
    models, steps, infers = {}, {}, {}
    for name, config in configs.items():
        model = build_model(config, source.num_examples, source.image_shape)
        model.compile()
        models[name] = model
        steps[name] = tf.function(model.train_step)
        infers[name] = model.infer_latent
        steps[name](batches[0])  # trace
        infers[name](batches[0][1], steps=30)
    train_t = {n: 0.0 for n in configs}
    infer_t = {n: 0.0 for n in configs}
    for _ in range(rounds):
        for name in configs:
            t0 = time.perf_counter()
            for i in range(timed_steps):
                logs = steps[name](batches[i % len(batches)])
            float(logs["recon_loss"])
            train_t[name] += time.perf_counter() - t0
            t0 = time.perf_counter()
            for i in range(2):
                infers[name](batches[i][1], steps=30).numpy()
            infer_t[name] += time.perf_counter() - t0
    return ({n: rounds * timed_steps * 64 / t for n, t in train_t.items()},
            {n: rounds * 2 * 64 / t for n, t in infer_t.items()})


def main(argv):
    del argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tf_sparse_gen import evaluation, trainer

    out = FLAGS.out or f"benchmarks/results/andor_{FLAGS.dataset}"
    runs_dir = FLAGS.runs_dir or f"benchmarks/out/andor_{FLAGS.dataset}"
    os.makedirs(out, exist_ok=True)
    configs = same_budget_configs("andor", VARIANTS, FLAGS.steps, FLAGS.dataset, FLAGS.channels)
    results = {"dataset": FLAGS.dataset, "channels": FLAGS.channels, "steps": FLAGS.steps, "batch_size": 64, "num_samples": FLAGS.num_samples, "variants": {}}
    for name, config in configs.items():
        run_dir = os.path.join(runs_dir, name)
        t0 = time.monotonic()
        summary = trainer.train(config, run_dir)
        # A run already at --steps (an earlier invocation trained it) has no training time here.
        train_seconds = time.monotonic() - t0 if summary["final_step"] > summary["start_step"] else None
        report = evaluation.evaluate(run_dir, metrics=FLAGS.metrics, num_samples=FLAGS.num_samples)
        results["variants"][name] = {"train_seconds": train_seconds,
                                     "metrics": {k: v["value"] for k, v in report["metrics"].items()},
                                     "metric_details": report["metrics"], "eval_timing": report["timing"]}
        for fig in ("samples.png", "reconstructions.png", "and_or_tree.png", "and_or_tree.json",
                    "basis_block0_8x8.png", "basis_block1_16x16.png", "purity_confusion_block0_8x8.png",
                    "purity_parts_block0_8x8.png"):
            src = os.path.join(run_dir, "eval", fig)
            if os.path.exists(src):
                shutil.copy(src, os.path.join(out, f"{name}_{fig}"))
    train_ips, infer_ips = throughput(configs, FLAGS.throughput_rounds, FLAGS.timed_steps, FLAGS.dataset,
                                      FLAGS.channels)
    results["train_images_per_sec"] = train_ips
    results["langevin30_images_per_sec"] = infer_ips
    results["sparse_over_dense_step_time"] = train_ips["dense"] / train_ips["sparse"]
    results["sparse_over_dense_langevin_time"] = infer_ips["dense"] / infer_ips["sparse"]
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    keys = sorted(set().union(*(v["metrics"] for v in results["variants"].values())))
    lines = ["| metric | sparse | dense |", "|---|---|---|"]
    for k in keys:
        row = [results["variants"][v]["metrics"].get(k) for v in ("sparse", "dense")]
        lines.append(f"| {k} | " + " | ".join("" if x is None else f"{x:.4g}" for x in row) + " |")
    lines.append("| train img/s (side by side) | " + " | ".join(f"{train_ips[v]:.1f}" for v in ("sparse", "dense")) + " |")
    lines.append("| Langevin-30 img/s | " + " | ".join(f"{infer_ips[v]:.1f}" for v in ("sparse", "dense")) + " |")
    lines.append("| wall-clock training s | " + " | ".join(
        "-" if results['variants'][v]['train_seconds'] is None else f"{results['variants'][v]['train_seconds']:.0f}"
        for v in ("sparse", "dense")) + " |")
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(f"# AND-OR: sparsity on vs off, {FLAGS.dataset} 32x32x{FLAGS.channels}, "
                f"{FLAGS.steps} steps of batch 64 each\n\n")
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    app.run(main)

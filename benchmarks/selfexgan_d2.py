"""SelfExGAN with vs without the pair critic D2, at the same budget (Fashion-MNIST 32x32).

The thesis (Liu 2018, ch. 3-4) claims that matching pairs (x, E(x)) against
(G(z), z) with D2 gives the latent a meaning: without any reconstruction loss,
G(E(x)) should come back close to x (Theorem 2: G(E(x)) = x at the optimum),
and samples around E(x) should keep x's label (section 4.2.1).

Trains the `small` preset twice (`selfexgan.d2` true / false) for the same
number of steps of batch 64, then measures on the test split:

- `mse`: per-pixel MSE of G(E(x)) on [0, 1] (`evaluation.evaluate`);
- `fd_fmnist`, `kid_fmnist`, `is_fmnist` of G(z), z ~ N(0, I) (`evaluate`);
- labelled generation (`explore.labelled_generation`): the Fashion-MNIST
  classifier's accuracy on G(E(x) + noise * eps) against x's label, with the
  accuracy on the sources x as the reference; also at noise 0 (G(E(x)) alone);
- `knn5_latent`: leave-one-out 5-NN label accuracy of the codes E(x) (does
  E separate the classes without labels?).

Writes `<out>/results.json`, `<out>/results.md` and per-variant
`samples.png`, `reconstructions.png` and `labelled.png`.

  .venv/bin/python benchmarks/selfexgan_d2.py                       # 1500 steps, 2000 samples
  .venv/bin/python benchmarks/selfexgan_d2.py --steps=300 --num_samples=500
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import same_budget_configs  # noqa: E402
from benchmarks.latent_knn import knn5_codes_vs_pixels  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("steps", 1500, "Training steps per variant (batch 64).")
flags.DEFINE_integer("num_samples", 2000, "Samples / test images per evaluate().")
flags.DEFINE_integer("labelled_images", 500, "Labelled test images for labelled generation.")
flags.DEFINE_integer("per_image", 4, "Generated images per labelled source.")
flags.DEFINE_float("noise", 0.3, "Latent noise of labelled generation (the explore default).")
flags.DEFINE_integer("knn_images", 1000, "Test images for the 5-NN accuracy of E(x).")
flags.DEFINE_bool("fresh", True, "Delete earlier runs of this benchmark first (else resume them).")
flags.DEFINE_string("runs_dir", "benchmarks/out/selfexgan_d2", "Where the runs go (not committed).")
flags.DEFINE_string("out", "benchmarks/results/selfexgan_d2", "Where results and pictures go.")

VARIANTS = {"selfexgan": {"selfexgan.d2": True}, "no_d2": {"selfexgan.d2": False}}
METRICS = ["fd", "kid", "is", "mse"]
DATASET = "fashion_mnist"


def latent_meaning(run_dir: str, out_dir: str) -> dict:
    """Labelled generation (noise and noise 0) and the 5-NN accuracy of E(x) on test images."""
    import numpy as np

    from tf_sparse_gen import applications as explore
    from tf_sparse_gen.runs import load_trained_model

    run = load_trained_model(run_dir)
    model, config = run.model, run.config
    t0 = time.monotonic()
    images, labels, class_names = explore.load_images(config, "test", FLAGS.labelled_images)
    noisy = explore.labelled_generation(model, images, labels, out_dir, class_names, per_image=FLAGS.per_image,
                                        noise=FLAGS.noise, seed=0, dataset=DATASET)
    recon = explore.generate_all(model, explore.encode_all(model, images))
    at_zero = explore.classifier_accuracy(recon, labels, DATASET)
    knn = knn5_codes_vs_pixels(model, config, FLAGS.knn_images)  # the latent and, as reference, raw pixels
    return {"labelled_accuracy": noisy["generated"]["accuracy"],
            "labelled_reason": noisy["generated"]["reason"],
            "source_accuracy": noisy["sources"]["accuracy"],
            "recon_label_accuracy": at_zero["accuracy"],
            "knn5_latent": knn["knn5_latent"], "knn5_pixels": knn["knn5_pixels"],
            "labelled_png": noisy["png"], "num_sources": int(len(images)),
            "num_generated": noisy["num_generated"], "seconds": time.monotonic() - t0,
            "labelled_classes": int(len(np.unique(labels)))}


def main(argv):
    del argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tf_sparse_gen import evaluation, trainer

    out, runs_dir = FLAGS.out, FLAGS.runs_dir
    os.makedirs(out, exist_ok=True)
    configs = same_budget_configs("selfexgan", VARIANTS, FLAGS.steps, DATASET)
    results = {"dataset": DATASET, "image_size": 32, "preset": "small", "steps": FLAGS.steps, "batch_size": 64,
               "num_samples": FLAGS.num_samples, "labelled_images": FLAGS.labelled_images,
               "per_image": FLAGS.per_image, "noise": FLAGS.noise, "knn_images": FLAGS.knn_images,
               "variants": {}}
    t_all = time.monotonic()
    for name, config in configs.items():
        run_dir = os.path.join(runs_dir, name)
        if FLAGS.fresh and os.path.isdir(run_dir):
            shutil.rmtree(run_dir)
        t0 = time.monotonic()
        summary = trainer.train(config, run_dir)
        train_seconds = time.monotonic() - t0
        t0 = time.monotonic()
        report = evaluation.evaluate(run_dir, metrics=METRICS, num_samples=FLAGS.num_samples)
        eval_seconds = time.monotonic() - t0
        meaning = latent_meaning(run_dir, os.path.join(run_dir, "explore"))
        results["variants"][name] = {
            "train_seconds": train_seconds, "eval_seconds": eval_seconds, "final_step": summary["final_step"],
            "stopped_by": summary["stopped_by"],
            "metrics": {k: v["value"] for k, v in report["metrics"].items()},
            "metric_details": report["metrics"], "eval_timing": report["timing"],
            "latent_meaning": {k: v for k, v in meaning.items() if k != "labelled_png"}}
        for fig in ("samples.png", "reconstructions.png"):
            src = os.path.join(run_dir, "eval", fig)
            if os.path.exists(src):
                shutil.copy(src, os.path.join(out, f"{name}_{fig}"))
        shutil.copy(meaning["labelled_png"], os.path.join(out, f"{name}_labelled.png"))
    results["total_seconds"] = time.monotonic() - t_all
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    write_markdown(results, os.path.join(out, "results.md"))
    print(open(os.path.join(out, "results.md")).read())


ROWS = [  # (label, getter, better)
    ("reconstruction MSE of G(E(x)), test, [0,1] per pixel", lambda v: v["metrics"].get("mse"), "lower"),
    ("fd_fmnist (G(z), z ~ N(0, I))", lambda v: v["metrics"].get("fd_fmnist"), "lower"),
    ("kid_fmnist", lambda v: v["metrics"].get("kid_fmnist"), "lower"),
    ("is_fmnist", lambda v: v["metrics"].get("is_fmnist"), "higher"),
    ("labelled generation: classifier accuracy on G(E(x) + noise)",
     lambda v: v["latent_meaning"]["labelled_accuracy"], "higher"),
    ("classifier accuracy on G(E(x)) (noise 0)", lambda v: v["latent_meaning"]["recon_label_accuracy"], "higher"),
    ("classifier accuracy on the sources x (reference)", lambda v: v["latent_meaning"]["source_accuracy"], "-"),
    ("5-NN label accuracy of E(x), test", lambda v: v["latent_meaning"]["knn5_latent"], "higher"),
    ("5-NN label accuracy of raw pixels (reference)", lambda v: v["latent_meaning"]["knn5_pixels"], "-"),
    ("wall-clock training s", lambda v: v["train_seconds"], "-"),
]


def _fmt(x):
    return "" if x is None else f"{x:.4g}"


def write_markdown(results: dict, path: str) -> None:
    v = results["variants"]
    names = list(v)
    lines = ["| metric | better | " + " | ".join(
        "SelfExGAN (with D2)" if n == "selfexgan" else "without D2" for n in names) + " |",
        "|---|---|" + "---|" * len(names)]
    for label, get, better in ROWS:
        lines.append(f"| {label} | {better} | " + " | ".join(_fmt(get(v[n])) for n in names) + " |")
    d2, no = v.get("selfexgan"), v.get("no_d2")
    findings = []
    if d2 and no:
        def cmp(get, lower_better, what):
            a, b = get(d2), get(no)
            if a is None or b is None:
                return f"- {what}: not measured."
            better = a < b if lower_better else a > b
            return f"- {what}: {_fmt(a)} with D2 vs {_fmt(b)} without ({'D2 better' if better else 'D2 not better'})."
        findings = [
            cmp(ROWS[0][1], True, "Reconstruction MSE of G(E(x))"),
            cmp(ROWS[4][1], False, f"Label kept by G(E(x) + {results['noise']} eps)"),
            cmp(ROWS[5][1], False, "Label kept by G(E(x))"),
            cmp(ROWS[7][1], False, "5-NN accuracy of the codes"),
            cmp(ROWS[1][1], True, "fd_fmnist of samples"),
        ]
    text = [
        f"# SelfExGAN: the pair critic D2 on vs off, Fashion-MNIST 32x32, `small` preset, "
        f"{results['steps']} steps of batch 64 each",
        "",
        "**What the thesis claims.** Liu (2018) trains E and G with no reconstruction loss; the pair critic D2 "
        "matches real pairs (x, E(x)) against fake pairs (G(z), z) (eq. 3.4, BiGAN reading), and Theorem 2 "
        "says that at the optimum G(E(x)) = x and E(G(z)) = z. Pair matching is what gives the latent a "
        "meaning: E(x) is a code G decodes back into x, so G(E(x)) reconstructs x and samples around E(x) "
        "keep x's class (section 4.2.1, labelled generation). Without D2, E learns only from the batch-KL "
        "term and nothing ties E(x) to G's use of the latent, so reconstructions and labelled generation "
        "should be near chance.",
        "",
        f"Measured on the test split: {results['num_samples']} samples / images for evaluate(); "
        f"{results['labelled_images']} labelled sources x {results['per_image']} for labelled generation "
        f"(noise {results['noise']}); {results['knn_images']} images for the 5-NN accuracy. Chance level of "
        "the label accuracies is 0.1.",
        "",
        *lines,
        "",
        "**What we found.**",
        *findings,
        "",
        f"Total benchmark time: {results['total_seconds'] / 60:.1f} min on a shared 2-core CPU. "
        "Pictures: `<variant>_samples.png`, `<variant>_reconstructions.png` (original | G(E(x))), "
        "`<variant>_labelled.png` (each row: a source, then G(E(x) + noise) samples).",
    ]
    with open(path, "w") as f:
        f.write("\n".join(text) + "\n")


if __name__ == "__main__":
    app.run(main)

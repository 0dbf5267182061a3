"""Evaluation of a trained run: metrics.json and a self-contained report.html.

Every model family is measured the same way:
- `fd`, `kid`, `is`: Fréchet distance, kernel inception distance and inception
  score between generated samples and the reference split, in the feature
  space of the chosen feature network (`fmnist`: the project's Fashion-MNIST
  classifier, names `fd_fmnist`...; `inception`: Keras InceptionV3, `fid`...);
- `mse`: per-pixel reconstruction MSE on the [0, 1] scale of held-out images
  (Langevin inference for the AND-OR model, the encoder for the GANs);
- `sparsity`: per-layer fraction of active units of generated samples;
- `ncc`: the AND-OR paper's interpretability score (Table 4): mid-layer basis
  functions template-matched against training images.

Features are streamed batch by batch; only the features themselves are kept
(for KID), and all metric math is float64 (see `tf_sparse_gen.metrics`).
"""

from __future__ import annotations

import functools
import json
import os
import time
from typing import Callable, Dict, Optional, Sequence

import numpy as np
import tensorflow as tf

from tf_sparse_gen import images as image_lib
from tf_sparse_gen.config import ConfigError
from tf_sparse_gen.data import DatasetError, load_run_data
from tf_sparse_gen.report import write_html_report
from tf_sparse_gen.rundir import RunDir
from tf_sparse_gen.runs import load_trained_model

ALL_METRICS = ("fd", "kid", "is", "mse", "ncc", "sparsity", "purity", "artefacts")
DEFAULT_METRICS = ("fd", "kid", "is", "mse", "ncc", "sparsity")


class _Progress:
    """A progress line per stage with rate and ETA."""

    def __init__(self, log, stage: str, total: int):
        self.log, self.stage, self.total = log, stage, total
        self.start = time.monotonic()
        self.done = 0
        self._last = 0.0

    def update(self, n: int):
        self.done += n
        now = time.monotonic()
        if now - self._last >= 5.0 or self.done >= self.total:
            self._last = now
            rate = self.done / max(now - self.start, 1e-9)
            eta = (self.total - self.done) / max(rate, 1e-9)
            self.log(f"evaluate: {self.stage} {self.done}/{self.total} ({rate:.1f} img/s, ETA {eta:.0f}s)")

    @property
    def rate(self) -> float:
        return self.done / max(time.monotonic() - self.start, 1e-9)


# Training images whose mean is the `mse` metric's baseline reconstruction.
MEAN_IMAGES = 10000


def evaluate(model_dir: str, metrics: Sequence[str] = DEFAULT_METRICS, dataset: Optional[str] = None,
             split: str = "test", num_samples: Optional[int] = None, num_reconstructions: Optional[int] = None,
             feature_net: str = "fmnist",
             inception_weights: Optional[str] = None, batch_size: int = 100, ncc_latents: int = 8,
             ncc_images: int = 1000, purity_scenes: int = 100, seed: int = 0, ema: bool = True,
             out_dir: Optional[str] = None,
             log: Callable[[str], None] = print) -> dict:
    """Evaluates the latest checkpoint of `model_dir`; writes eval/metrics.json and eval/report.html.

    Args:
        model_dir: a run directory.
        metrics: a subset of `ALL_METRICS`.
        dataset: the reference dataset (default: the run's).
        split: the reference split (default "test").
        num_samples: generated samples and reconstructed images (default: the
            size of the reference split).
        num_reconstructions: held-out images of the `mse` metric (default: num_samples).
        feature_net: "fmnist" or "inception".
        ncc_latents / ncc_images: latents whose mid-layer bases are matched, and
            training images they are matched against.
        purity_scenes: held-out scenes of the part-purity metric (`shapes` only).
        ema: evaluate the averaged generator weights where the run kept them (False: the raw ones).
        out_dir: where metrics.json, report.html and the figures go (default model_dir/eval;
            for a shipped run of pretrained/, a folder outside it: `RunDir.eval_dir`).
    """
    unknown = set(metrics) - set(ALL_METRICS)
    if unknown:
        raise ValueError(f"unknown metric(s) {sorted(unknown)}; choose from {', '.join(ALL_METRICS)}")
    t_start = time.monotonic()
    trained = load_trained_model(model_dir, ema=ema)
    model, config = trained.model, trained.config
    dataset = dataset or config.data.dataset
    ref = load_run_data(config, split, dataset=dataset)
    # Training images for the mse baseline and the NCC match, loaded once with the larger limit.
    train_limit = max(MEAN_IMAGES if "mse" in metrics else 0, ncc_images if "ncc" in metrics else 0)

    @functools.lru_cache(maxsize=None)
    def training_split():  # loaded once, and only when a metric needs it
        return load_run_data(config, "train", dataset=dataset, max_examples=train_limit)
    n = ref.num_examples if num_samples is None else min(int(num_samples), ref.num_examples)
    if "purity" in metrics:  # checked before any work
        if ref.part_maps is None:
            raise DatasetError(f"purity needs ground-truth part maps, which {dataset} lacks; use --dataset=shapes")
        if not model.has_part_units:
            raise ConfigError(f"purity needs a model whose units have image-space bases; --model={config.model} "
                              "has none")
    out_dir = out_dir or RunDir(trained.model_dir).eval_dir()
    os.makedirs(out_dir, exist_ok=True)
    where = {"dataset": dataset, "split": split}
    results: Dict[str, dict] = {}
    timing: Dict[str, float] = {}
    log(f"evaluate: {config.model} at step {trained.step} against {dataset}:{split} "
        f"({n} of {ref.num_examples} images)")

    zs = model.sample_latents(n, seed=seed + 1000)
    figures: Dict[str, str] = {}

    if {"fd", "kid", "is"} & set(metrics):
        from tf_sparse_gen.metrics import load_feature_net

        net = load_feature_net(feature_net, inception_weights)
        keep = "kid" in metrics
        progress = _Progress(log, f"real features ({net.name})", n)

        def real_batches():
            for batch in ref.eval_dataset(batch_size, limit=n):
                progress.update(int(batch[1].shape[0]))
                yield batch[1]
        real = net.collect(real_batches(), keep_features=keep)
        timing["feature_images_per_sec"] = progress.rate
        progress = _Progress(log, "samples", n)

        def fake_batches():
            for i in range(0, n, batch_size):
                images = model.generate(zs[i:i + batch_size])
                progress.update(int(images.shape[0]))
                yield images
        fake = net.collect(fake_batches(), keep_features=keep)
        timing["generate_and_features_images_per_sec"] = progress.rate
        values = net.compare(real, fake, kid_subset_size=min(1000, n), seed=seed)
        names = net.metric_names
        for key in ("fd", "kid", "is"):
            if key not in metrics or names[key] not in values:
                continue
            entry = {"value": float(values[names[key]]), "feature_net": net.name, "num_samples": n,
                     "num_real": int(values["num_real"]), **where}
            if key == "kid":
                # Subsets of all n samples are the same set: one subset, no spread to report.
                subset = min(1000, n)
                entry.update(subset_size=subset, num_subsets=100 if subset < n else 1)
                if subset < n:
                    entry["std"] = float(values[names[key] + "_std"])
            elif names[key] + "_std" in values:
                entry["std"] = float(values[names[key] + "_std"])
            if key == "is":
                entry.update(num_real=0, of="generated samples")
            results[names[key]] = entry

    if "artefacts" in metrics:
        from tf_sparse_gen.metrics.artefacts import SecondDifferenceStats, artefact_ratios

        real_d, fake_d = SecondDifferenceStats(), SecondDifferenceStats()
        for batch in ref.eval_dataset(batch_size, limit=n):
            real_d.update(batch[1].numpy())
        for i in range(0, n, batch_size):
            fake_d.update(model.generate(zs[i:i + batch_size]).numpy())
        for key, value in artefact_ratios(fake_d, real_d).items():
            results[key] = {"value": value, "num_samples": n, "of": "generated samples vs real images",
                            "ideal": 1.0, **where}

    if "mse" in metrics:
        n_rec = n if num_reconstructions is None else min(int(num_reconstructions), ref.num_examples)
        progress = _Progress(log, "reconstructions", n_rec)
        # The baseline: every image "reconstructed" as the mean of (up to MEAN_IMAGES) training images.
        mean_images = training_split().take_images(MEAN_IMAGES)
        mean_image = mean_images.astype(np.float64).mean(axis=0)
        total, baseline, count, shown = 0.0, 0.0, 0, None
        for batch in ref.eval_dataset(batch_size, limit=n_rec):
            images = batch[1]
            recon = tf.cast(model.reconstruct(images), tf.float32)
            # [-1, 1] -> [0, 1]: the squared error scales by 1/4.
            total += float(tf.reduce_sum(tf.square(tf.cast(images, tf.float64) - tf.cast(recon, tf.float64)))) / 4.0
            baseline += float(np.sum(np.square(images.numpy().astype(np.float64) - mean_image))) / 4.0
            count += int(np.prod(images.shape))
            if shown is None:
                shown = (images.numpy()[:16], recon.numpy()[:16])
            progress.update(int(images.shape[0]))
        timing["reconstruct_images_per_sec"] = progress.rate
        results["mse"] = {"value": total / count, "num_samples": n_rec, "scale": "[0, 1] per pixel", **where}
        results["mse_mean_image"] = {"value": baseline / count, "num_samples": n_rec, "scale": "[0, 1] per pixel",
                                     "of": f"the mean of {len(mean_images)} training images as every "
                                           "reconstruction", **where}
        results["mse_ratio"] = {"value": total / baseline if baseline else float("nan"),
                                "of": "mse / mse_mean_image", **where}
        pairs = np.stack([shown[0], shown[1]], axis=1).reshape(-1, *shown[0].shape[1:])
        figures["reconstructions (original | reconstruction)"] = image_lib.save_png(
            image_lib.image_grid(pairs, ncol=8), os.path.join(out_dir, "reconstructions.png"), scale=3)

    if "sparsity" in metrics:
        fractions = model.active_fractions(zs[:min(n, 256)])
        for name, value in fractions.items():
            results[f"active_{name}"] = {"value": value, "num_samples": min(n, 256), "of": "generated samples"}

    if "ncc" in metrics:
        templates = model.interpretability_templates(zs[:ncc_latents])
        if templates:
            from tf_sparse_gen.metrics import interpretability_score

            t0 = time.monotonic()
            images = training_split().take_images(ncc_images)
            score, per = interpretability_score(templates, images)
            # The floor: the same architecture and seed at initialisation, same latents and protocol.
            floor_templates = model.untrained_copy().interpretability_templates(zs[:ncc_latents])
            floor, _ = interpretability_score(floor_templates, images) if floor_templates else (float("nan"), None)
            timing["ncc_seconds"] = time.monotonic() - t0
            protocol = {"num_latents": ncc_latents, "num_images": len(images), "dataset": dataset,
                        "split": "train", "units": "a seeded random sample of each latent's active mid-layer "
                        "units (all when fewer)", "crop": "where |B| > 0.1 of its peak"}
            results["ncc"] = {"value": score, "std": float(np.std(per)), "num_templates": len(templates),
                              **protocol}
            results["ncc_untrained"] = {"value": floor, "num_templates": len(floor_templates), **protocol,
                                        "of": "the same architecture and seed at initialisation"}
            results["ncc_lift"] = {"value": score - floor, "of": "ncc - ncc_untrained", **protocol}

    purity = None
    if "purity" in metrics:
        m = min(n, purity_scenes)
        t0 = time.monotonic()
        part_results, part_figures, purity = model.part_metrics(
            ref.take_images(m), ref.part_maps[:m], ref.part_names, out_dir, log=log)
        timing["purity_seconds"] = time.monotonic() - t0
        results.update({k: {**v, **where} for k, v in part_results.items()})
        figures.update(part_figures)

    samples = model.generate(zs[:64]).numpy()
    figures = {"samples": image_lib.save_png(image_lib.image_grid(samples, ncol=8),
                                             os.path.join(out_dir, "samples.png"), scale=3), **figures}
    figures.update(model.interpretation_figures(zs[:8], out_dir))
    timing["total_seconds"] = time.monotonic() - t_start
    report = {"model_dir": trained.model_dir, "model": config.model, "preset": config.preset,
              "step": trained.step, "checkpoint": trained.checkpoint, "reference": where,
              "ema": {"decay": config.train.ema_decay, "averaged_weights_used": bool(model.ema_in_use)},
              "num_samples": n, "metrics": results, "timing": timing,
              "purity_details": {k: {kk: vv for kk, vv in v.items() if kk != "channels"} for k, v in purity.items()}
              if purity else None,
              "figures": {k: os.path.relpath(v, out_dir) for k, v in figures.items()}}
    with open(os.path.join(out_dir, "metrics.json"), "w") as f:
        json.dump(report, f, indent=2)
    write_html_report(report, os.path.join(out_dir, "report.html"))
    log(f"evaluate: wrote {out_dir}/metrics.json and report.html in {timing['total_seconds']:.0f}s")
    return report

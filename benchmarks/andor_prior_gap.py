"""Is an AND-OR run's sample quality limited by its generator or by the prior it is sampled from?

  .venv/bin/python benchmarks/andor_prior_gap.py --model_dir=$HOME/runs/andor_long/run --name=andor_long

ABP learns a persistent latent per training image (the inferred posterior samples) and
samples from the prior N(0, I). When the aggregate of the inferred latents does not fill
the prior, samples drawn from regions no training image was inferred to are what the
generator never learned to draw. This generates `--num_samples` images from each of
  - `prior`: z ~ N(0, I) (what `generate`, evaluate.py and the export use);
  - `posterior`: the persistent latents of that many random training images (after the
    run's own Langevin updates: what the reconstruction term trained the generator on);
  - `fitted`: a Gaussian with the mean and covariance of all persistent latents;
and reports fd/kid/is_fmnist of each against the test split (evaluate.py's features), with
statistics of the persistent latents against the prior's. It needs the full run directory
(the persistent latents are not in a shipped slim checkpoint). Writes
`results_dir/<name>.json` and `<name>.md`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def latent_statistics(latents):
    """Mean squared norm per dimension, the spread of the covariance's eigenvalues, the mean's norm (float64)."""
    import numpy as np

    z = np.asarray(latents, np.float64)
    cov = np.cov(z, rowvar=False)
    eig = np.linalg.eigvalsh(cov)
    return {"mean_sq_norm_per_dim": float(np.mean(np.sum(z * z, axis=1)) / z.shape[1]),
            "mean_norm": float(np.linalg.norm(z.mean(axis=0))),
            "cov_eig_min": float(eig[0]), "cov_eig_median": float(np.median(eig)), "cov_eig_max": float(eig[-1]),
            "num_latents": int(z.shape[0]), "prior": "1, 0 and eigenvalues 1 for N(0, I)"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", required=True, help="a full AND-OR run directory (with persistent latents)")
    parser.add_argument("--name", required=True, help="the result files' name")
    parser.add_argument("--num_samples", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--raw", action="store_true", help="the raw generator weights instead of the EMA")
    parser.add_argument("--results_dir", default=os.path.join(REPO, "benchmarks", "results", "andor_prior_gap"))
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    from tf_sparse_gen.data import load_run_data
    from tf_sparse_gen.metrics import load_feature_net
    from tf_sparse_gen.runs import load_trained_model

    run = load_trained_model(args.model_dir, ema=not args.raw)
    model = run.model
    latents = getattr(model, "latents", None)
    if latents is None or int(latents.shape[0]) <= 1:
        print(f"andor_prior_gap: {args.model_dir} has no persistent latents (a slim or non-ABP run); "
              "pass the full run directory it was trained in", file=sys.stderr)
        return 2
    latents = latents.numpy().astype(np.float64)
    n = min(args.num_samples, latents.shape[0])
    rng = np.random.default_rng(args.seed)
    mean, cov = latents.mean(axis=0), np.cov(latents, rowvar=False)
    sources = {
        "prior": model.sample_latents(n, seed=args.seed + 1000).numpy(),
        "posterior": latents[rng.choice(latents.shape[0], n, replace=False)],
        "fitted": rng.multivariate_normal(mean, cov, size=n),
    }
    net = load_feature_net("fmnist")
    ref = load_run_data(run.config, "test")
    real = net.collect((b[1] for b in ref.eval_dataset(100, limit=n)), keep_features=True)
    names = net.metric_names
    rows = {}
    for source, zs in sources.items():
        zs = zs.astype(np.float32)
        fake = net.collect((model.generate(zs[i:i + 100]) for i in range(0, n, 100)), keep_features=True)
        values = net.compare(real, fake, kid_subset_size=min(1000, n), seed=args.seed)
        rows[source] = {key: float(values[names[key]]) for key in ("fd", "kid", "is") if names[key] in values}
        print(f"andor_prior_gap: {source}: {rows[source]}", flush=True)
    result = {"model_dir": os.path.abspath(args.model_dir), "step": run.step, "num_samples": n,
              "weights": "raw" if args.raw else "ema", "metrics": rows,
              "latents": latent_statistics(latents)}
    os.makedirs(args.results_dir, exist_ok=True)
    with open(os.path.join(args.results_dir, f"{args.name}.json"), "w") as f:
        json.dump(result, f, indent=2, sort_keys=True)
    stats = result["latents"]
    lines = [f"# {args.name}: samples from the prior vs from the inferred latents (step {run.step})", "",
             f"`benchmarks/andor_prior_gap.py --model_dir=... --name={args.name}`; {n} samples of each source, "
             f"{result['weights']} generator weights, features of the project's Fashion-MNIST classifier vs "
             "the test split.", "",
             "| source | fd_fmnist | kid_fmnist | is_fmnist |", "|---|---|---|---|"]
    for source, m in rows.items():
        lines.append(f"| {source} | {m.get('fd', float('nan')):.4g} | {m.get('kid', float('nan')):.4g} | "
                     f"{m.get('is', float('nan')):.4g} |")
    lines += ["", f"Persistent latents ({stats['num_latents']}): mean squared norm per dimension "
              f"{stats['mean_sq_norm_per_dim']:.3f}, norm of their mean {stats['mean_norm']:.3f}, covariance "
              f"eigenvalues {stats['cov_eig_min']:.3f} / {stats['cov_eig_median']:.3f} / {stats['cov_eig_max']:.3f} "
              "(min / median / max; the prior: 1, 0 and all 1).", ""]
    with open(os.path.join(args.results_dir, f"{args.name}.md"), "w") as f:
        f.write("\n".join(lines))
    print(json.dumps(result["metrics"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Evaluate a trained run: writes model_dir/eval/metrics.json and model_dir/eval/report.html.

  python evaluate.py --model_dir=runs/andor_fashion_mnist                      # full test split
  python evaluate.py --model_dir=runs/x --num_samples=1000 --metrics=fd,kid,mse  # a quick look
  python evaluate.py --model_dir=runs/x --feature_net=inception --inception_weights=FILE.h5
"""

from __future__ import annotations

import json
import sys

from absl import app, flags, logging

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "Run directory written by train.py.", required=True)
flags.DEFINE_string("dataset", None, "Reference dataset (default: the run's).")
flags.DEFINE_string("split", "test", "Reference split.")
flags.DEFINE_integer("num_samples", None, "Generated samples / reconstructed images (default: the split size).")
flags.DEFINE_integer("num_reconstructions", None, "Held-out images of the mse metric (default: --num_samples).")
flags.DEFINE_list("metrics", "fd,kid,is,mse,ncc,sparsity", "Metrics to compute; add purity for shapes runs.")
flags.DEFINE_enum("feature_net", "fmnist", ["fmnist", "inception"], "Feature network of fd/kid/is.")
flags.DEFINE_string("inception_weights", None, "InceptionV3 weights file (default: the Keras cache).")
flags.DEFINE_integer("batch_size", 100, "Evaluation batch size.")
flags.DEFINE_integer("seed", 0, "Seed of the generated samples.")
flags.DEFINE_string("out_dir", None, "Where metrics.json, report.html and figures go (default: model_dir/eval; "
                    "for a shipped pretrained/ run: ~/.cache/tf_sparse_gen/eval/<name>).")
flags.DEFINE_bool("ema", True, "Use the run's averaged generator weights (runs with train.ema_decay > 0); "
                  "--noema evaluates the raw training weights.")


def main(argv):
    logging.set_verbosity(logging.WARNING)
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from tf_sparse_gen import evaluation
    from tf_sparse_gen.config import ConfigError
    from tf_sparse_gen.data import DatasetError
    from tf_sparse_gen.metrics import FeatureNetWeightsError

    try:
        report = evaluation.evaluate(
            FLAGS.model_dir, metrics=FLAGS.metrics, dataset=FLAGS.dataset, split=FLAGS.split,
            num_samples=FLAGS.num_samples, num_reconstructions=FLAGS.num_reconstructions, feature_net=FLAGS.feature_net,
            inception_weights=FLAGS.inception_weights, batch_size=FLAGS.batch_size, seed=FLAGS.seed, ema=FLAGS.ema,
            out_dir=FLAGS.out_dir)
    except (ConfigError, DatasetError, FeatureNetWeightsError) as e:
        print(f"evaluate.py: error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        if "unknown metric" not in str(e):
            raise
        print(f"evaluate.py: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({k: v["value"] for k, v in report["metrics"].items()}))
    return 0


def run() -> None:
    """Console-script entry point (`tf-sparse-gen-evaluate`, and `tf-sparse-gen evaluate`)."""
    from tf_sparse_gen.cli import run_program

    run_program(__name__, main)


if __name__ == "__main__":
    run()

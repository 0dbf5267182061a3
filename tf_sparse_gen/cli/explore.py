"""Applications of a trained encoder-generator run (SelfExGAN thesis, sections 4.1.3 and 4.2).

  python explore.py --model_dir=runs/selfex --task=reconstruct
  python explore.py --model_dir=runs/selfex --task=chain --steps=12
  python explore.py --model_dir=runs/selfex --task=labelled --num_images=100 --noise=0.3
  python explore.py --model_dir=runs/selfex --task=similarity
  python explore.py --model_dir=runs/selfex --task=design
  python explore.py --model_dir=runs/selfex --task=tsne --tsne_images=1000
  python explore.py --model_dir=runs/andor --task=ablate --num_images=4 [--compare_dir=runs/andor_dense]
  python explore.py --model_dir=runs/andor --task=swap --positions='0,0;0,1|3,3'

Each task writes a PNG (and a JSON of numbers where it applies) into --out_dir
(default model_dir/explore) and prints the numbers as JSON.
"""

from __future__ import annotations

import json
import sys

from absl import app, flags, logging

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "Run directory written by train.py.")


def _family_tasks_help() -> str:
    from tf_sparse_gen.families import REGISTRY  # TF-free: names only

    return "; ".join(f"{f.name}: {', '.join(f.explore_tasks)}" for f in REGISTRY.values() if f.explore_tasks)


flags.DEFINE_string("task", "reconstruct",
                    "Application to run: reconstruct, chain, labelled, similarity, design, tsne (any run), "
                    f"or a family's own task ({_family_tasks_help()}).")
flags.DEFINE_string("out_dir", None, "Output directory (default: model_dir/explore).")
flags.DEFINE_integer("num_images", 16, "Images taken from the dataset (reconstruct, labelled, ...).")
flags.DEFINE_integer("tsne_images", 500, "Images embedded by --task=tsne.")
flags.DEFINE_float("noise", 0.3, "Latent noise scale (labelled, similarity).")
flags.DEFINE_integer("steps", 10, "Generations of --task=chain.")
flags.DEFINE_integer("per_image", 4, "Generated images per source image (labelled).")
flags.DEFINE_string("split", "test", "Dataset split the images come from (train if it has no such split).")
flags.DEFINE_integer("seed", 0, "Seed of the latent noise (ablate/swap: offset of the first held-out image).")
flags.DEFINE_string("compare_dir", None, "ablate: a second run (e.g. the dense baseline) ablated the same way.")
flags.DEFINE_string("positions", None, "swap: mid-layer position sets 'y,x;y,x|y,x' (default: halves, centre, ...).")
flags.DEFINE_integer("max_units", 64, "ablate: strongest units ablated one by one per layer and latent.")


def main(argv):
    logging.set_verbosity(logging.WARNING)
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS.model_dir:
        raise app.UsageError("--model_dir is required")
    from tf_sparse_gen import applications as explore
    from tf_sparse_gen.config import ConfigError
    from tf_sparse_gen.data import DatasetError

    try:
        result = explore.run_task(FLAGS.task, FLAGS.model_dir, FLAGS.out_dir, num_images=FLAGS.num_images,
                                  noise=FLAGS.noise, seed=FLAGS.seed, split=FLAGS.split, steps=FLAGS.steps,
                                  per_image=FLAGS.per_image, tsne_images=FLAGS.tsne_images,
                                  compare_dir=FLAGS.compare_dir, positions=FLAGS.positions,
                                  max_units=FLAGS.max_units)
    except (ConfigError, DatasetError, ValueError) as e:
        print(f"explore.py: error: {e}", file=sys.stderr)
        return 2
    result.pop("mse_per_image", None)
    print(json.dumps(result, indent=2, default=str))
    return 0


def run() -> None:
    """Console-script entry point (`tf-sparse-gen-explore`, and `tf-sparse-gen explore`)."""
    from tf_sparse_gen.cli import run_program

    run_program(__name__, main)


if __name__ == "__main__":
    run()

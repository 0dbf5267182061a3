"""Does an encoder separate the classes without labels? 5-NN accuracy of E(x) vs raw pixels.

Shared by `selfexgan_d2.py` (in process) and `selfexgan_budget.py` (as a program, so
the budget harness stays TensorFlow-free):

  .venv/bin/python benchmarks/latent_knn.py --model_dir=runs/selfex --num_images=1000

prints {"knn5_latent": ..., "knn5_pixels": ..., "knn_images": ...} as its last line.
Both are `applications.knn_accuracy` (leave-one-out 5-NN label accuracy, Euclidean)
on the first `num_images` test images; raw pixels are the reference: what a code with
no meaning beyond the image would give. Memory: `knn_accuracy` builds the N x N x D
float64 difference array, about 16 GB at peak for 1,000 32x32x1 images (the pixels).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def knn5_codes_vs_pixels(model, config, num_images: int, split: str = "test") -> dict:
    """5-NN label accuracy of `model.encode` codes and of raw pixels of `num_images` images of `split`."""
    from tf_sparse_gen import applications as explore

    images, labels, _ = explore.load_images(config, split, num_images)
    if labels is None:
        raise ValueError(f"dataset {config.data.dataset!r} has no labels; the 5-NN accuracy needs them")
    codes = explore.encode_all(model, images)
    return {"knn5_latent": explore.knn_accuracy(codes, labels),
            "knn5_pixels": explore.knn_accuracy(images.reshape(len(images), -1), labels),
            "knn_images": int(len(images))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", required=True, help="a run directory written by train.py")
    parser.add_argument("--num_images", type=int, default=1000, help="test images (the first ones)")
    parser.add_argument("--split", default="test")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tf_sparse_gen.runs import load_trained_model

    run = load_trained_model(args.model_dir)
    print(json.dumps(knn5_codes_vs_pixels(run.model, run.config, args.num_images, args.split)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

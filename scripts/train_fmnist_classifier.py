#!/usr/bin/env python
"""Trains the in-domain Fashion-MNIST classifier used for fd_fmnist / kid_fmnist / is_fmnist.

Reproducible by seed (keras.utils.set_random_seed + TF op determinism; the
augmentation is drawn from a NumPy generator seeded the same way). Images are
the project's: 28x28 resized to 32x32 (bilinear, antialias, rounded to uint8,
as `tf_sparse_gen.data.load_dataset("fashion_mnist")` does), scaled to [-1, 1].
Augmentation: random horizontal flip and a random shift of up to 1 pixel.

Writes `<out_dir>/fmnist_classifier.weights.h5` and `<out_dir>/fmnist_classifier.json`
(test accuracy, seed, epochs, date, versions, architecture). About 5 minutes on 2 CPU cores.

    python scripts/train_fmnist_classifier.py [--seed 0] [--epochs 14]
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402


def load_split(split: str, data_dir=None):
    """(float32 [N, 32, 32, 1] in [-1, 1], int64 [N]) exactly as the generators see Fashion-MNIST."""
    from tf_sparse_gen.data import fashion_mnist_arrays, to_size_and_channels

    raw, labels = fashion_mnist_arrays(split, data_dir)
    images = to_size_and_channels(raw, 32, 1)
    return images.astype(np.float32) / 127.5 - 1.0, labels


def augment(images: np.ndarray, rng: np.random.Generator, max_shift: int = 2, flip: bool = True) -> np.ndarray:
    """Random horizontal flip and random shift by up to `max_shift` pixels (background -1 fills in)."""
    n, h, w, c = images.shape
    flip = (rng.random(n) < 0.5) & flip
    out = np.where(flip[:, None, None, None], images[:, :, ::-1], images)
    if max_shift:
        p = max_shift
        padded = np.pad(out, ((0, 0), (p, p), (p, p), (0, 0)), constant_values=-1.0)
        dy = rng.integers(0, 2 * p + 1, n)
        dx = rng.integers(0, 2 * p + 1, n)
        rows = (dy[:, None] + np.arange(h)[None, :])[:, :, None]
        cols = (dx[:, None] + np.arange(w)[None, :])[:, None, :]
        out = padded[np.arange(n)[:, None, None], rows, cols]
    return np.ascontiguousarray(out, dtype=np.float32)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=14)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3, help="peak Adam learning rate (cosine decay to 0)")
    parser.add_argument("--weight_decay", type=float, default=1e-4)
    parser.add_argument("--dropout", type=float, default=0.25)
    parser.add_argument("--max_shift", type=int, default=1, help="augmentation shift in pixels (0 = none)")
    parser.add_argument("--no_flip", action="store_true")
    parser.add_argument("--max_train", type=int, default=0, help="use only N training images (0 = all; for quick tests)")
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--out_dir", default=None, help="default: tf_sparse_gen/metrics/weights")
    parser.add_argument("--normalization_only", action="store_true",
                        help="do not train: recompute the feature normalisation of the existing weights in "
                             "--out_dir and update the JSON")
    args = parser.parse_args(argv)

    import keras
    import tensorflow as tf

    from tf_sparse_gen.metrics.feature_nets import FMNIST_ARCH, WEIGHTS_DIR, build_fmnist_classifier

    out_dir = args.out_dir or WEIGHTS_DIR
    os.makedirs(out_dir, exist_ok=True)
    keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()
    rng = np.random.default_rng(args.seed)

    if args.normalization_only:
        info_path = os.path.join(out_dir, "fmnist_classifier.json")
        with open(info_path) as f:
            info = json.load(f)
        info["feature_normalization"] = feature_normalization(
            os.path.join(out_dir, "fmnist_classifier.weights.h5"), load_split("train", args.data_dir)[0])
        write_json(info, info_path)
        print(f"updated feature_normalization in {info_path}: scale {info['feature_normalization']['scale']:.4f}")
        return info

    t0 = time.time()
    x_train, y_train = load_split("train", args.data_dir)
    x_test, y_test = load_split("test", args.data_dir)
    if args.max_train:
        x_train, y_train = x_train[:args.max_train], y_train[:args.max_train]
    print(f"data: train {x_train.shape}, test {x_test.shape} ({time.time() - t0:.1f} s)", flush=True)

    arch = {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in FMNIST_ARCH.items()}
    arch["dropout"] = args.dropout
    model = build_fmnist_classifier(**arch)
    steps_per_epoch = int(np.ceil(len(x_train) / args.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(args.lr, decay_steps=steps_per_epoch * args.epochs)
    model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=args.weight_decay),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    print(f"model: {model.count_params()} parameters", flush=True)

    t_train = time.time()
    history = []
    for epoch in range(args.epochs):
        t = time.time()
        xa = augment(x_train, rng, args.max_shift, flip=not args.no_flip)
        h = model.fit(xa, y_train, batch_size=args.batch_size, epochs=epoch + 1, initial_epoch=epoch,
                      shuffle=True, verbose=0)
        rec = {"epoch": epoch + 1, "loss": float(h.history["loss"][-1]),
               "accuracy": float(h.history["accuracy"][-1]), "seconds": round(time.time() - t, 1)}
        history.append(rec)
        print(f"epoch {epoch + 1}/{args.epochs}: loss {rec['loss']:.4f} train acc {rec['accuracy']:.4f} "
              f"({rec['seconds']:.0f} s)", flush=True)
    train_seconds = time.time() - t_train

    test_loss, test_acc = model.evaluate(x_test, y_test, batch_size=1000, verbose=0)
    _, test_acc_2000 = model.evaluate(x_test[:2000], y_test[:2000], batch_size=1000, verbose=0)
    print(f"test accuracy {test_acc:.4f} (first 2000: {test_acc_2000:.4f}), loss {test_loss:.4f}; "
          f"training {train_seconds:.0f} s", flush=True)

    weights_path = os.path.join(out_dir, "fmnist_classifier.weights.h5")
    tmp = os.path.join(out_dir, "tmp_fmnist_classifier.weights.h5")
    # A fresh copy without the compiled optimizer, so the file holds only the model's weights.
    bare = build_fmnist_classifier(**arch)
    bare.set_weights(model.get_weights())
    bare.save_weights(tmp)
    os.replace(tmp, weights_path)
    with open(weights_path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    info = {
        "test_accuracy": round(float(test_acc), 5),
        "test_accuracy_first_2000": round(float(test_acc_2000), 5),
        "test_loss": round(float(test_loss), 5),
        "seed": args.seed,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "weight_decay": args.weight_decay,
        "augmentation": {"horizontal_flip": not args.no_flip, "max_shift_pixels": args.max_shift},
        "num_train_images": int(len(x_train)),
        "training_seconds": round(train_seconds, 1),
        "history": history,
        "architecture": arch,
        "num_parameters": int(model.count_params()),
        "input": "32x32x1 float in [-1, 1]; Fashion-MNIST 28x28 -> 32x32 bilinear antialias, rounded to uint8",
        "features": "output of layer 'fc' (the 128-unit dense layer, before its ReLU); probs: softmax of layer 'logits'",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__,
                     "python": sys.version.split()[0]},
        "weights_file": os.path.basename(weights_path),
        "weights_sha256": sha,
        "weights_bytes": os.path.getsize(weights_path),
        "command": "python scripts/train_fmnist_classifier.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    info["feature_normalization"] = feature_normalization(weights_path, x_train)
    info_path = os.path.join(out_dir, "fmnist_classifier.json")
    write_json(info, info_path)
    print(f"wrote {weights_path} ({info['weights_bytes'] / 1e6:.2f} MB) and {info_path}", flush=True)
    return info


def feature_normalization(weights_path: str, x_train: np.ndarray) -> dict:
    """Fixed constants mapping the raw 'fc' features to mean 0 and E||x||^2 / D = 1 on the training images."""
    from tf_sparse_gen.metrics.feature_nets import load_feature_net

    net = load_feature_net("fmnist", weights_path=weights_path, normalize=False)
    feats = net.features(x_train).astype(np.float64)
    shift = feats.mean(axis=0)
    scale = float(np.sqrt(np.mean(np.sum((feats - shift) ** 2, axis=1)) / feats.shape[1]))
    return {"shift": [round(float(v), 6) for v in shift], "scale": round(scale, 6),
            "computed_on": f"un-augmented training split ({len(x_train)} images)",
            "formula": "features = (fc_output - shift) / scale"}


def write_json(info: dict, path: str):
    with open(path + ".tmp", "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()

"""Applications of an encoder-generator pair (SelfExGAN, Liu 2018, sections 4.1.3 and 4.2).

Every function takes a model with `encode` / `generate` (any family works;
SelfExGAN's encoder makes them fast), writes a PNG into `out_dir` and,
where it applies, a JSON of numbers, and returns a dict of those numbers and
the paths it wrote:

- `reconstruction`: x and G(E(x)) side by side; per-pixel MSE on [0, 1].
- `feeding_chain`: x -> G(E(x)) -> G(E(G(E(x)))) -> ... (Fig. 4.8).
- `labelled_generation`: G(E(x) + noise) for labelled x keeps x's label
  (section 4.2.1); an image folder with class sub-folders and labels.csv, and
  the accuracy of the Fashion-MNIST classifier on the generated set.
- `similarity`: the latent neighbourhoods G(E(a) + noise), G(E(b) + noise) of
  two images and how far each lies inside the other's (section 4.2.2).
- `design_exploration`: G(E(x) + s * noise) at several noise scales s (4.2.3).
- `tsne`: 2-D t-SNE of E(x) coloured by label (Fig. 4.9), drawn with PIL.

Randomness is stateless, from `seed`. Images are float32 in [-1, 1].
"""

from __future__ import annotations

import csv
import json
import os
import re
from typing import Dict, Optional, Sequence

import numpy as np
import tensorflow as tf

from tf_sparse_gen import images as image_lib

TASKS = ("reconstruct", "chain", "labelled", "similarity", "design", "tsne")

# A qualitative palette (Tableau 10) for up to 10 classes; more classes cycle.
_PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
            (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


# ----------------------------------------------------------------------------- helpers

def _write_json(path: str, payload: dict) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(payload, f, indent=2, sort_keys=True, default=float)
        f.write("\n")
    os.replace(path + ".tmp", path)
    return path


def _save_grid(batch, path: str, ncol: int, scale: int = 2) -> str:
    return image_lib.save_png(image_lib.image_grid(np.asarray(batch), ncol=ncol), path, scale=scale)


def encode_all(model, images, batch_size: int = 256) -> np.ndarray:
    """E(x) for any number of images, in batches: float32 `[N, d]`."""
    out = [np.asarray(model.encode(tf.constant(images[i:i + batch_size], tf.float32)), np.float32)
           for i in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else np.zeros([0, model.latent_dim], np.float32)


def generate_all(model, z, batch_size: int = 256) -> np.ndarray:
    """G(z) for any number of latents, in batches: float32 `[N, H, W, C]` in [-1, 1]."""
    out = [np.asarray(model.generate(tf.constant(z[i:i + batch_size], tf.float32)), np.float32)
           for i in range(0, len(z), batch_size)]
    return np.concatenate(out)


def _noise(shape, seed: int) -> np.ndarray:
    return tf.random.stateless_normal(shape, seed=[seed, 104729]).numpy()


def _mse01(a, b) -> float:
    """Per-pixel MSE on the [0, 1] scale of images in [-1, 1]."""
    return float(np.mean(np.square(np.asarray(a, np.float32) - np.asarray(b, np.float32))) / 4.0)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("_") or "class"


# ----------------------------------------------------------------------------- applications

def reconstruction(model, images, out_dir: str) -> dict:
    """Originals and G(E(x)) interleaved (pairs side by side); MSE per pixel on [0, 1]."""
    recon = generate_all(model, encode_all(model, images))
    pairs = np.stack([images, recon], axis=1).reshape([-1, *images.shape[1:]])
    per_image = np.mean(np.square(images - recon), axis=(1, 2, 3)) / 4.0
    result = {"task": "reconstruct", "num_images": int(len(images)), "mse": float(per_image.mean()),
              "mse_per_image": [float(v) for v in per_image],
              "png": _save_grid(pairs, os.path.join(out_dir, "reconstruction.png"), ncol=16)}
    result["json"] = _write_json(os.path.join(out_dir, "reconstruction.json"), result)
    return result


def feeding_chain(model, images, out_dir: str, steps: int = 10) -> dict:
    """Rows x, G(E(x)), G(E(G(E(x)))), ... (`steps` generations after x), one row per image.

    Numbers: per generation, the mean MSE to the starting image and to the
    previous generation (how far and how fast the chain drifts).
    """
    current = np.asarray(images, np.float32)
    frames = [current]
    for _ in range(steps):
        current = generate_all(model, encode_all(model, current))
        frames.append(current)
    grid = np.stack(frames, axis=1).reshape([-1, *images.shape[1:]])
    result = {"task": "chain", "num_images": int(len(images)), "steps": steps,
              "mse_to_start": [_mse01(f, frames[0]) for f in frames[1:]],
              "mse_to_previous": [_mse01(frames[t], frames[t - 1]) for t in range(1, len(frames))],
              "png": _save_grid(grid, os.path.join(out_dir, "chain.png"), ncol=steps + 1)}
    result["json"] = _write_json(os.path.join(out_dir, "chain.json"), result)
    return result


def classifier_accuracy(images, labels, dataset: str, feature_net: str = "fmnist") -> dict:
    """Accuracy of the in-domain classifier, or `accuracy: None` with the reason it is missing."""
    if dataset != "fashion_mnist":
        return {"accuracy": None, "reason": f"the '{feature_net}' classifier is trained on fashion_mnist, "
                                            f"not on {dataset!r}"}
    try:
        from tf_sparse_gen.metrics.feature_nets import load_feature_net
    except ImportError as e:
        return {"accuracy": None, "reason": f"tf_sparse_gen.metrics.feature_nets is not importable ({e})"}
    try:
        net = load_feature_net(feature_net)
        probs = np.asarray(net.probs(np.asarray(images, np.float32)))
    except Exception as e:  # missing weights, wrong shape, ...: report, do not fail the task
        return {"accuracy": None, "reason": f"classifier unavailable: {type(e).__name__}: {e}"}
    pred = probs.argmax(axis=-1)
    return {"accuracy": float(np.mean(pred == np.asarray(labels))), "reason": None,
            "feature_net": feature_net}


def labelled_generation(model, images, labels, out_dir: str, class_names: Optional[Sequence[str]] = None,
                        per_image: int = 4, noise: float = 0.3, seed: int = 0,
                        dataset: str = "") -> dict:
    """G(E(x) + noise * N(0, I)) for each labelled x, written as a labelled image folder.

    Layout: `out_dir/labelled/<class>/<source>_<k>.png`, `out_dir/labelled/labels.csv`
    (path relative to `labelled/`, label, class name, source index), a grid
    `labelled.png` (each row: the source, then its samples) and
    `labelled.json` with the classifier's accuracy on the generated set (and on
    the sources, as the reference), or null with the reason.
    """
    labels = np.asarray(labels, np.int64)
    codes = encode_all(model, images)
    z = np.repeat(codes, per_image, axis=0) + noise * _noise([len(codes) * per_image, codes.shape[1]], seed)
    generated = generate_all(model, z)
    gen_labels = np.repeat(labels, per_image)
    sources = np.repeat(np.arange(len(images)), per_image)
    root = os.path.join(out_dir, "labelled")
    names = [str(class_names[l]) if class_names is not None and l < len(class_names) else str(l) for l in gen_labels]
    rows = []
    uint8 = image_lib.to_uint8(generated)
    for i, (img, lab, name, src) in enumerate(zip(uint8, gen_labels, names, sources)):
        folder = str(int(lab)) if name == str(int(lab)) else f"{int(lab)}_{_safe_name(name)}"
        rel = os.path.join(folder, f"{int(src):05d}_{i % per_image}.png")
        image_lib.save_png(img, os.path.join(root, rel))
        rows.append((rel, int(lab), name, int(src)))
    csv_path = os.path.join(root, "labels.csv")
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "class_name", "source_index"])
        writer.writerows(rows)
    grid = np.concatenate([images[:, None], generated.reshape([len(images), per_image, *images.shape[1:]])],
                          axis=1).reshape([-1, *images.shape[1:]])
    result = {"task": "labelled", "num_sources": int(len(images)), "per_image": per_image, "noise": noise,
              "num_generated": int(len(generated)), "folder": root, "labels_csv": csv_path,
              "generated": classifier_accuracy(generated, gen_labels, dataset),
              "sources": classifier_accuracy(images, labels, dataset),
              "png": _save_grid(grid, os.path.join(out_dir, "labelled.png"), ncol=per_image + 1)}
    result["json"] = _write_json(os.path.join(out_dir, "labelled.json"), result)
    return result


def neighbourhood_similarity(model, a, b, noise: float = 0.5, samples: int = 16, seed: int = 0) -> dict:
    """How far b lies inside a's latent neighbourhood, and vice versa.

    The neighbourhood of x is N(x) = {E(G(E(x) + noise * eps))}: codes of the
    images the generator makes around x, re-encoded. `inside(a, b)` is the
    fraction of N(a) at least as far from E(a) as E(b) is: 1 when b is as
    close to a as a's own variations, 0 when it is farther than all of them.
    `similarity` is the mean of inside(a, b) and inside(b, a).
    """
    pair = np.stack([a, b]).astype(np.float32)
    za, zb = encode_all(model, pair)
    eps = _noise([2 * samples, za.shape[0]], seed)
    gen = generate_all(model, np.concatenate([za + noise * eps[:samples], zb + noise * eps[samples:]]))
    nz = encode_all(model, gen)
    dist = float(np.linalg.norm(za - zb))
    da = np.linalg.norm(nz[:samples] - za, axis=-1)
    db = np.linalg.norm(nz[samples:] - zb, axis=-1)
    inside_ab = float(np.mean(da >= dist))
    inside_ba = float(np.mean(db >= dist))
    return {"latent_distance": dist, "neighbourhood_radius_a": float(np.median(da)),
            "neighbourhood_radius_b": float(np.median(db)), "inside_a_b": inside_ab, "inside_b_a": inside_ba,
            "similarity": 0.5 * (inside_ab + inside_ba), "pixel_mse": _mse01(a, b),
            "neighbours": gen}


def similarity(model, pairs, out_dir: str, noise: float = 0.5, samples: int = 8, seed: int = 0,
               names: Optional[Sequence[str]] = None) -> dict:
    """`neighbourhood_similarity` for each (a, b) in `pairs`; one PNG block per pair.

    Picture: per pair two rows, a then its neighbours, b then its neighbours.
    """
    rows, numbers = [], []
    for i, (a, b) in enumerate(pairs):
        r = neighbourhood_similarity(model, a, b, noise, samples, seed + i)
        gen = r.pop("neighbours")
        rows += [np.concatenate([a[None], gen[:samples]]), np.concatenate([b[None], gen[samples:]])]
        r["name"] = names[i] if names is not None else f"pair{i}"
        numbers.append(r)
    grid = np.concatenate(rows)
    result = {"task": "similarity", "noise": noise, "samples": samples, "pairs": numbers,
              "png": _save_grid(grid, os.path.join(out_dir, "similarity.png"), ncol=samples + 1)}
    result["json"] = _write_json(os.path.join(out_dir, "similarity.json"), result)
    return result


def design_exploration(model, images, out_dir: str, scales: Sequence[float] = (0.25, 0.5, 1.0, 2.0),
                       samples: int = 8, seed: int = 0) -> dict:
    """For each design x and scale s, G(E(x) + s * N(0, I)) (one row per (x, s), x first).

    Numbers: per scale, the mean per-pixel MSE of the variations to G(E(x))
    (how far a scale moves a design) and their mean pairwise MSE (diversity).
    """
    codes = encode_all(model, images)
    base = generate_all(model, codes)
    rows, numbers = [], []
    for k, s in enumerate(scales):
        eps = _noise([len(codes) * samples, codes.shape[1]], seed + k)
        gen = generate_all(model, np.repeat(codes, samples, axis=0) + s * eps)
        gen = gen.reshape([len(codes), samples, *images.shape[1:]])
        to_base = float(np.mean(np.square(gen - base[:, None])) / 4.0)
        flat = gen.reshape([len(codes), samples, -1])
        d = np.mean(np.square(flat[:, :, None] - flat[:, None]), axis=-1) / 4.0
        diversity = float(d.sum() / (len(codes) * samples * max(samples - 1, 1)))
        numbers.append({"scale": float(s), "mse_to_reconstruction": to_base, "pairwise_mse": diversity})
        rows.append(np.concatenate([images[:, None], gen], axis=1))
    # Order rows by image, then scale.
    grid = np.stack(rows, axis=1).reshape([-1, *images.shape[1:]])
    result = {"task": "design", "num_images": int(len(images)), "samples": samples, "scales": numbers,
              "png": _save_grid(grid, os.path.join(out_dir, "design.png"), ncol=samples + 1)}
    result["json"] = _write_json(os.path.join(out_dir, "design.json"), result)
    return result


def knn_accuracy(points, labels, k: int = 5, block_elements: int = 1 << 24) -> float:
    """Leave-one-out k-nearest-neighbour label accuracy of `points` (Euclidean; ties: lower index).

    Distances are exact and computed a block of rows at a time, holding at most about
    `block_elements` coordinate differences (128 MB in float64) however many points.
    """
    points = np.asarray(points, np.float64).reshape(len(points), -1)
    labels = np.asarray(labels)
    n = len(points)
    k = min(k, n - 1)
    rows = max(1, block_elements // max(1, n * points.shape[1]))
    nn = np.empty((n, k), np.int64)
    for i in range(0, n, rows):
        d = np.sum(np.square(points[i:i + rows, None] - points[None]), axis=-1)  # [rows, n]
        d[np.arange(len(d)), np.arange(i, i + len(d))] = np.inf
        nn[i:i + rows] = np.argsort(d, axis=1, kind="stable")[:, :k]
    votes = labels[nn]
    pred = np.array([np.bincount(v).argmax() for v in votes])
    return float(np.mean(pred == labels))


def draw_scatter(points, labels, path: str, class_names: Optional[Sequence[str]] = None, size: int = 640,
                 title: str = "") -> str:
    """A scatter plot of 2-D `points` coloured by integer `labels`, with a legend, drawn with PIL."""
    from PIL import Image, ImageDraw

    points = np.asarray(points, np.float64)
    labels = np.asarray(labels, np.int64)
    legend_w = 150
    img = Image.new("RGB", (size + legend_w, size), "white")
    draw = ImageDraw.Draw(img)
    margin = 20
    lo, hi = points.min(axis=0), points.max(axis=0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    xy = margin + (points - lo) / span * (size - 2 * margin)
    for (x, y), lab in zip(xy, labels):
        color = _PALETTE[int(lab) % len(_PALETTE)]
        draw.ellipse([x - 3, size - y - 3, x + 3, size - y + 3], fill=color)
    draw.rectangle([margin - 5, margin - 5, size - margin + 5, size - margin + 5], outline=(180, 180, 180))
    if title:
        draw.text((margin, 3), title, fill="black")
    for i, lab in enumerate(sorted(set(labels.tolist()))):
        y = margin + 18 * i
        draw.rectangle([size + 5, y, size + 15, y + 10], fill=_PALETTE[lab % len(_PALETTE)])
        name = class_names[lab] if class_names is not None and lab < len(class_names) else str(lab)
        draw.text((size + 20, y - 1), f"{lab}: {name}", fill="black")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    img.save(path + ".tmp", format="PNG")
    os.replace(path + ".tmp", path)
    return path


def tsne(model, images, labels, out_dir: str, class_names: Optional[Sequence[str]] = None, seed: int = 0,
         perplexity: float = 30.0, max_iter: int = 1000) -> dict:
    """2-D t-SNE of E(x) coloured by label; coordinates to CSV.

    Numbers: leave-one-out 5-NN label accuracy of the codes and of the 2-D
    embedding (how well E separates the classes without ever seeing labels).
    """
    from sklearn.manifold import TSNE

    codes = encode_all(model, images)
    labels = np.asarray(labels, np.int64)
    perplexity = float(min(perplexity, max(2.0, (len(codes) - 1) / 3.0)))
    emb = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
               max_iter=max(250, max_iter)).fit_transform(codes)
    csv_path = os.path.join(out_dir, "tsne.csv")
    os.makedirs(out_dir, exist_ok=True)
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["x", "y", "label"])
        writer.writerows([(float(x), float(y), int(l)) for (x, y), l in zip(emb, labels)])
    result = {"task": "tsne", "num_images": int(len(codes)), "perplexity": perplexity,
              "knn5_accuracy_latent": knn_accuracy(codes, labels),
              "knn5_accuracy_tsne": knn_accuracy(emb, labels), "csv": csv_path,
              "png": draw_scatter(emb, labels, os.path.join(out_dir, "tsne.png"), class_names,
                                  title=f"t-SNE of E(x), {len(codes)} images")}
    result["json"] = _write_json(os.path.join(out_dir, "tsne.json"), result)
    return result


# ----------------------------------------------------------------------------- runs

def load_images(config, split: str = "test", count: int = 64, offset: int = 0):
    """(images [N, H, W, C] in [-1, 1], labels or None, class names) of the run's dataset.

    Falls back to the training split when the dataset has no `split`.
    """
    from tf_sparse_gen.data import load_run_data

    source = load_run_data(config, split, max_examples=offset + count, fallback_to_train=True)
    images = source.take_images(count, offset)
    labels = source.labels[offset:offset + len(images)] if source.labels is not None else None
    return images, labels, source.class_names


def _pick_pairs(images, labels):
    """Two pairs: same class (first two of one class) and different classes; without labels, (0,1), (0,2)."""
    if labels is None or len(images) < 3:
        return [(images[0], images[1]), (images[0], images[min(2, len(images) - 1)])], ["0-1", "0-2"]
    labels = np.asarray(labels)
    for i in range(len(labels)):
        same = np.nonzero(labels == labels[i])[0]
        diff = np.nonzero(labels != labels[i])[0]
        if len(same) > 1 and len(diff):
            j, k = int(same[same != i][0]), int(diff[0])
            return ([(images[i], images[j]), (images[i], images[k])],
                    [f"same class {int(labels[i])}: {i}-{j}",
                     f"different class {int(labels[i])}/{int(labels[k])}: {i}-{k}"])
    return [(images[0], images[1]), (images[0], images[2])], ["0-1", "0-2"]


def run_task(task: str, model_dir: str, out_dir: Optional[str] = None, num_images: int = 16,
             noise: float = 0.3, seed: int = 0, split: str = "test", steps: int = 10,
             per_image: int = 4, tsne_images: int = 500, **family_options) -> Dict:
    """Loads the run in `model_dir` and runs one application `task`.

    `task` is one of `TASKS` (any family) or one of the run's family's own tasks
    (`model.explore_tasks()`, e.g. the AND-OR model's `ablate` and `swap`), which get
    num_images, seed, split and `family_options` (e.g. compare_dir, positions).
    """
    from tf_sparse_gen.rundir import RunDir
    from tf_sparse_gen.runs import load_trained_model

    from tf_sparse_gen.families import REGISTRY

    known = list(TASKS) + [t for f in REGISTRY.values() for t in f.explore_tasks if t not in TASKS]
    if task not in known:
        raise ValueError(f"unknown task {task!r}; use one of: {', '.join(known)}")
    run = load_trained_model(model_dir)
    model, config = run.model, run.config
    family_tasks = model.explore_tasks()
    if task not in TASKS and task not in family_tasks:
        raise ValueError(f"task {task!r} does not apply to a {config.model!r} run; use one of: "
                         f"{', '.join(list(TASKS) + [t for t in family_tasks if t not in TASKS])}")
    out_dir = out_dir or RunDir(run.model_dir).explore
    if task in family_tasks:
        result = family_tasks[task](run, out_dir, num_images=num_images, seed=seed, split=split,
                                    **{k: v for k, v in family_options.items() if v is not None})
        result["model_dir"] = run.model_dir
        result["step"] = run.step
        return result
    count = tsne_images if task == "tsne" else num_images
    images, labels, class_names = load_images(config, split, count)
    if task == "reconstruct":
        result = reconstruction(model, images, out_dir)
    elif task == "chain":
        result = feeding_chain(model, images[:min(len(images), 8)], out_dir, steps=steps)
    elif task == "labelled":
        if labels is None:
            raise ValueError(f"dataset {config.data.dataset!r} has no labels; 'labelled' needs labelled images")
        result = labelled_generation(model, images, labels, out_dir, class_names, per_image=per_image,
                                     noise=noise, seed=seed, dataset=config.data.dataset)
    elif task == "similarity":
        pairs, names = _pick_pairs(images, labels)
        result = similarity(model, pairs, out_dir, noise=noise, seed=seed, names=names)
    elif task == "design":
        result = design_exploration(model, images[:min(len(images), 4)], out_dir, seed=seed)
    else:
        if labels is None:
            labels = np.zeros([len(images)], np.int64)
        result = tsne(model, images, labels, out_dir, class_names, seed=seed)
    result["model_dir"] = run.model_dir
    result["step"] = run.step
    return result

"""Acting on the AND-OR generator's units: ablation, insertion and part transplants (issue #16).

For one latent z the gates are recorded (`interpret.record`); with them fixed
the network above sparse layer i is linear, fm = sum_k s_k B_k + beta, image =
tanh(fm). Switching a set S of units off therefore changes the pre-tanh output
by exactly -sum_{k in S} s_k B_k ("exact" regeneration, the gates of the
original image kept); switching a unit on (insertion) with value s adds s B_k.
The *free* re-run instead zeroes (or sets) the units and runs the network above
the layer as it runs (ReLUs and top-k selections recomputed), i.e. what the
generator itself makes of the edited code.

Per ablation: the change image (edited minus original, in image space, [-1, 1]),
its energy (sum of squared change over pixels and channels), and its locality:
the share of the change's energy inside the support of the ablated units' basis
functions (pixels where |B_k| exceeds `support_fraction` of B_k's peak, united
over the set). On scenes with ground-truth part maps (`shapes`) also the share
of the change's energy on each part, and the part that changed most.

`transplant` copies image B's OR choices (the kept channels and their values)
at chosen mid-layer positions into image A's code and regenerates (exactly with
A's gates, and freely).
"""

from __future__ import annotations

import json
import os
from typing import Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from tf_sparse_gen import images as image_lib
from tf_sparse_gen.families.andor import interpret

SUPPORT_FRACTION = 0.1


# ----------------------------------------------------------------------------- the network above a layer

def fixed_gates_fm(generator, rec: interpret.Recording, stage: int, h: np.ndarray, chunk: int = 128) -> np.ndarray:
    """Pre-tanh outputs for activations h [N, ...] at `stage`, the recorded gates held fixed (biases on)."""
    out = []
    for i in range(0, len(h), chunk):
        x = tf.convert_to_tensor(np.asarray(h[i:i + chunk], np.float32))
        out.append(tf.cast(generator.propagate(x, stage, rec.gates, bias=True), tf.float32).numpy())
    return np.concatenate(out)


def free_fm(generator, stage: int, h: np.ndarray, chunk: int = 128) -> np.ndarray:
    """Pre-tanh outputs for activations h [N, ...] at `stage`, the network above run freely (gates recomputed)."""
    n_stages = len(generator.stage_layers)
    out = []
    for i in range(0, len(h), chunk):
        x = tf.convert_to_tensor(np.asarray(h[i:i + chunk], np.float32))
        for s in range(stage + 1, n_stages):
            x, _ = generator._gate(s, generator._affine(s, x))
        out.append(tf.cast(generator._affine(n_stages, x), tf.float32).numpy())
    return np.concatenate(out)


def support_mask(bases: np.ndarray, frac: float = SUPPORT_FRACTION) -> np.ndarray:
    """Union over bases [M, H, W, C] of where |B| > frac * max|B| (each basis its own peak): bool [H, W]."""
    mag = np.abs(bases).max(axis=-1)  # [M, H, W]
    peak = mag.reshape(len(mag), -1).max(axis=1)
    return np.any(mag > frac * peak[:, None, None], axis=0) if len(mag) else np.zeros(bases.shape[1:3], bool)


def change_stats(change: np.ndarray, support: np.ndarray, part_map: Optional[np.ndarray] = None,
                 part_names: Optional[Sequence[str]] = None) -> dict:
    """Energy and locality of a change image [H, W, C] (and its energy per part label)."""
    per_pixel = np.square(change.astype(np.float64)).sum(axis=-1)  # [H, W]
    energy = float(per_pixel.sum())
    out = {"energy": energy, "locality": float(per_pixel[support].sum() / energy) if energy > 0 else None}
    if part_map is not None:
        k = len(part_names)
        per_part = np.bincount(part_map.reshape(-1).astype(np.int64), weights=per_pixel.reshape(-1), minlength=k)[:k]
        shares = per_part / energy if energy > 0 else np.zeros(k)
        out["part_shares"] = [float(s) for s in shares]
        out["part_changed"] = part_names[int(np.argmax(shares))] if energy > 0 else None
    return out


# ----------------------------------------------------------------------------- one latent

def ablation_layers(generator) -> List[int]:
    """The sparse layers the config gives a k (in the dense baseline: the same layers, ReLU non-zeros)."""
    return [i for i, k in enumerate(generator.layer_ks) if k] or [min(1, len(generator.layer_stages) - 1)]


def ablate_latent(generator, z, layers: Sequence[int], mid_layer: int, max_units: int = 64,
                  num_insert: int = 8, part_map: Optional[np.ndarray] = None,
                  part_names: Optional[Sequence[str]] = None, frac: float = SUPPORT_FRACTION,
                  keep_images: int = 0) -> dict:
    """Every ablation of one latent: units at each of `layers`; channels, OR choices and insertions at mid_layer.

    Returns {"checks": {...}, "ablations": [record, ...], "images": {...}} where each record
    has kind ("unit", "channel", "position", "insert"), layer, units [[y, x, c], ...],
    values, support_area (share of the image's pixels in the support) and "exact" /
    "free" change statistics. `images` keeps original, bias parts and the first
    `keep_images` change images per kind (for figures).
    """
    rec = interpret.record(generator, z)
    image, fm = rec.image, rec.fm
    npix = image.shape[0] * image.shape[1]
    result = {"checks": {}, "ablations": [], "images": {"original": image, "by_kind": {}}}
    for layer in layers:
        stage = generator.layer_stages[layer]
        name = generator.layer_names[layer]
        act = rec.acts[stage]
        units, values = interpret.active_units(generator, rec, layer)
        order = np.argsort(-values, kind="stable")
        units, values = units[order], values[order]
        # Exactness checks: nothing ablated reproduces the image (fixed and free);
        # everything ablated leaves the bias part, by the identity with every basis.
        none = fixed_gates_fm(generator, rec, stage, act[None])[0]
        none_free = free_fm(generator, stage, act[None])[0]
        beta = interpret.bias_part(generator, rec, layer)
        weighted = np.zeros_like(fm)
        for i in range(0, len(units), 256):
            b = interpret.basis_functions(generator, rec, layer, units[i:i + 256])
            weighted += np.tensordot(values[i:i + 256], b, axes=1)
        result["checks"][name] = {
            "none_fixed_max_abs": float(np.abs(np.tanh(none) - image).max()),
            "none_free_max_abs": float(np.abs(np.tanh(none_free) - image).max()),
            "all_identity_vs_bias_part_max_abs": float(np.abs((fm - weighted) - beta).max()),
            "num_active": int(len(units))}
        result["images"].setdefault("bias_part", {})[name] = np.tanh(beta)

        # The ablation sets of this layer: (kind, indices into `units`, or new units with values).
        sets = [("unit", [i]) for i in range(min(len(units), max_units))]
        if layer == mid_layer:
            for c in np.unique(units[:, 2]):
                sets.append(("channel", list(np.nonzero(units[:, 2] == c)[0])))
            for pos in sorted({(int(y), int(x)) for y, x, _ in units}):
                sets.append(("position", list(np.nonzero((units[:, 0] == pos[0]) & (units[:, 1] == pos[1]))[0])))
        inserts = _insertion_units(generator, rec, layer, units, values, num_insert) if layer == mid_layer else []

        chosen = [u for _, idx in sets for u in idx]
        needed = sorted(set(chosen))
        bases = {}
        if needed:
            b = interpret.basis_functions(generator, rec, layer, units[needed])
            bases = {j: b[n] for n, j in enumerate(needed)}
        edits, metas = [], []
        for kind, idx in sets:
            delta = -np.tensordot(values[idx], np.stack([bases[j] for j in idx]), axes=1)
            h = act.copy()
            h[units[idx, 0], units[idx, 1], units[idx, 2]] = 0.0
            edits.append(h)
            metas.append((kind, units[idx], values[idx], delta, support_mask(np.stack([bases[j] for j in idx]), frac)))
        if inserts:
            new_units = np.array([u for u, _ in inserts])
            new_bases = interpret.basis_functions(generator, rec, layer, new_units)
            for (u, v), b in zip(inserts, new_bases):
                h = act.copy()
                h[u[0], u[1], u[2]] = v
                edits.append(h)
                metas.append(("insert", np.array([u]), np.array([v], np.float32), v * b, support_mask(b[None], frac)))
        if not edits:
            continue
        fm_free = free_fm(generator, stage, np.stack(edits))
        for (kind, us, vs, delta, support), ff in zip(metas, fm_free):
            exact_change = np.tanh(fm + delta) - image
            free_change = np.tanh(ff) - image
            entry = {"kind": kind, "layer": name, "units": us.tolist(), "values": [float(v) for v in vs],
                     "support_area": float(support.sum() / npix),
                     "exact": change_stats(exact_change, support, part_map, part_names),
                     "free": change_stats(free_change, support, part_map, part_names)}
            result["ablations"].append(entry)
            shown = result["images"]["by_kind"].setdefault(f"{name}/{kind}", [])
            if len(shown) < keep_images:
                shown.append((entry, np.tanh(fm + delta), exact_change, np.tanh(ff), free_change))
    return result


def _insertion_units(generator, rec, layer: int, units, values, num: int):
    """Units to switch on: per strongest active channel, the off position whose pre-activation is largest.

    The inserted value is the channel's mean activation in this image. Returns [(unit, value)].
    """
    stage = generator.layer_stages[layer]
    act = rec.acts[stage]
    if stage == 0:
        pre = tf.cast(generator._affine(0, tf.constant(rec.z[None], tf.float32)), tf.float32).numpy()[0]
    else:
        pre = tf.cast(generator._affine(stage, tf.constant(rec.acts[stage - 1][None], tf.float32)),
                      tf.float32).numpy()[0]
    out = []
    seen = set()
    for (y, x, c), v in zip(units, values):
        c = int(c)
        if c in seen:
            continue
        seen.add(c)
        score = np.where(act[..., c] == 0, pre[..., c], -np.inf)
        if not np.isfinite(score).any():
            continue
        py, px = np.unravel_index(int(np.argmax(score)), score.shape)
        out.append((np.array([py, px, c]), float(values[units[:, 2] == c].mean())))
        if len(out) >= num:
            break
    return out


# ----------------------------------------------------------------------------- runs

def _latents(model, config, num: int, seed: int, split: str):
    """(latents [N, d], images, part maps or None, part names or None) from held-out images of the run's data."""
    from tf_sparse_gen.data import load_run_data

    source = load_run_data(config, split, max_examples=seed + num, fallback_to_train=True)
    images = source.take_images(num, seed)
    part_maps = source.part_maps[seed:seed + len(images)] if source.part_maps is not None else None
    zs = np.asarray(model.encode(tf.constant(images, tf.float32)), np.float32)
    return zs, images, part_maps, source.part_names


def summarise(ablations: List[dict]) -> Dict[str, dict]:
    """Per layer and kind: count, mean energy, mean locality (exact and free), mean support area."""
    out: Dict[str, dict] = {}
    groups: Dict[tuple, list] = {}
    for a in ablations:
        groups.setdefault((a["layer"], a["kind"]), []).append(a)
    for (layer, kind), items in groups.items():
        def mean(key, mode=None):
            vals = [(a[mode][key] if mode else a[key]) for a in items]
            vals = [v for v in vals if v is not None]
            return float(np.mean(vals)) if vals else None
        out.setdefault(layer, {})[kind] = {
            "count": len(items), "support_area": mean("support_area"),
            "energy_exact": mean("energy", "exact"), "locality_exact": mean("locality", "exact"),
            "energy_free": mean("energy", "free"), "locality_free": mean("locality", "free")}
    return out


def part_effect_table(ablations: List[dict], layer: str, part_names: Sequence[str]) -> dict:
    """Channels x parts: the mean share of each unit ablation's (exact) change energy on each part."""
    rows: Dict[int, list] = {}
    for a in ablations:
        if a["layer"] == layer and a["kind"] == "unit" and "part_shares" in a["exact"] and a["exact"]["energy"] > 0:
            rows.setdefault(int(a["units"][0][2]), []).append(a["exact"]["part_shares"])
    channels = {c: {"fires": len(v), "shares": [float(s) for s in np.mean(v, axis=0)]} for c, v in sorted(rows.items())}
    for info in channels.values():
        info["part_changed"] = part_names[int(np.argmax(info["shares"]))]
    return {"layer": layer, "parts": list(part_names), "channels": channels, "confusion": {"parts": list(part_names)}}


def _tile(x, scale_to_peak=False):
    x = np.asarray(x, np.float32)
    if scale_to_peak:
        peak = np.abs(x).max()
        x = x / peak if peak > 0 else x
    return x


def ablation_figure(result: dict, path: str) -> str:
    """Rows: an ablation; columns: original | exact edit | exact change | free edit | free change (changes
    scaled to their peak, grey = none)."""
    original = result["images"]["original"]
    tiles = []
    for key, shown in result["images"]["by_kind"].items():
        for _, exact_img, exact_change, free_img, free_change in shown:
            tiles += [original, exact_img, _tile(exact_change, True), free_img, _tile(free_change, True)]
    if tiles:
        image_lib.save_png(image_lib.image_grid(np.stack(tiles), ncol=5, pad_value=128), path,
                           scale=max(1, 64 // original.shape[0]))
    return path


def run_ablation(model, config, out_dir: str, num_images: int = 4, seed: int = 0, split: str = "test",
                 max_units: int = 64, num_insert: int = 8, compare_model=None, compare_config=None,
                 log=print, model_dir: Optional[str] = None, compare_dir: Optional[str] = None) -> dict:
    """`explore.py --task=ablate`: ablation.json and figures in out_dir; returns the JSON's content."""
    os.makedirs(out_dir, exist_ok=True)
    runs = {"run": (model, config, model_dir)}
    if compare_model is not None:
        runs["compare"] = (compare_model, compare_config, compare_dir)
    report: dict = {"task": "ablate", "support_fraction": SUPPORT_FRACTION, "num_latents": num_images,
                    "latents": "Langevin inference (the model's encode) of held-out images", "runs": {},
                    "figures": {}}
    summary_lines = []
    for key, (m, cfg, mdir) in runs.items():
        g = m.generator
        zs, images, part_maps, part_names = _latents(m, cfg, num_images, seed, split)
        layers = ablation_layers(g)
        mid = m.mid_layer
        every, checks = [], []
        for n, z in enumerate(zs):
            pm = part_maps[n] if part_maps is not None else None
            r = ablate_latent(g, z, layers, mid, max_units=max_units, num_insert=num_insert, part_map=pm,
                              part_names=part_names, keep_images=2 if n < 2 else 0)
            for a in r["ablations"]:
                a["latent"] = n
            every += r["ablations"]
            checks.append(r["checks"])
            if n < 2:
                p = ablation_figure(r, os.path.join(out_dir, f"ablation_{key}_latent{n}.png"))
                report["figures"][f"{key} latent {n}: original | exact edit | change | free edit | change"] = p
        summary = summarise(every)
        entry = {"model_dir": mdir, "sparsity": bool(cfg.andor.sparsity),
                 "mid_layer": g.layer_names[mid], "layers": [g.layer_names[i] for i in layers],
                 "summary": summary, "checks": checks, "ablations": every}
        if part_names is not None:
            table = part_effect_table(every, g.layer_names[mid], part_names)
            entry["part_effect"] = table
            from tf_sparse_gen.families.andor import purity as purity_lib
            if table["channels"]:
                report["figures"][f"{key}: part x channel effect ({g.layer_names[mid]})"] = \
                    purity_lib.confusion_heatmap(table, os.path.join(out_dir, f"part_effect_{key}.png"))
        report["runs"][key] = entry
        label = "sparse" if cfg.andor.sparsity else "dense"
        for layer, kinds in summary.items():
            u = kinds.get("unit", {})
            summary_lines.append(
                f"ablate [{key}, {label}] {layer}: {u.get('count', 0)} unit ablations, mean locality "
                f"exact {_fmt(u.get('locality_exact'))} / free {_fmt(u.get('locality_free'))}, "
                f"support {_fmt(u.get('support_area'))} of the image, energy exact {_fmt(u.get('energy_exact'))}")
    if "compare" in report["runs"]:
        a, b = report["runs"]["run"], report["runs"]["compare"]
        la = "sparse" if a["sparsity"] else "dense"
        lb = "sparse" if b["sparsity"] else "dense"
        for layer in [name for name in a["summary"] if name in b["summary"]]:
            ua, ub = a["summary"][layer].get("unit", {}), b["summary"][layer].get("unit", {})
            line = (f"ablate {layer}, run ({la}) vs compare ({lb}): mean locality exact "
                    f"{_fmt(ua.get('locality_exact'))} vs {_fmt(ub.get('locality_exact'))}, free "
                    f"{_fmt(ua.get('locality_free'))} vs {_fmt(ub.get('locality_free'))}, support "
                    f"{_fmt(ua.get('support_area'))} vs {_fmt(ub.get('support_area'))}")
            summary_lines.append(line)
            report.setdefault("comparison", {})[layer] = {"run": ua, "compare": ub}
    report["summary_lines"] = summary_lines
    for line in summary_lines:
        log(line)
    with open(os.path.join(out_dir, "ablation.json"), "w") as f:
        json.dump(report, f, indent=1, default=float)
    report["json"] = os.path.join(out_dir, "ablation.json")
    return report


def _fmt(v):
    return "n/a" if v is None else f"{v:.3f}"


# ----------------------------------------------------------------------------- part transplants

def default_position_sets(grid: int) -> Dict[str, List[tuple]]:
    """Named sets of mid-layer positions: halves, the centre, one cell, none and all."""
    cells = [(y, x) for y in range(grid) for x in range(grid)]
    h = grid // 2
    lo, hi = max(0, h - max(1, grid // 4)), min(grid, h + max(1, grid // 4))
    return {"top half": [c for c in cells if c[0] < h], "bottom half": [c for c in cells if c[0] >= h],
            "left half": [c for c in cells if c[1] < h], "centre": [c for c in cells if lo <= c[0] < hi and lo <= c[1] < hi],
            "one cell": [(h, h)], "none": [], "all": cells}


def parse_positions(text: str) -> Dict[str, List[tuple]]:
    """'y,x;y,x|y,x' -> {"y,x;y,x": [(y, x), (y, x)], "y,x": [(y, x)]}."""
    sets = {}
    for part in text.split("|"):
        part = part.strip()
        if not part:
            continue
        try:
            cells = [tuple(int(v) for v in cell.split(",")) for cell in part.split(";") if cell.strip()]
        except ValueError:
            raise ValueError(f"--positions: {part!r} is not 'y,x;y,x' (sets separated by '|')") from None
        if any(len(c) != 2 for c in cells):
            raise ValueError(f"--positions: {part!r} is not 'y,x;y,x' (sets separated by '|')")
        sets[part] = cells
    return sets


def transplant(generator, z_a, z_b, layer: int, positions: Sequence[tuple]) -> dict:
    """A's code with B's activations (its OR choice: kept channels and values) at `positions` of `layer`.

    Returns images in [-1, 1]: a, b, exact (A's gates fixed, by the identity) and free (network re-run).
    """
    stage = generator.layer_stages[layer]
    ra, rb = interpret.record(generator, z_a), interpret.record(generator, z_b)
    size = ra.acts[stage].shape[0]
    for y, x in positions:
        if not (0 <= y < size and 0 <= x < size):
            raise ValueError(f"position ({y}, {x}) is outside the {size}x{size} grid of {generator.layer_names[layer]}")
    h = ra.acts[stage].copy()
    for y, x in positions:
        h[y, x] = rb.acts[stage][y, x]
    exact = fixed_gates_fm(generator, ra, stage, h[None])[0]
    free = free_fm(generator, stage, h[None])[0]
    return {"a": ra.image, "b": rb.image, "exact": np.tanh(exact), "free": np.tanh(free), "grid": size,
            "changed_units": int(np.sum(h != ra.acts[stage]))}


def _position_mask(positions, grid: int, size: int, channels: int) -> np.ndarray:
    cell = size // grid
    m = -np.ones((size, size, channels), np.float32)
    for y, x in positions:
        m[y * cell:(y + 1) * cell, x * cell:(x + 1) * cell] = 1.0
    return m


def run_swap(model, config, out_dir: str, num_images: int = 4, seed: int = 0, split: str = "test",
             positions: Optional[str] = None, log=print) -> dict:
    """`explore.py --task=swap`: per pair (A, B) of held-out images and position set, swap.png rows
    A | B | positions | exact result | free result; swap.json with each result's MSE to A and to B."""
    os.makedirs(out_dir, exist_ok=True)
    g = model.generator
    layer = model.mid_layer
    zs, _, _, _ = _latents(model, config, max(2, num_images), seed, split)
    grid = interpret.record(g, zs[0]).acts[g.layer_stages[layer]].shape[0]
    sets = parse_positions(positions) if positions else default_position_sets(grid)
    pairs = [(i, i + 1) for i in range(0, len(zs) - 1, 2)]
    rows, out = [], []

    def mse(a, b):
        return float(np.mean(np.square(a - b)) / 4.0)
    for ia, ib in pairs:
        for name, cells in sets.items():
            r = transplant(g, zs[ia], zs[ib], layer, cells)
            rows += [r["a"], r["b"], _position_mask(cells, grid, r["a"].shape[0], r["a"].shape[-1]),
                     r["exact"], r["free"]]
            out.append({"a": ia, "b": ib, "positions": name, "cells": [list(c) for c in cells],
                        "changed_units": r["changed_units"],
                        "exact_mse_to_a": mse(r["exact"], r["a"]), "exact_mse_to_b": mse(r["exact"], r["b"]),
                        "free_mse_to_a": mse(r["free"], r["a"]), "free_mse_to_b": mse(r["free"], r["b"])})
    png = image_lib.save_png(image_lib.image_grid(np.stack(rows), ncol=5, pad_value=128),
                             os.path.join(out_dir, "swap.png"), scale=max(1, 64 // g.image_size))
    result = {"task": "swap", "layer": g.layer_names[layer], "grid": grid, "png": png,
              "columns": ["A", "B", "positions (white)", "exact (A's gates)", "free re-run"], "swaps": out}
    with open(os.path.join(out_dir, "swap.json"), "w") as f:
        json.dump(result, f, indent=1)
    result["json"] = os.path.join(out_dir, "swap.json")
    log(f"swap: {len(pairs)} pairs x {len(sets)} position sets at {g.layer_names[layer]} -> {png}")
    return result

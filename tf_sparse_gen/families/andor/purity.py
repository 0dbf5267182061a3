"""Part purity: do the AND-OR generator's sparse units correspond to ground-truth parts?

For held-out scenes with known part maps (the `shapes` dataset), every active
unit of every sparse layer gets its basis function (`interpret.basis_functions`,
the same code as the figures), and its *support*: the pixels where |B| exceeds
`support_fraction` of its maximum. The unit's activation votes for the part
labels under its support, each label with its share of the support's pixels
(so every activation carries one vote in total, background included).

Per channel, the votes over all its activations form a histogram over part
labels; the channel's purity is the histogram's largest share. A layer's purity
is the mean channel purity weighted by how often each channel fires. A planted
layer whose every basis is exactly one part's mask scores 1; one whose bases
cover all parts equally scores 1 / number of parts.

*Locality* asks how much of a basis function's energy stays inside one object
part: for each unit, the share of sum_c B^2 that falls inside the mask of the object
part holding most of it (background energy counts against it); a layer's locality
is the mean over its units (1 = every basis lies inside one part; a basis spread
evenly over the whole image scores about the largest part's area share).

*Alignment baselines* (`mismatched`): the same units' bases scored against the part
map of another scene (scene n + 1 of the set, cyclically). Bases the size of a part
but placed without regard to where the scene's parts are score as high there as on
their own scene; the difference (`object_purity - mismatched`, `locality -
mismatched`) is what the units owe to the scene's actual parts. It is the chance
level that accounts for part areas and basis sizes, which 1 / number of parts does
not.

Also reported: the confusion table (channels x parts, vote totals), how many
channels each part type uses (channels whose dominant part it is), and how many
part types each channel serves (parts with at least `serve_share` of its votes).

*Object purity* leaves the background (label 0) out: a channel's object purity is
the largest share among its votes for object parts, and the layer's is their mean
weighted by each channel's object votes (1 = each channel paints one object part,
1 / number of object parts = none). Small bases whose support mostly lies on the
background give every channel the background as its dominant label; purity then
measures background coverage, and object purity is the number that says whether
channels are part-specific.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np


class PurityAccumulator:
    """Accumulates part votes of units, per layer and channel.

    Args:
        part_names: names of the part-map labels (index 0 is usually background).
        support_fraction: a basis's support is where |B| > this fraction of max |B|.
        serve_share: a channel serves a part when the part has at least this share of its votes.
    """

    def __init__(self, part_names: Sequence[str], support_fraction: float = 0.5, serve_share: float = 0.2):
        if not 0.0 < support_fraction < 1.0:
            raise ValueError(f"support_fraction must lie in (0, 1), got {support_fraction}")
        self.part_names = list(part_names)
        self.support_fraction = support_fraction
        self.serve_share = serve_share
        self.votes: Dict[str, Dict[int, np.ndarray]] = {}
        self.fires: Dict[str, Dict[int, int]] = {}
        self.localities: Dict[str, List[float]] = {}

    def support(self, basis: np.ndarray) -> np.ndarray:
        """Boolean [H, W] support of a basis [H, W] or [H, W, C]."""
        mag = np.abs(basis).max(axis=-1) if basis.ndim == 3 else np.abs(basis)
        peak = mag.max()
        return mag > self.support_fraction * peak if peak > 0 else np.zeros(mag.shape, bool)

    def locality(self, basis: np.ndarray, part_map: np.ndarray) -> float:
        """Share of the basis's energy inside the object part (label > 0) that holds most of it."""
        energy = np.square(basis).sum(axis=-1) if basis.ndim == 3 else np.square(basis)
        total = energy.sum()
        if total <= 0:
            return float("nan")
        per_part = np.bincount(part_map.astype(np.int64).ravel(), weights=energy.ravel(),
                               minlength=len(self.part_names))[1:len(self.part_names)]
        return float(per_part.max() / total) if per_part.size else 0.0

    def add(self, layer: str, channels: Sequence[int], bases: np.ndarray, part_map: np.ndarray) -> None:
        """Adds the votes of units `channels` [M] with bases [M, H, W(, C)] on one scene's part map [H, W]."""
        votes = self.votes.setdefault(layer, {})
        fires = self.fires.setdefault(layer, {})
        localities = self.localities.setdefault(layer, [])
        k = len(self.part_names)
        for c, basis in zip(channels, bases):
            loc = self.locality(basis, part_map)
            if np.isfinite(loc):
                localities.append(loc)
            mask = self.support(basis)
            if not mask.any():
                continue
            hist = np.bincount(part_map[mask].astype(np.int64), minlength=k)[:k].astype(np.float64)
            votes.setdefault(int(c), np.zeros(k))
            votes[int(c)] += hist / hist.sum()
            fires[int(c)] = fires.get(int(c), 0) + 1

    def result(self) -> Dict[str, dict]:
        """Per layer: purity, per-channel details, confusion table and part/channel counts."""
        out = {}
        for layer, votes in self.votes.items():
            channels = sorted(votes)
            counts = np.array([self.fires[layer][c] for c in channels], np.float64)
            table = np.stack([votes[c] for c in channels])  # [channels, parts]
            shares = table / table.sum(axis=1, keepdims=True)
            purity = shares.max(axis=1)
            dominant = shares.argmax(axis=1)
            # Label 0 (background) left out: [channels, parts - 1] votes for object parts.
            object_votes = table[:, 1:]
            object_mass = object_votes.sum(axis=1)
            has_object = object_mass > 0
            object_purity = np.zeros(len(channels))
            object_purity[has_object] = (object_votes[has_object].max(axis=1) / object_mass[has_object])
            out[layer] = {
                "purity": float(np.sum(purity * counts) / counts.sum()),
                "object_purity": (float(np.sum(object_purity * object_mass) / object_mass.sum())
                                  if object_mass.sum() > 0 else float("nan")),
                "background_share": float(table[:, 0].sum() / table.sum()),
                "locality": float(np.mean(self.localities[layer])) if self.localities.get(layer) else float("nan"),
                "num_channels": len(channels),
                "num_activations": int(counts.sum()),
                "channels": {int(c): {"fires": int(n), "purity": float(p), "dominant_part": self.part_names[d],
                                      "shares": [float(s) for s in row]}
                             for c, n, p, d, row in zip(channels, counts, purity, dominant, shares)},
                "channels_per_part": {name: int(np.sum(dominant == i)) for i, name in enumerate(self.part_names)},
                "parts_per_channel": float(np.mean(np.sum(shares >= self.serve_share, axis=1))),
                "confusion": {"channels": [int(c) for c in channels], "parts": self.part_names,
                              "votes": table.tolist()},
            }
        return out


def model_part_purity(model, images, part_maps, part_names, support_fraction: float = 0.5,
                      max_units: Optional[int] = 256, log=None) -> Dict[str, dict]:
    """Part purity of an AND-OR model on scenes `images` [N, H, W, C] with `part_maps` [N, H, W].

    Latents are inferred with the model's `encode` (Langevin from z = 0); each
    layer the config gives a k (sparse layers; with `andor.sparsity` off, the dense
    baseline's same layers, whose active units are the ReLU's non-zeros) has its
    active units (the `max_units` strongest per scene and layer) given basis
    functions by `interpret.basis_functions`. With two scenes or more, every layer's
    result holds `mismatched`: purity, object purity and locality of the same bases
    against the next scene's part map (the alignment baseline).
    """
    from tf_sparse_gen.families.andor import interpret

    generator = model.generator
    part_maps = np.asarray(part_maps)
    acc = PurityAccumulator(part_names, support_fraction)
    # The alignment baseline: the same bases against the next scene's part map.
    mismatched = PurityAccumulator(part_names, support_fraction) if len(part_maps) > 1 else None
    zs = model.encode(images).numpy()
    layers = [i for i, k in enumerate(generator.layer_ks) if k]
    strongest: Dict[str, Dict[int, tuple]] = {}
    for n, (z, part_map) in enumerate(zip(zs, part_maps)):
        rec = interpret.record(generator, z)
        for layer in layers:
            name = generator.layer_names[layer]
            units, values = interpret.active_units(generator, rec, layer)
            if max_units and len(units) > max_units:
                keep = np.argsort(-values)[:max_units]
                units, values = units[keep], values[keep]
            bases = interpret.basis_functions(generator, rec, layer, units)
            acc.add(name, units[:, 2], bases, part_map)
            if mismatched is not None:
                mismatched.add(name, units[:, 2], bases, part_maps[(n + 1) % len(part_maps)])
            best = strongest.setdefault(name, {})
            for u, v in zip(units, values):
                if int(u[2]) not in best or v > best[int(u[2])][0]:
                    best[int(u[2])] = (float(v), n, [int(x) for x in u])
        if log and (n + 1) % 20 == 0:
            log(f"purity: {n + 1}/{len(zs)} scenes")
    result = acc.result()
    baseline = mismatched.result() if mismatched is not None else {}
    for name, per_layer in result.items():
        per_layer["layer_index"] = generator.layer_names.index(name)
        other = baseline.get(name)
        per_layer["mismatched"] = ({key: other[key] for key in ("purity", "object_purity", "locality")}
                                   if other else None)
        for c, info in per_layer["channels"].items():
            value, scene, unit = strongest[name][c]
            info["strongest"] = {"scene": scene, "unit": unit, "activation": value, "z": zs[scene].tolist()}
    return result


def channel_part_figure(model, part_maps, layer_result: dict, path: str, part_names, top: int = 12,
                        support_fraction: float = 0.5) -> str:
    """Per frequent channel: the basis of its strongest activation beside its dominant part's mask there."""
    from tf_sparse_gen import images as image_lib
    from tf_sparse_gen.families.andor import interpret

    generator = model.generator
    channels = sorted(layer_result["channels"], key=lambda c: -layer_result["channels"][c]["fires"])[:top]
    tiles = []
    for c in channels:
        info = layer_result["channels"][c]
        ex = info["strongest"]
        rec = interpret.record(generator, np.asarray(ex["z"], np.float32))
        basis = interpret.basis_functions(generator, rec, layer_result["layer_index"], np.array([ex["unit"]]))[0]
        peak = np.abs(basis).max()
        basis = basis / peak if peak > 0 else basis
        if basis.shape[-1] == 1:
            basis = np.repeat(basis, 3, axis=-1)
        part = list(part_names).index(info["dominant_part"])
        mask = (np.asarray(part_maps[ex["scene"]]) == part).astype(np.float32) * 2.0 - 1.0
        tiles += [basis, np.repeat(mask[..., None], 3, axis=-1)]
    if tiles:
        image_lib.save_png(image_lib.image_grid(np.stack(tiles), ncol=8, pad_value=128), path, scale=3)
    return path


def confusion_heatmap(result: dict, path: str, top: int = 32, cell: int = 12) -> str:
    """A heat map (PNG) of the `top` most frequent channels' part shares (rows) per part (columns)."""
    from PIL import Image, ImageDraw

    channels = sorted(result["channels"], key=lambda c: -result["channels"][c]["fires"])[:top]
    parts = result["confusion"]["parts"]
    label_w, label_h = 48, 70
    img = Image.new("RGB", (label_w + cell * len(parts), label_h + cell * len(channels)), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for j, name in enumerate(parts):
        draw.text((label_w + j * cell, 2 + (j % 6) * 11), name[:10], fill=(0, 0, 0))
    for i, c in enumerate(channels):
        draw.text((2, label_h + i * cell), f"ch{c}", fill=(0, 0, 0))
        for j, share in enumerate(result["channels"][c]["shares"]):
            v = int(255 * (1.0 - share))
            draw.rectangle([label_w + j * cell, label_h + i * cell, label_w + (j + 1) * cell - 1,
                            label_h + (i + 1) * cell - 1], fill=(255, v, v))
    img.save(path)
    return path

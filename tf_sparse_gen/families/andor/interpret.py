"""Basis functions and AND-OR trees of the sparse generator (Xing et al., Appendix A.2, Figure 1).

For one latent z, `record` runs the generator and keeps every stage's 0/1
gate (ReLU times top-k). With the gates fixed, the network above sparse layer
i is linear: fm^{L+1} = psi^i(h^i) + beta^i, where h^i are the layer's
activations and beta^i the part due to the biases. The basis function of an
active unit k is B_k = psi^i(e_k), the pre-tanh image-space response to that
unit alone, so that

    fm^{L+1} = sum_k s_k B_k + beta^i,   Y = tanh(fm^{L+1}),

with s_k the unit's activation. `basis_functions` computes B_k by running
`SparseGenerator.propagate` (the generator's own layers) on one-hot inputs.

The AND-OR tree of one image: the image is an AND of the positions of a mid
sparse layer; each position is an OR node whose chosen children are the
channels kept there (the parts); each part is an AND of the active units of
the next sparse layer that it contributes most to, and so on down to the
last sparse layer (the primitives).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from tf_sparse_gen import images as image_lib


@dataclasses.dataclass
class Recording:
    """One forward pass with its gates. Arrays have no batch axis except `gates` ([1, ...])."""

    z: np.ndarray
    image: np.ndarray  # [H, W, C] in [-1, 1]
    fm: np.ndarray  # [H, W, C] pre-tanh output
    acts: List[np.ndarray]  # per stage [h, w, c]
    gates: List[tf.Tensor]  # per stage [1, h, w, c]


def record(generator, z) -> Recording:
    """Runs the generator on one latent z ([d] or [1, d]) and records activations and gates."""
    z = tf.reshape(tf.convert_to_tensor(z, tf.float32), [1, -1])
    image, fm, acts, gates = generator.forward(z, record=True)
    return Recording(z=z.numpy()[0], image=image.numpy()[0], fm=fm.numpy()[0],
                     acts=[a.numpy()[0].astype(np.float32) for a in acts],
                     gates=[tf.cast(g, tf.float32) for g in gates])


def active_units(generator, rec: Recording, layer: int):
    """(units [M, 3] as (y, x, channel), activations [M]) of sparse layer `layer`."""
    act = rec.acts[generator.layer_stages[layer]]
    units = np.argwhere(act != 0)
    return units, act[tuple(units.T)] if len(units) else np.zeros([0], np.float32)


def _one_hot(shape, units) -> np.ndarray:
    e = np.zeros((len(units), *shape), np.float32)
    e[np.arange(len(units)), units[:, 0], units[:, 1], units[:, 2]] = 1.0
    return e


def _propagate(generator, rec, start_stage, end_stage, h, bias, chunk=256):
    """Runs stages start+1..end (or to fm when end_stage is None) with the recorded gates."""
    out = []
    for i in range(0, len(h), chunk):
        x = tf.convert_to_tensor(h[i:i + chunk])
        if end_stage is None:
            x = generator.propagate(x, start_stage, rec.gates, bias=bias)
        else:
            for s in range(start_stage + 1, end_stage + 1):
                x = generator._affine(s, x, bias) * rec.gates[s]
        out.append(tf.cast(x, tf.float32).numpy())
    return np.concatenate(out) if out else np.zeros([0], np.float32)


def _receptive_margin(generator, start_stage: int, end_stage: int) -> int:
    """How far (in cells of stage `start_stage`) a unit's response spreads by `end_stage`.

    Each 3x3 conv spreads a response by one pixel of its own resolution, i.e. by
    size_start / size_s cells of the start grid; nearest upsampling only refines it,
    bilinear upsampling spreads it by `upsample_spread` pixels of its input.
    """
    base = generator.stage_size[start_stage]
    spread = 0.0
    for s in range(start_stage + 1, end_stage + 1):
        spread += base / generator.stage_size[s]
        if generator.stage_upsample[s]:
            spread += generator.upsample_spread * base / generator.stage_size[s - 1]
    return int(np.ceil(spread - 1e-9))


def unit_contributions(generator, rec: Recording, start_stage: int, end_stage: int, p_units: np.ndarray,
                       p_vals: np.ndarray, c_units: np.ndarray, chunk: int = 256):
    """For each child unit, the parent unit contributing most to it, and that contribution.

    The contribution of parent p to child m is |s_p * R_p[m]|, R_p the response of
    the gated linear map from `start_stage` to `end_stage` to p alone (ties: the
    first parent). Exact, in bounded memory and time: parents are taken `chunk` at
    a time and each one's response is computed only in a window of the grid that
    holds its whole receptive field (outside it the response is exactly 0, and
    inside it the window's zero padding only meets zeros), so the cost per parent
    does not grow with the size of the maps.

    Returns (strength [M], owner [M]) for the M child units.
    """
    size0 = generator.stage_size[start_stage]
    margin = _receptive_margin(generator, start_stage, end_stage)
    win = min(2 * margin + 1, size0)  # window side in start-grid cells
    scale_end = generator.stage_size[end_stage] // size0
    best = np.full(len(c_units), -1.0)
    owner = np.zeros(len(c_units), np.int64)
    gates = {s: rec.gates[s].numpy()[0] for s in range(start_stage + 1, end_stage + 1)}
    channels = rec.acts[start_stage].shape[-1]
    for i in range(0, len(p_units), chunk):
        units = p_units[i:i + chunk]
        n = len(units)
        y0 = np.clip(units[:, 0] - margin, 0, size0 - win)
        x0 = np.clip(units[:, 1] - margin, 0, size0 - win)
        # [n, win, win, C]: each parent's one-hot inside its own window.
        h = np.zeros((n, win, win, channels), np.float32)
        h[np.arange(n), units[:, 0] - y0, units[:, 1] - x0, units[:, 2]] = 1.0
        x = tf.convert_to_tensor(h)
        for s in range(start_stage + 1, end_stage + 1):
            f = generator.stage_size[s] // size0
            # [H, W, C] gates -> [n, f*win, f*win, C], each parent's window of them.
            g = np.stack([gates[s][f * a:f * (a + win), f * b:f * (b + win)] for a, b in zip(y0, x0)])
            x = generator._affine(s, x, False) * g
        resp = tf.cast(x, tf.float32).numpy()  # [n, s*win, s*win, C_child]
        side, c_child = resp.shape[1], resp.shape[-1]
        ly = c_units[None, :, 0] - scale_end * y0[:, None]  # [n, M] child position in each window
        lx = c_units[None, :, 1] - scale_end * x0[:, None]
        inside = (ly >= 0) & (ly < side) & (lx >= 0) & (lx < side)
        flat_index = (np.clip(ly, 0, side - 1) * side + np.clip(lx, 0, side - 1)) * c_child + c_units[None, :, 2]
        values = np.take_along_axis(resp.reshape(n, -1), flat_index, axis=1) * inside
        contrib = np.abs(values * p_vals[i:i + chunk, None].astype(np.float32))  # [n, M]
        top, arg = contrib.max(axis=0), contrib.argmax(axis=0)
        better = top > best
        best[better] = top[better]
        owner[better] = arg[better] + i
    return best, owner


def basis_functions(generator, rec: Recording, layer: int, units: Optional[np.ndarray] = None,
                    chunk: int = 256) -> np.ndarray:
    """B_k = psi^layer(e_k) for each unit (default: every active unit): [M, H, W, C]."""
    stage = generator.layer_stages[layer]
    if units is None:
        units, _ = active_units(generator, rec, layer)
    if len(units) == 0:
        return np.zeros((0, *rec.fm.shape), np.float32)
    return _propagate(generator, rec, stage, None, _one_hot(rec.acts[stage].shape, units), False, chunk)


def bias_part(generator, rec: Recording, layer: int) -> np.ndarray:
    """beta^layer: the output with the layer's activations zeroed and the gates fixed."""
    stage = generator.layer_stages[layer]
    zeros = np.zeros((1, *rec.acts[stage].shape), np.float32)
    return _propagate(generator, rec, stage, None, zeros, True)[0]


def crop_box(basis: np.ndarray, frac: float = 0.1):
    """(y0, y1, x0, x1): the bounding box where |B| exceeds `frac` of its maximum."""
    mag = np.abs(basis).max(axis=-1) if basis.ndim == 3 else np.abs(basis)
    peak = mag.max()
    if peak <= 0:
        return 0, mag.shape[0], 0, mag.shape[1]
    ys, xs = np.nonzero(mag > frac * peak)
    return int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1


def basis_to_image(basis: np.ndarray, frac: float = 0.1, cell: Optional[int] = None) -> np.ndarray:
    """A basis function as a picture in [-1, 1] (0 = grey), cropped, padded to `cell` x `cell`."""
    peak = np.abs(basis).max()
    img = basis / peak if peak > 0 else basis
    y0, y1, x0, x1 = crop_box(basis, frac)
    img = img[y0:y1, x0:x1]
    if cell is not None:
        out = np.zeros((cell, cell, img.shape[-1]), np.float32)
        h, w = min(cell, img.shape[0]), min(cell, img.shape[1])
        oy, ox = (cell - h) // 2, (cell - w) // 2
        out[oy:oy + h, ox:ox + w] = img[:h, :w]
        img = out
    return img


# ----------------------------------------------------------------------------- figures

def layer_basis_figure(generator, zs, layer: int, path: str, top: int = 32, frac: float = 0.1) -> dict:
    """Grid of the `top` most used channels' basis functions at `layer`, over latents `zs`.

    For each channel, the basis of its strongest activation over all latents is
    drawn, cropped where it is non-negligible. Returns {channel: use count}.
    """
    uses: Dict[int, int] = {}
    best: Dict[int, tuple] = {}
    recs = [record(generator, z) for z in zs]
    for r_i, rec in enumerate(recs):
        units, values = active_units(generator, rec, layer)
        for (y, x, c), v in zip(units, values):
            uses[int(c)] = uses.get(int(c), 0) + 1
            if int(c) not in best or v > best[int(c)][0]:
                best[int(c)] = (float(v), r_i, (int(y), int(x), int(c)))
    channels = sorted(uses, key=lambda c: -uses[c])[:top]
    cell = generator.image_size
    tiles = []
    for c in channels:
        _, r_i, unit = best[c]
        basis = basis_functions(generator, recs[r_i], layer, np.array([unit]))[0]
        tiles.append(basis_to_image(basis, frac, cell))
    if tiles:
        grid = image_lib.image_grid(np.stack(tiles), ncol=8, pad_value=0)
        image_lib.save_png(grid, path, scale=max(1, 128 // cell))
    return {c: uses[c] for c in channels}


def and_or_tree(generator, z, mid_layer: int = 1, max_children: int = 8) -> dict:
    """The AND-OR tree of the image g(z) as a JSON-ready dict.

    Nodes: {"type": "AND"|"OR", "layer", "name", "position": [y, x], "channel",
    "activation", "children"}. The image (AND) has one OR node per position of
    `mid_layer` that keeps any channel; its children are the kept channels
    (parts, AND nodes), each with the units of the next sparse layer it
    contributes most to (strongest `max_children` kept), down to the last
    sparse layer.
    """
    rec = record(generator, z)
    n_layers = len(generator.layer_stages)
    mid_layer = min(mid_layer, n_layers - 1)
    sparse_layers = [i for i in range(mid_layer, n_layers) if generator.layer_sparse(i)] or [mid_layer]

    def node(layer, unit, value, children):
        return {"type": "AND", "layer": layer, "name": generator.layer_names[layer],
                "position": [int(unit[0]), int(unit[1])], "channel": int(unit[2]),
                "activation": float(value), "children": children}

    # Children of each unit: assign every active unit of layer l+1 to the parent at
    # layer l with the largest contribution to its (gated) pre-activation.
    def children_of(layer_pos):
        if layer_pos + 1 >= len(sparse_layers):
            return None
        parent_layer, child_layer = sparse_layers[layer_pos], sparse_layers[layer_pos + 1]
        p_units, p_vals = active_units(generator, rec, parent_layer)
        c_units, c_vals = active_units(generator, rec, child_layer)
        if len(p_units) == 0 or len(c_units) == 0:
            return {}
        ps, cs = generator.layer_stages[parent_layer], generator.layer_stages[child_layer]
        strength, owner = unit_contributions(generator, rec, ps, cs, p_units, p_vals, c_units)
        out: Dict[int, list] = {}
        for m, p in enumerate(owner):
            out.setdefault(int(p), []).append((float(strength[m]), m))
        return {p: (p_units, c_units, c_vals, sorted(lst, reverse=True)[:max_children]) for p, lst in out.items()}

    assignments = [children_of(i) for i in range(len(sparse_layers))]

    def build(layer_pos, unit_index, unit, value):
        layer = sparse_layers[layer_pos]
        kids = []
        table = assignments[layer_pos]
        if table and unit_index in table:
            _, c_units, c_vals, chosen = table[unit_index]
            for _, m in chosen:
                kids.append(build(layer_pos + 1, m, c_units[m], c_vals[m]))
        return node(layer, unit, value, kids)

    units, values = active_units(generator, rec, sparse_layers[0])
    positions: Dict[tuple, list] = {}
    for i, (u, v) in enumerate(zip(units, values)):
        positions.setdefault((int(u[0]), int(u[1])), []).append(build(0, i, u, v))
    or_nodes = [{"type": "OR", "layer": sparse_layers[0], "name": generator.layer_names[sparse_layers[0]],
                 "position": [y, x], "children": sorted(kids, key=lambda k: -k["activation"])}
                for (y, x), kids in sorted(positions.items())]
    return {"type": "OR", "name": "z", "z": rec.z.tolist(),
            "children": [{"type": "AND", "name": "image", "layers": [generator.layer_names[i] for i in sparse_layers],
                          "grid": list(rec.acts[generator.layer_stages[sparse_layers[0]]].shape[:2]),
                          "children": or_nodes}]}


def iter_nodes(tree: dict):
    yield tree
    for child in tree.get("children", []):
        yield from iter_nodes(child)


def draw_and_or_tree(generator, z, tree: dict, path: str, parts: int = 6, children: int = 4,
                     cell: int = 48, frac: float = 0.1) -> str:
    """A picture in the manner of the paper's Figure 1.

    Row 1: the image with the mid-layer grid (cells holding a part are
    outlined). Row 2: the `parts` strongest parts' basis functions. Below each
    part, its strongest children's basis functions (the primitives).
    """
    from PIL import Image, ImageDraw

    rec = record(generator, z)
    image_node = tree["children"][0]
    gh, gw = image_node["grid"]
    part_nodes = sorted((c for o in image_node["children"] for c in o["children"]),
                        key=lambda n: -n["activation"])[:parts]
    big = 2 * cell
    title = (f"image = AND of {len(image_node['children'])} part positions "
             f"({image_node['layers'][0]} grid {gh}x{gw})")
    caption = "row 2: parts (OR choices at the grid); below: their primitives (AND children)"
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    width = int(max(max(parts, 1) * (cell + 8) + 8, big + 16 + measure.textlength(title) + 8,
                    8 + measure.textlength(caption) + 8))
    height = 8 + 2 * cell + 8 + (cell + 8) * (1 + children) + 24
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)

    def paste(array, x, y, size):
        arr = image_lib.to_uint8(array)
        if arr.shape[-1] == 1:
            arr = np.repeat(arr, 3, axis=-1)
        canvas.paste(Image.fromarray(arr).resize((size, size), Image.Resampling.NEAREST), (x, y))

    paste(rec.image, 8, 8, big)
    step_y, step_x = big / gh, big / gw
    for o in image_node["children"]:
        y, x = o["position"]
        draw.rectangle([8 + x * step_x, 8 + y * step_y, 8 + (x + 1) * step_x, 8 + (y + 1) * step_y],
                       outline=(220, 40, 40))
    draw.text((big + 16, 8), title, fill=(0, 0, 0))
    top = 8 + big + 8
    for j, part in enumerate(part_nodes):
        x0 = 8 + j * (cell + 8)
        layer = part["layer"]
        unit = np.array([[*part["position"], part["channel"]]])
        paste(basis_to_image(basis_functions(generator, rec, layer, unit)[0], frac, generator.image_size),
              x0, top, cell)
        draw.rectangle([x0, top, x0 + cell, top + cell], outline=(220, 40, 40))
        for i, child in enumerate(part["children"][:children]):
            cu = np.array([[*child["position"], child["channel"]]])
            basis = basis_functions(generator, rec, child["layer"], cu)[0]
            paste(basis_to_image(basis, frac, generator.image_size), x0, top + (i + 1) * (cell + 8), cell)
    draw.text((8, height - 18), caption, fill=(0, 0, 0))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    canvas.save(path)
    return path


def write_and_or_tree(generator, z, out_dir: str, name: str = "and_or_tree", mid_layer: int = 1) -> dict:
    """Writes `<name>.json` and `<name>.png` into out_dir; returns the paths."""
    tree = and_or_tree(generator, z, mid_layer=mid_layer)
    os.makedirs(out_dir, exist_ok=True)
    json_path = os.path.join(out_dir, f"{name}.json")
    with open(json_path, "w") as f:
        json.dump(tree, f)
    png_path = draw_and_or_tree(generator, z, tree, os.path.join(out_dir, f"{name}.png"))
    return {"json": json_path, "png": png_path}

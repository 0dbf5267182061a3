"""Data of report.html's interactive explorer: every active mid-layer unit of a few latents as a toggle.

With the gates recorded for one z fixed, fm = sum_k s_k B_k + beta and image =
tanh(fm) (`interpret`). The page recomposes the image from these numbers alone:
fm = fixed + sum over the units switched on of s_k B_k, then tanh, then
uint8 = round((t + 1) * 127.5) as `images.to_uint8` does. Each basis is stored
cropped to the box where it is non-zero (outside its receptive field it is exactly
0), as little-endian float32 written in hex (not base64: base64 text can spell any word, e.g.
"http", which a page that must not name a network address should not contain); `fixed` is beta plus the units beyond
`max_units` (the weakest; they are not toggles then, and `folded` says how many).

The JSON written here (`kind` "basis_explorer") is what `report.write_html_report`
inlines into the page, with its script; no server and no network are involved.
"""

from __future__ import annotations

import json
import os
from typing import Optional, Sequence

import numpy as np

from tf_sparse_gen.families.andor import interpret

KIND = "basis_explorer"


def _hex(array) -> str:
    return np.ascontiguousarray(array, dtype="<f4").tobytes().hex()


def nonzero_box(basis: np.ndarray):
    """(y0, y1, x0, x1) of the smallest box holding every non-zero of basis [H, W, C] (an empty basis: 1 pixel)."""
    mag = np.abs(basis).max(axis=-1)
    ys, xs = np.nonzero(mag > 0)
    if len(ys) == 0:
        return 0, 1, 0, 1
    return int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1


def latent_entry(generator, z, layer: int, max_units: int = 1024, name: str = "") -> dict:
    rec = interpret.record(generator, z)
    units, values = interpret.active_units(generator, rec, layer)
    order = np.argsort(-values, kind="stable")
    units, values = units[order], values[order]
    keep = min(len(units), max_units)
    # The fixed part: beta plus the folded units, psi(h_rest) + beta in one pass (psi is linear).
    stage = generator.layer_stages[layer]
    rest = rec.acts[stage].copy()
    rest[units[:keep, 0], units[:keep, 1], units[:keep, 2]] = 0.0
    if keep < len(units):
        from tf_sparse_gen.families.andor.ablate import fixed_gates_fm

        fixed = fixed_gates_fm(generator, rec, stage, rest[None])[0]
    else:
        fixed = interpret.bias_part(generator, rec, layer)
    boxes, chunks = [], []
    for i in range(0, keep, 256):
        bases = interpret.basis_functions(generator, rec, layer, units[i:min(keep, i + 256)])
        for b in bases:
            y0, y1, x0, x1 = nonzero_box(b)
            boxes.append([y0, y1, x0, x1])
            chunks.append(b[y0:y1, x0:x1].reshape(-1))
    return {"name": name, "image": _hex(rec.image), "fixed": _hex(fixed.astype(np.float32)),
            "units": units[:keep].tolist(), "values": [float(v) for v in values[:keep]], "boxes": boxes,
            "bases": _hex(np.concatenate(chunks) if chunks else np.zeros([0], np.float32)),
            "folded": int(len(units) - keep)}


def explorer_data(generator, zs: Sequence, layer: int, max_units: int = 1024, names: Optional[Sequence[str]] = None) -> dict:
    h, w, c = generator.image_size, generator.image_size, generator.out_channels
    stage = generator.layer_stages[layer]
    return {"kind": KIND, "version": 1, "encoding": "float32 little-endian hex", "layer": generator.layer_names[layer],
            "grid": int(generator.stage_size[stage]), "height": h, "width": w, "channels": c,
            "latents": [latent_entry(generator, z, layer, max_units, names[i] if names else f"sample {i}")
                        for i, z in enumerate(zs)]}


def write_explorer(generator, zs, layer: int, path: str, max_units: int = 1024) -> str:
    """Writes the explorer's JSON to `path` (the report inlines it); returns the path."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(explorer_data(generator, zs, layer, max_units), f)
    os.replace(path + ".tmp", path)
    return path


def decode(text: str, shape=None) -> np.ndarray:
    """The float32 array of a hex field (for tests and readers of the JSON)."""
    a = np.frombuffer(bytes.fromhex(text), dtype="<f4")
    return a.reshape(shape) if shape is not None else a


def compose(data: dict, latent: int, on: Optional[Sequence[bool]] = None) -> np.ndarray:
    """What the page shows for the units switched `on` (default all): uint8 [H, W, C], in numpy."""
    from tf_sparse_gen import images as image_lib

    entry = data["latents"][latent]
    h, w, c = data["height"], data["width"], data["channels"]
    fm = decode(entry["fixed"], (h, w, c)).astype(np.float64)
    flat = decode(entry["bases"])
    offset = 0
    for k, (y0, y1, x0, x1) in enumerate(entry["boxes"]):
        n = (y1 - y0) * (x1 - x0) * c
        if on is None or on[k]:
            fm[y0:y1, x0:x1] += entry["values"][k] * flat[offset:offset + n].reshape(y1 - y0, x1 - x0, c)
        offset += n
    return image_lib.to_uint8(np.tanh(fm))

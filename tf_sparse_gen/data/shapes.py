"""`shapes`: a procedural dataset of small colour scenes with exact part labels.

Every scene shows one object on a plain background, and
comes with a part map that says, for every pixel, which part of the object (or
the background) is visible there. The part map is what lets us check later
whether a generator unit that lights up on, say, eyes really tracks eyes.

Scene grammar
-------------
The scenes are sampled from a small AND-OR grammar, the same kind of structure
the AND-OR generator models are meant to discover:

    scene   -> background AND object
    object  -> face | house                               (OR over classes)
    face    -> outline AND left_eye AND right_eye AND nose AND mouth
    house   -> wall AND roof AND door AND window
    outline -> circle | ellipse | rounded_square         (OR over types)
    eye     -> dot | ring | line | square                (both eyes usually agree)
    nose    -> triangle | line | dot
    mouth   -> smile | line | open
    wall    -> wide | square | tall
    roof    -> gable | hip | flat
    door    -> rectangle | arched
    window  -> square | round | panes                    (one or two windows)

An object is an AND node: all of its parts are present. Each part is an OR
node: exactly one of its types is drawn. Positions and sizes of the parts are
jittered inside a fixed layout (eyes above the nose, the nose above the mouth,
the door at the bottom of the wall, ...). Every part has its own base colour
(skin-coloured face, dark eyes, red roof, ...) and the background one of three
dark tones, each jittered by up to `_COLOUR_JITTER` per channel, so that a part
stands out from the background and from the part it is painted on, in RGB and in
brightness (parts stay separable after conversion to grayscale).

Scene version 2 (`SCENE_VERSION`). Version 1 drew every colour at random (only
subject to the same contrast rules) on a faintly textured background; at the
`small` preset an AND-OR model trained for 30 CPU-minutes reconstructed those
scenes as colour blobs and sampled no recognisable object
(benchmarks/results/andor_shapes_budget_v1/), so the colours now carry the part
and the background no texture. The geometry is unchanged.

Rasterisation is done with coordinate grids and boolean masks, without
anti-aliasing: every part is painted in one flat colour, in order (outline or
wall first, inner parts after), and a pixel's part label is the part painted
there last. The part map is therefore exact. Shapes are laid out in
resolution-free coordinates in [0, 1], so the same (index, seed) gives the same
scene at every `image_size`. Lines are
at least one pixel thick, and a part that would vanish at a small size (or be
hidden by a later part) gets the pixel under its anchor point, so every part
of the object covers at least one pixel from size 16 upwards.

Scenes are a pure function of `(index, seed)`: `render_scene` can recreate any
example on its own, and `generate_scenes` is just a loop over it.
"""

from __future__ import annotations

import functools
import operator
from typing import Dict, List, Tuple

import numpy as np

PART_NAMES: Tuple[str, ...] = ("background", "outline", "left_eye", "right_eye", "nose", "mouth",
                               "wall", "roof", "door", "window")
"""Names of the part-map values; index 0 is the background."""

CLASS_NAMES: Tuple[str, ...] = ("face", "house")
"""Names of the class labels returned with each scene."""

CLASS_PARTS: Dict[str, Tuple[str, ...]] = {
    "face": ("outline", "left_eye", "right_eye", "nose", "mouth"),
    "house": ("wall", "roof", "door", "window"),
}
"""The parts of each class, in painting order (later parts occlude earlier ones)."""

PART_TYPES: Dict[str, Tuple[str, ...]] = {
    "outline": ("circle", "ellipse", "rounded_square"),
    "left_eye": ("dot", "ring", "line", "square"),
    "right_eye": ("dot", "ring", "line", "square"),
    "nose": ("triangle", "line", "dot"),
    "mouth": ("smile", "line", "open"),
    "wall": ("wide", "square", "tall"),
    "roof": ("gable", "hip", "flat"),
    "door": ("rectangle", "arched"),
    "window": ("square", "round", "panes"),
}
"""The alternative types (OR branches) of every part, for documentation."""

# A fixed, well separated colour per part label, for visualising part maps.
PART_MAP_PALETTE = np.array([
    (0, 0, 0),        # background
    (230, 190, 140),  # outline
    (30, 120, 255),   # left_eye
    (0, 200, 200),    # right_eye
    (240, 60, 60),    # nose
    (200, 40, 200),   # mouth
    (140, 140, 140),  # wall
    (200, 90, 20),    # roof
    (60, 200, 60),    # door
    (250, 240, 60),   # window
], dtype=np.uint8)

MIN_IMAGE_SIZE = 16

SCENE_VERSION = 2
"""Changes whenever the same (index, seed) renders differently; part of the data cache's key."""

_FACE, _HOUSE = 0, 1
_LABEL = {name: i for i, name in enumerate(PART_NAMES)}
# Base colours (RGB). Before jitter, every part differs from each part or background
# it can touch by >= 38 in brightness (ITU-R 601 luma) and >= 90 in RGB distance; the
# jitter moves a luma by at most _COLOUR_JITTER (tests/test_shapes.py checks the
# rendered scenes: >= 20 and >= 60 against every 4-adjacent part).
_PART_COLOURS = {
    "outline": (235, 190, 150), "left_eye": (30, 30, 40), "right_eye": (30, 30, 40),
    "nose": (205, 70, 60), "mouth": (130, 20, 40),
    "wall": (215, 205, 185), "roof": (225, 95, 40), "door": (170, 110, 60), "window": (130, 175, 230)}
_BACKGROUNDS = ((40, 70, 120), (40, 90, 60), (80, 60, 100))
_COLOUR_JITTER = 8

Mask = np.ndarray
# A part to paint: (part label, boolean mask [S, S], anchor point (x, y) in [0, 1]).
_Part = Tuple[int, Mask, Tuple[float, float]]


# ----------------------------------------------------------------------------- validation

def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


# ----------------------------------------------------------------------------- rasterisation

@functools.lru_cache(maxsize=16)
def _grid(size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [0, 1]: x as a row [1, S], y as a column [S, 1]."""
    c = (np.arange(size, dtype=np.float64) + 0.5) / size
    x, y = c[None, :], c[:, None]
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


def _ellipse(x, y, cx, cy, rx, ry) -> Mask:
    return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0


def _disc(x, y, cx, cy, r) -> Mask:
    return (x - cx) ** 2 + (y - cy) ** 2 <= r * r


def _ring(x, y, cx, cy, r_out, r_in) -> Mask:
    d2 = (x - cx) ** 2 + (y - cy) ** 2
    return (d2 <= r_out * r_out) & (d2 >= r_in * r_in)


def _rect(x, y, cx, cy, hw, hh) -> Mask:
    return (np.abs(x - cx) <= hw) & (np.abs(y - cy) <= hh)


def _rounded_rect(x, y, cx, cy, hw, hh, r) -> Mask:
    qx = np.maximum(np.abs(x - cx) - (hw - r), 0.0)
    qy = np.maximum(np.abs(y - cy) - (hh - r), 0.0)
    return qx * qx + qy * qy <= r * r


def _segment(x, y, x0, y0, x1, y1, half_width) -> Mask:
    """Pixels within `half_width` of the segment (x0, y0)-(x1, y1) (a capsule)."""
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    return (x - x0 - t * dx) ** 2 + (y - y0 - t * dy) ** 2 <= half_width * half_width


def _triangle(x, y, p0, p1, p2) -> Mask:
    """Pixels inside the triangle p0 p1 p2 (either winding)."""
    def edge(a, b):
        return (b[0] - a[0]) * (y - a[1]) - (b[1] - a[1]) * (x - a[0])
    e0, e1, e2 = edge(p0, p1), edge(p1, p2), edge(p2, p0)
    return ((e0 >= 0) & (e1 >= 0) & (e2 >= 0)) | ((e0 <= 0) & (e1 <= 0) & (e2 <= 0))


def _smile(x, y, cx, cy, half_width, sag, half_thickness) -> Mask:
    """A circular arc, open at the top, through (cx +- half_width, cy - sag/2) and (cx, cy + sag/2)."""
    r = (half_width * half_width + sag * sag) / (2.0 * sag)
    ccy = cy + sag / 2.0 - r
    d = np.sqrt((x - cx) ** 2 + (y - ccy) ** 2)
    return (np.abs(d - r) <= half_thickness) & (np.abs(x - cx) <= half_width) & (y >= ccy)


# ----------------------------------------------------------------------------- objects

def _face(rng: np.random.Generator, x, y, px: float) -> List[_Part]:
    """Samples a face and rasterises its parts, in painting order."""
    half_line = 0.55 * px  # lines are at least ~1 pixel wide
    head_type = int(rng.integers(3))
    r = rng.uniform(0.30, 0.40)
    if head_type == 0:    # circle
        a = b = r
    elif head_type == 1:  # ellipse, taller than wide
        a, b = r * rng.uniform(0.78, 0.90), r * rng.uniform(1.00, 1.12)
    else:                 # rounded square
        a = b = r * rng.uniform(0.85, 0.95)
        corner = a * rng.uniform(0.30, 0.50)
    cx = 0.5 + rng.uniform(-1, 1) * min(0.08, max(0.0, 0.47 - a))
    cy = 0.5 + rng.uniform(-1, 1) * min(0.08, max(0.0, 0.47 - b))
    if head_type == 2:
        head = _rounded_rect(x, y, cx, cy, a, b, corner)
    else:
        head = _ellipse(x, y, cx, cy, a, b)
    parts: List[_Part] = [(_LABEL["outline"], head, (cx, cy - 0.8 * b))]
    u = min(a, b)  # size unit of the inner parts

    # Eyes: the same type on both sides most of the time, a wink otherwise.
    eye_y = cy - b * rng.uniform(0.20, 0.30)
    eye_dx = a * rng.uniform(0.38, 0.46)
    e = u * rng.uniform(0.13, 0.18)
    left_type = int(rng.integers(4))
    other_type = int(rng.integers(4))
    right_type = left_type if rng.random() < 0.75 else other_type
    for name, ex, eye_type in (("left_eye", cx - eye_dx, left_type), ("right_eye", cx + eye_dx, right_type)):
        if eye_type == 0:    # dot
            mask = _disc(x, y, ex, eye_y, e)
        elif eye_type == 1:  # ring
            outer = 1.2 * e
            mask = _ring(x, y, ex, eye_y, outer, max(outer - max(0.5 * e, px), 0.0))
        elif eye_type == 2:  # line (closed eye)
            mask = _segment(x, y, ex - 1.2 * e, eye_y, ex + 1.2 * e, eye_y, max(0.3 * e, half_line))
        else:                # square
            mask = _rect(x, y, ex, eye_y, 0.95 * e, 0.95 * e)
        parts.append((_LABEL[name], mask, (ex, eye_y)))

    nose_type = int(rng.integers(3))
    nx = cx + a * rng.uniform(-0.03, 0.03)
    ny = cy + b * rng.uniform(0.0, 0.10)
    n = u * rng.uniform(0.15, 0.20)
    if nose_type == 0:    # triangle, apex up
        mask = _triangle(x, y, (nx, ny - n), (nx - 0.7 * n, ny + 0.8 * n), (nx + 0.7 * n, ny + 0.8 * n))
        anchor = (nx, ny + 0.3 * n)
    elif nose_type == 1:  # vertical line
        mask = _segment(x, y, nx, ny - 1.2 * n, nx, ny + 0.9 * n, max(0.18 * n, half_line))
        anchor = (nx, ny)
    else:                 # dot
        mask = _disc(x, y, nx, ny, 0.75 * n)
        anchor = (nx, ny)
    parts.append((_LABEL["nose"], mask, anchor))

    mouth_type = int(rng.integers(3))
    mx = cx + a * rng.uniform(-0.04, 0.04)
    my = cy + b * rng.uniform(0.52, 0.62)
    m = a * rng.uniform(0.30, 0.42)
    thick = max(0.07 * u, half_line)
    if mouth_type == 0:    # smile
        sag = m * rng.uniform(0.35, 0.60)
        mask = _smile(x, y, mx, my, m, sag, thick)
        anchor = (mx, my + sag / 2.0)
    elif mouth_type == 1:  # straight line
        mask = _segment(x, y, mx - m, my, mx + m, my, thick)
        anchor = (mx, my)
    else:                  # open mouth
        mask = _ellipse(x, y, mx, my, 0.75 * m, m * rng.uniform(0.30, 0.45))
        anchor = (mx, my)
    parts.append((_LABEL["mouth"], mask, anchor))
    return parts


def _house(rng: np.random.Generator, x, y, px: float) -> List[_Part]:
    """Samples a house and rasterises its parts, in painting order."""
    wall_type = int(rng.integers(3))
    aspect = (rng.uniform(0.55, 0.70), rng.uniform(0.85, 1.00), rng.uniform(1.10, 1.30))[wall_type]
    w = rng.uniform(0.48, 0.70)
    h = w * aspect
    roof_h = w * rng.uniform(0.30, 0.45)
    scale = min(1.0, 0.80 / (h + roof_h))
    w, h, roof_h = w * scale, h * scale, roof_h * scale
    overhang = w * rng.uniform(0.05, 0.12)
    hx = 0.5 + rng.uniform(-1, 1) * min(0.06, max(0.0, 0.47 - w / 2 - overhang))
    top = 0.5 - (h + roof_h) / 2 + rng.uniform(-1, 1) * min(0.05, max(0.0, 0.47 - (h + roof_h) / 2))
    y0, y1 = top + roof_h, top + roof_h + h  # wall top and bottom
    x0, x1 = hx - w / 2, hx + w / 2
    parts: List[_Part] = [(_LABEL["wall"], _rect(x, y, hx, (y0 + y1) / 2, w / 2, h / 2),
                           (hx, y0 + 0.15 * h))]

    roof_type = int(rng.integers(3))
    if roof_type == 0:    # gable: a triangle
        roof = _triangle(x, y, (x0 - overhang, y0), (x1 + overhang, y0), (hx, top))
        anchor = (hx, y0 - 0.3 * roof_h)
    elif roof_type == 1:  # hip: a trapezoid
        top_hw = w * rng.uniform(0.12, 0.28)
        frac = (y - top) / roof_h
        roof = (frac >= 0) & (frac <= 1) & (np.abs(x - hx) <= top_hw + frac * (w / 2 + overhang - top_hw))
        anchor = (hx, y0 - 0.5 * roof_h)
    else:                 # flat: a slab
        slab = max(roof_h * rng.uniform(0.35, 0.55), 1.5 * px)
        roof = _rect(x, y, hx, y0 - slab / 2, w / 2 + overhang, slab / 2)
        anchor = (hx, y0 - slab / 2)
    parts.append((_LABEL["roof"], roof, anchor))

    door_type = int(rng.integers(2))
    door_pos = int(rng.integers(3))  # left, centre, right
    dw = max(w * rng.uniform(0.17, 0.24), 2.0 * px)
    dh = h * rng.uniform(0.45, 0.62)
    dx = (x0 + 0.25 * w, hx, x1 - 0.25 * w)[door_pos]
    if door_type == 0:  # rectangle
        door = _rect(x, y, dx, y1 - dh / 2, dw / 2, dh / 2)
    else:               # arched: a rectangle with a half disc on top
        spring = y1 - dh + dw / 2
        door = _rect(x, y, dx, (spring + y1) / 2, dw / 2, (y1 - spring) / 2) | _disc(x, y, dx, spring, dw / 2)
    parts.append((_LABEL["door"], door, (dx, y1 - 0.3 * dh)))

    window_type = int(rng.integers(3))
    ws = w * rng.uniform(0.09, 0.12)
    wy = y0 + h * rng.uniform(0.28, 0.38)
    # Windows go beside the door: one on the free side, or one on each side.
    centres = ((hx + 0.25 * w,), (hx - 0.3 * w, hx + 0.3 * w), (hx - 0.25 * w,))[door_pos]
    window = np.zeros(np.broadcast_shapes(x.shape, y.shape), dtype=bool)
    for wx in centres:
        if window_type == 0:    # square
            window |= _rect(x, y, wx, wy, ws, ws)
        elif window_type == 1:  # round
            window |= _disc(x, y, wx, wy, 1.1 * ws)
        else:                   # four panes: a square with a wall-coloured cross
            bar = max(0.15 * ws, 0.5 * px)
            window |= (_rect(x, y, wx, wy, ws, ws) & (np.abs(x - wx) > bar) & (np.abs(y - wy) > bar))
    anchor = (centres[0] + 0.5 * ws, wy + 0.5 * ws) if window_type == 2 else (centres[0], wy)
    parts.append((_LABEL["window"], window, anchor))
    return parts


# ----------------------------------------------------------------------------- colours

def _jittered(rng: np.random.Generator, base) -> np.ndarray:
    """`base` moved by a uniform integer in [-_COLOUR_JITTER, _COLOUR_JITTER] per channel."""
    return np.clip(np.asarray(base) + rng.integers(-_COLOUR_JITTER, _COLOUR_JITTER + 1, size=3), 0, 255)


# ----------------------------------------------------------------------------- public API

def _pixel(point: Tuple[float, float], size: int) -> Tuple[int, int]:
    """(row, column) of the pixel containing a point in [0, 1] coordinates."""
    col = min(max(int(np.floor(point[0] * size)), 0), size - 1)
    row = min(max(int(np.floor(point[1] * size)), 0), size - 1)
    return row, col


def render_scene(index: int, image_size: int, seed: int) -> Tuple[np.ndarray, int, np.ndarray]:
    """Renders scene number `index` of the dataset with generator seed `seed`.

    The result depends only on `(index, seed)` (and `image_size`, which sets
    the resolution, not the layout), so any scene can be regenerated on its own.

    Args:
        index: position of the scene in the dataset, >= 0.
        image_size: side length S of the square image, >= 16.
        seed: dataset seed, >= 0.

    Returns:
        image: uint8 `[S, S, 3]` RGB.
        label: class index into `CLASS_NAMES`.
        part_map: uint8 `[S, S]`, each value an index into `PART_NAMES`: the part
            visible at that pixel (0 = background).
    """
    index = _check_int(index, "index", 0)
    image_size = _check_int(image_size, "image_size", MIN_IMAGE_SIZE)
    seed = _check_int(seed, "seed", 0)
    return _render(index, image_size, seed)


def _render(index: int, size: int, seed: int) -> Tuple[np.ndarray, int, np.ndarray]:
    rng = np.random.default_rng([seed, index])
    x, y = _grid(size)
    px = 1.0 / size
    label = int(rng.integers(len(CLASS_NAMES)))
    parts = _face(rng, x, y, px) if label == _FACE else _house(rng, x, y, px)

    # Colours: the background, then each part in painting order (a fixed number of draws).
    background = _jittered(rng, _BACKGROUNDS[int(rng.integers(len(_BACKGROUNDS)))])
    colours = [background] + [_jittered(rng, _PART_COLOURS[PART_NAMES[part]]) for part, _, _ in parts]
    image = np.broadcast_to(background.astype(np.uint8), (size, size, 3)).copy()
    part_map = np.zeros((size, size), dtype=np.uint8)
    for (part, mask, _), colour in zip(parts, colours[1:]):
        image[mask] = colour.astype(np.uint8)
        part_map[mask] = part

    # A part too small for this resolution, or hidden by a later part, gets
    # the pixel under its anchor so that it is never missing from the map.
    counts = np.bincount(part_map.ravel(), minlength=len(PART_NAMES))
    for (part, _, anchor), colour in zip(parts, colours[1:]):
        if counts[part] == 0:
            row, col = _pixel(anchor, size)
            image[row, col] = colour.astype(np.uint8)
            part_map[row, col] = part
    return image, label, part_map


def generate_scenes(num_examples: int, image_size: int = 32, seed: int = 0,
                    start: int = 0) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Renders scenes `start .. start + num_examples - 1` (see `render_scene`).

    Returns:
        images: uint8 `[N, S, S, 3]`.
        labels: int64 `[N]`, indices into `CLASS_NAMES`.
        part_maps: uint8 `[N, S, S]`, indices into `PART_NAMES`.
    """
    num_examples = _check_int(num_examples, "num_examples", 0)
    image_size = _check_int(image_size, "image_size", MIN_IMAGE_SIZE)
    seed = _check_int(seed, "seed", 0)
    start = _check_int(start, "start", 0)
    images = np.empty((num_examples, image_size, image_size, 3), dtype=np.uint8)
    labels = np.empty((num_examples,), dtype=np.int64)
    part_maps = np.empty((num_examples, image_size, image_size), dtype=np.uint8)
    for i in range(num_examples):
        images[i], labels[i], part_maps[i] = _render(start + i, image_size, seed)
    return images, labels, part_maps


def part_map_to_rgb(part_maps: np.ndarray) -> np.ndarray:
    """Colours part maps (uint8 `[..., H, W]`) with `PART_MAP_PALETTE`: uint8 `[..., H, W, 3]`."""
    part_maps = np.asarray(part_maps)
    if part_maps.size and int(part_maps.max()) >= len(PART_NAMES):
        raise ValueError(f"part_maps has value {int(part_maps.max())}, but there are only "
                         f"{len(PART_NAMES)} part labels")
    return PART_MAP_PALETTE[part_maps]

"""Tests of the procedural `shapes` dataset (tf_sparse_gen/shapes.py)."""

import ast
import pathlib

import numpy as np
import pytest

from tf_sparse_gen.data import shapes

FACE = shapes.CLASS_NAMES.index("face")
HOUSE = shapes.CLASS_NAMES.index("house")


def _part_label(name):
    return shapes.PART_NAMES.index(name)


@pytest.fixture(scope="module", params=[16, 32])
def scenes(request):
    """300 scenes at size 16 and at size 32."""
    size = request.param
    images, labels, part_maps = shapes.generate_scenes(300, size, seed=7)
    return size, images, labels, part_maps


def test_names():
    assert shapes.PART_NAMES[0] == "background"
    assert len(set(shapes.PART_NAMES)) == len(shapes.PART_NAMES) <= 256
    assert len(shapes.CLASS_NAMES) >= 2 and "face" in shapes.CLASS_NAMES
    assert set(shapes.CLASS_PARTS) == set(shapes.CLASS_NAMES)
    assert set(shapes.CLASS_PARTS["face"]) == {"outline", "left_eye", "right_eye", "nose", "mouth"}
    every_part = [p for parts in shapes.CLASS_PARTS.values() for p in parts]
    assert sorted(every_part) == sorted(shapes.PART_NAMES[1:])
    assert set(shapes.PART_TYPES) == set(every_part)
    assert shapes.PART_MAP_PALETTE.shape == (len(shapes.PART_NAMES), 3)


def test_module_does_not_import_tensorflow():
    tree = ast.parse(pathlib.Path(shapes.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert "tensorflow" not in imported and "keras" not in imported


@pytest.mark.parametrize("size", [16, 17, 32, 50, 128])
def test_render_shapes_and_dtypes(size):
    for index in range(4):
        image, label, part_map = shapes.render_scene(index, size, seed=0)
        assert image.shape == (size, size, 3) and image.dtype == np.uint8
        assert part_map.shape == (size, size) and part_map.dtype == np.uint8
        assert isinstance(label, int) and 0 <= label < len(shapes.CLASS_NAMES)
        assert part_map.max() < len(shapes.PART_NAMES)


def test_generate_shapes_and_dtypes():
    images, labels, part_maps = shapes.generate_scenes(5, 24, seed=1)
    assert images.shape == (5, 24, 24, 3) and images.dtype == np.uint8
    assert labels.shape == (5,) and labels.dtype == np.int64
    assert part_maps.shape == (5, 24, 24) and part_maps.dtype == np.uint8
    empty = shapes.generate_scenes(0, 16)
    assert empty[0].shape == (0, 16, 16, 3) and empty[1].shape == (0,) and empty[2].shape == (0, 16, 16)


def test_deterministic():
    for index in (0, 3, 12345):
        a = shapes.render_scene(index, 32, seed=4)
        b = shapes.render_scene(index, 32, seed=4)
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1] == b[1]
        np.testing.assert_array_equal(a[2], b[2])


def test_seed_and_index_change_the_scene():
    base = shapes.generate_scenes(20, 32, seed=0)
    other_seed = shapes.generate_scenes(20, 32, seed=1)
    assert not np.array_equal(base[0], other_seed[0])
    assert not np.array_equal(base[2], other_seed[2])
    # Every scene of a split differs from its neighbours.
    assert all(not np.array_equal(base[0][i], base[0][i + 1]) for i in range(19))


def test_generate_matches_render():
    images, labels, part_maps = shapes.generate_scenes(12, 20, seed=3, start=40)
    for i in range(12):
        image, label, part_map = shapes.render_scene(40 + i, 20, seed=3)
        np.testing.assert_array_equal(images[i], image)
        assert labels[i] == label
        np.testing.assert_array_equal(part_maps[i], part_map)


def test_start_gives_random_access():
    full = shapes.generate_scenes(10, 16, seed=2)
    tail = shapes.generate_scenes(4, 16, seed=2, start=6)
    for whole, part in zip(full, tail):
        np.testing.assert_array_equal(whole[6:], part)


def test_label_and_layout_do_not_depend_on_size():
    for index in range(30):
        small = shapes.render_scene(index, 16, seed=9)
        large = shapes.render_scene(index, 64, seed=9)
        assert small[1] == large[1]
        assert set(np.unique(small[2])) == set(np.unique(large[2]))


def test_both_classes_occur():
    _, labels, _ = shapes.generate_scenes(200, 16, seed=0)
    counts = np.bincount(labels, minlength=len(shapes.CLASS_NAMES))
    assert (counts > 0).all()
    assert 50 <= counts[FACE] <= 150


def test_every_part_of_the_class_is_visible(scenes):
    size, _, labels, part_maps = scenes
    for class_index, class_name in enumerate(shapes.CLASS_NAMES):
        maps = part_maps[labels == class_index]
        assert len(maps) > 0
        wanted = {0} | {_part_label(p) for p in shapes.CLASS_PARTS[class_name]}
        for part_map in maps:
            counts = np.bincount(part_map.ravel(), minlength=len(shapes.PART_NAMES))
            present = set(np.flatnonzero(counts))
            # Exactly the parts of this class, each covering >= 1 pixel.
            assert present == wanted, (size, class_name, present)


def _luma(rgb):
    return rgb @ np.array([0.299, 0.587, 0.114])


def _touching(part_map, label):
    """Labels 4-adjacent to pixels of `label`."""
    mask = part_map == label
    out = set()
    for a, b in ((mask[1:], part_map[:-1]), (mask[:-1], part_map[1:]),
                 (mask[:, 1:], part_map[:, :-1]), (mask[:, :-1], part_map[:, 1:])):
        out |= set(np.unique(b[a]).tolist())
    return out - {label}


def test_parts_are_flat_coloured_and_stand_out(scenes):
    size, images, labels, part_maps = scenes
    for image, label, part_map in zip(images.astype(np.float64), labels, part_maps):
        colour = {}
        for value in np.unique(part_map):
            pixels = image[part_map == value]
            assert len(np.unique(pixels, axis=0)) == 1, f"{shapes.PART_NAMES[value]} is not one flat colour"
            colour[value] = pixels[0]
        # Every part stands out from everything it touches, in RGB and in brightness.
        for value in colour:
            for other in _touching(part_map, value):
                name = (size, shapes.PART_NAMES[value], shapes.PART_NAMES[other])
                assert np.sqrt(((colour[value] - colour[other]) ** 2).sum()) >= 60.0, name
                assert abs(_luma(colour[value]) - _luma(colour[other])) >= 20.0, name


def test_colours_are_the_parts_base_colours_jittered():
    images, labels, part_maps = shapes.generate_scenes(40, 16, seed=2)
    for image, label, part_map in zip(images.astype(np.int64), labels, part_maps):
        for name in shapes.CLASS_PARTS[shapes.CLASS_NAMES[label]]:
            pixel = image[part_map == _part_label(name)][0]
            assert np.abs(pixel - np.array(shapes._PART_COLOURS[name])).max() <= shapes._COLOUR_JITTER, name
        background = image[part_map == 0][0]
        assert min(np.abs(background - np.array(b)).max() for b in shapes._BACKGROUNDS) <= shapes._COLOUR_JITTER


def test_inner_parts_sit_on_the_object():
    """Eyes, nose and mouth are inside the face, door and windows inside the wall."""
    images, labels, part_maps = shapes.generate_scenes(100, 64, seed=11)
    for label, part_map in zip(labels, part_maps):
        base = "outline" if label == FACE else "wall"
        inner = [p for p in shapes.CLASS_PARTS[shapes.CLASS_NAMES[label]] if p not in (base, "roof")]
        rows, cols = np.nonzero(part_map == _part_label(base))
        for name in inner:
            r, c = np.nonzero(part_map == _part_label(name))
            assert rows.min() <= r.min() and r.max() <= rows.max(), name
            assert cols.min() <= c.min() and c.max() <= cols.max(), name


def test_left_eye_is_left():
    _, labels, part_maps = shapes.generate_scenes(60, 32, seed=5)
    for part_map in part_maps[labels == FACE]:
        left = np.nonzero(part_map == _part_label("left_eye"))[1].mean()
        right = np.nonzero(part_map == _part_label("right_eye"))[1].mean()
        assert left < right


def test_part_map_to_rgb():
    _, _, part_maps = shapes.generate_scenes(3, 16)
    rgb = shapes.part_map_to_rgb(part_maps)
    assert rgb.shape == (3, 16, 16, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[part_maps == 0], 0)
    with pytest.raises(ValueError, match="part_maps"):
        shapes.part_map_to_rgb(np.full((2, 2), len(shapes.PART_NAMES), np.uint8))


@pytest.mark.parametrize("call, argument", [
    (lambda: shapes.render_scene(0, 15, 0), "image_size"),
    (lambda: shapes.render_scene(-1, 32, 0), "index"),
    (lambda: shapes.render_scene(0, 32, -3), "seed"),
    (lambda: shapes.render_scene(0, 32.0, 0), "image_size"),
    (lambda: shapes.generate_scenes(-1), "num_examples"),
    (lambda: shapes.generate_scenes(2, image_size=8), "image_size"),
    (lambda: shapes.generate_scenes(2, seed=-1), "seed"),
    (lambda: shapes.generate_scenes(2, start=-5), "start"),
    (lambda: shapes.generate_scenes(True), "num_examples"),
    (lambda: shapes.generate_scenes("10"), "num_examples"),
])
def test_bad_arguments(call, argument):
    with pytest.raises(ValueError, match=argument):
        call()


def test_numpy_integers_are_accepted():
    a = shapes.render_scene(np.int64(5), np.int32(16), np.uint8(2))
    b = shapes.render_scene(5, 16, 2)
    np.testing.assert_array_equal(a[0], b[0])

import json
import os

import numpy as np
import pytest

from tf_sparse_gen import evaluation, trainer
from tf_sparse_gen.families.andor import interpret
from tf_sparse_gen.families.andor.purity import PurityAccumulator, model_part_purity

PARTS = ["background", "a", "b", "c"]


def _part_map():
    m = np.zeros((8, 8), np.uint8)
    m[:4, :4], m[:4, 4:], m[4:, :4] = 1, 2, 3  # background in the last quadrant
    return m


def test_planted_bases_that_are_exactly_one_part_give_purity_one():
    part_map = _part_map()
    acc = PurityAccumulator(PARTS)
    for c in range(4):  # channel c always paints part c (channel 0 paints the background)
        bases = np.stack([(part_map == c).astype(np.float32)[..., None] * s for s in (0.5, 2.0, -1.0)])
        acc.add("layer", [c, c, c], bases, part_map)
    r = acc.result()["layer"]
    assert r["purity"] == pytest.approx(1.0)
    assert r["parts_per_channel"] == pytest.approx(1.0)
    assert r["channels_per_part"] == {"background": 1, "a": 1, "b": 1, "c": 1}


def test_object_purity_leaves_the_background_out():
    part_map = _part_map()
    acc = PurityAccumulator(PARTS)
    for c in range(1, 4):  # channel c paints object part c, with as much background again
        mask = (part_map == c) | ((part_map == 0) & (np.cumsum(part_map == 0).reshape(part_map.shape)
                                                     <= (part_map == c).sum()))
        acc.add("layer", [c], mask.astype(np.float32)[None, ..., None], part_map)
    acc.add("layer", [9], (part_map == 0).astype(np.float32)[None, ..., None], part_map)  # background only
    r = acc.result()["layer"]
    assert r["object_purity"] == pytest.approx(1.0)
    assert r["purity"] == pytest.approx((3 * 0.5 + 1.0) / 4)
    assert 0.5 < r["background_share"] < 1.0
    mixed = PurityAccumulator(PARTS)
    mixed.add("layer", [0], (part_map > 0).astype(np.float32)[None, ..., None], part_map)
    shares = np.bincount(part_map[part_map > 0], minlength=len(PARTS))[1:] / np.sum(part_map > 0)
    assert mixed.result()["layer"]["object_purity"] == pytest.approx(shares.max())


def test_bases_covering_all_parts_equally_give_one_over_the_part_count():
    part_map = _part_map()
    acc = PurityAccumulator(PARTS)
    everywhere = np.ones((2, 8, 8, 1), np.float32)
    for c in range(5):
        acc.add("layer", [c, c], everywhere, part_map)
    r = acc.result()["layer"]
    assert r["purity"] == pytest.approx(1.0 / len(PARTS))
    assert r["parts_per_channel"] == pytest.approx(len(PARTS))


def test_purity_is_weighted_by_firing_counts_and_uses_the_support_threshold():
    part_map = _part_map()
    acc = PurityAccumulator(PARTS, support_fraction=0.5)
    pure = (part_map == 1).astype(np.float32)[None, ..., None]
    weak_elsewhere = pure + 0.4 * (part_map != 1)[None, ..., None]  # below half the peak: not support
    acc.add("l", [0, 0, 0], np.concatenate([pure, pure, weak_elsewhere]), part_map)
    acc.add("l", [1], np.ones((1, 8, 8, 1), np.float32), part_map)
    r = acc.result()["l"]
    assert r["channels"][0]["purity"] == pytest.approx(1.0)
    assert r["purity"] == pytest.approx((3 * 1.0 + 1 * 0.25) / 4)


def test_model_purity_uses_the_interpret_basis_functions(tiny_andor, monkeypatch):
    from tf_sparse_gen.data import load_dataset
    from tf_sparse_gen.families import build_model

    config = tiny_andor(**{"data.dataset": "shapes", "data.channels": 3, "andor.block_ks": [0.25, 0.25]})
    model = build_model(config, 10)
    src = load_dataset("shapes", "test", 16, 3, shapes_num_examples=20)
    calls = []
    original = interpret.basis_functions

    def spy(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)
    monkeypatch.setattr(interpret, "basis_functions", spy)
    result = model_part_purity(model, src.take_images(3), src.part_maps[:3], src.part_names)
    assert calls and set(result) == {"fc_4x4", "block0_8x8", "block1_16x16"}
    for r in result.values():
        assert 1.0 / len(src.part_names) <= r["purity"] <= 1.0


def test_dense_baseline_purity_is_measured_at_the_same_layers(tiny_andor):
    from tf_sparse_gen.data import load_dataset
    from tf_sparse_gen.families import build_model

    src = load_dataset("shapes", "test", 16, 3, shapes_num_examples=20)
    layers = {}
    for sparsity in (True, False):
        config = tiny_andor(**{"data.dataset": "shapes", "data.channels": 3, "andor.block_ks": [0.25, 0],
                               "andor.sparsity": sparsity})
        result = model_part_purity(build_model(config, 10), src.take_images(2), src.part_maps[:2], src.part_names)
        layers[sparsity] = set(result)
        if not sparsity:  # the dense layers' active units are the ReLU's non-zeros
            assert all(r["channels"] for r in result.values())
    assert layers[True] == layers[False] == {"fc_4x4", "block0_8x8"}


def test_evaluate_reports_purity_on_shapes_and_refuses_it_elsewhere(tiny_andor, tmp_path):
    config = tiny_andor(**{"data.dataset": "shapes", "data.channels": 3, "data.shapes_num_examples": 40,
                           "train.train_steps": 2, "andor.block_ks": [0.25, 0.25]})
    model_dir = str(tmp_path / "run")
    trainer.train(config, model_dir, log=lambda s: None)
    report = evaluation.evaluate(model_dir, metrics=["purity"], num_samples=4, log=lambda s: None)
    assert {"purity_fc_4x4", "purity_block0_8x8", "purity_block1_16x16"} <= set(report["metrics"])
    assert {"object_purity_fc_4x4", "object_purity_block0_8x8"} <= set(report["metrics"])
    lift = report["metrics"]["locality_lift_block0_8x8"]
    assert lift["value"] == report["metrics"]["locality_block0_8x8"]["value"] - lift["mismatched"]
    for rel in report["figures"].values():
        assert os.path.exists(os.path.join(model_dir, "eval", rel))
    saved = json.load(open(os.path.join(model_dir, "eval", "metrics.json")))
    assert saved["purity_details"]["block0_8x8"]["confusion"]["parts"][0] == "background"
    from tf_sparse_gen.data import DatasetError
    with pytest.raises(DatasetError, match="--dataset=shapes"):
        evaluation.evaluate(model_dir, metrics=["purity"], dataset="digits", log=lambda s: None)


def test_locality_of_a_planted_basis_inside_and_outside_a_mask():
    part_map = np.zeros((4, 4), np.int64)
    part_map[:2, :2] = 1  # part 1: the top-left 2x2
    part_map[2:, 2:] = 2  # part 2: the bottom-right 2x2
    acc = PurityAccumulator(["background", "a", "b"])
    inside = np.zeros((4, 4, 1))
    inside[0, 0, 0], inside[1, 1, 0] = 1.0, -2.0  # all energy in part 1
    assert acc.locality(inside, part_map) == 1.0
    half = np.zeros((4, 4))
    half[0, 0], half[0, 3] = 1.0, 1.0  # one unit of energy in part 1, one on background
    assert acc.locality(half, part_map) == 0.5
    split = np.zeros((4, 4))
    split[0, 0], split[3, 3], split[3, 2] = 2.0, 1.0, 1.0  # energy 4 in part 1, 2 in part 2
    assert acc.locality(split, part_map) == 4.0 / 6.0
    acc.add("layer", [0, 1], np.stack([inside[..., 0], half]), part_map)
    assert acc.result()["layer"]["locality"] == 0.75


def test_mismatched_baseline_scores_the_same_bases_on_the_next_scene(tiny_andor):
    from tf_sparse_gen.data import load_dataset
    from tf_sparse_gen.families import build_model

    config = tiny_andor(**{"data.dataset": "shapes", "data.channels": 3, "andor.block_ks": [0.25, 0.25]})
    model = build_model(config, 10)
    src = load_dataset("shapes", "test", 16, 3, shapes_num_examples=20)
    images, maps = src.take_images(2), np.asarray(src.part_maps[:2])
    assert not np.array_equal(maps[0], maps[1])
    # The same scene twice: the next scene's map is its own, so the baseline equals the score.
    same = model_part_purity(model, np.stack([images[0]] * 2), np.stack([maps[0]] * 2), src.part_names)
    for r in same.values():
        assert r["mismatched"] == {k: r[k] for k in ("purity", "object_purity", "locality")}
    # Two scenes whose maps are swapped: the bases are the same, so the baseline is the score of
    # the swapped maps, and scoring the swapped maps gives the original score as the baseline.
    plain = model_part_purity(model, images, maps, src.part_names)
    swapped = model_part_purity(model, images, maps[::-1], src.part_names)
    for layer in plain:
        assert plain[layer]["mismatched"]["locality"] == pytest.approx(swapped[layer]["locality"], abs=1e-12)
        assert swapped[layer]["mismatched"]["object_purity"] == pytest.approx(plain[layer]["object_purity"],
                                                                              abs=1e-12)
    assert model_part_purity(model, images[:1], maps[:1], src.part_names)["fc_4x4"]["mismatched"] is None

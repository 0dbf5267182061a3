"""Ablation, insertion and part transplants of the AND-OR generator (families/andor/ablate.py, issue #16)."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tf_sparse_gen import applications
from tf_sparse_gen.config import get_config
from tf_sparse_gen.data import load_dataset
from tf_sparse_gen.families import build_model
from tf_sparse_gen.families.andor import ablate, interpret


def _model(**overrides):
    config = get_config("andor", "tiny", {"data.dataset": "digits", "train.train_minutes": 0.0, **overrides})
    model = build_model(config, 16)
    model.compile()
    return model


def _z(g, seed=(4, 2)):
    return tf.random.stateless_normal([g.z_dim], seed=list(seed)).numpy() * 2.0


def test_ablating_none_reproduces_the_image_and_all_leaves_the_bias_part():
    model = _model()
    g = model.generator
    z = _z(g)
    rec = interpret.record(g, z)
    for layer in ablate.ablation_layers(g):
        stage = g.layer_stages[layer]
        act = rec.acts[stage]
        units, values = interpret.active_units(g, rec, layer)
        bases = interpret.basis_functions(g, rec, layer)
        # None ablated: the fixed-gate and the free re-run both give the image back.
        np.testing.assert_allclose(np.tanh(ablate.fixed_gates_fm(g, rec, stage, act[None])[0]), rec.image, atol=1e-6)
        np.testing.assert_allclose(np.tanh(ablate.free_fm(g, stage, act[None])[0]), rec.image, atol=1e-6)
        # All ablated: by the identity, and by running the network on zeros with the gates fixed.
        beta = interpret.bias_part(g, rec, layer)
        by_identity = rec.fm - np.tensordot(values, bases, axes=1)
        np.testing.assert_allclose(by_identity, beta, atol=1e-4)
        np.testing.assert_allclose(ablate.fixed_gates_fm(g, rec, stage, np.zeros_like(act)[None])[0], beta, atol=1e-6)
    r = ablate.ablate_latent(g, z, ablate.ablation_layers(g), model.mid_layer)
    for checks in r["checks"].values():
        assert checks["none_fixed_max_abs"] < 1e-5 and checks["none_free_max_abs"] < 1e-5
        assert checks["all_identity_vs_bias_part_max_abs"] < 1e-4


def test_each_ablation_is_exact_and_its_numbers_are_consistent():
    model = _model()
    g = model.generator
    z = _z(g, (1, 9))
    rec = interpret.record(g, z)
    mid = model.mid_layer
    stage = g.layer_stages[mid]
    r = ablate.ablate_latent(g, z, [mid], mid, max_units=6, num_insert=3)
    kinds = {a["kind"] for a in r["ablations"]}
    assert kinds == {"unit", "channel", "position", "insert"}
    units, _ = interpret.active_units(g, rec, mid)
    assert sum(a["kind"] == "unit" for a in r["ablations"]) == 6
    assert sum(a["kind"] == "channel" for a in r["ablations"]) == len(np.unique(units[:, 2]))
    assert sum(a["kind"] == "position" for a in r["ablations"]) == len({(y, x) for y, x, _ in units})
    for a in r["ablations"]:
        us = np.array(a["units"])
        h = rec.acts[stage].copy()
        h[us[:, 0], us[:, 1], us[:, 2]] = 0.0 if a["kind"] != "insert" else a["values"][0]
        if a["kind"] == "insert":
            assert rec.acts[stage][tuple(us[0])] == 0  # it was off
        else:
            np.testing.assert_allclose(rec.acts[stage][us[:, 0], us[:, 1], us[:, 2]], a["values"])
        # The exact regeneration (identity) equals the network run with the recorded gates on the edited code.
        change = np.tanh(ablate.fixed_gates_fm(g, rec, stage, h[None])[0]) - rec.image
        assert a["exact"]["energy"] == pytest.approx(float(np.square(change.astype(np.float64)).sum()),
                                                     rel=1e-3, abs=1e-9)
        free = np.tanh(ablate.free_fm(g, stage, h[None])[0]) - rec.image
        assert a["free"]["energy"] == pytest.approx(float(np.square(free.astype(np.float64)).sum()), rel=1e-3, abs=1e-9)
        for mode in ("exact", "free"):
            loc = a[mode]["locality"]
            assert loc is None or 0.0 <= loc <= 1.0 + 1e-9
        assert 0.0 < a["support_area"] <= 1.0
    # The exact change of one unit is confined to its basis' receptive field: locality near 1.
    units_only = [a for a in r["ablations"] if a["kind"] == "unit" and a["exact"]["energy"] > 1e-8]
    assert units_only and np.mean([a["exact"]["locality"] for a in units_only]) > 0.8


def test_change_stats_locality_and_parts():
    change = np.zeros([4, 4, 1], np.float32)
    change[0, 0] = 1.0
    change[3, 3] = 1.0
    support = np.zeros([4, 4], bool)
    support[0, 0] = True
    part_map = np.zeros([4, 4], np.uint8)
    part_map[3, 3] = 2
    s = ablate.change_stats(change, support, part_map, ["bg", "a", "b"])
    assert s["energy"] == 2.0 and s["locality"] == 0.5
    assert s["part_shares"] == [0.5, 0.0, 0.5]
    assert ablate.change_stats(np.zeros_like(change), support)["locality"] is None


def test_part_effect_table_on_shapes_scenes():
    model = _model(**{"data.dataset": "shapes", "data.channels": 3, "data.shapes_num_examples": 20})
    g = model.generator
    src = load_dataset("shapes", "test", image_size=16, channels=3, shapes_num_examples=20)
    z = _z(g, (3, 3))
    r = ablate.ablate_latent(g, z, [model.mid_layer], model.mid_layer, max_units=8, num_insert=0,
                             part_map=src.part_maps[0], part_names=src.part_names)
    for a in r["ablations"]:
        if a["exact"]["energy"] > 0:
            assert sum(a["exact"]["part_shares"]) == pytest.approx(1.0)
            assert a["exact"]["part_changed"] in src.part_names
    table = ablate.part_effect_table(r["ablations"], g.layer_names[model.mid_layer], src.part_names)
    assert table["channels"]
    for info in table["channels"].values():
        assert len(info["shares"]) == len(src.part_names) and info["part_changed"] in src.part_names


def test_transplant_none_keeps_a_and_all_gives_b():
    model = _model()
    g = model.generator
    za, zb = _z(g, (1, 1)), _z(g, (2, 2))
    grid = interpret.record(g, za).acts[g.layer_stages[model.mid_layer]].shape[0]
    none = ablate.transplant(g, za, zb, model.mid_layer, [])
    np.testing.assert_allclose(none["exact"], none["a"], atol=1e-6)
    np.testing.assert_allclose(none["free"], none["a"], atol=1e-6)
    everything = ablate.transplant(g, za, zb, model.mid_layer, [(y, x) for y in range(grid) for x in range(grid)])
    np.testing.assert_allclose(everything["free"], everything["b"], atol=1e-6)  # the layers above see B's code
    some = ablate.transplant(g, za, zb, model.mid_layer, [(0, 0), (1, 1)])
    assert some["changed_units"] >= 0
    with pytest.raises(ValueError, match="outside"):
        ablate.transplant(g, za, zb, model.mid_layer, [(grid, 0)])
    assert ablate.parse_positions("0,0;0,1|3,3") == {"0,0;0,1": [(0, 0), (0, 1)], "3,3": [(3, 3)]}
    with pytest.raises(ValueError, match="positions"):
        ablate.parse_positions("0;1")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny sparse and a tiny dense AND-OR run (plain ABP), 1 step each on digits."""
    from tf_sparse_gen import trainer

    out = {}
    for name, sparsity in (("sparse", True), ("dense", False)):
        model_dir = str(tmp_path_factory.mktemp(name) / "run")
        config = get_config("andor", "tiny", {"data.dataset": "digits", "train.train_minutes": 0.0,
                                              "train.train_steps": 1, "andor.ebm": False,
                                              "andor.sparsity": sparsity})
        trainer.train(config, model_dir, log=lambda s: None)
        out[name] = model_dir
    return out


def test_explore_ablate_task_writes_json_figures_and_compares(runs, tmp_path):
    lines = []
    r = applications.run_task("ablate", runs["sparse"], str(tmp_path), num_images=2, compare_dir=runs["dense"],
                              max_units=4)
    with open(os.path.join(tmp_path, "ablation.json")) as f:
        saved = json.load(f)
    assert set(saved["runs"]) == {"run", "compare"}
    assert saved["runs"]["run"]["sparsity"] is True and saved["runs"]["compare"]["sparsity"] is False
    for entry in saved["runs"].values():
        mid = entry["mid_layer"]
        assert {"unit", "channel", "position", "insert"} <= set(entry["summary"][mid])
        for per_latent in entry["checks"]:
            for c in per_latent.values():
                assert c["none_free_max_abs"] < 1e-5 and c["all_identity_vs_bias_part_max_abs"] < 1e-4
    lines = r["summary_lines"]
    assert any("[run, sparse]" in l and "mean locality" in l for l in lines)
    assert any("[compare, dense]" in l for l in lines)
    mid = saved["runs"]["run"]["mid_layer"]
    assert any(l.startswith(f"ablate {mid}, run (sparse) vs compare (dense)") for l in lines)
    assert set(saved["comparison"][mid]) == {"run", "compare"}
    for p in r["figures"].values():
        assert os.path.exists(p)


def test_explore_swap_task_and_family_task_errors(runs, tmp_path):
    r = applications.run_task("swap", runs["sparse"], str(tmp_path), num_images=2, positions="0,0;0,1|1,1")
    assert os.path.exists(r["png"]) and os.path.exists(r["json"])
    assert [s["positions"] for s in r["swaps"]] == ["0,0;0,1", "1,1"]
    r = applications.run_task("swap", runs["sparse"], str(tmp_path), num_images=2)
    by_name = {s["positions"]: s for s in r["swaps"]}
    assert by_name["none"]["free_mse_to_a"] < 1e-10 and by_name["all"]["free_mse_to_b"] < 1e-10
    with pytest.raises(ValueError, match="unknown task.*ablate, swap"):
        applications.run_task("paint", runs["sparse"], str(tmp_path))


def test_run_ablation_on_shapes_writes_the_part_effect_table(tmp_path):
    config = get_config("andor", "tiny", {"data.dataset": "shapes", "data.channels": 3,
                                          "data.shapes_num_examples": 20, "train.train_minutes": 0.0})
    model = build_model(config, 20)
    lines = []
    r = ablate.run_ablation(model, config, str(tmp_path), num_images=2, max_units=4, num_insert=2, log=lines.append)
    saved = json.load(open(tmp_path / "ablation.json"))
    table = saved["runs"]["run"]["part_effect"]
    assert table["parts"][0] == "background" and table["channels"]
    for info in table["channels"].values():
        assert sum(info["shares"]) == pytest.approx(1.0) and info["part_changed"] in table["parts"]
    assert any("part x channel" in k for k in r["figures"]) and all(os.path.exists(p) for p in r["figures"].values())
    assert len(lines) == len(saved["runs"]["run"]["layers"]) and all("mean locality" in l for l in lines)


def test_explore_cli_ablate_prints_json_and_summary_lines(runs, tmp_path):
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, os.path.join(root, "explore.py"), f"--model_dir={runs['sparse']}",
                           "--task=ablate", "--num_images=1", "--max_units=2", f"--out_dir={tmp_path}"],
                          capture_output=True, text=True, timeout=300, cwd=root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)  # stdout is the JSON alone; the summary lines go to stderr
    assert out["task"] == "ablate" and os.path.exists(out["json"])
    assert "mean locality" in proc.stderr

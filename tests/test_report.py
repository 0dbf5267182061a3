"""report.html (report.write_html_report): self-contained, with the AND-OR explorer inlined (issue #16)."""

import json
import os
import re

import numpy as np

from tf_sparse_gen import evaluation
from tf_sparse_gen import report as report_lib
from tf_sparse_gen import images as image_lib
from tf_sparse_gen.config import get_config
from tf_sparse_gen.families.andor import explorer, interpret


def _report(figures):
    return {"model": "m", "preset": "tiny", "step": 3, "model_dir": "/x", "reference": {"dataset": "d", "split": "test"},
            "num_samples": 1, "metrics": {"mse": {"value": 0.5, "num_samples": 1}}, "timing": {"total_seconds": 1.0},
            "figures": figures}


def test_a_report_without_explorer_data_has_no_script(tmp_path):
    (tmp_path / "other.json").write_text(json.dumps({"kind": "something else"}))
    path = report_lib.write_html_report(_report({"samples": "samples.png", "tree": "other.json"}),
                                        str(tmp_path / "report.html"))
    text = open(path).read()
    assert "<script" not in text and "samples.png" in text and "href='other.json'" in text


def test_evaluate_inlines_the_explorer_of_an_andor_run(tmp_path):
    from tf_sparse_gen import trainer
    from tf_sparse_gen.runs import load_trained_model

    model_dir = str(tmp_path / "run")
    config = get_config("andor", "tiny", {"data.dataset": "digits", "train.train_minutes": 0.0,
                                          "train.train_steps": 1, "andor.ebm": False})
    trainer.train(config, model_dir, log=lambda s: None)
    report = evaluation.evaluate(model_dir, metrics=["sparsity"], num_samples=8, log=lambda s: None)
    out = os.path.join(model_dir, "eval")
    text = open(os.path.join(out, "report.html")).read()
    assert "http" not in text  # opens with no network (and the data cannot spell an address)
    m = re.search(r"<script type='application/json' class='explorer-data'>(.*?)</script>", text, re.S)
    assert m, "the explorer's data is inline"
    data = json.loads(m.group(1))
    assert data["kind"] == "basis_explorer" and len(data["latents"]) == 3 and "explorer.json" in str(report["figures"])
    # All units on recomposes each latent's image; every active mid-layer unit is a toggle.
    trained = load_trained_model(model_dir)
    g = trained.model.generator
    zs = trained.model.sample_latents(8, seed=1000).numpy()
    for i, entry in enumerate(data["latents"]):
        rec = interpret.record(g, zs[i])
        units, _ = interpret.active_units(g, rec, trained.model.mid_layer)
        assert len(entry["units"]) == len(units) and entry["folded"] == 0
        got = explorer.compose(data, i).astype(int)
        assert np.abs(got - image_lib.to_uint8(rec.image).astype(int)).max() <= 1
        beta = interpret.bias_part(g, rec, trained.model.mid_layer)
        off = explorer.compose(data, i, on=[False] * len(units)).astype(int)
        assert np.abs(off - image_lib.to_uint8(np.tanh(beta)).astype(int)).max() <= 1
    assert text.count("<script>") == 1


def test_units_beyond_the_cap_are_folded_into_the_fixed_part(tmp_path):
    import tensorflow as tf
    from tf_sparse_gen.families import build_model

    model = build_model(get_config("andor", "tiny", {"data.dataset": "digits"}), 8)
    g = model.generator
    z = tf.random.stateless_normal([1, g.z_dim], seed=[2, 5]).numpy() * 2.0
    data = explorer.explorer_data(g, z, model.mid_layer, max_units=5)
    entry = data["latents"][0]
    assert len(entry["units"]) == 5 and entry["folded"] > 0
    rec = interpret.record(g, z[0])
    assert np.abs(explorer.compose(data, 0).astype(int) - image_lib.to_uint8(rec.image).astype(int)).max() <= 1


def test_report_header_directions_kid_subsets_and_timing_table(tmp_path):
    from tf_sparse_gen.evaluation import write_html_report

    report = {"model": "andor", "preset": "small", "step": 1234, "model_dir": "/r", "num_samples": 1000,
              "reference": {"dataset": "fashion_mnist", "split": "test"},
              "ema": {"decay": 0.999, "averaged_weights_used": True},
              "metrics": {"fd_fmnist": {"value": 12.5}, "kid_fmnist": {"value": 0.1, "num_subsets": 1,
                                                                      "subset_size": 1000},
                          "is_fmnist": {"value": 5.0, "std": 0.2}, "mse": {"value": 0.01},
                          "mse_mean_image": {"value": 0.07}, "mse_ratio": {"value": 0.14}},
              "timing": {"total_seconds": 12.345, "ncc_seconds": 1.0}, "figures": {}}
    page = open(write_html_report(report, str(tmp_path / "report.html"))).read()
    assert "Step 1234, preset small, generator EMA decay 0.999, averaged weights evaluated" in page
    assert "<td>fd_fmnist</td><td>lower</td>" in page and "<td>is_fmnist</td><td>higher</td>" in page
    assert "<td>mse_mean_image</td><td>(baseline)</td>" in page and "<td>mse_ratio</td><td>lower</td>" in page
    assert "0.1 (1 subset of 1000)" in page and "±" not in page.split("kid_fmnist")[1].split("</tr>")[0]
    assert "<tr><td>total_seconds</td><td>12.35</td></tr>" in page

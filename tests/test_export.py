"""SavedModel export: signatures served from processes that never import tf_sparse_gen.

One tiny run per family (andor, selfexgan, and spgan when it trains) is trained and exported
once per module; the serving checks (a TensorFlow-only `python -c` and `saved_model_cli run`)
run as concurrent subprocesses whose results the tests below read.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tf_sparse_gen import export
from tf_sparse_gen.families import MODELS

FAMILIES = MODELS
BIN = os.path.dirname(sys.executable)
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
ENV.pop("PYTHONPATH", None)  # the checker must not see tf_sparse_gen

# Runs with plain TensorFlow: loads each export, calls every signature at batch sizes 1 and 3,
# compares with the in-process outputs saved as .npy, and records what a wrong image size gives.
CHECKER = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    out = {}
    for fam, path in json.loads(sys.argv[1]).items():
        m = tf.saved_model.load(path + "/export")
        sigs = m.signatures
        r = {"signatures": sorted(sigs.keys()), "shapes": {}, "errors": {}}
        for b in (1, 3):
            z = np.load(path + "/z.npy")[:b]
            images = sigs["generate"](z=tf.constant(z))["images"].numpy()
            r["shapes"][b] = {
                "generate": images.shape,
                "default": sigs["serving_default"](z=tf.constant(z))["images"].shape.as_list(),
                "encode": sigs["encode"](images=tf.constant(images))["z"].shape.as_list(),
                "reconstruct": sigs["reconstruct"](images=tf.constant(images))["images"].shape.as_list()}
        x = np.load(path + "/images.npy")
        r["generate_err"] = float(np.abs(images - np.load(path + "/generated.npy")).max())
        r["range"] = float(np.abs(images).max())
        r["encode_err"] = float(np.abs(sigs["encode"](images=tf.constant(x))["z"].numpy()
                                       - np.load(path + "/encoded.npy")).max())
        bad = tf.zeros([2, x.shape[1] // 2, x.shape[2] // 2, x.shape[3]])
        for name, call in [("signature", lambda: sigs["reconstruct"](images=bad)),
                           ("function", lambda: m.reconstruct(bad)),
                           ("rank", lambda: sigs["encode"](images=bad[0]))]:
            try:
                call()
                r["errors"][name] = None
            except Exception as e:
                r["errors"][name] = type(e).__name__ + ": " + str(e)[:600]
        out[fam] = r
    out["imported_tf_sparse_gen"] = any(k.startswith("tf_sparse_gen") for k in sys.modules)
    print("RESULT" + json.dumps(out, default=list))
""")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_runs):
    """{family: (model_dir, loaded model, step)} of exported tiny runs; reference outputs saved."""
    from tf_sparse_gen import runs as runs_lib

    root = tmp_path_factory.mktemp("export")
    out = {}
    for family in FAMILIES:
        model_dir = tiny_runs.copy(family, root / family)
        path = export.export_model(model_dir)
        assert path == os.path.join(model_dir, "export")
        run = runs_lib.load_trained_model(model_dir)
        model = run.model
        z = model.sample_latents(3, seed=11)
        images = model.generate(tf.random.normal([3, model.latent_dim], seed=3)).numpy()
        np.save(os.path.join(model_dir, "z.npy"), z.numpy())
        np.save(os.path.join(model_dir, "generated.npy"), model.generate(z).numpy())
        np.save(os.path.join(model_dir, "images.npy"), images)
        np.save(os.path.join(model_dir, "encoded.npy"), model.encode(images).numpy())
        np.save(os.path.join(model_dir, "bad.npy"), np.zeros([2, 8, 8, model.image_shape[-1]], np.float32))
        out[family] = (model_dir, model, run.step)
    return out


@pytest.fixture(scope="module")
def served(runs):
    """Outputs of the concurrent serving subprocesses: the checker and saved_model_cli runs."""
    dirs = {f: runs[f][0] for f in FAMILIES}
    cli = os.path.join(BIN, "saved_model_cli")
    procs = {"checker": subprocess.Popen([sys.executable, "-c", CHECKER, json.dumps(dirs)], env=ENV,
                                         cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)}
    for f, d in dirs.items():
        procs[f"cli_{f}"] = subprocess.Popen(
            [cli, "run", "--dir", os.path.join(d, "export"), "--tag_set", "serve", "--signature_def", "generate",
             "--inputs", f"z={d}/z.npy"], env=ENV, cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    d = dirs["andor"]
    procs["cli_bad"] = subprocess.Popen(
        [cli, "run", "--dir", os.path.join(d, "export"), "--tag_set", "serve", "--signature_def", "reconstruct",
         "--inputs", f"images={d}/bad.npy"], env=ENV, cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    results = {}
    for name, p in procs.items():
        stdout, stderr = p.communicate(timeout=300)
        results[name] = (p.returncode, stdout, stderr)
    rc, stdout, stderr = results["checker"]
    assert rc == 0, stderr[-3000:]
    line = [l for l in stdout.splitlines() if l.startswith("RESULT")][-1]
    results["checker"] = json.loads(line[len("RESULT"):])
    return results


def test_signatures_in_tensorflow_only_process(runs, served):
    checked = served["checker"]
    assert checked.pop("imported_tf_sparse_gen") is False
    assert set(checked) == set(FAMILIES)
    for family, r in checked.items():
        _, model, _ = runs[family]
        h, w, c = model.image_shape
        assert r["signatures"] == ["encode", "generate", "reconstruct", "serving_default"]
        for b in ("1", "3"):
            assert r["shapes"][b] == {"generate": [int(b), h, w, c], "default": [int(b), h, w, c],
                                      "encode": [int(b), model.latent_dim],
                                      "reconstruct": [int(b), h, w, c]}, family
        assert r["generate_err"] < 1e-5, family
        assert r["range"] <= 1.0
        # andor: the same Langevin run (steps, seed, noise) as model.encode in this process.
        assert r["encode_err"] < 1e-4, family


def test_wrong_image_size_names_expected_shape(runs, served):
    for family, r in served["checker"].items():
        if family not in FAMILIES:
            continue
        h, w, c = runs[family][1].image_shape
        # signatures[...] passes any shape to the graph: the in-graph assertion answers.
        assert f"[None, {h}, {w}, {c}]" in r["errors"]["signature"], r["errors"]["signature"]
        assert "got shape" in r["errors"]["signature"]
        assert f"[None, {h}, {w}, {c}]" in r["errors"]["rank"], r["errors"]["rank"]
        # The restored tf.function rejects it while binding, showing the TensorSpec.
        assert f"(None, {h}, {w}, {c})" in r["errors"]["function"], r["errors"]["function"]


def test_saved_model_cli_run(runs, served):
    for family in FAMILIES:
        rc, stdout, stderr = served[f"cli_{family}"]
        assert rc == 0, stderr[-3000:]
        assert "Result for output key images:" in stdout, stdout[-2000:]
        values = stdout.split("Result for output key images:")[1]
        assert values.count("[") > 3  # a printed array
    rc, stdout, stderr = served["cli_bad"]
    h, w, c = runs["andor"][1].image_shape
    assert rc != 0 and "Result for output key" not in stdout
    assert f"(None, {h}, {w}, {c})" in stderr, stderr[-2000:]


def test_signature_json_and_readme(runs):
    for family in FAMILIES:
        model_dir, model, step = runs[family]
        path = os.path.join(model_dir, "export")
        with open(os.path.join(path, export.METADATA_FILE)) as f:
            meta = json.load(f)
        assert meta["model_family"] == family and meta["step"] == step == 2
        assert meta["latent_dim"] == model.latent_dim and meta["image_shape"] == list(model.image_shape)
        assert meta["value_range"] == [-1.0, 1.0] and meta["serving_default"] == "generate"
        assert meta["signatures"]["generate"]["inputs"]["z"]["shape"] == [None, model.latent_dim]
        assert meta["signatures"]["encode"]["outputs"]["z"]["shape"] == [None, model.latent_dim]
        if family == "andor":
            enc = meta["signatures"]["encode"]
            assert enc["method"] == "langevin" and enc["steps"] == model.hp.infer_steps == 5
            assert enc["seed"] == [0, 0]
        else:
            assert meta["signatures"]["encode"]["method"] == "encoder"
        with open(os.path.join(path, export.README_FILE)) as f:
            assert "saved_model_cli run" in f.read()


def test_only_serving_variables_are_saved(runs):
    """Network weights (and constants) are inside; the persistent latents and critics are not."""
    for family in FAMILIES:
        model_dir, model, _ = runs[family]
        # A list, not a set: variables of equal shape (e.g. two biases) must each count;
        # scalars (a learned threshold) count as 1.
        saved = [tuple(shape) for key, shape in tf.train.list_variables(os.path.join(model_dir, "export", "variables",
                                                                                   "variables"))
                 if key != "_CHECKPOINTABLE_OBJECT_GRAPH"]
        serving = sum(int(np.prod(v.shape)) for layer in export._serving_layers(model) for v in layer.variables)
        total = sum(int(np.prod(s)) for s in saved)
        assert total == serving, family
        if family == "andor":
            assert (model.num_examples, model.latent_dim) not in saved


def test_load_exported_checks_inputs(runs):
    model_dir, model, _ = runs["selfexgan"]
    m = export.load_exported(os.path.join(model_dir, "export"))
    h, w, c = model.image_shape
    z = np.load(os.path.join(model_dir, "z.npy"))
    np.testing.assert_allclose(m.generate(z.astype(np.float64)), np.load(os.path.join(model_dir, "generated.npy")),
                               atol=1e-5)
    assert m.encode(np.zeros([2, h, w, c], np.float32)).shape == (2, model.latent_dim)
    assert m.reconstruct(np.zeros([1, h, w, c], np.float32)).shape == (1, h, w, c)
    expected = f"[None, {h}, {w}, {c}]"
    with pytest.raises(export.ExportInputError, match=rf"reconstruct: images must be float32 \[None, {h}"):
        m.reconstruct(np.zeros([2, h // 2, w // 2, c], np.float32))
    with pytest.raises(export.ExportInputError, match=r"got shape \[" + f"{h}, {w}, {c}" + r"\]") as e:
        m.encode(np.zeros([h, w, c], np.float32))
    assert expected in str(e.value)
    with pytest.raises(export.ExportInputError, match=r"dtype uint8; scale 8-bit pixels"):
        m.encode(np.zeros([1, h, w, c], np.uint8))
    with pytest.raises(export.ExportInputError, match=rf"z must be float32 \[None, {model.latent_dim}\]"):
        m.generate(np.zeros([2, model.latent_dim + 1], np.float32))


def test_reexport_and_refusal(runs, tmp_path):
    model_dir, model, _ = runs["selfexgan"]
    out = tmp_path / "exp"
    meta = export.export_generative_model(model, str(out), step=7)
    assert meta["step"] == 7 and (out / "saved_model.pb").exists()
    meta = export.export_generative_model(model, str(out), step=8)  # replaces an earlier export
    assert json.loads((out / export.METADATA_FILE).read_text())["step"] == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]  # no temporary directory left
    with pytest.raises(FileExistsError, match="holds no SavedModel"):
        export.export_generative_model(model, model_dir)  # a run directory is never replaced


def test_export_of_a_model_traced_with_the_kernel_has_standard_ops_only(runs, tmp_path):
    """The compiled TopKMask op is not in TensorFlow: an export holding it would not load elsewhere."""
    from tf_sparse_gen import kernels

    _, model, _ = runs["andor"]
    assert kernels.available(), kernels.unavailable_reason()
    z = tf.zeros([2, model.latent_dim])
    traced = tf.function(model.generate).get_concrete_function(z).graph
    assert "TopKMask" in {op.type for op in traced.get_operations()}  # the model does use the kernel
    model.encode(tf.zeros([2, *model.image_shape]))  # eager: caches a kernel trace of the Langevin loop
    export.export_generative_model(model, str(tmp_path / "exp"))
    graph = (tmp_path / "exp" / "saved_model.pb").read_bytes()
    assert b"TopKMask" not in graph and b"TopKV2" in graph

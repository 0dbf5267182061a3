"""SavedModel export with serving signatures (`model_dir/export/`).

`export_model(model_dir)` restores a trained run (`runs.load_trained_model`)
and writes a SavedModel with three signatures, all float32, any batch size:

    generate(z: [None, d])                -> {"images": [None, H, W, C] in [-1, 1]}  (serving_default)
    encode(images: [None, H, W, C])       -> {"z": [None, d]}
    reconstruct(images: [None, H, W, C])  -> {"images": [None, H, W, C] in [-1, 1]}

Images are in [-1, 1] (the training scale: `x / 127.5 - 1` for 8-bit pixels).
`encode` is the family's `model.encode` traced into the graph; how it works
(an encoder network, Langevin inference, latent optimisation, with its steps and
seeds) is the family's `encode_method()`, written into signature.json.

`reconstruct` is `generate(encode(images))`. Every weight and constant the
signatures use (network weights, batch-norm statistics, dictionaries) is stored in the SavedModel: it needs only TensorFlow to load,
e.g. `tf.saved_model.load(path).signatures["generate"](z=z)["images"]` or
`saved_model_cli run --dir PATH --tag_set serve --signature_def generate
--inputs z=z.npy`. Per-example training state (persistent latents), critics
and optimizer slots are left out.

Input checks: the signatures' TensorSpecs reject a wrong rank, size or dtype
before the graph runs (TensorFlow's message shows the expected spec, e.g.
`(None, 32, 32, 1)`); the graph itself asserts the shape again with a message
naming `[None, H, W, C]` (for servers that feed tensors without checking the
placeholder shape). `load_exported(path)` wraps the signatures with Python
checks that raise `ExportInputError` naming the expected shape, dtype and
range. Next to the SavedModel, `signature.json` (machine-readable) and
`README.txt` describe the signatures, the model family and the training step.

The model is exported in float32 whatever the run's mixed-precision policy
(`export_model` rebuilds it under the float32 policy; the variables are
float32 in every policy, so the checkpoint restores unchanged).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import tempfile
from typing import Any, Dict, Optional

import keras
import numpy as np
import tensorflow as tf

from tf_sparse_gen.layers import standard_ops
from tf_sparse_gen.rundir import RunDir

SIGNATURES = ("generate", "encode", "reconstruct")
SERVING_DEFAULT = "generate"
METADATA_FILE = "signature.json"
README_FILE = "README.txt"
FORMAT = "tf_sparse_gen.export/1"


class ExportInputError(ValueError):
    """An input to an exported signature has the wrong rank, shape or dtype."""


# ---------------------------------------------------------------------------- description
def _spec(shape, dtype="float32") -> Dict[str, Any]:
    return {"dtype": dtype, "shape": [None if s is None else int(s) for s in shape]}


def _shape_str(shape) -> str:
    return "[" + ", ".join("None" if s is None else str(s) for s in shape) + "]"


def describe(model, step: Optional[int] = None, extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The content of `signature.json` for `model`."""
    d, image_shape = int(model.latent_dim), [int(s) for s in model.image_shape]
    images = _spec([None, *image_shape])
    cfg = getattr(model, "cfg", None)
    meta = {
        "format": FORMAT,
        "model_family": getattr(cfg, "model", None),
        "model_class": type(model).__name__,
        "step": None if step is None else int(step),
        "latent_dim": d,
        "image_shape": image_shape,
        "value_range": [-1.0, 1.0],
        "value_range_note": "images in and out are float32 in [-1, 1] (pixel / 127.5 - 1)",
        "serving_default": SERVING_DEFAULT,
        "signatures": {
            "generate": {"inputs": {"z": _spec([None, d])}, "outputs": {"images": images},
                         "note": "latents z ~ N(0, I) -> images in [-1, 1]"},
            "encode": {"inputs": {"images": images}, "outputs": {"z": _spec([None, d])},
                       **model.encode_method()},
            "reconstruct": {"inputs": {"images": images}, "outputs": {"images": images},
                            "note": "generate(encode(images))"},
        },
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    meta.update(extra or {})
    return meta


def _readme(meta: Dict[str, Any]) -> str:
    d, (h, w, c) = meta["latent_dim"], meta["image_shape"]
    enc = meta["signatures"]["encode"]
    enc_line = enc["method"] + "".join(f", {k}={enc[k]}" for k in ("steps", "delta", "sigma", "seed", "lr")
                                       if k in enc)
    return f"""tf_sparse_gen SavedModel ({meta['model_family']}, {meta['model_class']}, step {meta['step']})

Signatures (float32, any batch size B; images in [-1, 1] = pixel / 127.5 - 1):
  generate     z [B, {d}]                -> images [B, {h}, {w}, {c}]   (serving_default)
  encode       images [B, {h}, {w}, {c}]  -> z [B, {d}]
  reconstruct  images [B, {h}, {w}, {c}]  -> images [B, {h}, {w}, {c}]

encode: {enc_line}
  {enc.get('note', '')}

Python (TensorFlow only):
  m = tf.saved_model.load(PATH)
  images = m.signatures["generate"](z=tf.random.normal([4, {d}]))["images"]
  z = m.signatures["encode"](images=images)["z"]

Command line:
  saved_model_cli run --dir PATH --tag_set serve --signature_def generate --inputs z=z.npy
  (z.npy: float32 array [B, {d}]; --input_exprs takes Python literals only)

signature.json holds the same description in machine-readable form.
"""


# ---------------------------------------------------------------------------- export
@contextlib.contextmanager
def _float32_policy():
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _assert_shape(x, expected, message: str):
    """In-graph `tf.debugging.Assert` that `x` has shape `expected` (None = any); any rank is reported.

    The signatures' TensorSpecs fix rank and size, but a signature called through
    `loaded.signatures[...]` or a session feed passes other shapes through to the graph: this
    assertion is what those callers see. It reads `tf.shape` (a tensor) so it is not decided
    while tracing against the spec's static shape.
    """
    got = tf.shape(x)
    rank = len(expected)
    fixed = [i for i, e in enumerate(expected) if e is not None]
    # Padded so the comparison is defined whatever the rank of x.
    padded = tf.concat([got, tf.zeros([rank], tf.int32)], axis=0)
    ok = tf.logical_and(tf.equal(tf.size(got), rank),
                        tf.reduce_all(tf.equal(tf.gather(padded, fixed),
                                               tf.constant([expected[i] for i in fixed], tf.int32))))
    return tf.debugging.Assert(ok, [message, "got shape", got], summarize=rank + 2)


def _assert_images(images, image_shape, name: str):
    expected = [None, *image_shape]
    return _assert_shape(images, expected, f"{name}: images must be float32 {_shape_str(expected)} "
                                           "(batch, height, width, channels) in [-1, 1];")


def _assert_latents(z, latent_dim: int):
    return _assert_shape(z, [None, latent_dim],
                         f"generate: z must be float32 [None, {latent_dim}] (batch, latent_dim);")


def _serving_layers(model):
    """The sub-networks the signatures use (tracked by name in the SavedModel)."""
    return [layer for layer in (getattr(model, "generator", None), getattr(model, "encoder", None))
            if isinstance(layer, keras.layers.Layer)]


def build_archive(model) -> keras.export.ExportArchive:
    """A `keras.export.ExportArchive` with the three signatures of `model` (not yet written).

    Notes on the Keras route for these subclassed models:
    * `model.export(path, format="tf_saved_model")` exports only `call` (= generate); the archive
      adds `encode` and `reconstruct` as endpoints around the model's own methods.
    * `ExportArchive.add_endpoint` collects every variable the traced endpoints read (also those
      read inside nested tf.functions such as the AND-OR model's `_infer` while_loop), so the
      saved object graph holds them explicitly; `saved_model_cli run` needs that (Keras 3
      variables share names, so name-based restoring would fail). Variables the endpoints do not
      read (critics, persistent latents, counters) are not saved.
    * Nothing is `track`ed: `track(layer)` would store every weight a second time (as the Keras
      variable beside the endpoints' `tf.Variable`), doubling the export, and `track(model)` would
      also save non-serving variables (persistent latents `[N, d]`, a string variable).
    * One warm-up call builds lazily created weights before the endpoints are traced.
    * Endpoints are traced with `autograph=False`: the functions use explicit `tf.while_loop`s.
    """
    latent_dim, image_shape = int(model.latent_dim), [int(s) for s in model.image_shape]

    # Warm-up: creates the weights of lazily built layers.
    z0 = tf.zeros([1, latent_dim])
    model.generate(z0)
    model.encode(tf.zeros([1, *image_shape]))

    archive = keras.export.ExportArchive()

    def generate(z):
        with tf.control_dependencies([_assert_latents(z, latent_dim)]):
            z = tf.identity(z)
        return {"images": tf.cast(model.generate(z), tf.float32)}

    def encode(images):
        with tf.control_dependencies([_assert_images(images, image_shape, "encode")]):
            images = tf.identity(images)
        return {"z": tf.cast(model.encode(images), tf.float32)}

    def reconstruct(images):
        with tf.control_dependencies([_assert_images(images, image_shape, "reconstruct")]):
            images = tf.identity(images)
        return {"images": tf.cast(model.reconstruct(images), tf.float32)}

    z_spec = tf.TensorSpec([None, latent_dim], tf.float32, name="z")
    image_spec = tf.TensorSpec([None, *image_shape], tf.float32, name="images")
    # The first endpoint is also written as serving_default.
    archive.add_endpoint("generate", generate, input_signature=[z_spec])
    archive.add_endpoint("encode", encode, input_signature=[image_spec])
    archive.add_endpoint("reconstruct", reconstruct, input_signature=[image_spec])
    return archive


def _prepare_out_dir(path: str) -> None:
    """Refuses to replace a directory that is not an earlier export (or empty)."""
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise FileExistsError(f"{path} exists and is not a directory")
        entries = os.listdir(path)
        if entries and "saved_model.pb" not in entries:
            raise FileExistsError(f"{path} is not empty and holds no SavedModel; refusing to overwrite it")


def export_generative_model(model, path: str, step: Optional[int] = None,
                            extra_metadata: Optional[Dict[str, Any]] = None, verbose: bool = False) -> Dict[str, Any]:
    """Writes `model` (a `GenerativeModel`) as a SavedModel with generate/encode/reconstruct at `path`.

    An existing export at `path` is replaced (written to a temporary directory first, so a
    failed export leaves the old one intact). Writes `signature.json` and `README.txt` next to
    `saved_model.pb`. Returns the metadata written to `signature.json`.
    """
    path = os.path.abspath(os.path.expanduser(path))
    _prepare_out_dir(path)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    meta = describe(model, step, extra_metadata)
    tmp = tempfile.mkdtemp(prefix=".export-", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private
    try:
        # Standard TensorFlow ops only: the export must load without tf_sparse_gen's compiled kernel.
        with standard_ops(model):
            build_archive(model).write_out(tmp, verbose=verbose)
        with open(os.path.join(tmp, METADATA_FILE), "w") as f:
            json.dump(meta, f, indent=2)
            f.write("\n")
        with open(os.path.join(tmp, README_FILE), "w") as f:
            f.write(_readme(meta))
        if os.path.exists(path):
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def export_model(model_dir: str, out_dir: Optional[str] = None, checkpoint: Optional[str] = None,
                 verbose: bool = False) -> str:
    """Exports the trained run in `model_dir` (latest or given checkpoint); returns the export path.

    Default `out_dir`: `model_dir/export`.
    """
    from tf_sparse_gen import runs

    with _float32_policy():
        run = runs.load_trained_model(model_dir, checkpoint)
        out_dir = out_dir or RunDir(run.model_dir).export
        export_generative_model(run.model, out_dir, step=run.step, verbose=verbose,
                                extra_metadata={"model_dir": run.model_dir, "checkpoint": run.checkpoint})
    return os.path.abspath(out_dir)


# ---------------------------------------------------------------------------- loading
class ExportedModel:
    """A loaded export whose methods check their inputs before calling the signatures.

    `generate(z)`, `encode(images)` and `reconstruct(images)` take arrays or tensors of any real
    floating dtype (cast to float32) and return numpy arrays. A wrong rank or size, or a
    non-float dtype (e.g. uint8 pixels: scale them to [-1, 1] first), raises `ExportInputError`
    naming the expected shape.
    """

    def __init__(self, path: str):
        self.path = os.path.abspath(os.path.expanduser(path))
        self.saved_model = tf.saved_model.load(self.path)
        meta_path = os.path.join(self.path, METADATA_FILE)
        if os.path.exists(meta_path):
            with open(meta_path) as f:
                self.metadata = json.load(f)
        else:  # read the specs from the signatures themselves
            gen = self.saved_model.signatures["generate"].structured_input_signature[1]["z"]
            enc = self.saved_model.signatures["encode"].structured_input_signature[1]["images"]
            self.metadata = {"latent_dim": int(gen.shape[1]), "image_shape": [int(s) for s in enc.shape[1:]]}
        self.latent_dim = int(self.metadata["latent_dim"])
        self.image_shape = tuple(int(s) for s in self.metadata["image_shape"])

    @staticmethod
    def _check(name: str, arg: str, x, expected) -> tf.Tensor:
        want = f"{name}: {arg} must be float32 {_shape_str(expected)}"
        dtype = tf.as_dtype(x.dtype) if hasattr(x, "dtype") else None
        if dtype is None:
            x = np.asarray(x)
            dtype = tf.as_dtype(x.dtype)
        if not dtype.is_floating:
            hint = "; scale 8-bit pixels to [-1, 1] (x / 127.5 - 1)" if arg == "images" else ""
            raise ExportInputError(f"{want}, got dtype {dtype.name}{hint}")
        shape = tuple(x.shape)
        if len(shape) != len(expected) or any(e is not None and s != e for s, e in zip(shape, expected)):
            raise ExportInputError(f"{want}, got shape {_shape_str(shape)}")
        return tf.cast(x, tf.float32)

    def generate(self, z) -> np.ndarray:
        z = self._check("generate", "z", z, [None, self.latent_dim])
        return self.saved_model.signatures["generate"](z=z)["images"].numpy()

    def encode(self, images) -> np.ndarray:
        images = self._check("encode", "images", images, [None, *self.image_shape])
        return self.saved_model.signatures["encode"](images=images)["z"].numpy()

    def reconstruct(self, images) -> np.ndarray:
        images = self._check("reconstruct", "images", images, [None, *self.image_shape])
        return self.saved_model.signatures["reconstruct"](images=images)["images"].numpy()


def load_exported(path: str) -> ExportedModel:
    """Loads an export written by `export_model` with input-checking `generate/encode/reconstruct`."""
    return ExportedModel(path)

"""Feature networks for the distribution metrics (FD / KID / IS).

Two networks, one interface (`FeatureNet`):

* ``"fmnist"``: a small in-domain CNN classifier trained on Fashion-MNIST at
  32x32x1 (``scripts/train_fmnist_classifier.py``; weights committed in
  ``tf_sparse_gen/metrics/weights/``). Features are the 128-d pre-activations
  of its penultimate dense layer ("fc"), centred and scaled by fixed constants
  (stored in the JSON, computed once on the training split) so that the training
  features have mean 0 and E||x||^2 / D = 1; this puts the cubic KID kernel in
  the same well-conditioned regime as Inception features. Probabilities are its
  10-way softmax. Metric names:
  ``fd_fmnist``, ``kid_fmnist``, ``is_fmnist``.
* ``"inception"``: Keras' ``InceptionV3`` (ImageNet weights from the Keras
  cache or an explicit file). Features are the 2048-d average-pool
  activations, probabilities the 1000-way top softmax (only when the weights
  with the top are available). Metric names: ``fid``, ``kid_inception``,
  ``is_inception``.

Every network takes images in the project's convention, float ``[B, H, W, C]``
(or ``[B, H, W]``) in ``[-1, 1]`` (uint8 input is accepted and rescaled), of
any size and 1 or 3 channels, and converts them to what it needs itself.

Typical use (what ``evaluate.py`` needs)::

    net = load_feature_net("fmnist")
    real = net.collect(real_batches)              # iterable of [B,H,W,C] arrays
    fake = net.collect(fake_batches)
    scores = net.compare(real, fake, seed=0)      # {"fd_fmnist": ..., "kid_fmnist": ..., ...}
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from tf_sparse_gen.metrics.stats import (FeatureStats, InceptionScoreStats, frechet_distance,
                                         kernel_inception_distance)

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")
FMNIST_WEIGHTS = os.path.join(WEIGHTS_DIR, "fmnist_classifier.weights.h5")
FMNIST_INFO = os.path.join(WEIGHTS_DIR, "fmnist_classifier.json")
FMNIST_IMAGE_SIZE = 32
# The pre-activation of the penultimate dense layer: all 128 units vary (after its ReLU,
# most units are zero on every image, so the covariance would have rank ~40).
FMNIST_FEATURE_LAYER = "fc"
# The architecture of the committed weights; the JSON next to them repeats it and wins.
FMNIST_ARCH = {"widths": [32, 64, 96], "convs_per_stage": [1, 1, 1], "dense": 128, "dropout": 0.25,
               "num_classes": 10}

INCEPTION_TOP_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels.h5"
INCEPTION_NOTOP_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
INCEPTION_SIZE = 299

FEATURE_NETS = ("fmnist", "inception")
_LUMA = (0.299, 0.587, 0.114)  # same weights as tf_sparse_gen.data.to_size_and_channels


class FeatureNetWeightsError(FileNotFoundError):
    """The weights of a feature network are missing; the message says where it looked and what to do."""


# ----------------------------------------------------------------------------- preprocessing

def _as_float_images(images):
    """Any [B,H,W] / [B,H,W,C] array or tensor -> float32 tf tensor [B,H,W,C] in [-1, 1]."""
    import tensorflow as tf

    x = tf.convert_to_tensor(images)
    if x.dtype == tf.uint8:
        x = tf.cast(x, tf.float32) / 127.5 - 1.0
    elif not x.dtype.is_floating:
        raise ValueError(f"images must be float in [-1, 1] (or uint8), got dtype {x.dtype.name}")
    x = tf.cast(x, tf.float32)
    if x.shape.rank == 3:
        x = x[..., None]
    if x.shape.rank != 4 or x.shape[-1] not in (1, 3, 4):
        raise ValueError(f"images must be [B, H, W] or [B, H, W, C] with C in (1, 3), got shape {x.shape}")
    if x.shape[-1] == 4:  # drop alpha
        x = x[..., :3]
    return x


def to_gray(x):
    """[B,H,W,3] -> [B,H,W,1] with ITU-R 601 luma weights (they sum to 1, so [-1, 1] stays [-1, 1])."""
    import tensorflow as tf

    return tf.reduce_sum(x * tf.constant(_LUMA, x.dtype), axis=-1, keepdims=True)


def _resize(x, size: int):
    import tensorflow as tf

    if x.shape[1] == size and x.shape[2] == size:
        return x
    return tf.image.resize(x, [size, size], method="bilinear", antialias=True)


# ----------------------------------------------------------------------------- collected statistics

@dataclasses.dataclass
class CollectedStats:
    """Everything the metrics need about one image set, for one feature network.

    Attributes:
        net_name: the feature network ("fmnist", "inception").
        features: streaming mean/covariance (and the features themselves if kept, for KID).
        is_stats: streaming inception-score statistics, or None if the net has no classifier head.
    """

    net_name: str
    features: FeatureStats
    is_stats: Optional[InceptionScoreStats] = None

    @property
    def count(self) -> int:
        return self.features.count

    def save(self, path: str) -> str:
        """Writes an .npz (e.g. to cache the statistics of a real data set)."""
        extra = {"net_name": np.array(self.net_name)}
        if self.is_stats is not None:
            extra.update({"is_" + k: v for k, v in self.is_stats.state().items()})
        return self.features.save(path, **extra)

    @classmethod
    def load(cls, path: str) -> "CollectedStats":
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
        is_state = {k[3:]: v for k, v in data.items() if k.startswith("is_")}
        return cls(net_name=str(data["net_name"]), features=FeatureStats.from_state(data),
                   is_stats=InceptionScoreStats.from_state(is_state) if is_state else None)


# ----------------------------------------------------------------------------- the interface

class FeatureNet:
    """A frozen network mapping images in [-1, 1] to features (and class probabilities).

    Attributes:
        name: "fmnist" or "inception".
        feature_dim: D of `features`.
        num_classes: K of `probs`, or 0 if the net has no classifier head.
        metric_names: {"fd": ..., "kid": ..., "is": ...}: the report names of the
            metrics computed with this net.
    """

    name: str = ""
    feature_dim: int = 0
    num_classes: int = 0
    default_batch_size: int = 256

    def __init__(self, model, input_size: int, input_channels: int, feature_shift=None,
                 feature_scale: Optional[float] = None):
        """`model`: a Keras model [B, S, S, C] in [-1, 1] -> [features, probs] (or features).

        `feature_shift` [D] and `feature_scale` (fixed constants) map the raw features to
        (raw - shift) / scale.
        """
        import tensorflow as tf

        self.model = model
        self.input_size = input_size
        self.input_channels = input_channels
        shift = tf.constant(np.zeros(1) if feature_shift is None else feature_shift, tf.float32)
        scale = tf.constant(1.0 if feature_scale is None else feature_scale, tf.float32)

        def run(x):
            out = self.model(x, training=False)
            out = [tf.cast(o, tf.float32) for o in (out if isinstance(out, (list, tuple)) else [out])]
            out[0] = (out[0] - shift) / scale
            return tuple(out)

        # Preprocessing (any size / channel count) runs eagerly; the traced graph sees one shape.
        self._run_model = tf.function(run, input_signature=[
            tf.TensorSpec([None, input_size, input_size, input_channels], tf.float32)])

    def _run(self, images):
        return self._run_model(self.preprocess(images))

    @property
    def has_probs(self) -> bool:
        return self.num_classes > 0

    @property
    def metric_names(self) -> Dict[str, str]:
        if self.name == "inception":
            return {"fd": "fid", "kid": "kid_inception", "is": "is_inception"}
        return {"fd": f"fd_{self.name}", "kid": f"kid_{self.name}", "is": f"is_{self.name}"}

    def preprocess(self, images):
        """[B,H,W,C] in [-1,1], any size, 1 or 3 channels -> the network's input (a tf tensor)."""
        import tensorflow as tf

        x = _as_float_images(images)
        if x.shape[-1] == 3 and self.input_channels == 1:
            x = to_gray(x)
        elif x.shape[-1] == 1 and self.input_channels == 3:
            x = tf.tile(x, [1, 1, 1, 3])
        return _resize(x, self.input_size)

    def _batches(self, images, batch_size: Optional[int]):
        batch_size = batch_size or self.default_batch_size
        n = int(images.shape[0])
        for start in range(0, n, batch_size):
            yield images[start:start + batch_size]

    def features_and_probs(self, images, batch_size: Optional[int] = None) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """One forward pass: (float32 [B, D] features, float32 [B, K] probabilities or None)."""
        if not hasattr(images, "shape"):
            images = np.asarray(images)
        feats, probs = [], []
        for batch in self._batches(images, batch_size):
            out = self._run(batch)
            feats.append(out[0].numpy())
            if len(out) > 1:
                probs.append(out[1].numpy())
        if not feats:
            return (np.zeros((0, self.feature_dim), np.float32),
                    np.zeros((0, self.num_classes), np.float32) if self.has_probs else None)
        return np.concatenate(feats), (np.concatenate(probs) if probs else None)

    def features(self, images, batch_size: Optional[int] = None) -> np.ndarray:
        """float32 [B, D] features of images in [-1, 1]."""
        return self.features_and_probs(images, batch_size)[0]

    def probs(self, images, batch_size: Optional[int] = None) -> np.ndarray:
        """float32 [B, K] class probabilities (softmax) of images in [-1, 1]."""
        if not self.has_probs:
            raise ValueError(f"feature net {self.name!r} was loaded without its classifier head "
                             "(no probabilities, so no inception score); " + self._no_probs_hint())
        return self.features_and_probs(images, batch_size)[1]

    def _no_probs_hint(self) -> str:
        return "load it with its full weights"

    def collect(self, batches: Iterable, max_images: Optional[int] = None, keep_features: bool = True,
                num_splits: int = 10, batch_size: Optional[int] = None) -> CollectedStats:
        """Streams image batches through the net into `CollectedStats`.

        Args:
            batches: an iterable of image batches ([B,H,W,C] arrays or tensors in [-1, 1]),
                or one big array. For a tf.data dataset of tuples, map it to images first,
                e.g. `ds.map(lambda idx, x, *rest: x)`.
            max_images: stop after this many images (None = all).
            keep_features: keep the features (needed for KID; D floats per image).
            num_splits: splits of the inception score.
        """
        stats = FeatureStats(keep_features=keep_features)
        is_stats = InceptionScoreStats(num_splits) if self.has_probs else None
        if hasattr(batches, "shape") and len(batches.shape) in (3, 4):
            batches = [batches]
        for batch in batches:
            if max_images is not None:
                remaining = max_images - stats.count
                if remaining <= 0:
                    break
                batch = batch[:remaining]
            feats, probs = self.features_and_probs(batch, batch_size)
            stats.update(feats)
            if is_stats is not None:
                is_stats.update(probs)
        return CollectedStats(self.name, stats, is_stats)

    def compare(self, real: CollectedStats, fake: CollectedStats, kid_subsets: int = 100,
                kid_subset_size: int = 1000, seed: int = 0) -> Dict[str, float]:
        """FD, KID (mean and std) and the IS of the fake set, named for this net.

        Returns e.g. {"fd_fmnist": .., "kid_fmnist": .., "kid_fmnist_std": ..,
        "is_fmnist": .., "is_fmnist_std": .., "num_real": .., "num_fake": ..}. KID is
        left out when either side did not keep its features, IS when the net has no head.
        """
        return distribution_metrics(real, fake, self.metric_names, kid_subsets, kid_subset_size, seed)

    def __repr__(self):
        return (f"{type(self).__name__}(name={self.name!r}, feature_dim={self.feature_dim}, "
                f"num_classes={self.num_classes}, input={self.input_size}x{self.input_size}x{self.input_channels})")


def distribution_metrics(real: CollectedStats, fake: CollectedStats, names: Dict[str, str],
                         kid_subsets: int = 100, kid_subset_size: int = 1000, seed: int = 0) -> Dict[str, float]:
    """The metrics between two `CollectedStats` (see `FeatureNet.compare`)."""
    if real.net_name != fake.net_name:
        raise ValueError(f"statistics from different feature nets: {real.net_name!r} vs {fake.net_name!r}")
    out = {"num_real": real.count, "num_fake": fake.count}
    out[names["fd"]] = frechet_distance(real.features.mean(), real.features.cov(),
                                        fake.features.mean(), fake.features.cov())
    if real.features.keep_features and fake.features.keep_features:
        kid, kid_std = kernel_inception_distance(real.features.features(), fake.features.features(),
                                                 num_subsets=kid_subsets, subset_size=kid_subset_size, seed=seed)
        out[names["kid"]], out[names["kid"] + "_std"] = kid, kid_std
    if fake.is_stats is not None and fake.is_stats.count > 0:
        out[names["is"]], out[names["is"] + "_std"] = fake.is_stats.result()
    return out


# ----------------------------------------------------------------------------- Fashion-MNIST classifier

def build_fmnist_classifier(widths: Sequence[int] = (32, 64, 96), convs_per_stage: Sequence[int] = (1, 1, 1),
                            dense: int = 128, dropout: float = 0.25, num_classes: int = 10,
                            image_size: int = FMNIST_IMAGE_SIZE):
    """The in-domain classifier: [B, 32, 32, 1] in [-1, 1] -> logits [B, K].

    Stages of (3x3 conv without bias, BatchNorm, ReLU) x n and a 2x2 max-pool, then
    Flatten, Dropout, Dense(`dense`) (layer "fc": the FD/KID features are its output,
    before the ReLU), ReLU, Dropout, Dense(K) (layer "logits").
    """
    import keras
    from keras import layers

    inp = keras.Input((image_size, image_size, 1), name="image")
    x = inp
    for s, (w, n) in enumerate(zip(widths, convs_per_stage)):
        for c in range(n):
            x = layers.Conv2D(w, 3, padding="same", use_bias=False, name=f"conv{s + 1}_{c + 1}")(x)
            x = layers.BatchNormalization(name=f"bn{s + 1}_{c + 1}")(x)
            x = layers.ReLU(name=f"relu{s + 1}_{c + 1}")(x)
        x = layers.MaxPooling2D(name=f"pool{s + 1}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(dropout, name="dropout1")(x)
    x = layers.Dense(dense, name="fc")(x)
    x = layers.ReLU(name="features")(x)
    x = layers.Dropout(dropout, name="dropout2")(x)
    logits = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inp, logits, name="fmnist_classifier")


class FashionMnistNet(FeatureNet):
    """The in-domain Fashion-MNIST classifier as a feature net (32x32x1; other inputs are converted)."""

    name = "fmnist"
    default_batch_size = 500

    def __init__(self, classifier, info: Optional[dict] = None, feature_layer: str = FMNIST_FEATURE_LAYER,
                 normalize: bool = True):
        """`normalize`: apply the fixed feature normalisation stored in `info` (if any)."""
        import keras

        feats = classifier.get_layer(feature_layer).output
        probs = keras.layers.Softmax(name="probs")(classifier.get_layer("logits").output)
        model = keras.Model(classifier.inputs, [feats, probs], name="fmnist_features")
        self.classifier = classifier
        self.info = info or {}
        self.feature_dim = int(feats.shape[-1])
        self.num_classes = int(probs.shape[-1])
        norm = self.info.get("feature_normalization") if normalize else None
        super().__init__(model, input_size=int(classifier.inputs[0].shape[1]), input_channels=1,
                         feature_shift=np.asarray(norm["shift"], np.float32) if norm else None,
                         feature_scale=float(norm["scale"]) if norm else None)


def _load_fmnist(weights_path: Optional[str], **kwargs) -> FashionMnistNet:
    weights_path = weights_path or FMNIST_WEIGHTS
    if not os.path.exists(weights_path):
        raise FeatureNetWeightsError(
            f"Fashion-MNIST classifier weights not found at {weights_path}. They are committed in "
            f"{WEIGHTS_DIR}; re-create them with `python scripts/train_fmnist_classifier.py` "
            "(a few minutes on CPU), or pass the path of a weights file.")
    info_path = weights_path[:-len(".weights.h5")] + ".json" if weights_path.endswith(".weights.h5") else None
    info = {}
    if info_path and os.path.exists(info_path):
        with open(info_path) as f:
            info = json.load(f)
    arch = dict(FMNIST_ARCH, **info.get("architecture", {}))
    classifier = build_fmnist_classifier(**arch)
    classifier.load_weights(weights_path)
    return FashionMnistNet(classifier, info, **kwargs)


# ----------------------------------------------------------------------------- InceptionV3

def keras_cache_dirs() -> List[str]:
    """Where Keras keeps downloaded weights: $KERAS_HOME/models, ~/.keras/models, /tmp/.keras/models."""
    dirs = []
    if os.environ.get("KERAS_HOME"):
        dirs.append(os.path.join(os.environ["KERAS_HOME"], "models"))
    dirs.append(os.path.join(os.path.expanduser("~"), ".keras", "models"))
    dirs.append(os.path.join("/tmp", ".keras", "models"))  # Keras' fallback when ~ is not writable
    return list(dict.fromkeys(dirs))


def find_inception_weights(weights_path: Optional[str] = None) -> Tuple[str, bool]:
    """(path, include_top) of the InceptionV3 ImageNet weights; raises FeatureNetWeightsError if absent.

    An explicit `weights_path` is used as is: a file whose name contains "notop" is taken as
    the weights without the classifier head (features only, no inception score).
    Otherwise the Keras cache is searched, preferring the full weights.
    """
    if weights_path:
        if not os.path.exists(weights_path):
            raise FeatureNetWeightsError(f"InceptionV3 weights file {weights_path} does not exist. " + _INCEPTION_HINT)
        return weights_path, "notop" not in os.path.basename(weights_path)
    searched = []
    for name, top in ((INCEPTION_TOP_FILE, True), (INCEPTION_NOTOP_FILE, False)):
        for d in keras_cache_dirs():
            p = os.path.join(d, name)
            searched.append(p)
            if os.path.exists(p):
                return p, top
    raise FeatureNetWeightsError(
        "InceptionV3 ImageNet weights not found (needed for fid / kid_inception / is_inception). Looked for: "
        + ", ".join(searched) + ". " + _INCEPTION_HINT)


_INCEPTION_HINT = (
    "To get them, run `python -c \"import keras; keras.applications.InceptionV3(weights='imagenet')\"` "
    "on a machine with internet access and copy ~/.keras/models/" + INCEPTION_TOP_FILE + " (92 MB) into "
    "~/.keras/models/ here (or $KERAS_HOME/models/), or pass the file explicitly "
    "(--inception_weights=FILE). Without them, use the in-domain metrics of the 'fmnist' feature net.")


class InceptionNet(FeatureNet):
    """Keras' InceptionV3 as a feature net: 2048-d average-pool features, 1000-way softmax.

    Images in [-1, 1] are bilinearly resized to 299x299 and grayscale is tiled to 3
    channels; [-1, 1] is already the input range InceptionV3 expects
    (`keras.applications.inception_v3.preprocess_input` maps [0, 255] to [-1, 1]).

    Note: this is Keras' InceptionV3 with Keras' ImageNet weights, not the TF1 graph
    (`pt_inception-2015-12-05`, 2015 weights, its own resize) that the original FID code
    (Heusel et al. 2017, TTUR) and the Inception Score code use. FIDs and ISs computed
    here are close to, but not equal to, published numbers: compare them only with
    numbers computed by this same code.
    """

    name = "inception"
    default_batch_size = 32

    def __init__(self, weights_path: Optional[str] = None, _testing_random_weights: bool = False):
        """`_testing_random_weights=True` builds the full net with random weights (tests only)."""
        import keras

        if _testing_random_weights:
            path, include_top = None, True
        else:
            path, include_top = find_inception_weights(weights_path)
        self.weights_path = path
        if include_top:
            base = keras.applications.InceptionV3(include_top=True, weights=path,
                                                  input_shape=(INCEPTION_SIZE, INCEPTION_SIZE, 3))
            model = keras.Model(base.inputs, [base.get_layer("avg_pool").output, base.output],
                                name="inception_features")
        else:
            model = keras.applications.InceptionV3(include_top=False, weights=path, pooling="avg",
                                                   input_shape=(INCEPTION_SIZE, INCEPTION_SIZE, 3))
        self.feature_dim = 2048
        self.num_classes = 1000 if include_top else 0
        super().__init__(model, input_size=INCEPTION_SIZE, input_channels=3)

    def _no_probs_hint(self) -> str:
        return f"only the 'notop' weights were found; get {INCEPTION_TOP_FILE} for is_inception. " + _INCEPTION_HINT


# ----------------------------------------------------------------------------- factory

def load_feature_net(name: str, weights_path: Optional[str] = None, **kwargs) -> FeatureNet:
    """The feature network `name` ("fmnist" or "inception").

    Args:
        name: "fmnist" (committed in-domain classifier) or "inception" (Keras InceptionV3).
        weights_path: an explicit weights file; default: the committed file for "fmnist",
            the Keras cache for "inception".
        **kwargs: passed to the net's constructor (tests use `_testing_random_weights=True`
            for "inception"; `normalize=False` gives the raw "fmnist" features).

    Raises:
        FeatureNetWeightsError: the weights are missing (the message says where it looked and how
            to get them).
        ValueError: an unknown name.
    """
    if name == "fmnist":
        return _load_fmnist(weights_path, **kwargs)
    if name == "inception":
        return InceptionNet(weights_path, **kwargs)
    raise ValueError(f"unknown feature net {name!r}; choose from {', '.join(FEATURE_NETS)}")

"""Layers shared by the model families."""

from __future__ import annotations

import contextlib
from typing import Union

import keras
import tensorflow as tf

from tf_sparse_gen import kernels
from tf_sparse_gen.sparsity import TOPK_IMPLEMENTATIONS, SparsityError, check_k, resolve_k  # noqa: F401


@keras.saving.register_keras_serializable(package="tf_sparse_gen")
class TopKSparsity(keras.layers.Layer):
    """The sparsity-inducing function S(.; k) of Xing et al. (CVPR 2020, eq. 6).

    Keeps the k largest values along the reduced axis and sets all others to
    zero. Kept values pass unchanged; the gradient is 1 on kept entries and 0
    elsewhere. Only the k-th value of each row is needed (a threshold, no
    sort). Two implementations give the same output:

    * `"kernel"`: the compiled CPU op `TopKMask` (tf_sparse_gen/kernels), a
      vectorised bisection for each row's threshold, about 3x faster than
      TensorFlow's CPU `TopK` on the `small` preset's layers. Its mask is
      exactly the scatter of `tf.math.top_k`'s indices (k ones per row; ties
      keep the lowest indices).
    * `"tf"`: one unsorted `tf.math.top_k`, its smallest value as the
      threshold; ties at a non-zero k-th value that would keep more than k
      non-zeros fall back to an exact selection by index. Entries tied at a
      k-th value of 0 are all marked kept (their outputs are 0 either way).

    `"auto"` (the default) uses the kernel when it is built, the input is
    float32 (or a float16/bfloat16 one, selected in float32), no GPU or TPU is
    visible (their `TopK` kernels are fast) and the call is not being compiled
    by XLA; otherwise `"tf"`. SavedModel exports are traced with `"tf"`
    (`standard_ops`), so they load with TensorFlow alone.

    Args:
        k: an int >= 1 (entries kept), or a float in (0, 1): that fraction of
            the reduced size (0.25 of an 8x8 map keeps 16).
        axis: for NHWC inputs, `"channels"` keeps the top k of C at each
            position (the paper's first layer: an OR choice among channels per
            part position); `"spatial"` keeps the top k of H*W in each channel
            (the later layers). Rank-2 inputs always reduce the last axis.
        implementation: `"auto"`, `"kernel"` (raises if the kernel is not
            built) or `"tf"`, as above.

    Call arguments:
        inputs: a `[B, N]` or `[B, H, W, C]` tensor.

    References:
        Xing, Wu, Zhu, Wu. Inducing Hierarchical Compositional Model by
        Sparsifying Generator Network. CVPR 2020.
    """

    def __init__(self, k: Union[int, float], axis: str = "channels", implementation: str = "auto", **kwargs):
        super().__init__(**kwargs)
        if axis not in ("channels", "spatial"):
            raise ValueError(f"TopKSparsity axis must be 'channels' or 'spatial', got {axis!r}")
        if implementation not in TOPK_IMPLEMENTATIONS:
            raise ValueError(f"TopKSparsity implementation must be one of {TOPK_IMPLEMENTATIONS}, "
                             f"got {implementation!r}")
        check_k(k, "TopKSparsity k", allow_off=False)
        self.k = k
        self.axis = axis
        self.implementation = implementation
        self.supports_masking = False

    def kept_count(self, shape) -> int:
        """k as a count, for an input of static `shape`."""
        if len(shape) == 4 and self.axis == "spatial":
            return resolve_k(self.k, int(shape[1]) * int(shape[2]), "TopKSparsity k")
        return resolve_k(self.k, int(shape[-1]), "TopKSparsity k")

    def mask(self, inputs):
        """The 0/1 selection mask of `inputs`, in the dtype of `inputs`."""
        rank = inputs.shape.rank
        if rank not in (2, 4):
            raise ValueError(f"TopKSparsity expects a rank-2 or rank-4 (NHWC) input, got shape {inputs.shape}")
        k = self.kept_count(inputs.shape)
        x = inputs if inputs.dtype in (tf.float32, tf.float64) else tf.cast(inputs, tf.float32)
        spatial = rank == 4 and self.axis == "spatial"
        if self._use_kernel(x):
            return tf.cast(kernels.topk_mask_op()(x, k=k, spatial=spatial), inputs.dtype)
        if spatial:
            shape = tf.shape(x)
            # [B, H, W, C] -> [B, C, H*W]
            rows = tf.reshape(tf.transpose(x, [0, 3, 1, 2]), [shape[0], shape[3], shape[1] * shape[2]])
        else:
            rows = x
        # The k-th largest value is the smallest of the top k; leaving them unsorted is
        # cheaper on CPU (about 1.3x on the small preset's spatial layers) and the mask is the same.
        kth = tf.reduce_min(tf.math.top_k(rows, k=k, sorted=False).values, axis=-1, keepdims=True)
        if spatial:
            # [B, C, 1] -> [B, 1, 1, C]
            kth = tf.transpose(kth, [0, 2, 1])[:, :, None, :]
        mask = x >= kth
        # Ties at a non-zero k-th value would keep more than k non-zeros.
        counts = tf.math.count_nonzero(tf.where(mask, x, tf.zeros_like(x)),
                                       axis=[1, 2] if spatial else -1)
        mask = tf.cond(tf.reduce_any(counts > k),
                       lambda: self._exact_mask(x, k, spatial),
                       lambda: mask)
        return tf.cast(mask, inputs.dtype)

    def _use_kernel(self, x) -> bool:
        if self.implementation == "tf":
            return False
        if self.implementation == "kernel":
            if not kernels.available():
                raise RuntimeError(f"TopKSparsity(implementation='kernel'): {kernels.unavailable_reason()}")
            if x.dtype != tf.float32:
                raise ValueError(f"TopKSparsity(implementation='kernel') selects in float32, got {x.dtype.name}; "
                                 "use implementation='auto' or 'tf' for float64")
            return True
        return (x.dtype == tf.float32 and kernels.available() and not _in_xla_context()
                and not tf.config.list_logical_devices("GPU") and not tf.config.list_logical_devices("TPU"))

    @staticmethod
    def _exact_mask(x, k, spatial):
        shape = tf.shape(x)
        if spatial:
            # [B, H, W, C] -> [B*C, H*W]
            rows = tf.reshape(tf.transpose(x, [0, 3, 1, 2]), [-1, shape[1] * shape[2]])
        else:
            rows = tf.reshape(x, [-1, shape[-1]])
        idx = tf.math.top_k(rows, k=k, sorted=False).indices
        row_ids = tf.broadcast_to(tf.range(tf.shape(rows)[0])[:, None], tf.shape(idx))
        flat = tf.scatter_nd(tf.stack([row_ids, idx], axis=-1), tf.ones(tf.shape(idx), tf.bool),
                             tf.shape(rows))
        if spatial:
            # [B*C, H*W] -> [B, H, W, C]
            return tf.transpose(tf.reshape(flat, [shape[0], shape[3], shape[1], shape[2]]), [0, 2, 3, 1])
        return tf.reshape(flat, shape)

    def call(self, inputs):
        return inputs * tf.stop_gradient(self.mask(inputs))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"k": self.k, "axis": self.axis, "implementation": self.implementation})
        return config


def _in_xla_context() -> bool:
    """Whether the op being built will be compiled by XLA (`jit_compile=True`), which has no TopKMask."""
    try:
        from tensorflow.python.framework import ops
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # private modules moved: assume XLA, TensorFlow's top_k works everywhere
        return True
    return bool(control_flow_util.GraphOrParentsInXlaContext(ops.get_default_graph()))


@contextlib.contextmanager
def standard_ops(model):
    """Within the block every `TopKSparsity` of `model` uses `tf.math.top_k`, e.g. to trace a SavedModel
    that must load without tf_sparse_gen's compiled kernels."""
    layers = [layer for layer in model._flatten_layers(include_self=True, recursive=True)
              if isinstance(layer, TopKSparsity)]
    previous = [layer.implementation for layer in layers]
    for layer in layers:
        layer.implementation = "tf"
    try:
        yield
    finally:
        for layer, implementation in zip(layers, previous):
            layer.implementation = implementation


@keras.saving.register_keras_serializable(package="tf_sparse_gen")
class SphereProjection(keras.layers.Layer):
    """Projects each code onto a sphere: z <- c + r * (z - c) / ||z - c||.

    SelfExGAN (Liu 2018, section 4.1.1, eqs. 4.1-4.4) projects the encoder's
    outputs onto a sphere so that E cannot crowd the training data into one
    region of the latent space: shift to the sphere's centre (4.1), take the
    length (4.2), rescale to the radius (4.3), shift back (4.4). The norm is
    sqrt(sum (z - c)^2 + epsilon), so the output and its gradient are finite at
    z = c. Computed in float32, returned in the input dtype.

    Args:
        radius: the sphere's radius r > 0. `None` uses sqrt(d) for d-dimensional
            codes, the typical norm of a sample of N(0, I_d).
        center: the centre c, a scalar broadcast to every dimension.
        epsilon: added to the squared norm before the square root.

    Call arguments:
        inputs: a `[B, d]` tensor of codes. Returns `[B, d]` codes with
            ||output - c|| = r.

    References:
        Liu. Latent Space Understandable Generative Adversarial Network:
        SelfExGAN. Thesis, 2018, section 4.1.1.
    """

    def __init__(self, radius: float = None, center: float = 0.0, epsilon: float = 1e-12, **kwargs):
        super().__init__(**kwargs)
        if radius is not None and (isinstance(radius, bool) or not radius > 0):
            raise ValueError(f"SphereProjection radius must be > 0 (or None for sqrt(d)), got {radius!r}")
        self.radius = None if radius is None else float(radius)
        self.center = float(center)
        self.epsilon = float(epsilon)

    def resolved_radius(self, dim: int) -> float:
        """The radius used for `dim`-dimensional codes."""
        return self.radius if self.radius is not None else float(dim) ** 0.5

    def call(self, inputs):
        if inputs.shape.rank != 2:
            raise ValueError(f"SphereProjection expects [B, d] codes, got shape {inputs.shape}")
        z = tf.cast(inputs, tf.float32) - self.center
        norm = tf.sqrt(tf.reduce_sum(tf.square(z), axis=-1, keepdims=True) + self.epsilon)
        out = self.center + self.resolved_radius(int(inputs.shape[-1])) * z / norm
        return tf.cast(out, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"radius": self.radius, "center": self.center, "epsilon": self.epsilon})
        return config


@keras.saving.register_keras_serializable(package="tf_sparse_gen")
class SoftThreshold(keras.layers.Layer):
    """Soft thresholding S_lambda(a) = sign(a) * max(|a| - lambda, 0), elementwise.

    The shrinkage operator of Donoho (1995) that the Sparse GAN applies to each
    depth vector of A(z) to obtain a sparse code per patch (Mahdizadehaghdam et
    al. 2019, section 4.1). Entries with |a| <= lambda become exact zeros
    (`max` of a ReLU, not a small number); the others are shrunk towards zero by
    lambda. The gradient is 1 where |a| > lambda and 0 elsewhere.

    Args:
        threshold: lambda >= 0 (the initial value when learned).
        learnable: if True, lambda is a trainable scalar weight, trained by
            the losses of the network it sits in. It is used as max(lambda, 0),
            so it cannot turn negative; nothing else keeps it from shrinking
            towards 0 (the paper fixes lambda and adds no sparsity penalty).

    Call arguments:
        inputs: a tensor of any shape. Returns a tensor of the same shape and dtype.

    References:
        Mahdizadehaghdam, Panahi, Krim. Sparse Generative Adversarial Network.
        ICCV Workshops 2019. Donoho. De-noising by soft-thresholding. IEEE
        Trans. Information Theory 41(3), 1995.
    """

    def __init__(self, threshold: float = 0.1, learnable: bool = False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or threshold < 0:
            raise ValueError(f"SoftThreshold threshold must be a number >= 0, got {threshold!r}")
        self.threshold = float(threshold)
        self.learnable = bool(learnable)
        self.lam = self.add_weight(shape=(), initializer=keras.initializers.Constant(self.threshold),
                                   trainable=self.learnable, name="threshold", dtype="float32")

    def current_threshold(self):
        """The lambda in use, max(lambda, 0), as a float32 scalar tensor."""
        return tf.maximum(tf.convert_to_tensor(self.lam), 0.0)

    def call(self, inputs):
        lam = tf.cast(self.current_threshold(), inputs.dtype)
        return tf.sign(inputs) * tf.nn.relu(tf.abs(inputs) - lam)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"threshold": self.threshold, "learnable": self.learnable})
        return config


@keras.saving.register_keras_serializable(package="tf_sparse_gen")
class PatchDictionaryDecoder(keras.layers.Layer):
    """Assembles an image from one sparse code per patch position and a fixed patch dictionary.

    At every position (i, j) of the `[H, W]` grid of codes the patch
    `Omega s_ij` (p x p x C, centred on pixel (i, j)) is formed, and
    overlapping patches are averaged: pixel (y, x) is the mean of the patch
    values of every patch covering it (9 in the interior for p = 3, 6 on an
    edge, 4 in a corner; parts of border patches that fall outside the image
    are dropped). The sum of patches is one stride-1 transposed convolution
    with the dictionary as its kernel ("SAME" padding); the average divides
    by the overlap count, the same transposed convolution of ones. The output
    is linear in the codes (the activation, if any, is the caller's).

    The dictionary is a non-trainable weight `[K, p * p * C]` (one unit-norm
    atom per row, vectorised in (row, column, channel) order, as
    `tf_sparse_gen.dictionary` produces): it is part of checkpoints and of a
    SavedModel, and is set with `set_dictionary`. Computed in float32.

    Args:
        num_atoms: K.
        patch_size: p (odd, so that a patch has a centre pixel).
        channels: C of the image.
        initial_atoms: optional `[K, p * p * C]` array; default random unit-norm
            atoms (seed 0) until `set_dictionary` is called.

    Call arguments:
        inputs: codes `[B, H, W, K]`. Returns images `[B, H, W, C]` (float32).

    References:
        Mahdizadehaghdam, Panahi, Krim. Sparse Generative Adversarial Network.
        ICCV Workshops 2019, section 4.1 and Fig. 1.
    """

    def __init__(self, num_atoms: int, patch_size: int = 3, channels: int = 1, initial_atoms=None, **kwargs):
        # float32 whatever the global mixed-precision policy: the atoms and the average stay exact.
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if num_atoms < 1 or patch_size < 1 or patch_size % 2 == 0 or channels < 1:
            raise ValueError(f"PatchDictionaryDecoder needs num_atoms >= 1, an odd patch_size and channels >= 1; "
                             f"got num_atoms={num_atoms}, patch_size={patch_size}, channels={channels}")
        self.num_atoms = int(num_atoms)
        self.patch_size = int(patch_size)
        self.channels = int(channels)
        dim = self.patch_size * self.patch_size * self.channels
        if initial_atoms is None:
            init = tf.random.stateless_normal([self.num_atoms, dim], seed=[0, 0])
            init = init / tf.norm(init, axis=1, keepdims=True)
        else:
            init = tf.convert_to_tensor(initial_atoms, tf.float32)
        self.dictionary = self.add_weight(shape=(self.num_atoms, dim), initializer=lambda *a, **k: init,
                                          trainable=False, name="dictionary", dtype="float32")

    def set_dictionary(self, atoms) -> None:
        """Replaces the atoms (`[K, p * p * C]`)."""
        atoms = tf.convert_to_tensor(atoms, tf.float32)
        if tuple(atoms.shape) != tuple(self.dictionary.shape):
            raise ValueError(f"dictionary shape {tuple(atoms.shape)} != expected {tuple(self.dictionary.shape)}")
        self.dictionary.assign(atoms)

    def kernel(self):
        """The transposed-convolution filter `[p, p, C, K]` holding the atoms."""
        p = self.patch_size
        # [K, p*p*C] -> [K, p, p, C] -> [p, p, C, K]
        atoms = tf.reshape(tf.convert_to_tensor(self.dictionary), [self.num_atoms, p, p, self.channels])
        return tf.transpose(atoms, [1, 2, 3, 0])

    def overlap_count(self, height, width):
        """`[1, H, W, 1]` number of patches covering each pixel."""
        p = self.patch_size
        ones = tf.ones([1, height, width, 1], tf.float32)
        return tf.nn.conv2d_transpose(ones, tf.ones([p, p, 1, 1], tf.float32), [1, height, width, 1],
                                      strides=1, padding="SAME")

    def call(self, inputs):
        codes = tf.cast(inputs, tf.float32)
        shape = tf.shape(codes)
        batch, height, width = shape[0], shape[1], shape[2]
        # Sum of patches: pixel (i + a - c, j + b - c) += sum_k code[i, j, k] * atom_k[a, b], c = p // 2.
        summed = tf.nn.conv2d_transpose(codes, self.kernel(), tf.stack([batch, height, width, self.channels]),
                                        strides=1, padding="SAME")
        return summed / self.overlap_count(height, width)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.channels)

    def get_config(self):
        config = super().get_config()
        config.update({"num_atoms": self.num_atoms, "patch_size": self.patch_size, "channels": self.channels})
        return config

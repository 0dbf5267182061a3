"""Layers shared by the model families."""

from __future__ import annotations

from typing import Union

import keras
import tensorflow as tf


def resolve_k(k: Union[int, float], n: int) -> int:
    """Number of entries kept out of `n`: an int k as is, a fraction k in (0, 1) as round(k * n) (>= 1)."""
    if isinstance(k, bool):
        raise ValueError(f"k must be a number, got {k!r}")
    if isinstance(k, float) and not k.is_integer():
        if not 0.0 < k < 1.0:
            raise ValueError(f"a fractional k must lie in (0, 1), got {k}")
        return max(1, int(round(k * n)))
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be >= 1 (or a fraction in (0, 1)), got {k}")
    if k > n:
        raise ValueError(f"k={k} is larger than the {n} entries it selects from; use k <= {n} or a fraction")
    return k


@keras.saving.register_keras_serializable(package="tf_sparse_gen")
class TopKSparsity(keras.layers.Layer):
    """The sparsity-inducing function S(.; k) of Xing et al. (CVPR 2020, eq. 6).

    Keeps the k largest values along the reduced axis and sets all others to
    zero. Kept values pass unchanged; the gradient is 1 on kept entries and 0
    elsewhere. The selection costs one `tf.math.top_k` over the reduced axis
    (only the k-th value is needed: a threshold, no full sort); ties at the
    k-th value that would keep more than k non-zeros fall back to an exact
    selection by index.

    Args:
        k: an int >= 1 (entries kept), or a float in (0, 1): that fraction of
            the reduced size (0.25 of an 8x8 map keeps 16).
        axis: for NHWC inputs, `"channels"` keeps the top k of C at each
            position (the paper's first layer: an OR choice among channels per
            part position); `"spatial"` keeps the top k of H*W in each channel
            (the later layers). Rank-2 inputs always reduce the last axis.

    Call arguments:
        inputs: a `[B, N]` or `[B, H, W, C]` tensor.

    References:
        Xing, Wu, Zhu, Wu. Inducing Hierarchical Compositional Model by
        Sparsifying Generator Network. CVPR 2020.
    """

    def __init__(self, k: Union[int, float], axis: str = "channels", **kwargs):
        super().__init__(**kwargs)
        if axis not in ("channels", "spatial"):
            raise ValueError(f"TopKSparsity axis must be 'channels' or 'spatial', got {axis!r}")
        if isinstance(k, bool) or not isinstance(k, (int, float)) or k <= 0:
            raise ValueError(f"TopKSparsity k must be an int >= 1 or a fraction in (0, 1), got {k!r}")
        if isinstance(k, float) and not k.is_integer() and k >= 1:
            raise ValueError(f"TopKSparsity fractional k must lie in (0, 1), got {k}")
        self.k = k
        self.axis = axis
        self.supports_masking = False

    def kept_count(self, shape) -> int:
        """k as a count, for an input of static `shape`."""
        if len(shape) == 4 and self.axis == "spatial":
            return resolve_k(self.k, int(shape[1]) * int(shape[2]))
        return resolve_k(self.k, int(shape[-1]))

    def mask(self, inputs):
        """The 0/1 selection mask of `inputs`, in the dtype of `inputs`."""
        rank = inputs.shape.rank
        if rank not in (2, 4):
            raise ValueError(f"TopKSparsity expects a rank-2 or rank-4 (NHWC) input, got shape {inputs.shape}")
        k = self.kept_count(inputs.shape)
        x = inputs if inputs.dtype in (tf.float32, tf.float64) else tf.cast(inputs, tf.float32)
        spatial = rank == 4 and self.axis == "spatial"
        if spatial:
            shape = tf.shape(x)
            # [B, H, W, C] -> [B, C, H*W]
            rows = tf.reshape(tf.transpose(x, [0, 3, 1, 2]), [shape[0], shape[3], shape[1] * shape[2]])
        else:
            rows = x
        kth = tf.math.top_k(rows, k=k, sorted=True).values[..., -1:]
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
        config.update({"k": self.k, "axis": self.axis})
        return config

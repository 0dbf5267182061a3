"""Networks of the sparse AND-OR model (Xing et al., CVPR 2020, Table 1).

The generator is a chain of *stages*; each stage is an affine map (FC, or
optional x2 upsampling (nearest or bilinear) then a 3x3 conv) followed by a gate: ReLU, and
at the last stage of a block a top-k selection. The output stage is a 3x3 conv
followed by tanh. Because every gate is a 0/1 mask times its input, fixing the
masks recorded for one z makes the network above any stage linear in that
stage's activations (plus a bias part). `SparseGenerator.propagate` runs the
network in that fixed-mask mode with or without biases; it shares `_affine`
with the ordinary forward pass, so basis functions (Appendix A.2) are computed
by exactly the network that generates.
"""

from __future__ import annotations

import functools
from typing import List, Optional, Sequence

import keras
import tensorflow as tf

from tf_sparse_gen.layers import TopKSparsity
from tf_sparse_gen.netutils import track_layers


UPSAMPLING = ("nearest", "bilinear")


class SparseGenerator(keras.Model):
    """Sparse AND-OR generator g(Z; Theta, k).

    Args:
        z_dim: latent size d.
        base_size: side of the first (part) grid, e.g. 4.
        fc_channels: channels of the FC layer reshaped to the grid.
        fc_k: channels kept per position at the grid (0 = no sparsity).
        block_widths: conv width of each upsampling block.
        block_ks: per block, positions kept per channel (0 = no sparsity).
        convs_per_block: 3x3 conv + ReLU layers per block.
        out_channels: image channels.
        sparsity: False builds the same network with no top-k (the dense baseline).
        topk_implementation: `TopKSparsity`'s implementation ("auto", "kernel", "tf").
        upsample: how each block doubles its input, "nearest" (Table 1's generator) or
            "bilinear" (half-pixel centres, edges clamped); both are linear, so the
            fixed-mask identities of the interpretation code hold for either.

    Call arguments:
        z: `[B, z_dim]` latents. Returns images `[B, S, S, out_channels]` in [-1, 1].
    """

    def __init__(self, z_dim: int, base_size: int, fc_channels: int, fc_k, block_widths: Sequence[int],
                 block_ks: Sequence, convs_per_block: int, out_channels: int, sparsity: bool = True,
                 topk_implementation: str = "auto", upsample: str = "nearest", **kwargs):
        super().__init__(**kwargs)
        if upsample not in UPSAMPLING:
            raise ValueError(f"upsample must be one of {UPSAMPLING}, got {upsample!r}")
        self.z_dim = z_dim
        self.upsample = upsample
        self.base_size = base_size
        self.fc_channels = fc_channels
        self.out_channels = out_channels
        self.fc = keras.layers.Dense(base_size * base_size * fc_channels, name="fc")
        # One entry per stage: the weight-holding layer, whether it upsamples first,
        # its top-k (or None), and the resolution of its output.
        self.stage_layers: List[keras.layers.Layer] = [self.fc]
        self.stage_upsample: List[bool] = [False]
        topk = functools.partial(TopKSparsity, implementation=topk_implementation)
        self.stage_topk: List[Optional[TopKSparsity]] = [
            topk(fc_k, axis="channels", name="topk_fc") if sparsity and fc_k else None]
        self.stage_size: List[int] = [base_size]
        # Index of the stages whose outputs are the sparse layers (block outputs), and each
        # layer's configured k (also kept with sparsity off: the dense baseline's same layers).
        self.layer_stages: List[int] = [0]
        self.layer_ks: List = [fc_k, *block_ks]
        size = base_size
        for b, (width, k) in enumerate(zip(block_widths, block_ks)):
            size *= 2
            for j in range(convs_per_block):
                self.stage_layers.append(keras.layers.Conv2D(width, 3, padding="same", name=f"block{b}_conv{j}"))
                self.stage_upsample.append(j == 0)
                last = j == convs_per_block - 1
                self.stage_topk.append(
                    topk(k, axis="spatial", name=f"topk_block{b}") if last and sparsity and k else None)
                self.stage_size.append(size)
            self.layer_stages.append(len(self.stage_layers) - 1)
        self.out_conv = keras.layers.Conv2D(out_channels, 3, padding="same", name="out_conv")
        track_layers(self, self.stage_layers)
        self.image_size = size
        self._build_weights(block_widths)

    def _build_weights(self, block_widths):
        self.fc.build((None, self.z_dim))
        channels = self.fc_channels
        for layer in self.stage_layers[1:]:
            layer.build((None, None, None, channels))
            channels = layer.filters
        self.out_conv.build((None, None, None, channels))
        self.built = True

    # ------------------------------------------------------------------ structure
    @property
    def layer_names(self) -> List[str]:
        """Names of the sparse layers (outputs of the FC grid and of each block)."""
        return [("fc" if s == 0 else f"block{i - 1}") + f"_{self.stage_size[s]}x{self.stage_size[s]}"
                for i, s in enumerate(self.layer_stages)]

    def layer_sparse(self, i: int) -> bool:
        return self.stage_topk[self.layer_stages[i]] is not None

    # ------------------------------------------------------------------ math
    def _affine(self, s: int, h, bias: bool = True):
        """Stage s's affine map; `s == len(stages)` is the output conv."""
        layer = self.stage_layers[s] if s < len(self.stage_layers) else self.out_conv
        if layer is self.out_conv:
            h = tf.cast(h, tf.float32)  # the output layer runs in float32 under mixed precision
        kernel = tf.cast(layer.kernel, h.dtype)
        if s == 0:
            a = tf.matmul(h, kernel)
            if bias:
                a = a + tf.cast(layer.bias, h.dtype)
            # [B, S*S*C] -> [B, S, S, C]
            return tf.reshape(a, [-1, self.base_size, self.base_size, self.fc_channels])
        if s < len(self.stage_layers) and self.stage_upsample[s]:
            h = self._double(h)
        a = tf.nn.conv2d(h, kernel, strides=1, padding="SAME")
        if bias:
            a = a + tf.cast(layer.bias, h.dtype)
        return a

    def _double(self, h):
        """[B, H, W, C] -> [B, 2H, 2W, C] by `self.upsample`."""
        if self.upsample == "nearest":
            return tf.repeat(tf.repeat(h, 2, axis=1), 2, axis=2)
        return tf.cast(tf.image.resize(h, 2 * tf.shape(h)[1:3], method="bilinear"), h.dtype)

    @property
    def upsample_spread(self) -> int:
        """How far (in input pixels) one input pixel reaches through `_double`: 0 nearest, 1 bilinear."""
        return 0 if self.upsample == "nearest" else 1

    def _gate(self, s: int, a):
        """ReLU then top-k of stage s; returns (output, 0/1 gate of the stage)."""
        r = tf.nn.relu(a)
        topk = self.stage_topk[s]
        if topk is None:
            return r, tf.cast(a > 0, a.dtype)
        mask = tf.stop_gradient(topk.mask(r))
        return r * mask, tf.cast(a > 0, a.dtype) * mask

    def forward(self, z, record: bool = False):
        """Returns (images, pre-tanh output fm, per-stage activations, per-stage gates).

        Activations and gates are only collected when `record` is True.
        """
        h = tf.cast(z, self.compute_dtype)
        acts, gates = [], []
        for s in range(len(self.stage_layers)):
            h, g = self._gate(s, self._affine(s, h))
            if record:
                acts.append(h)
                gates.append(g)
        fm = self._affine(len(self.stage_layers), h)
        return tf.tanh(fm), fm, acts, gates

    def call(self, z):
        return self.forward(z)[0]

    def stage_activations(self, z) -> List[tf.Tensor]:
        """Activations of the sparse layers (the outputs of `layer_stages`)."""
        _, _, acts, _ = self.forward(z, record=True)
        return [acts[s] for s in self.layer_stages]

    def propagate(self, h, start: int, gates: Sequence[tf.Tensor], bias: bool = True):
        """Pre-tanh output fm for activations `h` at stage `start`, gates held fixed.

        With `bias=False` this is the linear map psi of Appendix A.2; `gates`
        (from `forward(..., record=True)`) broadcast over h's batch.
        """
        for s in range(start + 1, len(self.stage_layers)):
            h = self._affine(s, h, bias) * gates[s]
        return self._affine(len(self.stage_layers), h, bias)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.image_size, self.image_size, self.out_channels)


class EnergyCritic(keras.Model):
    """Energy-based critic f(Y; Phi): a score, high for observed images.

    Args:
        stem: width of the first 3x3 conv + LReLU.
        widths: per block, the width of an average pool followed by two
            3x3 conv + LReLU layers.
        spectral_norm: wrap every conv and the FC layer in spectral normalisation.

    Call arguments:
        images: `[B, S, S, C]` in [-1, 1]. Returns scores `[B]` (float32).
    """

    def __init__(self, stem: int, widths: Sequence[int], spectral_norm: bool = False, **kwargs):
        super().__init__(**kwargs)

        def wrap(layer):
            return keras.layers.SpectralNormalization(layer, name=f"{layer.name}_sn") if spectral_norm else layer

        self.body = [wrap(keras.layers.Conv2D(stem, 3, padding="same", name="stem"))]
        for b, width in enumerate(widths):
            self.body.append(keras.layers.AveragePooling2D(2, name=f"pool{b}"))
            for j in range(2):
                self.body.append(wrap(keras.layers.Conv2D(width, 3, padding="same", name=f"block{b}_conv{j}")))
        track_layers(self, self.body)
        self.flatten = keras.layers.Flatten()
        self.head = wrap(keras.layers.Dense(1, dtype="float32", name="score"))

    def call(self, images, training=False):
        h = images
        for layer in self.body:
            h = layer(h, training=training) if isinstance(layer, keras.layers.SpectralNormalization) else layer(h)
            if not isinstance(layer, keras.layers.AveragePooling2D):
                h = tf.nn.leaky_relu(h, alpha=0.2)
        # [B, h, w, C] -> [B, h*w*C] -> [B, 1] -> [B]
        return tf.squeeze(self.head(self.flatten(h)), axis=-1)

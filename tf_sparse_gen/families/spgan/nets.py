"""Networks of the Sparse GAN (Mahdizadehaghdam, Panahi, Krim 2019): G, critic D, encoder E.

Plain Keras models; the training algorithm is in `tf_sparse_gen.models.spgan`.

Generator (section 4.1, Fig. 1): z -> FC -> [4, 4, base] -> a body that
doubles the resolution up to the image size -> A(z) `[H, W, K]`, one K-vector
per patch position -> soft thresholding S_lambda -> sparse codes -> each code
times the fixed dictionary Omega gives a p x p x C patch centred on its
position -> overlapping patches averaged (`PatchDictionaryDecoder`) -> output
activation.

- `body="dcgan"`: stride-2 transposed convs (kernel 4) + BN + ReLU, the last one
  (to K channels, no BN) producing A(z): the paper's "fractionally-strided
  convolutions", e.g. 4x4x1024 -> 8x8x512 -> 16x16 -> 32x32x100.
- `body="resnet"`: residual up-blocks (BN, ReLU, nearest x2, 3x3 conv, BN,
  ReLU, 3x3 conv; 1x1-conv shortcut), then BN, ReLU, 3x3 conv to K channels
  (the WGAN-GP "ResNet" generator layout, Gulrajani et al. 2017).
- `sparse_output=False` keeps the same body and ends with the same last layer
  to C channels + tanh instead of K codes: the plain WGAN-GP generator, the
  paper's baseline.

Output activation of the sparse generator (`output="tanh"` default, or
`"clip"`): the paper assembles the image linearly from the patches and says
nothing about the range. Our images live in [-1, 1], so the assembled image
goes through tanh (smooth, trains like a DCGAN's last layer; the pre-tanh image
is exactly the averaged dictionary patches) or a hard clip to [-1, 1]
(the image *is* the averaged patches wherever they lie in range, but pixels
outside get no gradient).

Critic: 5x5 stride-2 convs + LeakyReLU(0.2), optionally layer normalisation
(never batch norm: the gradient penalty is per example), then FC(1).
Encoder: a small ResNet: 3x3 stem, one residual block per width (stride 2,
no normalisation), flatten, FC(z_dim). The paper uses a ResNet-50; this is
the same kind of network at CPU size.
"""

from __future__ import annotations

import math
from typing import Sequence, Tuple

import keras
import tensorflow as tf

from tf_sparse_gen.layers import PatchDictionaryDecoder, SoftThreshold
from tf_sparse_gen.netutils import batch_norm, track_layers


def generator_widths(image_size: int, base_channels: int, widths: Sequence[int] = ()) -> Tuple[int, ...]:
    """Channels of the hidden feature maps after the FC layer, one per doubling but the last.

    The generator makes `image_size = 4 * 2^n` images with n doublings; the
    first n - 1 doublings have these widths (default: `base_channels` halved at
    each doubling, at least 8); the last one produces the K codes (or C pixels).
    """
    n = num_doublings(image_size)
    if widths:
        if len(widths) != n - 1:
            raise ValueError(f"{image_size}px images need {n - 1} generator widths (4 doubled {n} times), "
                             f"got {len(widths)}: {tuple(widths)}")
        return tuple(int(w) for w in widths)
    return tuple(max(8, base_channels // 2 ** (i + 1)) for i in range(n - 1))


def num_doublings(image_size: int) -> int:
    n = int(round(math.log2(image_size / 4))) if image_size >= 8 else 0
    if n < 1 or 4 * 2 ** n != image_size:
        raise ValueError(f"the Sparse GAN generator makes 4 * 2^n pixel images (8, 16, 32, 64, ...), "
                         f"not {image_size}")
    return n


class _ResUpBlock(keras.layers.Layer):
    """Residual up-sampling block of the ResNet generator.

    BN, ReLU, nearest x2, conv3x3, BN, ReLU, conv3x3; shortcut nearest x2 + conv1x1.

    Args:
        width: output channels of both convolutions and of the shortcut.
        bn_momentum: momentum of the two BatchNormalization layers.

    Call arguments:
        x: `[B, H, W, C]`; returns `[B, 2H, 2W, width]`.
        training: whether BatchNormalization uses (and updates) batch statistics.

    References:
        Gulrajani et al., "Improved Training of Wasserstein GANs", NeurIPS 2017 (the
        ResNet generator of its CIFAR-10 experiments).
    """

    def __init__(self, width: int, bn_momentum: float, **kwargs):
        super().__init__(**kwargs)
        self.width, self.bn_momentum = width, bn_momentum
        self.bn1 = batch_norm(momentum=bn_momentum, name="bn1")
        self.up = keras.layers.UpSampling2D(2, interpolation="nearest")
        self.conv1 = keras.layers.Conv2D(width, 3, padding="same", name="conv1")
        self.bn2 = batch_norm(momentum=bn_momentum, name="bn2")
        self.conv2 = keras.layers.Conv2D(width, 3, padding="same", name="conv2")
        self.shortcut = keras.layers.Conv2D(width, 1, name="shortcut")

    def build(self, input_shape):
        c = input_shape[-1]
        self.bn1.build(input_shape)
        self.conv1.build((None, None, None, c))
        self.bn2.build((None, None, None, self.conv1.filters))
        self.conv2.build((None, None, None, self.conv1.filters))
        self.shortcut.build((None, None, None, c))

    def call(self, x, training=False):
        h = self.conv1(self.up(tf.nn.relu(self.bn1(x, training=training))))  # [B, 2H, 2W, width]
        h = self.conv2(tf.nn.relu(self.bn2(h, training=training)))
        return h + self.shortcut(self.up(x))

    def get_config(self):
        return {**super().get_config(), "width": self.width, "bn_momentum": self.bn_momentum}


class _ResDownBlock(keras.layers.Layer):
    """Residual down-sampling block of the ResNet critic.

    ReLU, conv3x3, ReLU, conv3x3 (stride 2); shortcut conv1x1 (stride 2). No
    normalisation (the gradient penalty is per sample).

    Args:
        width: output channels of both convolutions and of the shortcut.

    Call arguments:
        x: `[B, H, W, C]`; returns `[B, ceil(H / 2), ceil(W / 2), width]`.

    References:
        Gulrajani et al., "Improved Training of Wasserstein GANs", NeurIPS 2017 (the
        ResNet critic of its CIFAR-10 experiments).
    """

    def __init__(self, width: int, **kwargs):
        super().__init__(**kwargs)
        self.width = width
        self.conv1 = keras.layers.Conv2D(width, 3, padding="same", name="conv1")
        self.conv2 = keras.layers.Conv2D(width, 3, strides=2, padding="same", name="conv2")
        self.shortcut = keras.layers.Conv2D(width, 1, strides=2, name="shortcut")

    def build(self, input_shape):
        c = input_shape[-1]
        self.conv1.build((None, None, None, c))
        self.conv2.build((None, None, None, self.conv1.filters))
        self.shortcut.build((None, None, None, c))

    def call(self, x):
        h = self.conv2(tf.nn.relu(self.conv1(tf.nn.relu(x))))  # [B, H / 2, W / 2, width]
        return h + self.shortcut(x)

    def get_config(self):
        return {**super().get_config(), "width": self.width}


class SparsePatchGenerator(keras.Model):
    """G(z): sparse codes per patch position times a fixed dictionary (or the dense baseline).

    Args:
        z_dim: latent size.
        image_size: side of the images (4 * 2^n).
        channels: C.
        base_channels: channels of the 4x4 map after the FC layer.
        widths: hidden widths (see `generator_widths`; empty = halving).
        body: "dcgan" or "resnet".
        sparse_output: True = sparse codes + dictionary; False = C channels + tanh.
        num_atoms, patch_size: K and p of the dictionary.
        threshold, learn_threshold: lambda of S_lambda, and whether it is trained.
        output: "tanh" or "clip" for the sparse output (see the module docstring).
        bn_momentum: momentum of the batch-norm moving statistics.

    Call arguments:
        z: `[B, z_dim]`. Returns images `[B, S, S, C]` in [-1, 1] (float32).
    """

    def __init__(self, z_dim: int, image_size: int, channels: int, base_channels: int,
                 widths: Sequence[int] = (), body: str = "dcgan", sparse_output: bool = True,
                 num_atoms: int = 100, patch_size: int = 3, threshold: float = 0.1,
                 learn_threshold: bool = False, output: str = "tanh", bn_momentum: float = 0.9, **kwargs):
        super().__init__(**kwargs)
        if body not in ("dcgan", "resnet"):
            raise ValueError(f"generator body must be 'dcgan' or 'resnet', got {body!r}")
        if output not in ("tanh", "clip"):
            raise ValueError(f"generator output must be 'tanh' or 'clip', got {output!r}")
        self.z_dim = z_dim
        self.image_size = image_size
        self.channels = channels
        self.base_channels = base_channels
        self.body = body
        self.sparse_output = sparse_output
        self.output_activation = output
        self.widths = generator_widths(image_size, base_channels, widths)
        head_channels = num_atoms if sparse_output else channels
        self.fc = keras.layers.Dense(4 * 4 * base_channels, name="fc")
        self.fc_bn = batch_norm(momentum=bn_momentum, name="fc_bn")
        self.blocks = []
        if body == "dcgan":
            # Hidden deconvs (each x2), then the last deconv (x2) to the head channels.
            for i, w in enumerate(self.widths):
                self.blocks.append(keras.layers.Conv2DTranspose(w, 4, strides=2, padding="same", use_bias=False,
                                                                name=f"deconv{i}"))
                self.blocks.append(batch_norm(momentum=bn_momentum, name=f"deconv{i}_bn"))
            self.head = keras.layers.Conv2DTranspose(head_channels, 4, strides=2, padding="same", name="head")
            self.head_bn = None
        else:
            # One residual up-block per doubling, then BN, ReLU, 3x3 conv to the head channels.
            for i, w in enumerate(self.widths + (self.widths[-1] if self.widths else base_channels,)):
                self.blocks.append(_ResUpBlock(w, bn_momentum, name=f"block{i}"))
            self.head_bn = batch_norm(momentum=bn_momentum, name="head_bn")
            self.head = keras.layers.Conv2D(head_channels, 3, padding="same", name="head")
        track_layers(self, self.blocks, prefix="layer_")
        if sparse_output:
            # Codes, atoms and the assembled image in float32 under any mixed-precision policy.
            self.soft_threshold = SoftThreshold(threshold, learnable=learn_threshold, name="soft_threshold",
                                                dtype="float32")
            self.decoder = PatchDictionaryDecoder(num_atoms, patch_size, channels, name="patch_decoder")
        else:
            self.soft_threshold = None
            self.decoder = None
        self(tf.zeros([1, z_dim]))  # creates every variable

    @property
    def dictionary(self):
        """The dictionary variable `[K, p * p * C]` (None for the dense baseline)."""
        return None if self.decoder is None else self.decoder.dictionary

    def features(self, z, training=False):
        """The last layer's output before thresholding: A(z) `[B, S, S, K]` (or pre-tanh pixels)."""
        h = tf.nn.relu(self.fc_bn(self.fc(z), training=training))
        # [B, 16 * base] -> [B, 4, 4, base]
        h = tf.reshape(h, [-1, 4, 4, self.base_channels])
        if self.body == "dcgan":
            for i in range(0, len(self.blocks), 2):
                h = tf.nn.relu(self.blocks[i + 1](self.blocks[i](h), training=training))
            return self.head(h)
        for block in self.blocks:
            h = block(h, training=training)
        return self.head(tf.nn.relu(self.head_bn(h, training=training)))

    def codes(self, z, training=False):
        """Sparse codes S_lambda(A(z)) `[B, S, S, K]` (sparse generator only)."""
        if not self.sparse_output:
            raise ValueError("the dense (sparse_output=False) generator has no sparse codes")
        return self.soft_threshold(tf.cast(self.features(z, training=training), tf.float32))

    def decode(self, codes):
        """Images from sparse codes: averaged dictionary patches, then the output activation."""
        x = self.decoder(codes)
        return tf.tanh(x) if self.output_activation == "tanh" else tf.clip_by_value(x, -1.0, 1.0)

    def forward(self, z, training=False):
        """(images, codes or None)."""
        if not self.sparse_output:
            return tf.tanh(tf.cast(self.features(z, training=training), tf.float32)), None
        codes = self.codes(z, training=training)
        return self.decode(codes), codes

    def call(self, z, training=False):
        return self.forward(z, training=training)[0]


class Critic(keras.Model):
    """D(x): per width a 5x5 stride-2 conv (+ layer norm) + LeakyReLU(0.2), flatten, FC(1).

    Args:
        widths: channels of each conv (each halves the size).
        norm: "none" or "layer" (layer normalisation over H, W, C of each example).

    Call arguments:
        images: `[B, H, W, C]`. Returns scores `[B, 1]` (float32).
    """

    def __init__(self, widths: Sequence[int], norm: str = "none", **kwargs):
        super().__init__(**kwargs)
        if norm not in ("none", "layer"):
            raise ValueError(f"critic norm must be 'none' or 'layer', got {norm!r}")
        self.convs = [keras.layers.Conv2D(w, 5, strides=2, padding="same", name=f"conv{i}")
                      for i, w in enumerate(widths)]
        self.norms = [keras.layers.LayerNormalization(axis=[1, 2, 3], name=f"ln{i}") if norm == "layer" else None
                      for i in range(len(widths))]
        track_layers(self, self.convs, prefix="conv_")
        track_layers(self, [n for n in self.norms if n is not None], prefix="norm_")
        self.flatten = keras.layers.Flatten()
        self.fc = keras.layers.Dense(1, dtype="float32", name="fc")

    def call(self, images, training=False):
        h = images
        for conv, ln in zip(self.convs, self.norms):
            h = conv(h)
            if ln is not None:
                h = ln(h)
            h = tf.nn.leaky_relu(h, 0.2)
        return self.fc(self.flatten(h))


class Encoder(keras.Model):
    """E(x): 3x3 stem conv, one stride-2 residual block per width, ReLU, flatten, FC(z_dim).

    Args:
        z_dim: latent size.
        widths: channels of the residual blocks (each halves the size); the stem has widths[0].

    Call arguments:
        images: `[B, H, W, C]` in [-1, 1]. Returns latents `[B, z_dim]` (float32).
    """

    def __init__(self, z_dim: int, widths: Sequence[int], **kwargs):
        super().__init__(**kwargs)
        self.stem = keras.layers.Conv2D(widths[0], 3, padding="same", name="stem")
        self.blocks = track_layers(self, [_ResDownBlock(w, name=f"block{i}") for i, w in enumerate(widths)],
                                   prefix="block_")
        self.flatten = keras.layers.Flatten()
        self.fc = keras.layers.Dense(z_dim, dtype="float32", name="fc")

    def call(self, images, training=False):
        h = self.stem(images)
        for block in self.blocks:
            h = block(h)
        return self.fc(self.flatten(tf.nn.relu(h)))


def build_networks(hp, image_shape: Tuple[int, int, int]):
    """(generator, critic, encoder or None) for a `SpganConfig`, all variables created."""
    size, _, channels = image_shape
    generator = SparsePatchGenerator(
        z_dim=hp.z_dim, image_size=size, channels=channels, base_channels=hp.base_channels,
        widths=hp.g_widths, body=hp.generator, sparse_output=hp.sparse_output, num_atoms=hp.num_atoms,
        patch_size=hp.patch_size, threshold=hp.threshold, learn_threshold=hp.learn_threshold,
        output=hp.output, name="generator")
    critic = Critic(hp.critic_widths, norm=hp.critic_norm, name="critic")
    critic(tf.zeros([1, *image_shape]))
    encoder = None
    if hp.reconstructor:
        encoder = Encoder(hp.z_dim, hp.encoder_widths, name="encoder")
        encoder(tf.zeros([1, *image_shape]))
    return generator, critic, encoder

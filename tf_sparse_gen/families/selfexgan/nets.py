"""Networks of SelfExGAN (Liu 2018, Tables 4.1-4.7): encoder E, generator G, critics D1 and D2.

Plain Keras models; the training algorithm is in `tf_sparse_gen.models.selfexgan`.
`build_networks(hp, image_shape)` builds all four from a resolved
`SelfExGanConfig` (see `SelfExGanConfig.resolved` for the thesis tables).

Departures from the tables, all stated here:
- The critics end in one logit instead of a sigmoid / two-way softmax; the
  losses apply the sigmoid (`losses.minimax_*`), which is the same model.
- The D1 tables' last conv (to 2x2) has no width; `d_widths` gives it.
- E's sigmoid output s in (0, 1)^d is centred as 2s - 1 (the thesis does not
  say where the sphere's centre is; the centre of the sigmoid's cube, moved to
  the origin) and then projected onto the sphere of radius `sphere_radius`
  (0 = sqrt(d)) around 0, where N(0, I_d) puts its mass, so E's codes and
  G's Gaussian inputs live on the same shell.
- "LeakyReLU" uses slope 0.2.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import keras
import tensorflow as tf

from tf_sparse_gen.layers import SphereProjection
from tf_sparse_gen.netutils import batch_norm, track_layers


def _activation(name: str):
    if name == "relu":
        return keras.layers.ReLU()
    if name == "lrelu":
        return keras.layers.LeakyReLU(negative_slope=0.2)
    raise ValueError(f"unknown activation {name!r}; use 'relu' or 'lrelu'")


class Generator(keras.Model):
    """G(z): FC -> 4x4xbase (BN, ReLU) -> stride-2 deconvs (BN, act) -> stride-2 deconv + tanh.

    Args:
        z_dim: latent size.
        base_channels: channels of the 4x4 map after the FC layer.
        widths: channels of each hidden deconv (each doubles the size).
        kernel, out_kernel: kernel sizes of the hidden and the output deconv.
        activation: "relu" or "lrelu" of the hidden deconvs.
        out_channels: image channels.

    Call arguments:
        z: `[B, z_dim]`. Returns images `[B, S, S, out_channels]` in [-1, 1],
        S = 4 * 2^(len(widths) + 1).
    """

    def __init__(self, z_dim: int, base_channels: int, widths: Sequence[int], kernel: int, out_kernel: int,
                 activation: str, out_channels: int, **kwargs):
        super().__init__(**kwargs)
        self.z_dim = z_dim
        self.base_channels = base_channels
        self.image_size = 4 * 2 ** (len(widths) + 1)
        self.fc = keras.layers.Dense(4 * 4 * base_channels, use_bias=False, name="fc")
        self.fc_bn = batch_norm(name="fc_bn")
        self.fc_act = keras.layers.ReLU()
        # Flat lists of layers (tuples inside lists are not checkpoint dependencies).
        self.deconvs = track_layers(self, [keras.layers.Conv2DTranspose(w, kernel, strides=2, padding="same", use_bias=False,
                                                     name=f"deconv{i}") for i, w in enumerate(widths)])
        self.bns = track_layers(self, [batch_norm(name=f"deconv{i}_bn") for i in range(len(widths))])
        self.acts = [_activation(activation) for _ in widths]
        # float32 under any mixed-precision policy: images leave the generator in float32.
        self.out = keras.layers.Conv2DTranspose(out_channels, out_kernel, strides=2, padding="same",
                                                name="deconv_out", dtype="float32")

    def call(self, z, training=False):
        h = self.fc_act(self.fc_bn(self.fc(z), training=training))
        h = tf.reshape(h, [-1, 4, 4, self.base_channels])  # [B, 16 * C] -> [B, 4, 4, C]
        for conv, bn, act in zip(self.deconvs, self.bns, self.acts):
            h = act(bn(conv(h), training=training))
        return tf.tanh(self.out(h))


class Encoder(keras.Model):
    """E(x): [conv (BN, act) + 2x2 max-pool] per width, flatten, FC + sigmoid, sphere projection.

    Args:
        z_dim: latent size.
        widths: channels of each conv stage (stride 1, "same"), each followed by a 2x2 max-pool.
        kernel: conv kernel size.
        activation: "relu" or "lrelu".
        sphere_radius: radius of the sphere the codes are projected onto (0 = sqrt(z_dim)).

    Call arguments:
        images: `[B, H, W, C]` in [-1, 1]. Returns codes `[B, z_dim]` with
        ||z|| = radius (float32).
    """

    def __init__(self, z_dim: int, widths: Sequence[int], kernel: int, activation: str,
                 sphere_radius: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.z_dim = z_dim
        self.convs = track_layers(self, [keras.layers.Conv2D(w, kernel, padding="same", use_bias=False, name=f"conv{i}")
                      for i, w in enumerate(widths)])
        self.bns = track_layers(self, [batch_norm(name=f"conv{i}_bn") for i in range(len(widths))])
        self.acts = [_activation(activation) for _ in widths]
        self.pool = keras.layers.MaxPooling2D(2, name="pool")
        self.flatten = keras.layers.Flatten()
        self.fc = keras.layers.Dense(z_dim, name="fc")
        self.sphere = SphereProjection(radius=sphere_radius or None, center=0.0, name="sphere")

    def pre_projection(self, images, training=False):
        """The centred sigmoid output 2 * sigmoid(FC(h)) - 1 before the projection."""
        h = images
        for conv, bn, act in zip(self.convs, self.bns, self.acts):
            h = self.pool(act(bn(conv(h), training=training)))
        return 2.0 * tf.sigmoid(tf.cast(self.fc(self.flatten(h)), tf.float32)) - 1.0

    def call(self, images, training=False):
        return self.sphere(self.pre_projection(images, training=training))


class ImageDiscriminator(keras.Model):
    """D1(x): 5x5 stride-2 convs (BN, act), flatten, FC(1). Returns logits `[B, 1]`."""

    def __init__(self, widths: Sequence[int], activation: str, **kwargs):
        super().__init__(**kwargs)
        self.convs = track_layers(self, [keras.layers.Conv2D(w, 5, strides=2, padding="same", use_bias=False, name=f"conv{i}")
                      for i, w in enumerate(widths)])
        self.bns = track_layers(self, [batch_norm(name=f"conv{i}_bn") for i in range(len(widths))])
        self.acts = [_activation(activation) for _ in widths]
        self.flatten = keras.layers.Flatten()
        self.fc = keras.layers.Dense(1, name="logit")

    def call(self, images, training=False):
        h = images
        for conv, bn, act in zip(self.convs, self.bns, self.acts):
            h = act(bn(conv(h), training=training))
        return tf.cast(self.fc(self.flatten(h)), tf.float32)


class PairDiscriminator(keras.Model):
    """D2(x, z): image branch (convs and/or FCs) to features, concat z, joint MLP, FC(1).

    Args:
        x_convs: 5x5 stride-2 conv widths of the image branch (BN, `activation`).
        x_widths: hidden FC widths of the image branch (BN, `activation`).
        x_features: output width of the image branch (FC, `activation`, no BN).
        joint_widths: FC widths after the concat (ReLU; BN on all but the first).
        dropout: rate of the dropout after the first two joint layers (0 = none).
        activation: "relu" or "lrelu" of the image branch.

    Call arguments:
        inputs: a tuple `(images [B, H, W, C], z [B, d])`. Returns logits `[B, 1]`
        (high = real pair).
    """

    def __init__(self, x_convs: Sequence[int], x_widths: Sequence[int], x_features: int,
                 joint_widths: Sequence[int], dropout: float, activation: str, **kwargs):
        super().__init__(**kwargs)
        bn = batch_norm
        self.x_convs = track_layers(self, [
            keras.layers.Conv2D(w, 5, strides=2, padding="same", use_bias=False, name=f"xconv{i}")
            for i, w in enumerate(x_convs)])
        self.x_conv_bns = track_layers(self, [bn(name=f"xconv{i}_bn") for i in range(len(x_convs))])
        self.x_conv_acts = [_activation(activation) for _ in x_convs]
        self.flatten = keras.layers.Flatten()
        self.x_fcs = track_layers(self, [keras.layers.Dense(w, use_bias=False, name=f"xfc{i}")
                                   for i, w in enumerate(x_widths)])
        self.x_fc_bns = track_layers(self, [bn(name=f"xfc{i}_bn") for i in range(len(x_widths))])
        self.x_fc_acts = [_activation(activation) for _ in x_widths]
        self.x_out = keras.layers.Dense(x_features, name="x_features")
        self.x_out_act = _activation(activation)
        # Joint layer i: Dense, then BN for i > 0 (joint_bns[i - 1]), ReLU, dropout for i < 2.
        self.joint_fcs = track_layers(self, [keras.layers.Dense(w, use_bias=i == 0, name=f"joint{i}")
                                       for i, w in enumerate(joint_widths)])
        self.joint_bns = track_layers(self, [bn(name=f"joint{i}_bn") for i in range(1, len(joint_widths))])
        self.joint_act = keras.layers.ReLU()
        self.dropouts = [keras.layers.Dropout(dropout) for _ in joint_widths[:2]] if dropout else []
        self.fc = keras.layers.Dense(1, name="logit")

    def call(self, inputs, training=False):
        images, z = inputs
        h = images
        for conv, bn, act in zip(self.x_convs, self.x_conv_bns, self.x_conv_acts):
            h = act(bn(conv(h), training=training))
        h = self.flatten(h)
        for fc, bn, act in zip(self.x_fcs, self.x_fc_bns, self.x_fc_acts):
            h = act(bn(fc(h), training=training))
        h = self.x_out_act(self.x_out(h))
        h = tf.concat([h, tf.cast(z, h.dtype)], axis=-1)
        for i, fc in enumerate(self.joint_fcs):
            h = fc(h)
            if i > 0:
                h = self.joint_bns[i - 1](h, training=training)
            h = self.joint_act(h)
            if i < len(self.dropouts):
                h = self.dropouts[i](h, training=training)
        return tf.cast(self.fc(h), tf.float32)


def build_networks(hp, image_shape: Tuple[int, int, int]):
    """(E, G, D1, D2 or None) for a resolved `SelfExGanConfig`, with all variables created."""
    size, _, channels = image_shape
    encoder = Encoder(hp.z_dim, hp.e_widths, hp.e_kernel, hp.e_activation, hp.sphere_radius, name="encoder")
    generator = Generator(hp.z_dim, hp.g_base_channels, hp.g_widths, hp.g_kernel, hp.g_out_kernel,
                          hp.g_activation, channels, name="generator")
    if generator.image_size != size:
        raise ValueError(f"the SelfExGAN generator makes {generator.image_size}px images, the data is {size}px")
    d1 = ImageDiscriminator(hp.d_widths, hp.d_activation, name="d1")
    d2 = None
    if hp.d2:
        d2 = PairDiscriminator(hp.d2_x_convs, hp.d2_x_widths, hp.d2_x_features or hp.z_dim, hp.d2_joint_widths,
                               hp.d2_dropout, hp.d2_activation, name="d2")
    x = tf.zeros([2, *image_shape])
    z = tf.zeros([2, hp.z_dim])
    encoder(x)
    generator(z)
    d1(x)
    if d2 is not None:
        d2((x, z))
    return encoder, generator, d1, d2

"""Configuration of the SelfExGAN family (with the thesis' network tables): presets and validation."""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

from tf_sparse_gen.fields import ConfigError, check_choice, check_positive


@dataclasses.dataclass
class SelfExGanConfig:
    """SelfExGAN (Liu, 2018): encoder E, generator G, image critic D1, pair critic D2.

    The defaults are Table 4.1 of the thesis (32x32 gray, z = 64).

    G: FC -> [4, 4, g_base_channels] (BN, ReLU), one stride-2 `g_kernel`
    deconv (BN, `g_activation`) per entry of `g_widths`, then a stride-2
    `g_out_kernel` deconv to the image channels + tanh: 4 * 2^(len(g_widths)+1)
    pixels. E: per entry of `e_widths` a stride-1 `e_kernel` conv (BN,
    `e_activation`) + 2x2 max-pool, flatten, FC(z_dim) + sigmoid, then the
    sphere projection. Training: a share `anchor_fraction` of G's inputs are
    anchors E(x), the rest prior samples N(0, I) (projected onto E's sphere when
    `project_prior`, as `generate` does), judged by D1 only; E also trains on
    G's prior-sample images with weight `e_fake_weight` (see the model). D1: per entry of `d_widths` a 5x5 stride-2 conv (BN,
    `d_activation`), flatten, FC(1) logit. D2(x, z): x branch of 5x5 stride-2
    convs `d2_x_convs` (BN, `d2_activation`) then FCs `d2_x_widths` (BN,
    `d2_activation`) then FC(`d2_x_features`, 0 = z_dim; no BN); concat with
    z; FCs `d2_joint_widths` (ReLU; BN on all but the first; dropout
    `d2_dropout` after the first two); FC(1) logit.

    `arch`: "custom" uses these fields; "table4.1" (32x32 gray), "table4.3"
    (32x32 colour, CIFAR-10), "table4.6" (64x64 colour, CelebA) replace the
    network fields with that table's (see `PAPER_TABLES`); "auto" picks the
    table by data.image_size/channels. With a table, `z_dim` = 0 takes the
    table's latent size, any other value overrides it.
    """

    arch: str = "custom"
    z_dim: int = 64
    g_base_channels: int = 256
    g_widths: Tuple[int, ...] = (128, 64)
    g_kernel: int = 5
    g_out_kernel: int = 5
    g_activation: str = "relu"
    e_widths: Tuple[int, ...] = (64, 128, 256)
    e_kernel: int = 3
    e_activation: str = "relu"
    # The thesis' D1 tables end with a 5x5 stride-2 conv to 2x2 whose width is not
    # given; the last entry (256) is our choice.
    d_widths: Tuple[int, ...] = (64, 128, 256, 256)
    d_activation: str = "relu"
    # False drops the pair critic (D1-only ablation: E then learns from the KL term alone).
    d2: bool = True
    d2_x_convs: Tuple[int, ...] = ()
    d2_x_widths: Tuple[int, ...] = (1024, 256)
    d2_x_features: int = 0
    d2_joint_widths: Tuple[int, ...] = (256, 128, 64)
    d2_dropout: float = 0.0
    d2_activation: str = "relu"
    sphere_radius: float = 0.0  # 0 = sqrt(z_dim), the typical norm of N(0, I)
    kl_weight: float = 1.0
    # Fraction of G's inputs that are E(x) anchors (judged by D1 and, as pairs (G(a), a), by D2);
    # the rest are prior samples z ~ N(0, I), projected onto E's sphere when `project_prior`,
    # judged by D1 only: the distribution `generate` (samples, FD, export) draws from (#19).
    anchor_fraction: float = 0.5
    # Unused since #19 (G's non-anchor inputs were E(x) + excite_noise * N(0, I)); kept so that
    # older runs' config.json load.
    excite_noise: float = 0.5
    # Project prior samples (in training and in `generate`) onto the sphere of E's codes.
    project_prior: bool = True
    # Weight of E's self-excitation term on G's prior-sample images (section 3.3): E treats them
    # as training inputs, -log(1 - D2(G(z), E(G(z)))); 0 = off.
    e_fake_weight: float = 1.0
    # Weight of an explicit reconstruction term mean((x - G(E(x)))^2) on the anchors, added to both
    # G's and E's losses (ALICE's cycle consistency; `losses.cycle_reconstruction_loss`). A departure
    # from the thesis, which has none (0 = off, the thesis): measured in benchmarks/selfexgan_budget.py.
    recon_weight: float = 0.0
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.99

    # Network fields of the thesis' tables (Liu 2018, Tables 4.1, 4.3, 4.6).
    PAPER_TABLES = {
        "table4.1": dict(z_dim=64, g_base_channels=256, g_widths=(128, 64), g_kernel=5, g_out_kernel=5,
                         g_activation="relu", e_widths=(64, 128, 256), e_kernel=3, e_activation="relu",
                         d_widths=(64, 128, 256, 256), d_activation="relu", d2_x_convs=(),
                         d2_x_widths=(1024, 256), d2_x_features=64, d2_joint_widths=(256, 128, 64),
                         d2_dropout=0.0, d2_activation="relu"),
        "table4.3": dict(z_dim=128, g_base_channels=256, g_widths=(128, 64), g_kernel=5, g_out_kernel=5,
                         g_activation="relu", e_widths=(64, 128, 256), e_kernel=5, e_activation="lrelu",
                         d_widths=(64, 128, 256, 256), d_activation="lrelu", d2_x_convs=(),
                         d2_x_widths=(1024, 256), d2_x_features=128,
                         d2_joint_widths=(256, 512, 256, 128, 64), d2_dropout=0.1, d2_activation="relu"),
        "table4.6": dict(z_dim=128, g_base_channels=256, g_widths=(128, 64, 64), g_kernel=3, g_out_kernel=5,
                         g_activation="lrelu", e_widths=(64, 64, 128, 256), e_kernel=3, e_activation="relu",
                         d_widths=(64, 64, 128, 256, 256), d_activation="lrelu", d2_x_convs=(64, 64, 128),
                         d2_x_widths=(), d2_x_features=64, d2_joint_widths=(256, 128, 64),
                         d2_dropout=0.0, d2_activation="lrelu"),
    }
    ARCHS = ("custom", "auto", "table4.1", "table4.3", "table4.6")
    ACTIVATIONS = ("relu", "lrelu")

    def table_name(self, image_size: int, channels: int) -> Optional[str]:
        """The thesis table `arch` selects for this image shape (None for "custom")."""
        if self.arch == "custom":
            return None
        if self.arch != "auto":
            return self.arch
        if image_size == 32:
            return "table4.1" if channels == 1 else "table4.3"
        if image_size == 64:
            return "table4.6"
        raise ConfigError(f"config: selfexgan.arch='auto' has thesis tables for 32x32 and 64x64 images, "
                          f"not {image_size}x{image_size}; use --image_size=32/64 or selfexgan.arch=custom")

    def resolved(self, image_size: int, channels: int) -> "SelfExGanConfig":
        """A copy with the network fields of the selected table filled in (itself for "custom")."""
        name = self.table_name(image_size, channels)
        if name is None:
            return self
        table = dict(self.PAPER_TABLES[name])
        if self.z_dim:
            table["z_dim"] = self.z_dim
        return dataclasses.replace(self, arch="custom", **table)


def validate(c) -> None:
    """Checks the `selfexgan` fields of Config `c` (after resolving its table) against the data shape."""
    check_choice("selfexgan.arch", c.selfexgan.arch, SelfExGanConfig.ARCHS)
    x = c.selfexgan.resolved(c.data.image_size, c.data.channels)
    for path in ("g_activation", "e_activation", "d_activation", "d2_activation"):
        check_choice("selfexgan." + path, getattr(x, path), SelfExGanConfig.ACTIVATIONS)
    for path in ("z_dim", "g_base_channels", "g_kernel", "g_out_kernel", "e_kernel", "lr"):
        check_positive("selfexgan." + path, getattr(x, path))
    for path in ("sphere_radius", "kl_weight", "excite_noise", "d2_x_features", "e_fake_weight", "recon_weight"):
        check_positive("selfexgan." + path, getattr(x, path), allow_zero=True)
    if not 0.0 <= x.anchor_fraction <= 1.0:
        raise ConfigError(f"config: 'selfexgan.anchor_fraction' must lie in [0, 1], got {x.anchor_fraction}")
    if x.recon_weight > 0 and x.anchor_fraction == 0:
        raise ConfigError("config: 'selfexgan.recon_weight' reconstructs the anchors E(x), but "
                          "'selfexgan.anchor_fraction'=0 makes none; use a fraction > 0 or recon_weight=0")
    if x.d2 and x.anchor_fraction == 0:
        raise ConfigError("config: 'selfexgan.anchor_fraction'=0 leaves D2 no fake pair (D2 judges the anchors' "
                          "pairs (G(E(x)), E(x)) only); use a fraction > 0 or selfexgan.d2=false")
    if not 0.0 <= x.d2_dropout < 1.0:
        raise ConfigError(f"config: 'selfexgan.d2_dropout' must lie in [0, 1), got {x.d2_dropout}")
    size = c.data.image_size
    out = 4 * 2 ** (len(x.g_widths) + 1)
    if out != size:
        raise ConfigError(
            f"config: the SelfExGAN generator makes {out}x{out} images (4x4 doubled by "
            f"{len(x.g_widths) + 1} deconvs: selfexgan.g_widths has {len(x.g_widths)} entries) but "
            f"data.image_size={size}; use --image_size={out} or change selfexgan.g_widths")
    for path, n in (("e_widths", len(x.e_widths)), ("d_widths", len(x.d_widths)),
                    ("d2_x_convs", len(x.d2_x_convs))):
        if n and size % 2 ** n:
            raise ConfigError(f"config: selfexgan.{path} halves the {size}px image {n} times; "
                              f"use at most {(size & -size).bit_length() - 1} entries")
    if not x.e_widths or not x.d_widths or not x.d2_joint_widths:
        raise ConfigError("config: selfexgan.e_widths, d_widths and d2_joint_widths need at least one entry")


def preset(preset: str) -> dict:
    if preset == "tiny":
        return {"data.image_size": 16, "train.batch_size": 4, "train.train_steps": 4,
                "train.log_every": 2, "train.checkpoint_every": 2, "train.sample_every": 2,
                "train.num_sample_images": 4,
                "selfexgan.z_dim": 8, "selfexgan.g_base_channels": 16, "selfexgan.g_widths": [8],
                "selfexgan.e_widths": [8, 16], "selfexgan.d_widths": [8, 16, 16],
                "selfexgan.d2_x_widths": [32], "selfexgan.d2_joint_widths": [16, 8]}
    if preset == "small":
        # Table 4.1's structure at half width for CPU runs; DCGAN's optimiser settings.
        return {"selfexgan.z_dim": 64, "selfexgan.g_base_channels": 128, "selfexgan.g_widths": [64, 32],
                "selfexgan.e_widths": [32, 64, 128], "selfexgan.d_widths": [32, 64, 128, 128],
                "selfexgan.d2_x_widths": [256, 128], "selfexgan.d2_joint_widths": [128, 64, 32],
                "selfexgan.lr": 2e-4, "selfexgan.beta1": 0.5, "selfexgan.beta2": 0.999}
    # The thesis: Tables 4.1/4.3/4.6 by image shape, Adam lr 1e-3, beta = (0.9, 0.99) for all four nets.
    return {"train.train_steps": 100000, "selfexgan.arch": "auto", "selfexgan.z_dim": 0,
            "selfexgan.lr": 1e-3, "selfexgan.beta1": 0.9, "selfexgan.beta2": 0.99}
CONFIG_CLASS = SelfExGanConfig

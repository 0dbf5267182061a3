"""Configuration of the Sparse GAN family: hyper-parameters, presets and their validation."""

from __future__ import annotations

import dataclasses
from typing import Tuple

from tf_sparse_gen.fields import ConfigError, check_choice, check_positive


@dataclasses.dataclass
class SpganConfig:
    """Sparse GAN (Mahdizadehaghdam, Panahi, Krim 2019): sparse patch generator + WGAN-GP + reconstructor.

    Dictionary (eq. 5): `dict_patches` random `patch_size`^2 x C patches of the
    training images, `num_atoms` unit-norm atoms (the first C of them constant
    "DC" atoms when `dict_center`, the rest learned on mean-centred patches)
    by MiniBatchDictionaryLearning(`dict_alpha`, `dict_batch_size`).
    Generator: FC -> [4, 4, base_channels] -> `generator` body (dcgan: stride-2
    deconvs; resnet: residual up-blocks; hidden widths `g_widths`, empty =
    base_channels halved per doubling) -> A(z) [H, W, num_atoms] -> soft
    threshold (`threshold`, learned if `learn_threshold`, or steered towards a
    share `zero_fraction` of zero codes with gain `threshold_gain`) -> patches averaged
    -> `output` (tanh | clip). `sparse_output=False`: the same body to C
    channels + tanh (WGAN-GP baseline). Critic: 5x5 stride-2 convs
    `critic_widths` (+ `critic_norm`), FC(1). Encoder (`reconstructor`): a
    ResNet with `encoder_widths`. Training (Algorithm 1): `n_critic` critic
    steps, one generator step, `n_reconst` x (encoder step, reconstruction
    step on G weighted by `recon_weight`). Without a reconstructor, `encode`
    optimises z by `infer_steps` Adam steps of size `infer_lr`.
    """

    z_dim: int = 128
    num_atoms: int = 100
    patch_size: int = 3
    dict_patches: int = 100000
    dict_alpha: float = 0.2
    dict_batch_size: int = 256
    dict_center: bool = True
    generator: str = "dcgan"
    base_channels: int = 256
    g_widths: Tuple[int, ...] = ()
    sparse_output: bool = True
    output: str = "tanh"
    reconstructor: bool = True
    threshold: float = 0.1
    learn_threshold: bool = False
    # Target share of zero codes (0 = off: `threshold` stays fixed). When on, `threshold` is only
    # the starting value: after every generator step the threshold is multiplied by
    # exp(threshold_gain * (zero_fraction - measured share of zero codes of that step's batch)).
    zero_fraction: float = 0.0
    threshold_gain: float = 1.0
    encoder_widths: Tuple[int, ...] = (32, 64, 128)
    n_critic: int = 5
    n_reconst: int = 1
    recon_weight: float = 1.0
    gp_weight: float = 10.0
    critic_widths: Tuple[int, ...] = (64, 128, 256)
    critic_norm: str = "none"
    lr: float = 1e-4
    e_lr: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.9
    infer_steps: int = 100
    infer_lr: float = 0.05


def validate(c) -> None:
    """Checks the `spgan` fields of Config `c` against each other and the data shape."""
    sp = c.spgan
    check_choice("spgan.generator", sp.generator, ("dcgan", "resnet"))
    check_choice("spgan.output", sp.output, ("tanh", "clip"))
    check_choice("spgan.critic_norm", sp.critic_norm, ("none", "layer"))
    for path in ("z_dim", "num_atoms", "patch_size", "dict_patches", "dict_batch_size", "base_channels",
                 "n_critic", "lr", "e_lr", "infer_steps", "infer_lr"):
        check_positive("spgan." + path, getattr(sp, path))
    for path in ("dict_alpha", "threshold", "n_reconst", "recon_weight", "gp_weight"):
        check_positive("spgan." + path, getattr(sp, path), allow_zero=True)
    check_positive("spgan.threshold_gain", sp.threshold_gain)
    if not 0.0 <= sp.zero_fraction < 1.0:
        raise ConfigError(f"config: 'spgan.zero_fraction' (target share of zero codes) must lie in [0, 1), "
                          f"got {sp.zero_fraction}")
    if sp.zero_fraction > 0 and sp.learn_threshold:
        raise ConfigError("config: 'spgan.zero_fraction' steers the threshold, 'spgan.learn_threshold' trains it; "
                          "use one of them")
    if sp.zero_fraction > 0 and not sp.sparse_output:
        raise ConfigError("config: 'spgan.zero_fraction' needs sparse codes; spgan.sparse_output=false has none")
    if sp.patch_size % 2 == 0:
        raise ConfigError(f"config: 'spgan.patch_size' must be odd (a patch is centred on a pixel), "
                          f"got {sp.patch_size}")
    if sp.sparse_output and sp.dict_center and sp.num_atoms <= c.data.channels:
        raise ConfigError(f"config: 'spgan.num_atoms'={sp.num_atoms} leaves no learned atom next to the "
                          f"{c.data.channels} DC atom(s); use more atoms or spgan.dict_center=false")
    size = c.data.image_size
    n = size.bit_length() - 3
    if size < 8 or size != 4 << n:
        raise ConfigError(f"config: the spgan generator makes 4 * 2^n pixel images (8, 16, 32, 64, ...); "
                          f"data.image_size={size} is not one")
    if sp.g_widths and len(sp.g_widths) != n - 1:
        raise ConfigError(f"config: 'spgan.g_widths' needs {n - 1} entries for {size}px images "
                          f"(4 doubled {n} times, the last doubling makes the codes), got {len(sp.g_widths)}")
    for path, widths in (("critic_widths", sp.critic_widths), ("encoder_widths", sp.encoder_widths)):
        if not widths:
            raise ConfigError(f"config: 'spgan.{path}' needs at least one entry")
        if size % 2 ** len(widths):
            raise ConfigError(f"config: spgan.{path} halves the {size}px image {len(widths)} times; "
                              f"use at most {(size & -size).bit_length() - 1} entries")


def preset(preset: str) -> dict:
    if preset == "tiny":
        return {"data.image_size": 16, "train.batch_size": 4, "train.train_steps": 4,
                "train.log_every": 2, "train.checkpoint_every": 2, "train.sample_every": 2,
                "train.num_sample_images": 4,
                "spgan.z_dim": 8, "spgan.num_atoms": 8, "spgan.dict_patches": 500,
                "spgan.dict_batch_size": 64, "spgan.base_channels": 16, "spgan.encoder_widths": [8, 16],
                "spgan.critic_widths": [8, 16], "spgan.n_critic": 2, "spgan.infer_steps": 5}
    if preset == "small":
        # 32x32 gray Fashion-MNIST on a CPU: 4x4x128 -> 8x8x64 -> 16x16x32 -> 32x32x100 codes.
        # n_critic = 3 (not WGAN-GP's 5) buys ~1.5x more generator steps per minute on 2 cores.
        return {"train.batch_size": 64, "train.log_every": 25, "train.sample_every": 200,
                "train.checkpoint_every": 200,
                "spgan.z_dim": 64, "spgan.base_channels": 128, "spgan.critic_widths": [32, 64, 128],
                "spgan.encoder_widths": [16, 32, 64], "spgan.n_critic": 3, "spgan.lr": 2e-4,
                "spgan.e_lr": 2e-4, "spgan.dict_patches": 50000}
    # CelebA 64x64 (section 5.2): z = 256, FC to 4x4x2048, four stride-2 deconvs
    # 2048 -> 1024 -> 512 -> 100 codes, a 27 x 100 dictionary (3x3x3 patches).
    return {"data.image_size": 64, "data.channels": 3,
            "train.train_steps": 100000,
            "spgan.z_dim": 256, "spgan.base_channels": 2048, "spgan.g_widths": [2048, 1024, 512],
            "spgan.num_atoms": 100, "spgan.critic_widths": [128, 256, 512, 1024],
            "spgan.encoder_widths": [64, 128, 256, 512]}
CONFIG_CLASS = SpganConfig

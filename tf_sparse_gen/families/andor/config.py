"""Configuration of the sparse AND-OR family: hyper-parameters, presets and their validation."""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

from tf_sparse_gen.fields import ConfigError, check_choice, check_positive, get_path
from tf_sparse_gen.sparsity import K, TOPK_IMPLEMENTATIONS, SparsityError, check_k, kept_count

@dataclasses.dataclass
class AndOrConfig:
    """Sparse AND-OR generator (Xing et al., CVPR 2020), Table 1 structure.

    Generator: FC -> [base_size, base_size, fc_channels] with top-`fc_k`
    channels per position, then one block per entry of `block_widths`
    (x2 upsample by `upsample`, `convs_per_block` 3x3 conv + ReLU, then top-k per
    channel over space with the matching entry of `block_ks`), then a 3x3 conv
    + tanh. Critic: 3x3 conv + LReLU (`critic_stem`), then per entry of
    `critic_widths` an average pool and two 3x3 conv + LReLU, then FC(1).
    """

    z_dim: int = 64
    base_size: int = 4
    fc_channels: int = 128
    fc_k: K = 0.1
    block_widths: Tuple[int, ...] = (64, 32, 16)
    block_ks: Tuple[K, ...] = (0.25, 0.25, 0)
    convs_per_block: int = 2
    # How each block doubles its input: "nearest" (Table 1) or "bilinear".
    upsample: str = "nearest"
    sparsity: bool = True
    topk_implementation: str = "auto"  # one of TOPK_IMPLEMENTATIONS
    ebm: bool = True
    critic_stem: int = 16
    critic_widths: Tuple[int, ...] = (32, 64, 128)
    # Regulariser of the energy-based critic: a departure from the paper,
    # which states none; without one the critic's scores explode.
    critic_reg: str = "gp"
    gp_weight: float = 10.0
    # Generator objective: `recon_reduction` "sum" is eq. 15 as printed (squared error
    # summed over pixels / 2 sigma^2), "mean" divides it by the pixel count D.
    # `critic_weight` multiplies eq. 22's critic term; None = eq. 22's own weight in
    # that reduction (1 for "sum", 1 / D for "mean"). With "mean", w = 0.02 is the
    # critic 0.02 * D times stronger than the paper's balance (20x at 32x32x1).
    recon_reduction: str = "mean"
    critic_weight: Optional[float] = 0.02
    # False drops the reconstruction term and the Langevin inference: the generator
    # then learns from the critic alone (a WGAN-GP on the same networks, the
    # yardstick of benchmarks/andor_budget.py). Needs ebm.
    abp: bool = True
    # Critic updates per step (Algorithm 1 makes one).
    n_critic: int = 1
    sigma: float = 0.3
    delta: float = 0.1
    langevin_steps: int = 10
    # Langevin steps of inference from z = 0 (reconstruction, evaluation).
    infer_steps: int = 100
    g_lr: float = 5e-4
    c_lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999


def _check_k(path: str, k) -> None:
    try:
        check_k(k, f"config: '{path}'")
    except SparsityError as e:
        raise ConfigError(str(e)) from None


def validate(c) -> None:
    """Checks the `andor` fields of Config `c` against each other and the data shape."""
    a = c.andor
    check_choice("andor.critic_reg", a.critic_reg, ("gp", "sn", "none"))
    check_choice("andor.recon_reduction", a.recon_reduction, ("mean", "sum"))
    check_choice("andor.upsample", a.upsample, ("nearest", "bilinear"))
    if a.critic_weight is not None:
        check_positive("andor.critic_weight", a.critic_weight, allow_zero=True)
    check_positive("andor.n_critic", a.n_critic)
    if not a.abp and not a.ebm:
        raise ConfigError("config: 'andor.abp'=false with 'andor.ebm'=false leaves the generator nothing to "
                          "learn from; keep one of them on")
    check_choice("andor.topk_implementation", a.topk_implementation, TOPK_IMPLEMENTATIONS)
    for path in ("andor.z_dim", "andor.base_size", "andor.fc_channels", "andor.convs_per_block",
                 "andor.critic_stem", "andor.sigma", "andor.delta", "andor.g_lr", "andor.c_lr",
                 "andor.infer_steps"):
        check_positive(path, get_path(c, path))
    check_positive("andor.langevin_steps", a.langevin_steps, allow_zero=True)
    if not a.block_widths:
        raise ConfigError("config: 'andor.block_widths' must name at least one block")
    if len(a.block_ks) != len(a.block_widths):
        raise ConfigError(
            f"config: 'andor.block_ks' has {len(a.block_ks)} entries but 'andor.block_widths' has "
            f"{len(a.block_widths)}; give one k per block (0 = no sparsity)")
    _check_k("andor.fc_k", a.fc_k)
    for i, k in enumerate(a.block_ks):
        _check_k(f"andor.block_ks[{i}]", k)
    out = a.base_size * 2 ** len(a.block_widths)
    if out != c.data.image_size:
        raise ConfigError(
            f"config: the AND-OR generator produces {out}x{out} images (andor.base_size={a.base_size} "
            f"doubled by {len(a.block_widths)} blocks) but data.image_size={c.data.image_size}; "
            f"use --image_size={out} or change andor.block_widths/base_size")
    if a.fc_k and kept_count(a.fc_k, a.fc_channels) > a.fc_channels:
        raise ConfigError(
            f"config: 'andor.fc_k'={a.fc_k} keeps more channels than the {a.fc_channels} it prunes")
    size = a.base_size
    for i, k in enumerate(a.block_ks):
        size *= 2
        if k and kept_count(k, size * size) > size * size:
            raise ConfigError(
                f"config: 'andor.block_ks[{i}]'={k} keeps more than the {size}x{size}={size * size} "
                f"positions of block {i}; use a smaller k or a fraction in (0, 1)")


def preset(preset: str) -> dict:
    """Overrides of a preset: `tiny` (tests), `small` (CPU runs), `paper`.

    `paper` is Table 1 of Xing et al. (CVPR 2020) where the table says something:
    64x64x3 images, z ~ N(0, I_100), FC to 4x4x3200 with k = 8 channels per position,
    four upsampling blocks of 3x3 conv + ReLU with 512/256/128/64 channels and spatial
    k = 16/64/256/none (a quarter of each map), 3x3 conv + tanh; the energy-based
    critic's 3x3 conv + LReLU(0.2) stem of 64 and average-pool blocks 64/128/256/512,
    FC(1). The paper states neither sigma, delta, learning rates nor the loss balance;
    these are this project's choices: sigma = 0.3, delta = 0.1, 30 Langevin steps per
    batch, Adam lr 3e-4 (generator) / 2e-4 (critic) with beta1 = 0.5, two convs per
    block, a WGAN-GP penalty on the critic (the paper has none; without it the critic
    diverges), a generator EMA of decay 0.999 (also in `small`), and the generator
    objective of the defaults (`recon_reduction` "mean" with `critic_weight` 0.02, i.e.
    the critic about 246x stronger than eq. 15 + eq. 22 at 64x64x3;
    `--set=andor.recon_reduction=sum --set=andor.critic_weight=null` is the paper's balance).
    """
    if preset == "tiny":
        return {"data.image_size": 16, "train.batch_size": 4, "train.train_steps": 4,
                "train.log_every": 2, "train.checkpoint_every": 2, "train.sample_every": 2,
                "train.num_sample_images": 4,
                "andor.z_dim": 8, "andor.fc_channels": 16, "andor.fc_k": 4,
                "andor.block_widths": [8, 8], "andor.block_ks": [0.25, 0],
                "andor.convs_per_block": 1, "andor.critic_stem": 8, "andor.critic_widths": [8, 16],
                "andor.langevin_steps": 3, "andor.infer_steps": 5}
    # Generator EMA 0.999 (not in the paper): at 60 CPU-minutes on Fashion-MNIST it lowered
    # fd_fmnist from 16.8 to 15.3 (sparse) and from 13.8 to 11.3 (andor.abp=false, the WGAN-GP);
    # the dense model's rose from 23.4 to 24.6 (benchmarks/results/andor_budget/, one seed each).
    # Batch 32, 5 Langevin steps per batch and twice the defaults' learning rates (not in the
    # paper; until 2026-12-07 `small` was the defaults: batch 64, 10 steps, 5e-4 / 2e-4). At equal
    # CPU time this recipe reaches about 2.7x the steps, and on three machines it lowered
    # fd_fmnist at 60 CPU-minutes from 16.0 to 8.5 (AVX-512 EPYC, where a WGAN-GP scored 10.3)
    # and from 43.0 to 18.5 (AVX2 EPYC), and at the main job's 10 CPU-minutes from 45.7 to 26.9
    # (AVX-512 EPYC, two seeds each) and from 44.1 to 27.4 (Xeon): benchmarks/results/andor_budget/
    # epyc_zen4/, andor_budget/, main_job/.
    if preset == "small":
        return {"train.ema_decay": 0.999, "train.batch_size": 32, "andor.langevin_steps": 5,
                "andor.g_lr": 1e-3, "andor.c_lr": 4e-4}
    # Table 1 of the paper: 64x64x3, z = 100, widths 3200/512/256/128/64, k = 8/16/64/256.
    return {"data.image_size": 64, "data.channels": 3, "train.batch_size": 64,
            "train.train_steps": 100000, "train.ema_decay": 0.999,
            "andor.z_dim": 100, "andor.fc_channels": 3200, "andor.fc_k": 8,
            "andor.block_widths": [512, 256, 128, 64], "andor.block_ks": [16, 64, 256, 0],
            "andor.critic_stem": 64, "andor.critic_widths": [64, 128, 256, 512],
            "andor.g_lr": 3e-4, "andor.c_lr": 2e-4, "andor.langevin_steps": 30}
CONFIG_CLASS = AndOrConfig

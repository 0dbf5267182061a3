"""One typed configuration source for every model family.

A run is fully described by a `Config`: the data, the training loop and the
chosen family's hyper-parameters. `get_config(model, preset)` gives a preset
(`tiny` for tests, `small` for CPU runs, `paper` for the papers' settings);
`apply_overrides` changes fields by dotted path; `Config.to_dict` /
`Config.from_dict` round-trip through JSON (`model_dir/config.json`).

Nothing here reads flags: `train.py` and `evaluate.py` translate flags into
overrides.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from typing import Any, Optional, Tuple, Union

MODELS = ("andor", "spgan", "selfexgan")
PRESETS = ("tiny", "small", "paper")
MIXED_PRECISION = ("off", "bf16", "fp16")
STRATEGIES = ("default", "mirrored", "multiworker")

# k of a sparse layer: an int >= 1 keeps that many, a float in (0, 1) keeps that
# fraction of the reduced axis, 0 means "no sparsity at this layer".
K = Union[int, float]
# TopKSparsity's selection (tf_sparse_gen.layers): "auto" = the compiled kernel where it applies,
# else tf.math.top_k; "kernel" = always the kernel; "tf" = always tf.math.top_k.
TOPK_IMPLEMENTATIONS = ("auto", "kernel", "tf")


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field and the fix."""


@dataclasses.dataclass
class DataConfig:
    dataset: str = "fashion_mnist"
    data_dir: Optional[str] = None
    image_size: int = 32
    channels: int = 1
    # Use only the first N training examples (0 = all); for quick experiments.
    max_examples: int = 0
    # Size of the procedural `shapes` dataset.
    shapes_num_examples: int = 20000


@dataclasses.dataclass
class TrainConfig:
    batch_size: int = 64
    # Total number of training steps of the run (a resumed run continues to it).
    train_steps: int = 20000
    # Wall-clock budget of one train.py invocation in minutes (0 = unlimited).
    train_minutes: float = 0.0
    # CPU-time budget of one invocation in minutes of process CPU time, summed over
    # threads (0 = unlimited). Unlike wall-clock it does not shrink when other work
    # shares the machine, so benchmarks compare variants by it.
    train_cpu_minutes: float = 0.0
    # Exponential moving average of the generator's weights (0 = off). The averaged
    # weights make samples, evaluation and exports; the raw ones keep training.
    ema_decay: float = 0.0
    seed: int = 0
    deterministic: bool = False
    log_every: int = 50
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    sample_every: int = 500
    num_sample_images: int = 64
    mixed_precision: str = "off"
    strategy: str = "default"
    jit_compile: bool = False
    # Consecutive non-finite steps (skipped) tolerated before the run stops.
    max_nonfinite_steps: int = 20


@dataclasses.dataclass
class AndOrConfig:
    """Sparse AND-OR generator (Xing et al., CVPR 2020), Table 1 structure.

    Generator: FC -> [base_size, base_size, fc_channels] with top-`fc_k`
    channels per position, then one block per entry of `block_widths`
    (nearest x2 upsample, `convs_per_block` 3x3 conv + ReLU, then top-k per
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
    threshold (`threshold`, learned if `learn_threshold`) -> patches averaged
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


@dataclasses.dataclass
class SelfExGanConfig:
    """SelfExGAN (Liu, 2018): encoder E, generator G, image critic D1, pair critic D2.

    The defaults are Table 4.1 of the thesis (32x32 gray, z = 64).

    G: FC -> [4, 4, g_base_channels] (BN, ReLU), one stride-2 `g_kernel`
    deconv (BN, `g_activation`) per entry of `g_widths`, then a stride-2
    `g_out_kernel` deconv to the image channels + tanh: 4 * 2^(len(g_widths)+1)
    pixels. E: per entry of `e_widths` a stride-1 `e_kernel` conv (BN,
    `e_activation`) + 2x2 max-pool, flatten, FC(z_dim) + sigmoid, then the
    sphere projection. D1: per entry of `d_widths` a 5x5 stride-2 conv (BN,
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
    # Fraction of G's inputs that are E(x) anchors; the rest are z ~ N(0, I)
    # scattered around anchors with `excite_noise`.
    anchor_fraction: float = 0.5
    excite_noise: float = 0.5
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


@dataclasses.dataclass
class Config:
    model: str = "andor"
    preset: str = "small"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    andor: AndOrConfig = dataclasses.field(default_factory=AndOrConfig)
    spgan: SpganConfig = dataclasses.field(default_factory=SpganConfig)
    selfexgan: SelfExGanConfig = dataclasses.field(default_factory=SelfExGanConfig)

    @property
    def family(self):
        """The hyper-parameters of the chosen model family."""
        return getattr(self, self.model)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        return _from_dict(cls, d, "")

    @classmethod
    def from_json(cls, text: str) -> "Config":
        return cls.from_dict(json.loads(text))

    def validate(self) -> "Config":
        _validate(self)
        return self


# Fields that may differ between the run on disk and a resumed invocation:
# they change how long or how fast a run goes, not what it computes.
SESSION_FIELDS = frozenset({
    "train.train_steps", "train.train_minutes", "train.train_cpu_minutes", "train.log_every",
    "train.checkpoint_every", "train.keep_checkpoints", "train.sample_every",
    "train.num_sample_images", "train.strategy", "train.jit_compile",
    "train.max_nonfinite_steps", "data.data_dir", "preset",
})


def _from_dict(cls, d: Any, prefix: str):
    if not isinstance(d, dict):
        raise ConfigError(f"config: '{prefix or 'root'}' must be a mapping, got {type(d).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ConfigError(
            f"config: unknown field(s) {sorted(prefix + k for k in unknown)}; "
            f"known fields of '{prefix or 'root'}': {sorted(names)}")
    kwargs = {}
    for name, value in d.items():
        kwargs[name] = _coerce(hints[name], value, prefix + name)
    return cls(**kwargs)


def _coerce(hint, value, path):
    if dataclasses.is_dataclass(hint):
        return _from_dict(hint, value, path + ".")
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Union:
        if value is None and type(None) in args:
            return None
        if set(args) <= {int, float}:  # K
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"config: '{path}' must be a number, got {value!r}")
            return value
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, path)
    if origin in (tuple, Tuple):
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"config: '{path}' must be a list, got {value!r}")
        return tuple(_coerce(args[0], v, path) for v in value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("on", "true", "1", "yes", "off", "false", "0", "no"):
            return value.lower() in ("on", "true", "1", "yes")
        raise ConfigError(f"config: '{path}' must be on/off (true/false), got {value!r}")
    if hint is int:
        if isinstance(value, bool):
            raise ConfigError(f"config: '{path}' must be an integer, got {value!r}")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        if not isinstance(value, int):
            raise ConfigError(f"config: '{path}' must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool):
            raise ConfigError(f"config: '{path}' must be a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config: '{path}' must be a number, got {value!r}") from None
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"config: '{path}' must be a string, got {value!r}")
        return value
    return value


def _check_choice(path, value, allowed):
    if value not in allowed:
        raise ConfigError(f"config: '{path}' is {value!r}; allowed values: {', '.join(map(str, allowed))}")


def _check_positive(path, value, allow_zero=False):
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"config: '{path}' must be a finite number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"config: '{path}' must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def check_k(path: str, k: K) -> None:
    """A k must be 0 (off), an int >= 1, or a float strictly between 0 and 1."""
    if isinstance(k, bool) or not isinstance(k, (int, float)):
        raise ConfigError(f"config: '{path}' must be a number, got {k!r}")
    if isinstance(k, float) and not k.is_integer():
        if not 0.0 < k < 1.0:
            raise ConfigError(f"config: '{path}' = {k}: a fractional k must lie in (0, 1)")
    elif k < 0:
        raise ConfigError(f"config: '{path}' = {k}: k must be 0 (off), an integer >= 1 or a fraction in (0, 1)")


def _validate(c: Config) -> None:
    _check_choice("model", c.model, MODELS)
    _check_choice("preset", c.preset, PRESETS)
    _check_choice("train.mixed_precision", c.train.mixed_precision, MIXED_PRECISION)
    _check_choice("train.strategy", c.train.strategy, STRATEGIES)
    for path in ("data.image_size", "data.channels", "train.batch_size", "train.train_steps",
                 "train.log_every", "train.checkpoint_every", "train.keep_checkpoints",
                 "train.sample_every", "train.num_sample_images", "train.max_nonfinite_steps"):
        _check_positive(path, _get(c, path))
    for path in ("train.train_minutes", "train.train_cpu_minutes", "train.seed", "data.max_examples", "data.shapes_num_examples"):
        _check_positive(path, _get(c, path), allow_zero=True)
    _check_choice("data.channels", c.data.channels, (1, 3))
    if not 0.0 <= c.train.ema_decay < 1.0:
        raise ConfigError(f"config: 'train.ema_decay'={c.train.ema_decay} must be in [0, 1) (0 = no EMA; "
                          "0.999 is typical)")
    if not c.data.dataset:
        raise ConfigError("config: 'data.dataset' is empty; see --helpfull for the dataset sources")
    if c.model == "andor":
        a = c.andor
        _check_choice("andor.critic_reg", a.critic_reg, ("gp", "sn", "none"))
        _check_choice("andor.recon_reduction", a.recon_reduction, ("mean", "sum"))
        if a.critic_weight is not None:
            _check_positive("andor.critic_weight", a.critic_weight, allow_zero=True)
        _check_positive("andor.n_critic", a.n_critic)
        if not a.abp and not a.ebm:
            raise ConfigError("config: 'andor.abp'=false with 'andor.ebm'=false leaves the generator nothing to "
                              "learn from; keep one of them on")
        _check_choice("andor.topk_implementation", a.topk_implementation, TOPK_IMPLEMENTATIONS)
        for path in ("andor.z_dim", "andor.base_size", "andor.fc_channels", "andor.convs_per_block",
                     "andor.critic_stem", "andor.sigma", "andor.delta", "andor.g_lr", "andor.c_lr",
                     "andor.infer_steps"):
            _check_positive(path, _get(c, path))
        _check_positive("andor.langevin_steps", a.langevin_steps, allow_zero=True)
        if not a.block_widths:
            raise ConfigError("config: 'andor.block_widths' must name at least one block")
        if len(a.block_ks) != len(a.block_widths):
            raise ConfigError(
                f"config: 'andor.block_ks' has {len(a.block_ks)} entries but 'andor.block_widths' has "
                f"{len(a.block_widths)}; give one k per block (0 = no sparsity)")
        check_k("andor.fc_k", a.fc_k)
        for i, k in enumerate(a.block_ks):
            check_k(f"andor.block_ks[{i}]", k)
        out = a.base_size * 2 ** len(a.block_widths)
        if out != c.data.image_size:
            raise ConfigError(
                f"config: the AND-OR generator produces {out}x{out} images (andor.base_size={a.base_size} "
                f"doubled by {len(a.block_widths)} blocks) but data.image_size={c.data.image_size}; "
                f"use --image_size={out} or change andor.block_widths/base_size")
        if a.fc_k and _k_count(a.fc_k, a.fc_channels) > a.fc_channels:
            raise ConfigError(
                f"config: 'andor.fc_k'={a.fc_k} keeps more channels than the {a.fc_channels} it prunes")
        size = a.base_size
        for i, k in enumerate(a.block_ks):
            size *= 2
            if k and _k_count(k, size * size) > size * size:
                raise ConfigError(
                    f"config: 'andor.block_ks[{i}]'={k} keeps more than the {size}x{size}={size * size} "
                    f"positions of block {i}; use a smaller k or a fraction in (0, 1)")


    if c.model == "spgan":
        sp = c.spgan
        _check_choice("spgan.generator", sp.generator, ("dcgan", "resnet"))
        _check_choice("spgan.output", sp.output, ("tanh", "clip"))
        _check_choice("spgan.critic_norm", sp.critic_norm, ("none", "layer"))
        for path in ("z_dim", "num_atoms", "patch_size", "dict_patches", "dict_batch_size", "base_channels",
                     "n_critic", "lr", "e_lr", "infer_steps", "infer_lr"):
            _check_positive("spgan." + path, getattr(sp, path))
        for path in ("dict_alpha", "threshold", "n_reconst", "recon_weight", "gp_weight"):
            _check_positive("spgan." + path, getattr(sp, path), allow_zero=True)
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

    if c.model == "selfexgan":
        _check_choice("selfexgan.arch", c.selfexgan.arch, SelfExGanConfig.ARCHS)
        x = c.selfexgan.resolved(c.data.image_size, c.data.channels)
        for path in ("g_activation", "e_activation", "d_activation", "d2_activation"):
            _check_choice("selfexgan." + path, getattr(x, path), SelfExGanConfig.ACTIVATIONS)
        for path in ("z_dim", "g_base_channels", "g_kernel", "g_out_kernel", "e_kernel", "lr"):
            _check_positive("selfexgan." + path, getattr(x, path))
        for path in ("sphere_radius", "kl_weight", "excite_noise", "d2_x_features"):
            _check_positive("selfexgan." + path, getattr(x, path), allow_zero=True)
        if not 0.0 <= x.anchor_fraction <= 1.0:
            raise ConfigError(f"config: 'selfexgan.anchor_fraction' must lie in [0, 1], got {x.anchor_fraction}")
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

def _k_count(k: K, n: int) -> int:
    """Number of entries kept by `k` out of `n` (see `layers.resolve_k`)."""
    if isinstance(k, float) and not float(k).is_integer():
        return max(1, int(round(k * n)))
    return int(k)


def _get(c, path):
    obj = c
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def apply_overrides(config: Config, overrides: dict) -> Config:
    """Returns a copy of `config` with fields set by dotted path (`train.batch_size`)."""
    d = config.to_dict()
    for path, value in overrides.items():
        node = d
        parts = path.split(".")
        for part in parts[:-1]:
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(f"config: unknown field '{path}'")
            node = node[part]
        if parts[-1] not in node:
            raise ConfigError(f"config: unknown field '{path}'")
        node[parts[-1]] = value
    return Config.from_dict(d)


def diff(a: Config, b: Config) -> dict:
    """{dotted path: (a value, b value)} for every leaf that differs."""
    out = {}

    def walk(x, y, prefix):
        for key in sorted(set(x) | set(y)):
            vx, vy = x.get(key), y.get(key)
            if isinstance(vx, dict) and isinstance(vy, dict):
                walk(vx, vy, prefix + key + ".")
            elif vx != vy:
                out[prefix + key] = (vx, vy)

    walk(a.to_dict(), b.to_dict(), "")
    return out


# ----------------------------------------------------------------------------- presets

def _andor_preset(preset: str) -> dict:
    if preset == "tiny":
        return {"data.image_size": 16, "train.batch_size": 4, "train.train_steps": 4,
                "train.log_every": 2, "train.checkpoint_every": 2, "train.sample_every": 2,
                "train.num_sample_images": 4,
                "andor.z_dim": 8, "andor.fc_channels": 16, "andor.fc_k": 4,
                "andor.block_widths": [8, 8], "andor.block_ks": [0.25, 0],
                "andor.convs_per_block": 1, "andor.critic_stem": 8, "andor.critic_widths": [8, 16],
                "andor.langevin_steps": 3, "andor.infer_steps": 5}
    if preset == "small":
        return {}
    # Table 1 of the paper: 64x64x3, z = 100, widths 3200/512/256/128/64, k = 8/16/64/256.
    return {"data.image_size": 64, "data.channels": 3, "train.batch_size": 64,
            "train.train_steps": 100000,
            "andor.z_dim": 100, "andor.fc_channels": 3200, "andor.fc_k": 8,
            "andor.block_widths": [512, 256, 128, 64], "andor.block_ks": [16, 64, 256, 0],
            "andor.critic_stem": 64, "andor.critic_widths": [64, 128, 256, 512],
            "andor.g_lr": 3e-4, "andor.c_lr": 2e-4, "andor.langevin_steps": 30}


def _spgan_preset(preset: str) -> dict:
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


def _selfexgan_preset(preset: str) -> dict:
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


_PRESET_FNS = {"andor": _andor_preset, "spgan": _spgan_preset, "selfexgan": _selfexgan_preset}


def get_config(model: str = "andor", preset: str = "small", overrides: Optional[dict] = None) -> Config:
    """The preset `preset` of family `model`, with `overrides` applied, validated."""
    _check_choice("model", model, MODELS)
    _check_choice("preset", preset, PRESETS)
    config = Config(model=model, preset=preset)
    config = apply_overrides(config, _PRESET_FNS[model](preset))
    if overrides:
        config = apply_overrides(config, overrides)
    return config.validate()

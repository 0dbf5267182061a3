"""What the same-budget comparison benchmarks share."""

from __future__ import annotations

from typing import Dict, List

# The AND-OR `small` preset until 2026-12-07: batch 64, 10 Langevin steps per batch, learning
# rates 5e-4 (generator) / 2e-4 (critic). The benchmarks measured with it pin it, so that their
# variants keep their meaning and a resumed run stays comparable with the stored ones.
ANDOR_SMALL_UNTIL_2026_12_07 = {"train.batch_size": 64, "andor.langevin_steps": 10,
                                "andor.g_lr": 5e-4, "andor.c_lr": 2e-4}


def andor_small_until_2026_12_07_flags() -> List[str]:
    """ANDOR_SMALL_UNTIL_2026_12_07 as train.py flags; `--batch_size` so that a later one overrides it."""
    flags = [f"--batch_size={ANDOR_SMALL_UNTIL_2026_12_07['train.batch_size']}"]
    return flags + [f"--set={k}={v:g}" for k, v in ANDOR_SMALL_UNTIL_2026_12_07.items() if k.startswith("andor.")]


def same_budget_configs(family: str, variants: Dict[str, dict], steps: int, dataset: str = "fashion_mnist",
                        channels: int = 1) -> dict:
    """{variant name: Config}: the `small` preset of `family` at 32x32, batch 64, `steps` steps each.

    Each variant's overrides are applied on top; samples and the checkpoint are written
    once, at the end, so every variant spends its budget on training alone.
    """
    from tf_sparse_gen.config import get_config

    return {name: get_config(family, "small", {
        **overrides, "data.dataset": dataset, "data.image_size": 32, "data.channels": channels,
        "train.batch_size": 64, "train.train_steps": steps, "train.train_minutes": 0.0,
        "train.sample_every": steps, "train.checkpoint_every": steps})
        for name, overrides in variants.items()}

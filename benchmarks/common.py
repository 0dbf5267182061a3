"""What the same-budget comparison benchmarks share."""

from __future__ import annotations

from typing import Dict


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

"""The README's main job at its 5-minute budget: which recipe gives recognisable samples that soon?

  .venv/bin/python benchmarks/main_job.py --commit                 # every missing variant, 10 CPU-min each
  .venv/bin/python benchmarks/main_job.py --list
  .venv/bin/python benchmarks/main_job.py --only=default_s0 --cpu_minutes=0.5 --results_dir=/tmp/mj

The main job (`scripts/run_main.sh`: sparse AND-OR, `small` preset, Fashion-MNIST) trains
for 5 wall-minutes, i.e. about 10 CPU-minutes of a 2-core machine; each variant here gets that CPU
budget (`--cpu_minutes`, default 10), so runs on a shared machine still get the same work. The
issue (#18) asks that the samples at the end be free of stripes and mostly recognisable garments;
the longer runs (`andor_long`) become so at about 2,000 steps, and the main job reaches a few
hundred, so the variants trade per-step cost or step size for steps:
- default: the main job until 2026-12-07 (the `small` preset then: batch 64, 10 Langevin steps,
  learning rates 5e-4 / 2e-4; BASE pins it, and every variant below changes it);
- batch32: `--batch_size=32` (twice the steps of half the size);
- langevin5: 5 Langevin steps per batch instead of 10;
- narrow: convs_per_block 1 (one 3x3 conv per upsampling block instead of two);
- lr_x2: generator and critic learning rates doubled (1e-3 / 4e-4);
- lr_x2_batch32: both;
- fast: lr_x2, batch 32 and 5 Langevin steps (the `small` preset, so the main job, since 2026-12-07);
- fast_l3: the same with 3 Langevin steps;
- fast_b16 / fast_l3_b16: fast / fast_l3 at batch 16 (twice the steps again);
- fast_lr4: fast with the learning rates x4 instead of x2;
- fast_bf16: fast under `--mixed_precision=bf16` (1.15x the images per CPU-second on the Xeon);
- fast_bilinear: fast with bilinear instead of nearest upsampling (the stripes' other suspect).
Results of one machine go in one results directory (`--results_dir`): steps per CPU-second differ
up to 2.9x between this project's machines, so a table never mixes them (`main_job/` holds the AVX-512
Xeon's runs, `main_job/epyc_avx2/` the AVX2-only EPYC's, `main_job/epyc_zen4/` the AVX-512 EPYC's).
Metrics: fd/kid/is on 5,000 samples (the project's Fashion-MNIST classifier), test reconstruction
MSE on 500 test images, stripe_ratio / hf_ratio (1 = like the data), steps reached.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from budget import Variant, main  # noqa: E402
from common import ANDOR_SMALL_UNTIL_2026_12_07, andor_small_until_2026_12_07_flags  # noqa: E402

# The `small` recipe until 2026-12-07, pinned so that the variants keep their meaning (benchmarks/common.py).
BASE = (["--model=andor", "--dataset=fashion_mnist", "--preset=small"]
        + andor_small_until_2026_12_07_flags())


def _lr(scale: int) -> list:
    """The generator and critic learning rates of the pinned recipe (5e-4 / 2e-4) times `scale`."""
    return [f"--set={k}={ANDOR_SMALL_UNTIL_2026_12_07[k] * scale:g}" for k in ("andor.g_lr", "andor.c_lr")]


LR_X2 = _lr(2)


def _fast(batch_size: int, langevin_steps: int, lr_scale: int = 2) -> list:
    """Scaled learning rates at a smaller batch and fewer Langevin steps per batch."""
    return _lr(lr_scale) + [f"--batch_size={batch_size}", f"--set=andor.langevin_steps={langevin_steps}"]


GROUPS = {
    "default": [],
    "batch32": ["--batch_size=32"],
    "langevin5": ["--set=andor.langevin_steps=5"],
    "narrow": ["--set=andor.convs_per_block=1"],
    "lr_x2": LR_X2,
    "lr_x2_batch32": LR_X2 + ["--batch_size=32"],
    "fast": _fast(32, 5),
    "fast_l3": _fast(32, 3),
    "fast_b16": _fast(16, 5),
    "fast_l3_b16": _fast(16, 3),
    "fast_lr4": _fast(32, 5, lr_scale=4),
    "fast_bf16": _fast(32, 5) + ["--mixed_precision=bf16"],
    "fast_bilinear": _fast(32, 5) + ["--set=andor.upsample=bilinear"],
}
ORDER = [("default", 0), ("narrow", 0), ("lr_x2", 0), ("batch32", 0), ("fast", 0), ("lr_x2_batch32", 0),
         ("langevin5", 0), ("fast_l3", 0), ("fast_b16", 0), ("fast_l3_b16", 0),
         ("default", 1), ("fast", 1), ("fast_lr4", 0), ("fast_bf16", 0), ("fast_bilinear", 0)]
VARIANTS = [Variant(g, s, BASE + GROUPS[g]) for g, s in ORDER]
COLUMNS = ["fd_fmnist", "kid_fmnist", "is_fmnist", "mse", "stripe_ratio", "hf_ratio"]
# 5 wall-minutes of both cores of a 2-core machine.
CPU_MINUTES = 10.0
EVAL = ["--num_samples=5000", "--num_reconstructions=500", "--metrics=fd,kid,is,mse,artefacts"]
NOTES = ("The README's main job (sparse AND-OR, Fashion-MNIST 32x32x1; `default` is the `small` preset "
         "until 2026-12-07, batch 64, and `fast` the one since, batch 32) at its budget: 10 CPU-minutes "
         "(5 wall-minutes of both cores of a 2-core machine) per variant. fd/kid/is: the project's "
         "Fashion-MNIST classifier features, 5,000 samples vs the test split; mse: [0, 1]-scale "
         "reconstruction error of 500 test images. "
         "For reference, benchmarks/results/andor_long: fd_fmnist 19.4 at 2,144 steps.")

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], "main_job", VARIANTS, COLUMNS, EVAL, baseline="default", notes=NOTES,
                  cpu_minutes=CPU_MINUTES))

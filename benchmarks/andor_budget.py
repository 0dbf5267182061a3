"""AND-OR quality per CPU-hour: equal CPU-time budgets, side by side, resumable per variant.

  .venv/bin/python benchmarks/andor_budget.py --commit            # every missing variant, 60 CPU-min each
  .venv/bin/python benchmarks/andor_budget.py --list              # what is done
  .venv/bin/python benchmarks/andor_budget.py --only=sparse_s0 --cpu_minutes=2 --results_dir=/tmp/b

Variants (Fashion-MNIST 32x32, the `small` preset until 2026-12-07, batch 64, pinned in BASE):
- sparse: the sparse AND-OR model with its energy-based critic (the main job's model);
- dense: the same with sparsity off (the paper's baseline);
- abp: sparse, plain alternating back-propagation (no critic);
- bf16: sparse under --mixed_precision=bf16;
- paper_balance: sparse with the paper's objective (eq. 15 summed over pixels + eq. 22, weight 1);
- critic_x5: sparse with a 5x stronger critic term (andor.critic_weight 0.1 instead of 0.02);
- fast: sparse with learning rates x2, batch 32 and 5 Langevin steps (the best 5-minute recipe of
  benchmarks/main_job.py, and the `small` preset since 2026-12-07), to see whether it holds at 60
  CPU-minutes;
- fast_bilinear: fast with bilinear upsampling (no blocky grid marks in the main job's 5 minutes);
- wgan_gp: the same dense generator and critic trained as a WGAN-GP (no reconstruction term,
  no Langevin inference; 3 critic steps per generator step; generator lr 2e-4), the
  yardstick a user would pick instead. Its reconstructions are Langevin latent optimisation.
Metrics: fd/kid/is in the project's Fashion-MNIST classifier space on 10,000 samples, test
reconstruction MSE ([0, 1] scale) on 1,000 test images, steps and images/s reached; stripe_ratio / hf_ratio (tf_sparse_gen.metrics.artefacts: 1 = like the data; above 1 =
stripes / specks). `_raw` columns: the same run evaluated with its raw (not averaged) generator weights.
Steps per CPU-second differ up to 2.9x between this project's machines, so from 2026-12-07 on one
machine's runs go in a directory of their own (`--results_dir=benchmarks/results/andor_budget/epyc_zen4`
for the AVX-512 EPYC, `.../andor_budget/xeon` for the AVX-512 Xeon with AMX), where seeds restart at 0
and the table compares like with like; the top directory keeps the earlier runs of mixed machines.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from budget import Variant, main  # noqa: E402
from common import andor_small_until_2026_12_07_flags  # noqa: E402
from main_job import GROUPS as MAIN_JOB_GROUPS  # noqa: E402

# Every variant keeps a generator EMA (decay 0.999) and is evaluated with it and, for
# fd/kid/is, with its raw weights too (`<metric>_raw`): the same runs measure what EMA gives.
# The `small` recipe until 2026-12-07, pinned so that the variants keep their meaning (benchmarks/common.py).
BASE = (["--model=andor", "--dataset=fashion_mnist", "--preset=small", "--set=train.ema_decay=0.999"]
        + andor_small_until_2026_12_07_flags())
GROUPS = {
    "sparse": [],
    "dense": ["--sparsity=off"],
    "abp": ["--ebm=off"],
    "bf16": ["--mixed_precision=bf16"],
    # The paper's objective: eq. 15 summed over pixels plus eq. 22 at weight 1 (a 20x weaker critic).
    "paper_balance": ["--set=andor.recon_reduction=sum", "--set=andor.critic_weight=null"],
    "critic_x5": ["--set=andor.critic_weight=0.1"],
    # The cheaper-step recipe of benchmarks/main_job.py (one definition, so the two stay the same).
    "fast": MAIN_JOB_GROUPS["fast"],
    "fast_bilinear": MAIN_JOB_GROUPS["fast_bilinear"],
    "wgan_gp": ["--sparsity=off", "--set=andor.abp=false", "--set=andor.n_critic=3",
                "--set=andor.critic_weight=1.0", "--set=andor.g_lr=0.0002"],
}
# Run order: one seed of every comparison first, then the seed spread of sparse vs dense, then a
# second WGAN-GP seed (seed 0 of wgan_gp, sparse and dense ran on an earlier, slower revision of the
# training step: see each record's code_commit and images_per_cpu_sec). sparse seed 3 runs beside
# bf16 seed 0 on the same (bf16-capable) machine, so that the two compare.
ORDER = [("wgan_gp", 0), ("abp", 0), ("sparse", 0), ("dense", 0), ("paper_balance", 0), ("sparse", 1),
         ("dense", 1), ("sparse", 2), ("dense", 2), ("wgan_gp", 1), ("bf16", 0), ("sparse", 3), ("critic_x5", 0),
         ("sparse", 4), ("fast", 0), ("fast", 1), ("wgan_gp", 2), ("fast", 2),
         ("fast_bilinear", 0)]
# Seeds 3 and 4 exist to sit beside one-seed variants (bf16_s0; paper_balance_s0 and fast_s0) on the same
# machine: steps per CPU-second differ up to 2.9x between this project's machines (sparse_s3 against s4).
VARIANTS = [Variant(g, s, BASE + GROUPS[g]) for g, s in ORDER]
COLUMNS = ["fd_fmnist", "kid_fmnist", "is_fmnist", "mse", "stripe_ratio", "hf_ratio", "fd_fmnist_raw",
           "is_fmnist_raw", "stripe_ratio_raw", "hf_ratio_raw"]
EVAL = ["--num_samples=10000", "--num_reconstructions=1000", "--metrics=fd,kid,is,mse,sparsity,artefacts"]
RAW_EVAL = ["--num_samples=10000", "--metrics=fd,kid,is,artefacts"]
NOTES = ("Fashion-MNIST 32x32x1, `small` preset, batch 64; every variant trained for the same CPU-time "
         "budget (process CPU time of both cores) on a 2-core CPU machine. fd/kid/is: the project's "
         "Fashion-MNIST classifier features, 10,000 samples vs the test split (not Inception FID); "
         "mse: [0, 1]-scale per-pixel reconstruction error of 1,000 test images (100 Langevin steps from "
         "z = 0). mean ± std over seeds (sample std).")

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], "andor_budget", VARIANTS, COLUMNS, EVAL, baseline="wgan_gp", notes=NOTES,
                  raw_eval_flags=RAW_EVAL))

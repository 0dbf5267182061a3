"""Evaluation metrics: FD / FID, KID, Inception Score, NCC interpretability.

* `stats`: the math (NumPy/SciPy, float64) and streaming accumulators.
* `feature_nets`: the networks that turn images into features / class probabilities
  ("fmnist": in-domain classifier, committed weights; "inception": Keras InceptionV3).
* `ncc`: normalised cross-correlation template matching (AND-OR paper, Table 4).

TensorFlow is imported only when a feature net is built.
"""

from tf_sparse_gen.metrics.feature_nets import (FEATURE_NETS, CollectedStats, FeatureNet,
                                                FeatureNetWeightsError, build_fmnist_classifier,
                                                distribution_metrics, load_feature_net)
from tf_sparse_gen.metrics.ncc import NCCMatch, best_ncc, interpretability_score, match_templates, ncc_map
from tf_sparse_gen.metrics.stats import (FeatureStats, InceptionScoreStats, frechet_distance,
                                         frechet_distance_from_stats, inception_score,
                                         kernel_inception_distance, mmd2_unbiased)

__all__ = [
    "FEATURE_NETS", "CollectedStats", "FeatureNet", "FeatureNetWeightsError", "build_fmnist_classifier",
    "distribution_metrics", "load_feature_net", "NCCMatch", "best_ncc", "interpretability_score",
    "match_templates", "ncc_map", "FeatureStats", "InceptionScoreStats", "frechet_distance",
    "frechet_distance_from_stats", "inception_score", "kernel_inception_distance", "mmd2_unbiased",
]

"""Pure tensor maths (no ``nn.Module``, no hooks): CAM channel weights and maps, normalisation, metric formulas.

CAM maths: `cam`, `normalize`. Metric
formulas: `adcc` (ADCC family),
`localization` (pointing games, IoU) and
`perturbation` (insertion/deletion curves and their AUC per batch), `relevance` (Quantus's localization family),
`road` (ROAD's imputation) and `randomization` (the similarity measures of the randomisation checks). The CAM
variants of the peers: `cam_variants`, `fullgrad`, `score_variants` (SS-CAM, IS-CAM) and `attention` (LeGrad). The
output
kind (softmax, sigmoid per class, one binary logit): [`task`][lightning_cam.targets.task]. Strategies found
by clustering maps (SpRAy): [`spray`][lightning_cam.functional.spray]. Each
formula module has the same name as its metric-class module in `lightning_cam.metrics`.
"""

from lightning_cam.functional.adcc import (
    adcc,
    average_drop,
    coherency,
    complexity,
    increase_in_confidence,
    pearson,
)
from lightning_cam.functional.attention import legrad_relevance
from lightning_cam.functional.cam import (
    eigencam_map,
    fakecam_map,
    first_component_projection,
    gradcam_weights,
    gradcampp_weights,
    hirescam_map,
    layercam_map,
    orient_like,
    scorecam_masks,
    scorecam_weights,
    weighted_sum,
    xgradcam_weights,
)
from lightning_cam.functional.cam_variants import (
    ablation_weights,
    eigengradcam_map,
    elementwise_map,
    fem_weights,
    finer_comparisons,
    finer_score,
    kpca_map,
    random_weights,
    segeigencam_map,
    shapley_gradient,
)
from lightning_cam.functional.fullgrad import fullgrad_map
from lightning_cam.functional.localization import boxes_to_masks, energy_pointing_game, iou, pointing_game
from lightning_cam.functional.normalize import minmax_normalize, postprocess_maps, upsample_maps
from lightning_cam.functional.pairs import predicted_positives, select_pairs
from lightning_cam.functional.perturbation import (
    curve_auc,
    insertion_deletion,
    make_baseline,
    perturb,
    perturbation_counts,
    rank_positions,
)
from lightning_cam.functional.probability import Probability, sigmoid_probability, softmax_probability
from lightning_cam.functional.randomization import spearman, ssim_1d
from lightning_cam.functional.relevance import (
    attribution_localisation,
    localization_auc,
    relevance_rank_accuracy,
    top_k_intersection,
)
from lightning_cam.functional.score_variants import channel_masks

__all__ = [
    "Probability",
    "ablation_weights",
    "adcc",
    "attribution_localisation",
    "average_drop",
    "boxes_to_masks",
    "channel_masks",
    "coherency",
    "complexity",
    "curve_auc",
    "eigencam_map",
    "eigengradcam_map",
    "elementwise_map",
    "energy_pointing_game",
    "fakecam_map",
    "fem_weights",
    "finer_comparisons",
    "finer_score",
    "first_component_projection",
    "fullgrad_map",
    "gradcam_weights",
    "gradcampp_weights",
    "hirescam_map",
    "increase_in_confidence",
    "insertion_deletion",
    "iou",
    "kpca_map",
    "layercam_map",
    "legrad_relevance",
    "localization_auc",
    "make_baseline",
    "minmax_normalize",
    "orient_like",
    "pearson",
    "perturb",
    "perturbation_counts",
    "pointing_game",
    "postprocess_maps",
    "predicted_positives",
    "random_weights",
    "rank_positions",
    "relevance_rank_accuracy",
    "scorecam_masks",
    "scorecam_weights",
    "segeigencam_map",
    "select_pairs",
    "shapley_gradient",
    "sigmoid_probability",
    "softmax_probability",
    "spearman",
    "ssim_1d",
    "top_k_intersection",
    "upsample_maps",
    "weighted_sum",
    "xgradcam_weights",
]

"""Pure tensor maths (no ``nn.Module``, no hooks): CAM channel weights and maps, normalisation, metric formulas.

The CAM maths lives in :mod:`lightning_cam.functional.cam` and :mod:`lightning_cam.functional.normalize`;
metric formulas live in their own modules of this package.
"""

from lightning_cam.functional.cam import (
    cam_weights,
    eigencam_map,
    fakecam_map,
    gradcam_weights,
    gradcampp_weights,
    hirescam_map,
    layercam_map,
    scorecam_masks,
    scorecam_weights,
    weighted_sum,
    xgradcam_weights,
)
from lightning_cam.functional.normalize import minmax_normalize, postprocess_maps, upsample_maps

__all__ = [
    "cam_weights",
    "eigencam_map",
    "fakecam_map",
    "gradcam_weights",
    "gradcampp_weights",
    "hirescam_map",
    "layercam_map",
    "minmax_normalize",
    "postprocess_maps",
    "scorecam_masks",
    "scorecam_weights",
    "upsample_maps",
    "weighted_sum",
    "xgradcam_weights",
]

"""views/summary.py: every key on its chart (placed by the view that logs it), and the summary figure."""

from __future__ import annotations

from lightning_cam.callbacks.views.summary import Curves, chart_of, summary_figure


def test_every_key_on_its_chart_and_the_figure() -> None:
    curves = Curves()
    keys = ("cam/gradcam/adcc", "cam/gradcam/drift", "cam/agreement/a__b", "cam/gradcam/per_class/iou/circle")
    for key in keys:
        curves.add(key, 0, 0.5)
    assert [chart_of(k)[1] for k in keys] == ["adcc", "drift", "agreement", "iou per class (gradcam)"]  # type: ignore[index]
    assert chart_of("val_acc") is None
    image = summary_figure(curves)
    assert image is not None and image.shape[0] == 3 and image.shape[2] == 3 * 400  # 4 charts, 3 per row

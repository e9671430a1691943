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


def test_the_figure_is_drawn_where_a_logger_draws_no_charts_or_when_asked() -> None:
    import pytest

    from lightning_cam.callbacks.faults import Faults
    from lightning_cam.callbacks.sinks import PNGDirectorySink, TensorBoardSink
    from lightning_cam.callbacks.views.base import ViewContext
    from lightning_cam.callbacks.views.summary import SummaryView
    from lightning_cam.callbacks.writer import BackgroundWriter, QueuedSink

    ctx = ViewContext(("gradcam",), ("adcc",), 32, "jet", 0.5, Faults("raise"))
    charts, files = TensorBoardSink(None), PNGDirectorySink("unused")
    queued = QueuedSink(files, BackgroundWriter())  # a queued sink says what the sink behind it does
    assert not SummaryView(ctx).draws_figure([charts]) and not SummaryView(ctx).draws_figure([])
    assert SummaryView(ctx).draws_figure([charts, files]) and SummaryView(ctx).draws_figure([charts, queued])
    assert SummaryView(ctx, figure=True).draws_figure([charts])
    assert not SummaryView(ctx, figure=False).draws_figure([files])
    with pytest.raises(ValueError, match="`figure` must be true, false or null"):
        SummaryView(ctx, figure="yes")  # type: ignore[arg-type]

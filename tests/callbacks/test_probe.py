"""The checkpointed state: probe capture, freezing, history and their state dicts."""

from __future__ import annotations

import torch

from lightning_cam.callbacks.probe import History, ProbeSet


def test_probe_captures_up_to_capacity_across_batches_and_freezes_once() -> None:
    probe = ProbeSet(capacity=5)
    probe.add(torch.rand(3, 3, 8, 8), torch.tensor([0, 1, 2]))
    probe.add(torch.rand(3, 3, 8, 8), torch.tensor([3, 4, 5]))
    assert probe.size == 5 and probe.wanted == 0 and probe.labels.tolist() == [0, 1, 2, 3, 4]
    assert probe.images.dtype == torch.float32 and probe.images.device.type == "cpu"
    assert probe.freeze() is True and probe.freeze() is False


def test_probe_of_another_size_stops_capture_and_keeps_the_first_images() -> None:
    probe = ProbeSet(capacity=4)
    probe.add(torch.rand(2, 3, 8, 8), None)
    probe.add(torch.rand(2, 3, 16, 16), None)
    assert probe.size == 2 and probe.frozen and probe.labels is None
    assert ProbeSet(capacity=4).freeze() is False  # nothing captured: nothing to freeze


def test_state_dicts_round_trip() -> None:
    probe = ProbeSet(capacity=2)
    probe.add(torch.rand(2, 3, 8, 8), torch.tensor([1, 0]))
    history = History()
    history.add("gradcam", 3, torch.rand(2, 8, 8), torch.tensor([1, 1]))
    probe2, history2 = ProbeSet(capacity=2), History()
    probe2.load_state_dict(probe.state_dict())
    history2.load_state_dict(history.state_dict())
    assert torch.equal(probe2.images, probe.images) and probe2.frozen is probe.frozen is False
    old = ProbeSet(capacity=2)
    old.load_state_dict({"images": probe.images, "labels": None})  # a state without the flag: images mean frozen
    assert old.frozen and old.wanted == 0
    assert history2.epochs("gradcam") == [3] and torch.equal(history2.maps["gradcam"][3], history.maps["gradcam"][3])


def test_history_quantises_and_bounds_the_rows() -> None:
    history = History(max_size=4)
    history.add("m", 0, torch.full((1, 8, 8), 0.5), torch.zeros(1))
    assert history.maps["m"][0].shape == (1, 4, 4) and int(history.maps["m"][0][0, 0, 0]) == 128
    for e in range(1, 10):
        history.add("m", e, torch.rand(1, 4, 4), torch.zeros(1))
    assert history.series("m", max_rows=3)[0] == [0, 4, 9]  # type: ignore[index]
    assert history.series("other") is None

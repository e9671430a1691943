"""callbacks/writer.py: images written off the calling thread (started in order, two at a time), every failure
counted, nothing left running, nothing queued under on_error="raise"."""

from __future__ import annotations

import pickle
import threading
from pathlib import Path
from typing import Any

import torch

from lightning_cam.callbacks.faults import Faults
from lightning_cam.callbacks.sinks import ImageSink, PNGDirectorySink, WandbSink
from lightning_cam.callbacks.writer import BackgroundWriter, QueuedSink


class Recording(ImageSink):
    background = True

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, str]] = []
        self.gate = threading.Event()
        self.gate.set()

    def log_image(self, tag: str, image: torch.Tensor, step: int, caption: str | None = None) -> None:
        self.gate.wait()
        self.calls.append((tag, step, threading.current_thread().name))
        if tag == "bad":
            raise OSError("disk full")

    def save(self, image: torch.Tensor, filename: str) -> str | None:
        self.calls.append((filename, -1, threading.current_thread().name))
        return filename


def test_writes_run_on_the_workers_and_failures_are_counted_at_settle() -> None:
    writer, sink = BackgroundWriter(), Recording()
    (queued,) = writer.wrap([sink], "warn")
    assert isinstance(queued, QueuedSink)
    sink.gate.clear()  # the worker waits: the calls return before any write happened
    for step, tag in enumerate(["a", "bad", "c"]):
        queued.log_image(tag, torch.rand(3, 4, 4), step)
    assert queued.save(torch.rand(3, 4, 4), "final.png") is None
    assert sink.calls == []
    sink.gate.set()
    faults = Faults("warn")
    writer.settle(faults)
    # started in order, WORKERS at a time: each done once, whatever order they finish in
    assert sorted(c[:2] for c in sink.calls) == sorted([("a", 0), ("bad", 1), ("c", 2), ("final.png", -1)])
    assert {c[2] for c in sink.calls} == {"lightning_cam-images"}
    assert faults.counts["logger"] == 1 and faults.first == "a logger failed to write bad at step 1: OSError: disk full"
    writer.close()
    assert not any(t.name == "lightning_cam-images" and t.is_alive() for t in threading.enumerate())


def test_the_written_image_is_a_copy_taken_at_the_call() -> None:
    writer, seen = BackgroundWriter(), []

    class Keep(Recording):
        def log_image(self, tag: str, image: torch.Tensor, step: int, caption: str | None = None) -> None:
            seen.append(image.clone())

    (queued,) = writer.wrap([Keep()], "warn")
    with writer.holding():
        image = torch.zeros(3, 2, 2)
        queued.log_image("t", image, 0)
        image += 1  # the caller reuses its tensor before the write
    writer.settle(Faults("warn"))
    assert torch.equal(seen[0], torch.zeros(3, 2, 2))
    writer.close()


def test_holding_starts_the_writes_only_at_its_end() -> None:
    writer, sink = BackgroundWriter(), Recording()
    (queued,) = writer.wrap([sink], "warn")
    with writer.holding():
        queued.log_image("a", torch.rand(3, 4, 4), 0)
        for thread in writer._threads:
            thread.join(timeout=0.1)
        assert sink.calls == []  # held: not written, however long we wait
    writer.settle(Faults("warn"))
    assert [c[0] for c in sink.calls] == ["a"]
    writer.close()


def test_a_hanging_write_is_a_counted_fault_not_a_hang() -> None:
    writer, sink = BackgroundWriter(), Recording()
    (queued,) = writer.wrap([sink], "warn")
    sink.gate.clear()
    queued.log_image("stuck", torch.rand(3, 4, 4), 5)
    faults = Faults("warn")
    writer.settle(faults, timeout=0.05)
    assert faults.counts["logger"] == 1 and "stuck at step 5: still running after 0s" in str(faults.first)
    sink.gate.set()
    writer.close()


def test_raise_policy_and_step_ordered_loggers_stay_on_the_training_thread(tmp_path: Path) -> None:
    writer = BackgroundWriter()
    png = PNGDirectorySink(str(tmp_path))
    assert writer.wrap([png], "raise") == [png]  # a failure must raise where it happens
    wandb = WandbSink(logger=None)
    (kept,) = writer.wrap([wandb], "warn")
    assert kept is wandb  # W&B drops an image logged at a step older than its scalars'


def test_a_pickled_writer_has_no_thread(tmp_path: Path) -> None:
    writer = BackgroundWriter()
    (queued,) = writer.wrap([PNGDirectorySink(str(tmp_path))], "warn")
    queued.log_image("cam/gradcam/grid", torch.rand(3, 4, 4), 0)
    clone: Any = pickle.loads(pickle.dumps(writer))  # ddp_spawn pickles the callback
    assert clone._threads == [] and clone._pending == []
    writer.settle(Faults("raise"))
    assert [p.name for p in tmp_path.iterdir()] == ["cam_gradcam_grid_step0.png"]
    writer.close()


def test_a_queued_png_directory_keeps_an_end_of_fit_image_once(tmp_path: Path) -> None:
    from lightning_cam.callbacks.images import publish_final

    writer = BackgroundWriter()
    (queued,) = writer.wrap([PNGDirectorySink(str(tmp_path))], "warn")
    publish_final(Faults("raise"), [queued], "cam/summary", torch.rand(3, 4, 4), 3, "cam_summary.png")
    writer.settle(Faults("raise"))
    assert [p.name for p in tmp_path.iterdir()] == ["cam_summary.png"]  # not also cam_summary_step3.png
    writer.close()


def test_the_writers_cpu_seconds_count_each_write_on_its_thread(tmp_path: Path) -> None:
    """`BackgroundWriter.cpu_seconds` (the callback's `background_seconds`) sums the CPU time of the writes, on
    the worker threads: a thread that only waits adds nothing; a failed write is counted too."""
    writer = BackgroundWriter()
    assert writer.cpu_seconds == 0.0
    (sink,) = writer.wrap([PNGDirectorySink(str(tmp_path))], "warn")
    sink.log_image("cam/gradcam/grid", torch.rand(3, 256, 256), 0)
    writer.settle(Faults("warn"))
    one = writer.cpu_seconds
    assert one > 0.0 and (tmp_path / "cam_gradcam_grid_step0.png").is_file()

    def busy() -> None:
        sum(i * i for i in range(200_000))
        raise OSError("disk full")

    writer.submit("a failing write", busy)
    faults = Faults("warn")
    writer.finish(faults, "at the end")
    assert faults.counts["logger"] == 1 and writer.cpu_seconds > one

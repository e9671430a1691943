"""``BackgroundWriter``: the callback's images encoded and written off the training thread.

Encoding a grid as PNG takes tens of milliseconds on a CPU (about 60 ms for a 0.3-megapixel image); a validation
run logs a few images per method, so on the training thread this was the largest part of the callback's work
beyond its CAM passes. The sinks whose logger takes images at any step (`ImageSink.background`: TensorBoard,
MLflow, PNG files) are wrapped in a `QueuedSink`: the call returns at once and `WORKERS` worker threads (daemons, so
they never hold up the interpreter's exit) write the images in the order they were sent, two at a time (the PNG
encoder releases the GIL: the last run's images, which nothing else overlaps at the end of ``fit``, are written
in about half the time on two cores). W&B stays on the training thread: it drops an image logged at a step older
than its scalars'.

Faults stay counted and reported, one run later: `BackgroundWriter.settle` waits for the writes sent so far and
records each failure as a ``logger`` fault (its text names the tag and step). The callback settles at the start of
each run's end (the previous run's writes, long done by then: the wait is nothing) and at ``teardown`` (the last
run's and the end of ``fit``'s writes, with a report of their own), so a write's failure is in the report of the
next CAM run or in the report at the end of the stage, never lost, and ``fit``/``validate``/``test`` return
with every image written. With ``on_error="raise"`` nothing is queued (a failure must raise where it happens).

Nothing here draws random numbers or touches the model.

Examples:
    >>> import torch
    >>> from lightning_cam.callbacks.faults import Faults
    >>> from lightning_cam.callbacks.sinks import PNGDirectorySink
    >>> class Broken(PNGDirectorySink):
    ...     def log_image(self, tag, image, step, caption=None):
    ...         raise OSError("disk full")
    >>> writer = BackgroundWriter()
    >>> (sink,) = writer.wrap([Broken("unused")], "warn")
    >>> sink.log_image("cam/gradcam/grid", torch.rand(3, 8, 8), 3)  # returns at once
    >>> faults = Faults("warn")
    >>> writer.settle(faults)
    >>> faults.counts["logger"], faults.first
    (1, 'a logger failed to write cam/gradcam/grid at step 3: OSError: disk full')
    >>> writer.close()
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, wait
from typing import Any

from torch import Tensor

from lightning_cam.callbacks.faults import Faults
from lightning_cam.callbacks.sinks import ImageSink

__all__ = ["EXCEPTION_TIMEOUT", "SETTLE_TIMEOUT", "WORKERS", "BackgroundWriter", "QueuedSink"]

#: seconds the writes still queued when a run stops on an exception get (`CAMCallback.on_exception`)
EXCEPTION_TIMEOUT = 30.0
#: worker threads writing at once (each image is one write; the loggers take them from any thread)
WORKERS = 2

#: seconds `BackgroundWriter.settle` waits for the writes still running before it counts them as failed (a
#: logger that hangs never hangs the run)
SETTLE_TIMEOUT = 300.0

_Job = tuple[Future[Any], Callable[[], Any]]


class BackgroundWriter:
    """`WORKERS` worker threads that run the queued sinks' writes, started in order (see the module docstring)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] | None = None
        self._threads: list[threading.Thread] = []
        self._pending: list[tuple[str, Future[Any]]] = []
        self._held: list[_Job] | None = None
        self._spent: list[float] = []  # CPU seconds of each finished write, appended by the worker threads

    @property
    def cpu_seconds(self) -> float:
        """The CPU seconds the worker threads spent writing (encoding and the loggers' own calls), over this
        writer's life: the callback's work that runs beside the training rather than in its hooks."""
        return sum(self._spent)

    def __getstate__(self) -> dict[str, Any]:  # pickled with the callback (ddp_spawn): no thread, no queue
        return {"_jobs": None, "_threads": [], "_pending": [], "_held": None, "_spent": []}

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        """The writes submitted inside start only when it ends: the encoding never competes for the CPU with the
        callback's own work of the run's end (on a machine with few cores the clustering's threads waited for
        it); it overlaps what comes next, the training."""
        self._held = []
        try:
            yield
        finally:
            held, self._held = self._held, None
            for job in held:
                self._put(job)

    def wrap(self, sinks: Sequence[ImageSink], on_error: str) -> list[ImageSink]:
        """``sinks`` with each background-safe one queued on this writer (none under ``on_error="raise"``)."""
        if on_error == "raise":
            return list(sinks)
        return [QueuedSink(sink, self) if sink.background else sink for sink in sinks]

    def submit(self, what: str, job: Callable[[], Any]) -> None:
        """Run ``job`` on a worker thread, started after the jobs submitted before it; ``what`` names its failure."""
        if not self._threads or not all(t.is_alive() for t in self._threads):  # at the first write, on rank zero
            self.close()
            jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
            self._jobs = jobs
            self._threads = [threading.Thread(target=_work, args=(jobs, self._spent), name="lightning_cam-images",
                                              daemon=True)
                             for _ in range(WORKERS)]
            for thread in self._threads:
                thread.start()
        future: Future[Any] = Future()
        self._pending.append((what, future))
        if self._held is not None:
            self._held.append((future, job))
        else:
            self._put((future, job))

    def _put(self, job: _Job) -> None:
        assert self._jobs is not None
        self._jobs.put(job)

    def settle(self, faults: Faults, timeout: float = SETTLE_TIMEOUT) -> None:
        """Wait for every write submitted so far (at most ``timeout`` seconds) and record each failure, and each
        write still running then, as a ``logger`` fault of ``faults``."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        wait([f for _, f in pending], timeout=timeout)
        for what, future in pending:
            if not future.done():
                faults.record("logger", f"{what}: still running after {timeout:.0f}s (the logger hangs?)")
                continue
            err = future.exception()
            if err is not None:
                faults.record("logger", f"{what}: {type(err).__name__}: {err}", err)

    def finish(self, faults: Faults, during: str, timeout: float = SETTLE_TIMEOUT) -> None:
        """The end of a stage: wait for every write (at most ``timeout`` seconds), warn once about their faults
        (``during`` says what they were), and stop the worker threads."""
        with faults.reporting(during):
            self.settle(faults, timeout)
        self.close(timeout)

    def close(self, timeout: float = SETTLE_TIMEOUT) -> None:
        """Stop the worker threads once the writes queued before are done (`settle` first to count them)."""
        if self._jobs is not None:
            for _ in self._threads:
                self._jobs.put(None)
            for thread in self._threads:
                thread.join(timeout=timeout)
        self._jobs, self._threads = None, []


def _work(jobs: queue.SimpleQueue[_Job | None], spent: list[float]) -> None:
    """A worker: each job it takes in turn, its outcome in its future, until a ``None`` that `close` sends; the
    CPU seconds of each job appended to ``spent`` (``list.append`` is atomic)."""
    while True:
        item = jobs.get()
        if item is None:
            return
        future, job = item
        if future.set_running_or_notify_cancel():
            start = time.thread_time()
            try:
                result = job()
            except BaseException as err:  # noqa: BLE001 - every failure is a counted fault, via settle
                spent.append(time.thread_time() - start)  # before the future: whoever waits reads it counted
                future.set_exception(err)
            else:
                spent.append(time.thread_time() - start)
                future.set_result(result)
        del item, future, job  # the written image is not kept alive while the worker waits for the next one


class QueuedSink(ImageSink):
    """``sink``'s writes run on ``writer``'s thread: `log_image` and `save` return at once (`save` returns
    ``None``: the file's path is known only once written)."""

    background = False  # already queued

    def __init__(self, sink: ImageSink, writer: BackgroundWriter) -> None:
        self.sink, self.writer = sink, writer
        self.shows_images, self.draws_charts = sink.shows_images, sink.draws_charts

    def log_image(self, tag: str, image: Tensor, step: int, caption: str | None = None) -> None:
        frozen = image.detach().cpu().clone()  # the caller may reuse its tensor: the write reads this copy
        self.writer.submit(f"a logger failed to write {tag} at step {step}",
                           lambda: self.sink.log_image(tag, frozen, step, caption))

    def save(self, image: Tensor, filename: str) -> str | None:
        frozen = image.detach().cpu().clone()
        self.writer.submit(f"cannot save {filename}", lambda: self.sink.save(frozen, filename))
        return None

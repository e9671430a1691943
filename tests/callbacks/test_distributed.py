"""Sharded strategies and compiled modules: which ranks compute, the lock-step protocol, real runs.

The real runs go through ``tests/callbacks/sharded_worker.py`` in a subprocess of its own session, killed as a
group on timeout (Lightning traps SIGTERM), so a hang fails the test instead of blocking the suite.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from pytorch_lightning.strategies import DDPStrategy, DeepSpeedStrategy, FSDPStrategy, ModelParallelStrategy
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import Tensor, nn

from lightning_cam.callbacks.distributed import ShardedWork, params_sharded
from lightning_cam.methods import GradCAM, ScoreCAM
from lightning_cam.methods.layers import resolve_layer
from lightning_cam.utilities.compiled import compiled_aliases, eager_compiled, strip_compiled
from lightning_cam.utilities.lockstep import LockStep, StepFailed, chunk_plan

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("sharded_worker.py")
METRICS = ("average_drop", "increase", "coherency", "complexity", "adcc", "insertion")


# ----------------------------------------------------------------------------- which strategies are sharded
def _deepspeed(stage: int | None) -> DeepSpeedStrategy:
    strategy = DeepSpeedStrategy.__new__(DeepSpeedStrategy)  # the real constructor needs the deepspeed package
    strategy.config = {} if stage is None else {"zero_optimization": {"stage": stage}}
    return strategy


def test_sharded_strategies_take_the_lock_step_path() -> None:
    assert params_sharded(ModelParallelStrategy())
    assert params_sharded(FSDPStrategy())
    assert params_sharded(_deepspeed(3))
    assert not params_sharded(_deepspeed(2)) and not params_sharded(_deepspeed(None))
    assert not params_sharded(DDPStrategy()) and not params_sharded("ddp") and not params_sharded(None)


def test_sharded_strategies_of_the_lightning_package_too() -> None:
    strategies = pytest.importorskip("lightning.pytorch.strategies")
    assert params_sharded(strategies.ModelParallelStrategy()) and params_sharded(strategies.FSDPStrategy())
    ds = strategies.DeepSpeedStrategy.__new__(strategies.DeepSpeedStrategy)
    ds.config = {"zero_optimization": {"stage": 3}}
    assert params_sharded(ds) and not params_sharded(strategies.DDPStrategy())


# ----------------------------------------------------------------------------- the protocol, two ranks as threads
class _Ranks:
    """``all_reduce(MAX)`` between threads standing for ranks; records every forward of every rank."""

    def __init__(self, world: int) -> None:
        self.world = world
        self.barrier = threading.Barrier(world, timeout=20)
        self.slots: list[Tensor | None] = [None] * world
        self.forwards: list[list[int]] = [[] for _ in range(world)]

    def reduce(self, rank: int) -> Callable[[Tensor], Tensor]:
        def all_reduce(t: Tensor) -> Tensor:
            self.slots[rank] = t.clone()
            self.barrier.wait()
            out = torch.stack([s for s in self.slots if s is not None]).amax(0)
            self.barrier.wait()
            return out

        return all_reduce


def _net() -> nn.Module:
    """The same network on every call, from a private generator (never the global RNG: the "ranks" are
    threads, and a global seed set in one thread can be consumed by another under load)."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 3))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.rand(p.shape, generator=g) - 0.5)
    return net


def _randn(*shape: int) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)))


Work = Callable[[], object] | None


def _run_ranks(work_of_rank: Callable[[int, nn.Module], Work], world: int = 2) -> tuple[_Ranks, list[object]]:
    ranks = _Ranks(world)
    results: list[object] = [None] * world
    nets = [_net() for _ in range(world)]  # built before the threads start

    def body(rank: int) -> None:
        net = nets[rank]
        net.register_forward_pre_hook(lambda module, args: ranks.forwards[rank].append(args[0].shape[0]))
        lock = LockStep(net, ranks.reduce(rank), torch.device("cpu"))
        try:
            with lock.attached():
                results[rank] = lock.step(work_of_rank(rank, net), (3, 8, 8), net[1], needs_grad=True)
        except Exception as err:  # noqa: BLE001 - returned to the test
            results[rank] = err

    threads = [threading.Thread(target=body, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "a rank is stuck"
    return ranks, results


def test_the_methods_a_sharded_run_leaves_out_say_which_of_their_passes_it_cannot_mirror() -> None:
    from lightning_cam.methods import available_methods, get_method

    said = {name: get_method(name).unshardable for name in available_methods() if get_method(name).unshardable}
    assert said == {"fullgrad": "a backward through the whole model, to its input",
                    "shapleycam": "a double backward from the target layer",
                    "legrad": "a backward from each block's score to its attention probabilities"}


def test_every_rank_makes_as_many_forwards_whatever_its_share_and_faults() -> None:
    def work(rank: int, net: nn.Module) -> Work:
        if rank == 0:  # Score-CAM over 5 images in chunks of 4: capture, dead channels, chunks
            return lambda: ScoreCAM(net, "1", batch_size=4).explain(_randn(5, 3, 8, 8))
        if rank == 1:  # raises before any forward
            def fail() -> None:
                raise RuntimeError("local fault")
            return fail
        return None  # nothing to score on this rank

    ranks, results = _run_ranks(work, world=3)
    assert len(ranks.forwards[0]) > 2
    assert len(ranks.forwards[1]) == len(ranks.forwards[2]) == len(ranks.forwards[0])
    assert set(ranks.forwards[1]) == {1}  # throw-away one-image forwards
    assert isinstance(results[1], RuntimeError) and results[0] is True and results[2] is True  # all know it failed


def test_chunk_plans_agree_across_ranks() -> None:
    plans: dict[int, tuple[int, int]] = {}

    def work(rank: int, net: nn.Module) -> Work:
        return lambda: plans.__setitem__(rank, chunk_plan(10 if rank == 0 else 3, 4 if rank == 0 else 2))

    _run_ranks(work)
    assert plans[0] == plans[1] == (2, 5)  # the smallest chunk, enough chunks for the largest share


def test_grad_forwards_are_paid_with_grad_forwards() -> None:
    grads: list[int] = []

    def work(rank: int, net: nn.Module) -> Work:
        net[3].register_full_backward_hook(lambda *args: grads.append(rank))
        return (lambda: GradCAM(net, "1").explain(_randn(2, 3, 8, 8))) if rank == 0 else None

    ranks, _ = _run_ranks(work)
    assert len(ranks.forwards[0]) == len(ranks.forwards[1]) == 1
    assert sorted(grads) == [0, 1]  # the idle rank also ran the backward to the target layer


def test_an_out_of_memory_back_off_on_one_rank_keeps_the_ranks_in_step() -> None:
    maps: dict[int, Tensor] = {}
    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))

    def work(rank: int, net: nn.Module) -> Work:
        if rank == 0:  # the first chunk of 4 masked images runs out of memory once: halved and retried
            failed: list[int] = []

            def oom(module: nn.Module, args: tuple[Tensor, ...]) -> None:
                if args[0].shape[0] == 4 and not failed:
                    failed.append(1)
                    raise torch.OutOfMemoryError("simulated")

            net.register_forward_pre_hook(oom)
        return lambda: maps.__setitem__(rank, ScoreCAM(net, "1", batch_size=4).explain(x).maps)

    ranks, results = _run_ranks(work)
    assert results == [False, False] and len(ranks.forwards[0]) == len(ranks.forwards[1])
    assert ranks.forwards[0].count(2) >= 2  # rank 0 backed off to chunks of 2; rank 1 paid the extra forward
    assert torch.allclose(maps[0], maps[1], atol=1e-6)  # the back-off changed the chunks, not the maps


def test_chunk_plan_outside_a_lock_step_is_local() -> None:
    assert chunk_plan(10, 4) == (4, 3) and chunk_plan(0, 4) == (4, 0)


def test_batch_agreement_raises_on_every_rank_after_a_failure() -> None:
    def other_rank_failed(t: Tensor) -> Tensor:
        return torch.maximum(t, torch.tensor([1.0, 3, 8, 8, 1, 3], dtype=t.dtype))

    work = ShardedWork(_net(), torch.device("cpu"), "raise", reduce=lambda t: t)
    assert work.agree_inputs((3, 16, 16), torch.bfloat16) == ((3, 16, 16), torch.bfloat16)
    assert work.agree_inputs(None, None) is None
    with pytest.raises(ValueError, match="mine"):
        work.agree_inputs(None, None, ValueError("mine"))
    with pytest.raises(StepFailed, match="failed on another rank"):
        failing = ShardedWork(_net(), torch.device("cpu"), "raise", reduce=other_rank_failed)
        failing.agree_inputs((3, 8, 8), torch.float32)


# ----------------------------------------------------------------------------- compiled modules
def test_compiled_layer_names_with_and_without_orig_mod() -> None:
    net = _net()
    model = nn.Sequential(torch.compile(net, backend="eager"))
    assert strip_compiled("0._orig_mod.1") == "0.1"
    assert "0.1" in compiled_aliases(dict(model.named_modules()))
    assert resolve_layer(model, "0.1")[1] is net[1] and resolve_layer(model, "0._orig_mod.1")[1] is net[1]


def test_cam_on_a_compiled_submodule_runs_eagerly_with_hooks() -> None:
    net = _net()
    model = nn.Sequential(torch.compile(net, backend="eager"))
    x = torch.randn(2, 3, 8, 8)
    model(x)  # compiled before the CAM's hook exists: the graph would skip it
    with eager_compiled():
        maps = GradCAM(model, "0.1")(x)
    assert torch.allclose(maps, GradCAM(net, "1")(x), atol=1e-6)


# ----------------------------------------------------------------------------- real runs in subprocesses
def run_worker(out: Path, mode: str, *args: str, timeout: float = 150.0) -> subprocess.CompletedProcess[str]:
    """The worker in its own session; on timeout the whole process group is killed and the test fails."""
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen([sys.executable, str(WORKER), str(out), mode, *args], cwd=out, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"{mode} run hung (killed after {timeout} s):\n{stderr[-3000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def _events(log_dir: str) -> EventAccumulator:
    acc = EventAccumulator(log_dir, size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    return acc


def _sharded_vs_single(tmp_path: Path, methods: str, *extra: str, task: str = "multiclass") -> tuple[dict, dict, str]:
    sharded = run_worker(tmp_path, "fsdp2", "--methods", methods, "--task", task, *extra)
    assert sharded.returncode == 0, sharded.stderr[-4000:]
    single = run_worker(tmp_path, "single", "--methods", methods, "--task", task)
    assert single.returncode == 0, single.stderr[-4000:]
    return (json.loads((tmp_path / "fsdp2.json").read_text()), json.loads((tmp_path / "single.json").read_text()),
            sharded.stderr)


@pytest.mark.slow
def test_fsdp2_fit_finishes_with_grids_and_the_values_of_one_process(tmp_path: Path) -> None:
    """One FSDP2 fit (2 epochs and a validate) of a multi-label model: each rank finds its own images' predicted
    positives (one more forward, a different number of pairs per rank and batch, Score-CAM's chunk plans on
    top), the lock-step pairs every forward, and the synced values are those of one process. The softmax kind
    under FSDP2 is compared with one process by the fault test below."""
    methods = ("gradcam", "eigencam", "scorecam")
    sharded, single, _ = _sharded_vs_single(tmp_path, ",".join(methods), task="multilabel")
    acc = _events(sharded["log_dir"])
    for method in methods:
        # 2 fit epochs + validate, each grid at the step of its cam/ scalars; the evolution at the last of fit
        steps = [g.step for g in acc.Images(f"cam/{method}/grid")]
        assert len(steps) == 3 and steps == [s.step for s in acc.Scalars(f"cam/{method}/adcc")]
        assert [g.step for g in acc.Images(f"cam/{method}/evolution")] == [steps[1]]
        assert (Path(sharded["log_dir"]) / f"cam_evolution_{method}.png").is_file()
        for metric in METRICS:
            tag = f"cam/{method}/{metric}"
            assert math.isfinite(sharded["validate"][tag])
            assert sharded["validate"][tag] == pytest.approx(single["validate"][tag], abs=1e-5), tag
    assert not (tmp_path / "tb" / "version_1").exists()  # only rank zero wrote


@pytest.mark.slow
def test_fsdp2_fault_on_one_rank_with_scorecam_never_hangs(tmp_path: Path) -> None:
    methods = "gradcam,scorecam,faultygradcam"
    sharded, single, stderr = _sharded_vs_single(tmp_path, methods, "--fault-rank", "1")
    for epoch in (0, 1, 2):  # rank 1's 2 batches fail in every epoch, counted on rank zero's report
        assert f"CAMCallback: 2 fault(s) in CAM work at epoch {epoch} (2 error)" in stderr, stderr[-3000:]
    for method in ("gradcam", "scorecam"):
        for metric in METRICS:
            tag = f"cam/{method}/{metric}"
            assert sharded["validate"][tag] == pytest.approx(single["validate"][tag], abs=1e-6), tag
    assert math.isfinite(sharded["validate"]["cam/faultygradcam/adcc"])  # rank zero's share only
    acc = _events(sharded["log_dir"])
    assert len(acc.Images("cam/scorecam/grid")) == 3 and len(acc.Images("cam/faultygradcam/grid")) == 3


@pytest.mark.slow
def test_fsdp2_chooses_the_default_layer_in_lock_step_and_a_rank_with_nothing_to_score_joins(tmp_path: Path) -> None:
    """No ``cam_target_layer``, a bf16 model: the rule runs on every rank on the same images and chooses the layer
    one process chooses; rank 1's cam_inputs fails at every batch, so it joins rank 0's forwards with throw-away
    inputs, which must have the dtype of the real inputs (float32 stand-ins in a bf16 model failed between the
    gathers: a hang); the run logs grids and metrics and reports rank 1's fault."""
    methods = "gradcam,eigencam"
    proc = run_worker(tmp_path, "fsdp2", "--methods", methods, "--auto-layer", "--precision", "bf16-true",
                      "--fault-rank", "1", "--fault-where", "inputs", "--epochs", "1")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "first error on rank 1: cam_inputs(batch) raised RuntimeError: injected cam_inputs fault on rank 1" \
        in proc.stderr, proc.stderr[-3000:]
    sharded = json.loads((tmp_path / "fsdp2.json").read_text())
    assert sharded["layers"] == {"gradcam": "features", "eigencam": "features"}, sharded["layers"]
    acc = _events(sharded["log_dir"])
    for method in methods.split(","):
        assert len(acc.Images(f"cam/{method}/grid")) == 2  # the fit's epoch and the validate
        assert math.isfinite(sharded["validate"][f"cam/{method}/adcc"])
    single_run = run_worker(tmp_path, "single", "--methods", methods, "--auto-layer")
    assert single_run.returncode == 0, single_run.stderr[-4000:]
    assert json.loads((tmp_path / "single.json").read_text())["layers"] == sharded["layers"]


@pytest.mark.slow
def test_fsdp2_several_target_layers_with_a_rank_that_only_joins(tmp_path: Path) -> None:
    """Two target layers: each capture forward says which layer it hooks, so rank 1 (nothing to score at every
    batch) runs its throw-away backward through the same modules; the fit ends with grids and finite metrics.
    FullGrad (a backward to the input) and Shapley-CAM (a double backward) run passes such a rank could not mirror
    between the parameter gathers: every rank leaves them out, said once. So is the randomization metric (a whole
    copy of the model per rank), said once, not a fault at every batch."""
    proc = run_worker(tmp_path, "fsdp2", "--methods", "gradcam,scorecam,fullgrad,shapleycam", "--layers",
                      "features.0,features.1", "--fault-rank", "1", "--fault-where", "inputs", "--epochs", "1",
                      "--precision", "bf16-true", "--extra-metrics", "randomization")
    assert proc.returncode == 0, proc.stderr[-4000:]
    for name, cls, what in (("fullgrad", "FullGrad", "a backward through the whole model, to its input"),
                            ("shapleycam", "ShapleyCAM", "a double backward from the target layer")):
        said = f"CAMCallback: {name} is left out of this run: {cls}'s passes ({what}) cannot be mirrored"
        assert said in proc.stderr, proc.stderr[-3000:]
    left_out = "CAMCallback: the metric randomization is left out of this run: the randomization metric needs"
    assert proc.stderr.count(left_out) == 1, proc.stderr[-3000:]  # the fit's run; the validate's: said already
    # the fit's and the validate's reports: rank 1's two cam_inputs faults only (the metric refused at every batch
    # added one error per batch and rank)
    faults = [line for line in proc.stderr.splitlines() if "fault(s) in CAM work" in line]
    assert len(faults) == 2 and all("2 fault(s)" in line and "(2 error)" in line for line in faults), faults
    sharded = json.loads((tmp_path / "fsdp2.json").read_text())
    assert sharded["layers"] == {"gradcam": "features.0+features.1", "scorecam": "features.0+features.1"}
    acc = _events(sharded["log_dir"])
    assert not any(tag.startswith(("cam/fullgrad/", "cam/shapleycam/")) for tag in acc.Tags()["images"])
    for method in ("gradcam", "scorecam"):
        assert len(acc.Images(f"cam/{method}/grid")) == 2
        assert math.isfinite(sharded["validate"][f"cam/{method}/adcc"])


@pytest.mark.slow
def test_fsdp2_on_error_raise_stops_every_rank(tmp_path: Path) -> None:
    proc = run_worker(tmp_path, "fsdp2", "--methods", "gradcam,faultygradcam", "--fault-rank", "1",
                      "--on-error", "raise", "--epochs", "1", timeout=120)
    assert proc.returncode != 0
    assert "injected fault on rank 1" in proc.stderr
    assert "failed on another rank" in proc.stderr  # rank zero raised too, after the agreement


@pytest.mark.slow
def test_fsdp2_the_sample_quota_running_out_on_one_rank_does_not_hang_in_fp16(tmp_path: Path) -> None:
    """max_samples=1: rank 1's share of the first sample is empty, so it only ever joins rank 0's forwards, with
    throw-away inputs in the model's dtype (fp16 here; bf16 in the default-layer test above, 32-true in the
    others). The fp16 fit diverges here (its losses are NaN, its faults counted): what is tested is that no rank
    is left waiting in a forward."""
    proc = run_worker(tmp_path, "fsdp2", "--precision", "16-true", "--max-samples", "1", "--epochs", "1")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "CAMCallback: " in proc.stderr and "fault(s) in CAM work at epoch 0" in proc.stderr, proc.stderr[-3000:]


@pytest.mark.slow
def test_fsdp2_a_forward_failing_between_the_gathers_stops_every_rank_with_its_message(tmp_path: Path,
                                                                                      monkeypatch: pytest.MonkeyPatch
                                                                                      ) -> None:
    """Rank 1's forward raises after the parameter gathers: rank 0 waits in the backward's collectives. The round
    times out on rank 1 (20 s here, not the process group's 30 minutes), which aborts the group: both ranks stop
    with their own message."""
    monkeypatch.setenv("LIGHTNING_CAM_ROUND_TIMEOUT", "20")
    proc = run_worker(tmp_path, "fsdp2", "--fault-rank", "1", "--fault-where", "forward", "--epochs", "1",
                      timeout=150)
    assert proc.returncode != 0
    rank1 = [line for line in proc.stderr.splitlines() if line.startswith("[rank1]: lightning_cam") and
             "LockStepBroken: CAMCallback on rank 1" in line]
    rank0 = [line for line in proc.stderr.splitlines() if line.startswith("[rank0]: lightning_cam") and
             "LockStepBroken: CAMCallback on rank 0" in line]
    assert rank1 and "injected fault inside the sharded forward on rank 1" in rank1[0], proc.stderr[-4000:]
    assert rank0 and "another rank stopped the CAM lock-step" in rank0[0], proc.stderr[-4000:]


def _compiled_run_logs_metrics_and_grids_without_faults(tmp_path: Path, mode: str, *args: str) -> None:
    proc = run_worker(tmp_path, mode, "--epochs", "1", *args, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "fault(s)" not in proc.stderr, proc.stderr[-3000:]
    result = json.loads((tmp_path / f"{mode}.json").read_text())
    acc = _events(result["log_dir"])
    for method in ("gradcam", "eigencam"):
        assert len(acc.Images(f"cam/{method}/grid")) == 2  # fit epoch + validate
        assert all(math.isfinite(result["validate"][f"cam/{method}/{m}"]) for m in METRICS)


@pytest.mark.slow
def test_a_compiled_model_logs_metrics_and_grids_without_faults(tmp_path: Path) -> None:
    """The whole model compiled (the eager backend: the graph breaks and guards, not the code generation)."""
    _compiled_run_logs_metrics_and_grids_without_faults(tmp_path, "compile-whole", "--backend", "eager")


@pytest.mark.slow
def test_a_compiled_submodule_with_the_default_inductor_backend_logs_metrics_and_grids(tmp_path: Path) -> None:
    """A submodule compiled with the default backend (inductor's generated code, on the CPU)."""
    _compiled_run_logs_metrics_and_grids_without_faults(tmp_path, "compile-sub")


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="FSDPStrategy needs 2 CUDA devices")
def test_fsdp_on_two_gpus(tmp_path: Path) -> None:  # pragma: no cover - runs on GPU machines only
    proc = run_worker(tmp_path, "fsdp-gpu", "--methods", "gradcam,scorecam", "--epochs", "1")
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads((tmp_path / "fsdp-gpu.json").read_text())
    assert math.isfinite(result["validate"]["cam/scorecam/adcc"])

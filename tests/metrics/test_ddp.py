"""Two gloo CPU processes over a fixed data set give the same metric values as one process."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("ddp_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def _worker_module():
    spec = importlib.util.spec_from_file_location("lightning_cam_ddp_worker", WORKER)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_equal_one_process(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    outs = [tmp_path / f"rank{r}.json" for r in range(2)]
    procs = [
        subprocess.Popen([sys.executable, str(WORKER), str(r), "2", str(port), str(outs[r])], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for r in range(2)
    ]
    logs = [p.communicate(timeout=240)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(logs)
    ranks = [json.loads(o.read_text()) for o in outs]

    threads = torch.get_num_threads()
    try:
        single = _worker_module().run(rank=0, world=1)
    finally:
        torch.set_num_threads(threads)

    assert ranks[0] == ranks[1]  # every rank computes the synced value
    assert single["adcc.count"] == ranks[0]["adcc.count"] == 23 and ranks[0]["adcc.num_skipped"] == 1
    for name, value in single.items():
        assert abs(ranks[0][name] - value) <= 1e-6, (name, ranks[0][name], value)
    assert 0 < single["adcc"] < 1 and single["average_drop"] > 0  # non-trivial values

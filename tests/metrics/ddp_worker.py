"""One process of the DDP metric test: ``python ddp_worker.py RANK WORLD PORT OUT``.

Also imported by the test for the single-process reference, so both sides share the data and model.
"""

from __future__ import annotations

import json
import sys

import torch
from torch import nn

from lightning_cam.evaluate import evaluate_batch
from lightning_cam.methods import get_method
from lightning_cam.metrics import metric_spec

NAMES = ("average_drop", "increase", "coherency", "complexity", "adcc", "pointing_game", "iou",
         "relevance_mass_accuracy", "relevance_rank_accuracy", "top_k_intersection", "attribution_localisation", "auc",
         "road_morf", "road_lerf", "road", "arcc", "randomization", "random_logit")
NUM_BATCHES, BATCH, SIZE = 6, 4, 16


def fixed_data() -> tuple[nn.Module, list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]]:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4),
    ).eval()
    g = torch.Generator().manual_seed(1)
    batches = []
    for _ in range(NUM_BATCHES):
        x = torch.randn(BATCH, 3, SIZE, SIZE, generator=g)
        t = torch.randint(0, 4, (BATCH,), generator=g)
        m = torch.rand(BATCH, SIZE, SIZE, generator=g) > 0.6
        batches.append((x, t, m))
    return net, batches


def run(rank: int, world: int) -> dict[str, float]:
    """Metric values over this rank's share (batches rank, rank + world, ...), synced across ranks."""
    torch.set_num_threads(1)
    net, batches = fixed_data()
    cam = get_method("gradcam")(net, target_layer="3")
    metrics = {name: metric_spec(name).metric() for name in NAMES}
    for i in range(rank, NUM_BATCHES, world):
        x, t, m = batches[i]
        values = evaluate_batch(cam, x, t, m, metrics=NAMES, top_k=20)
        if i == 1:
            values["adcc"][2] = float("nan")  # a skipped sample on one rank only
        for name in NAMES:
            metrics[name].update(values[name])
    out = {name: float(metric.compute()) for name, metric in metrics.items()}
    adcc = metrics["adcc"]
    with adcc.sync_context():  # the summed states (a no-op without a process group)
        out["adcc.count"], out["adcc.num_skipped"] = int(adcc.count), int(adcc.num_skipped)
    return out


def main() -> None:
    rank, world, port, path = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        out = run(rank, world)
        with open(path, "w") as f:
            json.dump(out, f)
    finally:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()

"""Regenerate the docs' picture and numbers of the embedding model from one real run.

Trains ``configs/shapes_embedding.yaml`` (a small conv net learning a 32-dimensional embedding of the Shapes
images with class proxies) through the project's own CLI, reads its TensorBoard event files back and writes,
under ``docs/``:

* ``embedding_grids.png``: the last Grad-CAM grid (each image's similarity to its class's centroid);
* ``embedding_numbers.json``: per epoch, the nearest-proxy accuracy, the same-minus-other-class cosine gap,
  the bank's shift and the Grad-CAM and Eigen-CAM curves (pointing game, IoU, Average Drop, ADCC) from the second
  CAM run on (the first builds the centroids).

Usage (a few CPU minutes; ``--reuse`` reads an existing run in ``--logdir``)::

    python scripts/make_embedding_figure.py [--logdir /tmp/lightning_cam_embedding] [--reuse]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from make_docs_figures import draw_grids, read_events
from make_task_figures import fitted

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
CONFIG = "configs/shapes_embedding.yaml"
KEYS = ("val_acc", "val_pair_gap", "cam/bank/shift", *(f"cam/{m}/{k}" for m in ("gradcam", "eigencam")
                                                        for k in ("pointing_game", "iou", "average_drop", "adcc")))


def curves(acc: Any) -> dict[str, list[float]]:
    tags = [t for t in acc.Tags()["scalars"] if t in KEYS]
    return {t: [round(e.value, 4) for e in acc.Scalars(t)] for t in sorted(tags)}


def main_script() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logdir", default="/tmp/lightning_cam_embedding", help="where the run is written")
    parser.add_argument("--reuse", action="store_true", help="read the run already in --logdir (no training)")
    args = parser.parse_args()
    acc = read_events(fitted(CONFIG, Path(args.logdir), args.reuse))
    DOCS.mkdir(exist_ok=True)
    draw_grids({"embedding (Grad-CAM of the cosine to the class centroid)": acc}, DOCS / "embedding_grids.png")
    numbers: dict[str, Any] = {"embedding": curves(acc)}
    (DOCS / "embedding_numbers.json").write_text(json.dumps(numbers, indent=1) + "\n")
    print(json.dumps(numbers, indent=1))


if __name__ == "__main__":
    main_script()

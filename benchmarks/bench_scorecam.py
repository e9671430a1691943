"""Score-CAM fast mode: which channels to score, and how many, for maps close to the exact ones.

Run: ``python benchmarks/bench_scorecam.py [--threads 2] [--images 6] [--epochs 2]``.

Score-CAM scores every channel's masked image (``C`` forwards per sample). Fast mode scores ``top_k`` of them.
Each channel's weight does not depend on which other channels are scored, so the exact weights are computed once
per model and every (selection, fill, top_k) is evaluated from them without further forwards; the chosen setting
is then checked once through :class:`~lightning_cam.methods.ScoreCAM` itself.

* selections (which ``top_k`` channels): ``mean`` (spatial mean activation), ``var`` (spatial variance),
  ``max`` (spatial max), ``gradcam`` (Grad-CAM contribution :math:`\\max(0, \\bar g_k)\\,\\bar A_k`, needs the
  gradient of the clean pass).
* fills (the weight of the channels not scored): ``zero`` (they are dropped), ``mean`` (each gets the mean
  weight of the sample's scored channels: the unscored channels still contribute their activation).

Models: the project's :class:`~lightning_cam.models.GAPClassifier` trained ``--epochs`` on Shapes (64 px,
target ``features.3``: 64 channels at 8x8; structured features), and torchvision ResNet-18 with random weights at
96 px (target ``layer4``: 512 channels at 3x3). Reported: the smallest per-sample Pearson correlation of the
upsampled ``[0, 1]`` maps with the exact ones over ``--images`` Shapes validation images.
"""

from __future__ import annotations

import argparse
import time

import torch
import torchvision
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_cam.data.shapes import ShapesDataset
from lightning_cam.functional.cam import weighted_sum
from lightning_cam.methods import ScoreCAM
from lightning_cam.methods.extra import ExtraInputs
from lightning_cam.models import GAPClassifier

SELECTIONS = ("mean", "var", "max", "gradcam")
FILLS = ("zero", "mean", "fit")


def pearson(a: Tensor, b: Tensor) -> Tensor:
    """Per-sample Pearson correlation of two ``(B, ...)`` batches."""
    a, b = a.double().flatten(1), b.double().flatten(1)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)


def train_gap(epochs: int, size: int) -> nn.Module:
    """A GAPClassifier trained ``epochs`` on 2000 Shapes images (Adam, batch 64): structured features."""
    torch.manual_seed(0)
    data = ShapesDataset(2000, image_size=size, seed=0)
    images = data.normalize(data.images)
    loader = DataLoader(TensorDataset(images, data.labels), batch_size=64, shuffle=True)
    model = GAPClassifier(num_classes=5)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(epochs):
        for x, y in loader:
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    return model.eval()


def scores(cam: ScoreCAM, x: Tensor) -> dict[str, Tensor]:
    """The clean pass (activation, gradient) and every channel's exact Score-CAM weight."""
    with torch.inference_mode(False):
        cap = cam.capture(x, None, "grad")
        weights = cam._score(x, cap.activations, cap.targets, ExtraInputs())
    acts, grads = cap.activations, cap.grads
    assert grads is not None
    return {
        "acts": acts, "weights": weights,
        "mean": acts.mean((2, 3)), "var": acts.flatten(2).var(2), "max": acts.flatten(2).amax(2),
        "gradcam": grads.mean((2, 3)).clamp_min(0) * acts.mean((2, 3)),
    }


def approx_weights(s: dict[str, Tensor], selection: str, fill: str, k: int) -> Tensor:
    """``(B, C)`` fast-mode weights: the exact weight on the ``k`` selected channels, the fill elsewhere."""
    idx = s[selection].topk(k, dim=1).indices
    chosen = torch.zeros_like(s["weights"], dtype=torch.bool).scatter_(1, idx, True)
    w = torch.where(chosen, s["weights"], torch.zeros_like(s["weights"]))
    if fill == "mean":
        w = torch.where(chosen, w, (w.sum(1, keepdim=True) / k).expand_as(w))
    elif fill == "fit":  # least squares w ~ a + b * proxy on the scored channels, predicted on the others
        p = s[selection].double()
        feats = torch.stack([torch.ones_like(p), p], dim=2)  # (B, C, 2)
        fk = feats.gather(1, idx[:, :, None].expand(-1, -1, 2))
        wk = s["weights"].double().gather(1, idx)[:, :, None]
        coef = torch.linalg.lstsq(fk, wk).solution  # (B, 2, 1)
        pred = (feats @ coef)[:, :, 0].clamp_min(0).to(w.dtype)
        w = torch.where(chosen, w, pred)
    return w


def study(name: str, cam: ScoreCAM, x: Tensor, ks: list[int]) -> None:
    t0 = time.perf_counter()
    s = scores(cam, x)
    size = (x.shape[-2], x.shape[-1])
    exact = cam.postprocess(weighted_sum(s["weights"], s["acts"]), size)[0]
    c = s["acts"].shape[1]
    print(f"{name}: {c} channels, {x.shape[0]} images, exact weights in {time.perf_counter() - t0:.1f} s; "
          "min per-sample Pearson with the exact maps")
    print("  selection/fill  " + "  ".join(f"k={k:<4d}" for k in ks) + "   (masked forwards: k per sample vs "
          f"{c} exact)")
    for sel in SELECTIONS:
        for fill in FILLS:
            row = []
            for k in ks:
                maps = cam.postprocess(weighted_sum(approx_weights(s, sel, fill, k), s["acts"]), size)[0]
                row.append(f"{float(pearson(maps, exact).min()):.3f} ")
            print(f"  {sel:>8}/{fill:<5} " + "  ".join(f"{r:<6}" for r in row))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    gap = train_gap(args.epochs, 64)
    val = ShapesDataset(args.images, image_size=64, seed=123)
    xv = val.normalize(val.images)
    with torch.no_grad():
        acc = float((gap(xv).argmax(1) == val.labels).float().mean())
    print(f"setup: CPU, {args.threads} threads; GAPClassifier trained {args.epochs} epochs on 2000 Shapes images "
          f"in {time.perf_counter() - t0:.0f} s (accuracy on the {args.images} images: {acc:.2f})")
    study("GAPClassifier features.3 (Shapes 64 px)", ScoreCAM(gap, "features.3", batch_size=64), xv, [2, 4, 6, 8, 16])
    exact = ScoreCAM(gap, "features.3", batch_size=64)(xv)
    for fill in FILLS[:2]:
        fast = ScoreCAM(gap, "features.3", batch_size=64, top_k=6, fill=fill)(xv)
        print(f"  through ScoreCAM(top_k=6, fill={fill!r}) (10.7x fewer masked forwards): min per-sample Pearson "
              f"{float(pearson(fast, exact).min()):.3f}")

    torch.manual_seed(0)
    resnet = torchvision.models.resnet18(weights=None).eval()
    val96 = ShapesDataset(args.images, image_size=96, seed=123)
    x96 = val96.normalize(val96.images)
    study("ResNet-18 random weights layer4 (Shapes 96 px)", ScoreCAM(resnet, "layer4", batch_size=64), x96,
          [16, 32, 51, 64, 128])


if __name__ == "__main__":
    main()

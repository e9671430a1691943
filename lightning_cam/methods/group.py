"""``MethodGroup``: several CAM methods on one batch with one shared pass.

Every method of the library derives its map from one hooked pass on ``x`` (`BaseCAM.capture`):
the logits, the target layer's activation $A$ and, for the gradient family,
$\\partial y^c / \\partial A$. Run separately, ``k`` methods repeat that pass ``k`` times. A group
runs it once per distinct (model, target layer, layout) -- with the gradient when any method needs it --
and lets each method derive its map from it (`BaseCAM.derive`); methods that need more add only
their own work (Score-CAM's masked images, Smooth Grad-CAM++'s noisy copies; CAM reads its Linear weights,
Fake-CAM nothing). All methods explain the same targets: the given ones, or the predicted class of the
first pass. The maps equal those of separate ``explain`` calls (to float rounding).

The group drives only the public contract of [`BaseCAM`][lightning_cam.methods.base.BaseCAM] (`needs`,
`capture`, `derive`, `finish`); a method that overrides `explain`, sets `shares_capture = False` or is not a
`BaseCAM` is called on its own, with the group's targets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor

from lightning_cam.methods.base import BaseCAM, Need
from lightning_cam.methods.capture import Capture
from lightning_cam.methods.extra import ExtraInputs
from lightning_cam.methods.pairs import check_reference, empty_result, prepare
from lightning_cam.methods.result import CAMResult
from lightning_cam.utilities.checks import check_images, check_targets
from lightning_cam.utilities.modes import eval_mode

__all__ = ["MethodGroup"]


def _shares(cam: object) -> bool:
    """Whether ``cam`` may be handed a shared clean pass: a `BaseCAM` that keeps the engine's `explain` (a class
    that overrides `explain` is always called on its own, so its `explain` is never bypassed) and does not opt out
    with `shares_capture = False` (or explains several target layers, each with a pass of its own)."""
    return (isinstance(cam, BaseCAM) and type(cam).shares_capture and type(cam).explain is BaseCAM.explain
            and not cam.layers)


def _layer_key(cam: BaseCAM) -> tuple[int, int, Any]:
    reshape = cam.reshape if cam.reshape is None or isinstance(cam.reshape, str) else id(cam.reshape)
    return id(cam.model), id(cam.target_layer), reshape


class MethodGroup:
    """Several CAM methods computed on the same batch with one shared pass per target layer.

    Args:
        methods: ``{name: method}`` or a sequence of methods (named by their registry ``name``, else their
            class name). All must explain the same model (the first pass's logits pick the targets).

    Examples:
        >>> from torch import nn
        >>> from lightning_cam.methods import EigenCAM, GradCAM, GradCAMPlusPlus
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 2))
        >>> group = MethodGroup([GradCAM(net, "1"), GradCAMPlusPlus(net, "1"), EigenCAM(net, "1")])
        >>> x = torch.randn(2, 3, 8, 8)
        >>> out = group.explain(x)  # one forward and one backward for all three
        >>> sorted(out), torch.allclose(out["gradcam"].maps, GradCAM(net, "1")(x), atol=1e-5)
        (['eigencam', 'gradcam', 'gradcam_pp'], True)
    """

    def __init__(self, methods: Mapping[str, BaseCAM] | Iterable[BaseCAM]) -> None:
        if isinstance(methods, Mapping):
            named = dict(methods)
        else:
            named = {}
            for cam in methods:
                name = type(cam).name or type(cam).__name__
                if name in named:
                    raise ValueError(f"two methods are named {name!r}; pass a dict {{name: method}} to name them.")
                named[name] = cam
        if not named:
            raise ValueError("a MethodGroup needs at least one method.")
        models = {id(cam.model) for cam in named.values()}
        if len(models) > 1:
            raise ValueError(
                f"the methods of a MethodGroup must explain the same model, got {len(models)} different models; "
                "make one group per model."
            )
        tasks = {getattr(cam, "task", None) for cam in named.values()} - {None}
        if len(tasks) > 1:
            raise ValueError(
                f"the methods of a MethodGroup must share the output kind (task), got {sorted(map(str, tasks))}."
            )
        self.methods: dict[str, BaseCAM] = named
        self.model = next(iter(named.values())).model

    def __repr__(self) -> str:
        return f"MethodGroup({', '.join(f'{k}={v!r}' for k, v in self.methods.items())})"

    def explain(
        self, images: Tensor, targets: Tensor | int | None = None, extra: object = None,
        reference: Tensor | None = None,
    ) -> dict[str, CAMResult]:
        """``{name: CAMResult}`` for every method, as ``method.explain(images, targets, extra=extra,
        reference=reference)`` would give, all explaining the same targets (the given ones, or the predicted class
        of the first pass; pairs found once, by the first method)."""
        images = check_images(images)
        extra_in = ExtraInputs.of(extra)
        size = (int(images.shape[-2]), int(images.shape[-1]))
        shared = {name: cam for name, cam in self.methods.items() if _shares(cam)}
        out: dict[str, CAMResult] = {}
        lead = next(iter(shared.values()), None)
        with torch.inference_mode(False), eval_mode(self.model):
            job = (None if lead is None
                   else prepare(lead.task, images, targets, extra_in, lead.forward_logits, lead.ensure_layer))
            if job is not None and (job.samples is not None or job.images.shape[0] == 0):
                images, targets, extra_in = job.images, job.targets, job.extra
            if job is not None:
                check_reference(reference, job)
            if job is not None and job.images.shape[0] == 0:
                return {name: empty_result(job, size) for name in self.methods}
            x = job.images if job is not None else images.detach()
            target_t = job.targets if job is not None else check_targets(targets, images.shape[0], images.device)
            trusted = False
            for cam in shared.values():  # a layer chosen by the rule is known before the grouping by layer
                if cam.needs() != "logits":
                    cam.ensure_layer(x, extra_in)
            shared = {name: cam for name, cam in shared.items() if _shares(cam)}  # several layers: alone, below
            # one capture per target layer (a logits-only pass last, if no layer is needed at all); layers with a
            # gradient method first: their pass gives the logits and the targets of all the others
            layers: dict[tuple[int, int, Any] | None, list[str]] = {}
            for name, cam in shared.items():
                layers.setdefault(None if cam.needs() in ("logits", "targets") else _layer_key(cam), []).append(name)
            rank = {"grad": 0, "activation": 1, "logits": 2, "targets": 3}
            order = sorted(layers.values(), key=lambda ns: min(rank[shared[n].needs()] for n in ns))
            first: Capture | None = None
            for names in order:
                needs = {shared[n].needs() for n in names}
                if needs <= {"logits", "targets"} and first is not None:
                    cap = first  # the logits-only methods reuse the first pass's logits and targets
                else:
                    need: Need = ("grad" if "grad" in needs else "activation" if "activation" in needs
                                  else "logits" if "logits" in needs else "targets")
                    cap = shared[names[0]].capture(x, target_t, need, extra=extra_in, trusted=trusted,
                                                   reference=reference)
                target_t, trusted, reference = cap.targets, True, cap.reference
                first = first or cap
                for n in names:
                    cam = shared[n]
                    view = cap.as_needed(cam.needs())  # what its own capture would have given it
                    out[n] = cam.finish(cam.derive(view, x, extra_in), view, size)
        for name, cam in self.methods.items():
            if name not in shared:  # a method with its own explain: called alone, with the group's targets
                kw: dict[str, Any] = {"extra": extra_in} if extra_in else {}
                if reference is not None:
                    kw["reference"] = reference
                out[name] = cam.explain(images, target_t, **kw)
                target_t = out[name].targets if target_t is None else target_t
        samples = None if job is None else job.samples
        return {name: out[name].paired(samples) if samples is not None else out[name] for name in self.methods}


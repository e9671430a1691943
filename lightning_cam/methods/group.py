"""``MethodGroup``: several CAM methods on one batch with one shared pass.

Every method of the library derives its map from one hooked pass on ``x`` (:meth:`BaseCAM._capture`):
the logits, the target layer's activation :math:`A` and, for the gradient family,
:math:`\\partial y^c / \\partial A`. Run separately, ``k`` methods repeat that pass ``k`` times. A group
runs it once per distinct (model, target layer, layout) -- with the gradient when any method needs it --
and lets each method derive its map from it (:meth:`BaseCAM._derive`); methods that need more add only
their own work (Score-CAM's masked images, Smooth Grad-CAM++'s noisy copies; CAM reads its Linear weights,
Fake-CAM nothing). All methods explain the same targets: the given ones, or the predicted class of the
first pass. The maps equal those of separate ``explain`` calls (to float rounding).

A method whose class overrides ``explain``, or ``_compute`` without ``_derive``, is called on its own
(with the group's targets).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor

from lightning_cam.methods.base import BaseCAM, Capture, ExtraInputs, mark_checked
from lightning_cam.methods.result import CAMResult
from lightning_cam.utilities.checks import check_images, check_target_range, check_targets
from lightning_cam.utilities.modes import eval_mode

__all__ = ["MethodGroup", "explain_many"]


def _shares(cam: BaseCAM) -> bool:
    """Whether ``cam`` derives its map through ``_derive`` (so the group may hand it a shared capture)."""
    cls = type(cam)
    if not isinstance(cam, BaseCAM) or cls.explain is not BaseCAM.explain or cls._result is not BaseCAM._result:
        return False
    owner = next(k for k in cls.__mro__ if "_compute" in k.__dict__)
    return owner is BaseCAM or "_derive" in owner.__dict__


def _layer_key(cam: BaseCAM) -> tuple[int, int, Any]:
    reshape = cam.reshape if cam.reshape is None or isinstance(cam.reshape, str) else id(cam.reshape)
    return id(cam.model), id(cam.target_layer), reshape


class MethodGroup:
    """Several CAM methods computed on the same batch with one shared pass per target layer.

    Args:
        methods: ``{name: method}`` or a sequence of methods (named by their registry ``name``, else their
            class name). All must explain the same model (the first pass's logits pick the targets).

    Example:
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
        self.methods: dict[str, BaseCAM] = named
        self.model = next(iter(named.values())).model

    def __repr__(self) -> str:
        return f"MethodGroup({', '.join(f'{k}={v!r}' for k, v in self.methods.items())})"

    def explain(
        self, images: Tensor, targets: Tensor | int | None = None, extra: object = None
    ) -> dict[str, CAMResult]:
        """``{name: CAMResult}`` for every method, as ``method.explain(images, targets, extra=extra)`` would give,
        all explaining the same targets (the given ones, or the predicted class of the first pass)."""
        images = check_images(images)
        extra_in = ExtraInputs.of(extra)
        target_t = check_targets(targets, images.shape[0], images.device)
        size = (int(images.shape[-2]), int(images.shape[-1]))
        shared = {name: cam for name, cam in self.methods.items() if _shares(cam)}
        out: dict[str, CAMResult] = {}
        with torch.inference_mode(False), eval_mode(self.model):
            x = images.clone() if images.is_inference() else images.detach()
            if target_t is not None and target_t.is_inference():
                target_t = target_t.clone()
            trusted = False
            # one capture per target layer; layers with a gradient method first (their pass gives the logits)
            layers: dict[tuple[int, int, Any], list[str]] = {}
            for name, cam in shared.items():
                if cam._needs() != "logits":
                    layers.setdefault(_layer_key(cam), []).append(name)
            order = sorted(layers.values(), key=lambda ns: not any(shared[n]._needs() == "grad" for n in ns))
            first: Capture | None = None
            for names in order:
                rep = shared[names[0]]
                rep._diag = None
                need_grad = any(shared[n]._needs() == "grad" for n in names)
                cap = rep._capture(x, target_t, need_grad=need_grad, extra=extra_in, trusted=trusted)
                target_t, trusted = cap.targets, True
                first = first or cap
                diag = rep._diag
                for n in names:
                    cam = shared[n]
                    if diag is not None and cam._needs() != "grad":  # as its own gradient-free capture would
                        cam._diag = (diag[0], torch.zeros_like(diag[2]), diag[2])
                    else:
                        cam._diag = diag
                    view = cap if cam._needs() == "grad" else Capture(cap.activations, None, cap.logits, cap.targets)
                    raw = cam._derive(view, x, extra_in)
                    out[n] = cam._result(raw, cap.logits, cap.targets, size)
            rest = [n for n, cam in shared.items() if cam._needs() == "logits"]
            if rest:
                if first is None:
                    logits = shared[rest[0]]._logits(x, extra_in).detach()
                    if target_t is None:
                        target_t = mark_checked(logits.argmax(dim=1))
                    else:
                        check_target_range(target_t, logits.shape[1])
                    first = Capture(x.new_empty(0), None, logits, target_t)
                for n in rest:
                    cam = shared[n]
                    cam._diag = None
                    raw = cam._derive(first, x, extra_in)
                    out[n] = cam._result(raw, first.logits, first.targets, size)
        for name, cam in self.methods.items():
            if name not in shared:  # a method with its own explain: called alone, with the group's targets
                kw: dict[str, Any] = {"extra": extra_in} if extra_in else {}
                out[name] = cam.explain(images, target_t, **kw)
                target_t = out[name].targets if target_t is None else target_t
        return {name: out[name] for name in self.methods}


def explain_many(
    methods: Mapping[str, BaseCAM] | Iterable[BaseCAM],
    images: Tensor,
    targets: Tensor | int | None = None,
    extra: object = None,
) -> dict[str, CAMResult]:
    """``MethodGroup(methods).explain(images, targets, extra)``: several methods, one shared pass.

    Example:
        >>> from torch import nn
        >>> from lightning_cam.methods import GradCAM, LayerCAM
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 2))
        >>> {k: v.maps.shape for k, v in explain_many([GradCAM(net, "1"), LayerCAM(net, "1")],
        ...                                           torch.randn(1, 3, 4, 4)).items()}
        {'gradcam': torch.Size([1, 4, 4]), 'layercam': torch.Size([1, 4, 4])}
    """
    return MethodGroup(methods).explain(images, targets, extra=extra)

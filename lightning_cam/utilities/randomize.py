r"""The weight-randomised twin of a CAM method for the model parameter randomisation check (Adebayo et al.,
"Sanity Checks for Saliency Maps", NeurIPS 2018), made once per state of the model's weights.

The layers are the modules with a ``reset_parameters`` (convolutions, linear layers, normalisations), in module
order; the *top* is the last. ``cascading`` re-initialises the top ``k`` together (every layer by default: the
model with no learnt weight left), ``independent`` the ``k``-th from the top alone. As Quantus's
``get_random_layer_generator`` does, each layer is re-initialised by its own ``reset_parameters`` after seeding
with ``seed + 1``, so the twin equals Quantus's; the seeding runs inside ``torch.random.fork_rng`` over every
device, so the training's random streams are left exactly as they were.

A twin is cached per method object and rebuilt when any parameter or buffer of the model changes (their version
counters: an optimizer step, a BatchNorm update; read without a device sync), so a validation run builds it
once, at its first batch. [`release_twins`][lightning_cam.utilities.randomize.release_twins] frees the copies
(the callback calls it when a validation run ends).
"""

from __future__ import annotations

import copy
import weakref
from typing import Any

import torch
from torch import nn

__all__ = ["SHARDED_REFUSAL", "randomizable_layers", "randomized_copy", "randomized_twin", "release_twins"]

_TWINS: weakref.WeakKeyDictionary[Any, tuple[tuple[Any, ...], Any]] = weakref.WeakKeyDictionary()


def randomizable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every module with a ``reset_parameters``, in module order (the output's side last).

    Examples:
        >>> [name for name, _ in randomizable_layers(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Linear(4, 2)))]
        ['0', '2']
    """
    return [(name, m) for name, m in model.named_modules() if callable(getattr(m, "reset_parameters", None))]


#: why a weight-randomised copy cannot be made under sharded parameters (the refusal's and the callback's text)
SHARDED_REFUSAL = ("the randomization metric needs a whole copy of the model on each rank, and this model's parameters "
                   "are sharded (FSDP, FSDP2's fully_shard or DeepSpeed ZeRO-3); leave randomization out under that "
                   "strategy, or run it on a DDP or single-device validation.")


def _refuse_sharded(model: nn.Module) -> None:
    for p in model.parameters():
        if type(p).__name__ in ("DTensor", "FlatParameter") or hasattr(p, "ds_id"):
            raise ValueError(SHARDED_REFUSAL)


def randomized_copy(model: nn.Module, order: str = "cascading", layers: int | None = None, seed: int = 42
                    ) -> nn.Module:
    """A deep copy of ``model`` with its top layers re-initialised (see the module docstring); ``model`` and the
    global random streams are untouched.

    Examples:
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
        >>> twin = randomized_copy(net, "independent", 2)  # the second layer from the top: net[0]
        >>> torch.equal(twin[1].weight, net[1].weight), torch.equal(twin[0].weight, net[0].weight)
        (True, False)
    """
    _refuse_sharded(model)
    with torch.inference_mode(False), torch.no_grad():
        twin = copy.deepcopy(model)
        found = randomizable_layers(twin)[::-1]  # top down
        if not found:
            raise ValueError(f"{type(model).__name__} has no layer with reset_parameters to randomise.")
        if order == "cascading":
            chosen = found[: layers or len(found)]
        else:
            k = layers or 1
            if k > len(found):
                raise ValueError(f"randomization_layers={k} but the model has {len(found)} layers to randomise.")
            chosen = [found[k - 1]]
        cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=cuda):
            for _, module in chosen:
                torch.manual_seed(seed + 1)
                module.reset_parameters()  # type: ignore[operator]
    return twin


def _fingerprint(model: nn.Module) -> tuple[Any, ...]:
    """The identity and version of every parameter and buffer (host-side counters: no device sync)."""
    try:
        return tuple((id(t), t._version) for t in (*model.parameters(), *model.buffers()))
    except RuntimeError:  # inference tensors keep no version: never reuse
        return (object(),)


def randomized_twin(cam: Any, order: str = "cascading", layers: int | None = None, seed: int = 42) -> Any:
    """A copy of the CAM method ``cam`` (anything with ``.model``) explaining `randomized_copy` of its model with
    the same options and layers; cached per ``cam`` until the model's weights or the options change.

    Examples:
        >>> from lightning_cam.methods import GradCAM
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 2))
        >>> cam = GradCAM(net, "1")
        >>> twin = randomized_twin(cam)
        >>> twin is randomized_twin(cam), twin.model is net, twin.target_layer is twin.model[1]
        (True, False, True)
    """
    key = (order, layers, seed, _fingerprint(cam.model))
    cached = _TWINS.get(cam)
    if cached is not None and cached[0] == key:
        return cached[1]
    _TWINS.pop(cam, None)  # the old copy is freed before the new one is made
    twin_model = randomized_copy(cam.model, order, layers, seed)
    # every module, parameter and buffer the method holds maps to the copy's own (its target layers, its hooks' blocks)
    memo: dict[int, Any] = {}
    model = cam.model
    for (_, a), (_, b) in zip(model.named_modules(remove_duplicate=False),
                              twin_model.named_modules(remove_duplicate=False), strict=True):
        memo[id(a)] = b
    for a_t, b_t in zip((*model.parameters(), *model.buffers()), (*twin_model.parameters(), *twin_model.buffers()),
                        strict=True):
        memo[id(a_t)] = b_t
    with torch.inference_mode(False), torch.no_grad():
        twin = copy.deepcopy(cam, memo=memo)
    _TWINS[cam] = (key, twin)
    return twin


def release_twins() -> None:
    """Free every cached twin (their model copies)."""
    _TWINS.clear()

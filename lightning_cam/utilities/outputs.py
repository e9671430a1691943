"""Reading the logits from what a model returns: one rule for every method, the evaluator and the callback.

| the model returns | the logits |
|---|---|
| a tensor | the tensor |
| an object with a ``logits`` tensor | ``out.logits`` (HuggingFace ``ModelOutput``, e.g. ``ImageClassifierOutput``) |
| a mapping with a ``"logits"`` key | ``out["logits"]`` |
| a mapping with an ``"out"`` key | ``out["out"]`` (torchvision's segmentation models: ``{"out": ..., "aux": ...}``) |
| anything else (tuples, other keys) | ``output=``: a key or attribute name (``str``), an index, a callable |

A model output with none of these, and no ``output=``, is a ``TypeError`` that names the option.

Examples:
    >>> import torch
    >>> select_logits({"logits": torch.zeros(2, 3), "aux": 1}).shape
    torch.Size([2, 3])
    >>> select_logits((torch.ones(2, 3), torch.zeros(2)), output=0).sum().item()
    6.0
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor, nn

__all__ = ["Output", "check_output", "select_logits"]

#: where the logits are in a model's output: ``None`` (the table's rule), a key/attribute, an index, a callable.
Output = str | int | Callable[[Any], Tensor] | None


def check_output(output: object) -> Output:
    """The ``output`` option: ``None``, a ``str``, an ``int`` or a callable.

    Examples:
        >>> check_output(1.5)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: `output` must be None (logits, .logits or ['logits']), a key or attribute name, ...; got 1.5.
    """
    if output is None or (isinstance(output, (str, int)) and not isinstance(output, bool)) or callable(output):
        return output
    raise ValueError(
        "`output` must be None (logits, .logits or ['logits']), a key or attribute name, an index or a callable "
        f"returning the logits; got {output!r}."
    )


def _describe(out: object) -> str:
    if isinstance(out, Mapping):
        return f"a mapping with keys {sorted(map(str, out))}"
    if isinstance(out, (tuple, list)):
        return f"a {type(out).__name__} of {len(out)}"
    return f"a {type(out).__name__}"


def select_logits(out: object, output: Output = None, model: nn.Module | None = None) -> Tensor:
    """The logits tensor of a model output ``out`` (the table of the module docstring).

    Raises:
        TypeError: no logits found (the message names ``output=`` and what the model returned).
    """
    if output is not None:
        if callable(output):
            picked = output(out)
        elif isinstance(output, int):
            picked = out[output]  # type: ignore[index]
        elif isinstance(out, Mapping):
            picked = out[output]
        else:
            picked = getattr(out, output)
        if isinstance(picked, Tensor):
            return picked
        raise TypeError(f"`output={output!r}` selected {_describe(picked)}, not the logits tensor.")
    if isinstance(out, Tensor):
        return out
    logits = getattr(out, "logits", None)
    if isinstance(logits, Tensor):
        return logits
    if isinstance(out, Mapping):
        for key in ("logits", "out"):
            if isinstance(out.get(key), Tensor):
                return out[key]
    name = type(model).__name__ if model is not None else "the model"
    raise TypeError(
        f"{name}.forward returned {_describe(out)}; CAM methods need the (B, num_classes) logits. Say where they "
        "are with `output=`: a key or attribute name (output='scores'), an index (output=0 for (logits, aux)) or a "
        "callable (output=lambda out: out['head']) -- on CAMMixin, the `cam_output` attribute."
    )

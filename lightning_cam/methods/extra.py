"""``ExtraInputs``: model inputs besides the images, passed on to every forward a method or the evaluator makes."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch  # noqa: F401  (used by the doctest examples)
from torch import Tensor, nn

__all__ = ["ExtraInputs"]


@dataclass(frozen=True)
class ExtraInputs:
    """Model inputs besides the images: ``model(images, *args, **kwargs)``.

    Every forward a method or [`evaluate_batch`][lightning_cam.evaluate_batch] makes passes them on. A tensor whose
    first dimension is the batch size ``B`` (also inside a tuple, list or dict value) is per-sample: it is
    indexed with the same sample indices as the images of each forward (Score-CAM's masked images,
    Smooth Grad-CAM++'s noisy copies, chunks); anything else is passed unchanged.

    ``extra=`` arguments also accept a plain tuple (positional) or mapping (keyword), see `of`.

    Examples:
        >>> extra = ExtraInputs.of({"meta": torch.arange(3)})
        >>> extra.take(torch.tensor([2, 2]), batch=3).kwargs["meta"]
        tensor([2, 2])
    """

    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, extra: object) -> ExtraInputs:
        """``None`` -> nothing; a tuple/list -> positional args; a mapping -> keyword args; an ``ExtraInputs``."""
        if extra is None:
            return cls()
        if isinstance(extra, ExtraInputs):
            return extra
        if isinstance(extra, Mapping):
            return cls(kwargs=dict(extra))
        if isinstance(extra, (tuple, list)):
            return cls(args=tuple(extra))
        raise TypeError(
            f"extra model inputs must be a tuple (positional), a dict (keyword) or ExtraInputs(args, kwargs); "
            f"got {type(extra).__name__}. A single tensor goes in a 1-tuple: extra=(meta,)."
        )

    def __bool__(self) -> bool:
        return bool(self.args) or bool(self.kwargs)

    def apply(self, fn: Callable[[Tensor], Tensor]) -> ExtraInputs:
        """The same inputs with ``fn`` applied to every tensor (e.g. a move to another device).

        Examples:
            >>> ExtraInputs(args=(torch.zeros(2),)).apply(lambda t: t + 1).args[0]
            tensor([1., 1.])
        """

        def go(value: Any) -> Any:
            if isinstance(value, Tensor):
                return fn(value)
            if isinstance(value, (tuple, list)):
                return type(value)(go(v) for v in value)
            if isinstance(value, Mapping):
                return {k: go(v) for k, v in value.items()}
            return value

        return ExtraInputs(go(self.args), go(dict(self.kwargs)))

    def take(self, index: Tensor, batch: int) -> ExtraInputs:
        """The inputs for images ``x[index]`` of a batch of ``batch`` samples."""
        if not self:
            return self

        def pick(value: Any) -> Any:
            if isinstance(value, Tensor) and value.ndim > 0 and value.shape[0] == batch:
                return value[index.to(value.device)]
            if isinstance(value, (tuple, list)):
                return type(value)(pick(v) for v in value)
            if isinstance(value, Mapping):
                return {k: pick(v) for k, v in value.items()}
            return value

        return ExtraInputs(tuple(pick(a) for a in self.args), {k: pick(v) for k, v in self.kwargs.items()})

    def call(self, model: nn.Module, x: Tensor) -> Any:
        """``model(x, *args, **kwargs)``. A call that does not fit the model's ``forward`` signature (an input
        it needs is missing, or one it does not take is passed) raises a ``TypeError`` that says how extra
        inputs are passed (`missing_inputs`); any other error is the model's own.

        Examples:
            >>> ExtraInputs().call(nn.Identity(), torch.ones(1)).tolist()
            [1.0]
        """
        try:
            return model(x, *self.args, **dict(self.kwargs))
        except TypeError as err:
            hint = self.missing_inputs(model, x)
            if hint is None:
                raise
            raise TypeError(f"{err}. {hint}") from err

    def missing_inputs(self, model: nn.Module, x: Tensor) -> str | None:
        """Why ``model(x, *args, **kwargs)`` does not fit ``model.forward``'s signature, with the fix; ``None``
        when it fits (or the signature cannot be read).

        Examples:
            >>> class Meta(nn.Module):
            ...     def forward(self, x, meta):
            ...         return x
            >>> ExtraInputs().missing_inputs(Meta(), torch.ones(1))[:44]
            'Meta.forward(x, meta) needs inputs the CAM c'
        """
        try:
            signature = inspect.signature(model.forward)
        except (TypeError, ValueError):
            return None
        try:
            signature.bind(x, *self.args, **dict(self.kwargs))
            return None
        except TypeError as err:
            why = str(err)
        given = f"it was called with the images and {len(self.args)} positional, {len(self.kwargs)} keyword extra " \
                "input(s)"
        return (
            f"{type(model).__name__}.forward{signature} needs inputs the CAM call did not pass ({why}; {given}). "
            "Pass the model's other inputs: `extra=` on a method or evaluate_batch (a tuple for positional, a dict "
            "for keyword inputs: extra=(meta,)), or, for the callback, return them from CAMMixin.cam_inputs as "
            "CAMBatch(images, labels, extra=(meta,)); per-sample tensors follow their images through every forward."
        )

"""LeGrad: a vision transformer explained by the gradients of each block's own class score with respect to its
attention probabilities."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_cam.functional.attention import legrad_relevance, mean_over_blocks, patch_grid
from lightning_cam.methods.layers import Reshape, TargetLayer, resolve_layer
from lightning_cam.methods.own_pass import OwnPassCAM
from lightning_cam.methods.registry import register_method
from lightning_cam.targets.task import Task
from lightning_cam.utilities.outputs import Output

__all__ = ["LeGrad"]

#: ``tokens (B, N, E) -> logits (B, K)``: what a block's tokens would score if the head read them
ScoreProjection = Callable[[Tensor], Tensor]


def attention_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every submodule with a ``self_attention`` child that is an ``nn.MultiheadAttention`` (torchvision's
    ``EncoderBlock``), in module order."""
    return [(name, m) for name, m in model.named_modules()
            if isinstance(getattr(m, "self_attention", None), nn.MultiheadAttention)]


def torchvision_projection(model: nn.Module) -> ScoreProjection | None:
    """torchcam's default projection for a torchvision ``VisionTransformer`` (the model, or the first submodule
    with ``encoder.ln`` and ``heads``, as a LightningModule that keeps it as ``self.net``):
    ``heads(encoder.ln(tokens.mean(1)))``; ``None`` when there is none."""
    for module in model.modules():
        norm = getattr(getattr(module, "encoder", None), "ln", None)
        heads = getattr(module, "heads", None)
        if isinstance(norm, nn.Module) and isinstance(heads, nn.Module):
            return lambda tokens: heads(norm(tokens.mean(dim=1)))
    return None


class _AttentionProbe:
    """Hooks on one block's ``nn.MultiheadAttention``: ask it for the per-head probabilities, and recompute its
    output from them so that they are on the path to the logits (the probabilities it returns are a view made after
    it used them). Also records the block's output tokens."""

    def __init__(self, name: str, block: nn.Module) -> None:
        self.name, self.block = name, block
        self.attention: nn.MultiheadAttention = block.self_attention  # type: ignore[assignment]
        check_attention(name, self.attention)
        self.probabilities: Tensor | None = None
        self.tokens: Tensor | None = None
        self.requested = (False, True)

    def attach(self) -> list[torch.utils.hooks.RemovableHandle]:
        return [self.attention.register_forward_pre_hook(self.before, with_kwargs=True),
                self.attention.register_forward_hook(self.after, with_kwargs=True),
                self.block.register_forward_hook(self.block_output)]

    def before(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
               ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        items: list[Any] = list(args)
        kwargs = dict(kwargs)
        if len(items) < 3 or not (items[0] is items[1] is items[2]):
            raise ValueError(f"LeGrad: block {self.name!r} does not call its attention as self-attention "
                             "(query, key and value the same tensor); LeGrad explains self-attention blocks.")
        self.requested = (bool(items[4] if len(items) > 4 else kwargs.get("need_weights", True)),
                          bool(items[6] if len(items) > 6 else kwargs.get("average_attn_weights", True)))
        for index, key, value in ((4, "need_weights", True), (6, "average_attn_weights", False)):
            if len(items) > index:
                items[index] = value
            else:
                kwargs[key] = value
        return tuple(items), kwargs

    def after(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any
              ) -> tuple[Tensor, Tensor | None]:
        probabilities = output[1]  # (B, heads, Q, K)
        attn = self.attention
        e, heads = attn.embed_dim, attn.num_heads
        value = args[2]
        bias = None if attn.in_proj_bias is None else attn.in_proj_bias[2 * e:]
        v = F.linear(value, attn.in_proj_weight[2 * e:], bias)
        b, s = int(v.shape[0]), int(v.shape[1])
        v = v.reshape(b, s, heads, e // heads).transpose(1, 2)
        out = (probabilities @ v).transpose(1, 2).reshape(b, probabilities.shape[-2], e)
        self.probabilities = probabilities
        need, average = self.requested
        returned = (probabilities.mean(dim=1) if average else probabilities) if need else None
        return attn.out_proj(out), returned

    def block_output(self, module: nn.Module, args: object, output: object) -> None:
        if not isinstance(output, Tensor) or output.ndim != 3:
            raise ValueError(f"LeGrad: block {self.name!r} must return (B, N, E) tokens, got "
                             f"{type(output).__name__}.")
        self.tokens = output


def check_attention(name: str, attention: nn.MultiheadAttention) -> None:
    """LeGrad's attention: batch-first, one embedding size for query, key and value, no added key/value tokens."""
    if not attention.batch_first:
        raise ValueError(f"LeGrad: block {name!r} has attention with batch_first=False; LeGrad reads batch-first "
                         "attention (torchvision's ViT blocks).")
    if (not attention._qkv_same_embed_dim or attention.in_proj_weight is None or attention.bias_k is not None
            or attention.add_zero_attn):
        raise ValueError(f"LeGrad: block {name!r}'s attention has separate key/value sizes or added key/value "
                         "tokens; LeGrad reads plain self-attention.")


@register_method
class LeGrad(OwnPassCAM):
    r"""LeGrad (Bousselham et al., "LeGrad: An Explainability Method for Vision Transformers via Feature Formation
    Sensitivity", 2024), as torchcam 0.5 defines it.

    $$
    s^l = y^c\big(P(Z^l)\big),\qquad r^l_j = \frac{1}{HQ}\sum_{h,i}\mathrm{ReLU}\Big(\frac{\partial s^l}{\partial
    A^l_{h,i,j}}\Big),\qquad L = \frac1{|\mathcal L|}\sum_{l \in \mathcal L} \operatorname{grid}\big(r^l\big)
    $$

    For every block $l$: $Z^l$ its output tokens, $P$ the ``score_projection`` (tokens to class logits; for a
    torchvision ``VisionTransformer`` by default ``heads(encoder.ln(Z.mean(1)))``, torchcam's: the mean of the
    tokens, not the class token the model itself reads), $y^c$ the target kind's score, $A^l$ the block's post-softmax
    attention probabilities ``(B, heads, Q, K)``; the ``prefix_tokens`` first keys (the class token) are dropped and
    the patch keys laid on the grid (``grid_shape``, square by default). The blocks' maps are averaged before the
    normalisation.

    The blocks: every block of ``target_layers``, else of ``target_layer`` (a block, or a list), else (``None``)
    every block whose ``self_attention`` is an ``nn.MultiheadAttention`` (torchvision's ViT). Attention of another
    kind (timm's ``Attention``) is not supported, as in torchcam. One forward with autograd and one short backward
    per block (from its score to its attention only), its own pass (`OwnPassCAM`); no parameter ``.grad``.
    Classifier kinds only.

    Examples:
        >>> from torchvision.models import VisionTransformer
        >>> _ = torch.manual_seed(0)
        >>> vit = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16,
        ...                         mlp_dim=32, num_classes=3)
        >>> LeGrad(vit)(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 32, 32])
    """

    name = "legrad"
    floor = "1 forward + 1 backward within each block"
    aliases = ("le-grad",)
    kinds = ("multiclass", "multilabel", "binary")
    unshardable = "a backward from each block's score to its attention probabilities"

    def __init__(self, model: nn.Module, target_layer: TargetLayer = None, reshape: Reshape = None,
                 score_projection: ScoreProjection | None = None, prefix_tokens: int = 1,
                 grid_shape: tuple[int, int] | None = None, target_layers: Sequence[str | nn.Module] | None = None,
                 *, output: Output = None, task: Task | str = "multiclass") -> None:
        super().__init__(model, None, reshape, output=output, task=task)
        chosen = target_layers if target_layers is not None else target_layer
        if chosen is None:
            blocks = attention_blocks(model)
            if not blocks:
                raise ValueError(f"LeGrad: {type(model).__name__} has no block whose self_attention is an "
                                 "nn.MultiheadAttention; LeGrad explains such transformer blocks (torchvision's ViT).")
        else:
            names = chosen if isinstance(chosen, (list, tuple)) else [chosen]
            blocks = [resolve_layer(model, layer) for layer in names]  # type: ignore[arg-type]
            for name, block in blocks:
                if not isinstance(getattr(block, "self_attention", None), nn.MultiheadAttention):
                    raise ValueError(
                        f"LeGrad: layer {name!r} ({type(block).__name__}) is not a transformer block with "
                        "self_attention: nn.MultiheadAttention; name such blocks with "
                        "method_kwargs={'legrad': {'target_layers': [...]}}, or none (every such block).")
        self.probes = [_AttentionProbe(name, block) for name, block in blocks]
        self.target_layer_name = "+".join(name for name, _ in blocks)
        if score_projection is None and torchvision_projection(model) is None:
            raise ValueError(f"LeGrad needs score_projection (tokens (B, N, E) -> logits (B, K)) for "
                             f"{type(model).__name__}; the default reads a torchvision VisionTransformer's "
                             "encoder.ln and heads.")
        if not isinstance(prefix_tokens, int) or prefix_tokens < 0:
            raise ValueError(f"LeGrad: prefix_tokens must be an int >= 0, got {prefix_tokens!r}.")
        #: the user's projection; ``None``: the torchvision ViT's, found on ``self.model`` at each call (so that a
        #: copy of the method explaining a copy of the model reads the copy's head)
        self.score_projection = score_projection
        self.prefix_tokens, self.grid = prefix_tokens, grid_shape

    @contextlib.contextmanager
    def hooks(self) -> Iterator[None]:
        handles = [handle for probe in self.probes for handle in probe.attach()]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()
            for probe in self.probes:
                probe.tokens = probe.probabilities = None

    def pass_map(self, inputs: Tensor, logits: Tensor, targets: Tensor, reference: Tensor | None) -> Tensor:
        projection = self.score_projection or torchvision_projection(self.model)
        assert projection is not None  # checked at construction
        maps = []
        for i, probe in enumerate(self.probes):
            if probe.tokens is None or probe.probabilities is None:
                raise RuntimeError(f"LeGrad: block {probe.name!r} was not called during the forward; name blocks on "
                                   "the path from the input to the logits.")
            score = self.score(projection(probe.tokens), targets, reference).sum()
            (grad,) = torch.autograd.grad(score, probe.probabilities, retain_graph=i < len(self.probes) - 1)
            maps.append(patch_grid(legrad_relevance(grad, self.prefix_tokens), self.grid))
        return mean_over_blocks(maps)

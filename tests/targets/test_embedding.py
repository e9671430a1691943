"""targets/embedding.py: an embedding model's concepts, score, probability and faults; Grad-CAM equal to the
similarity-to-concept target of pytorch-grad-cam's embeddings tutorial at the same layer (the target is a
tutorial class, not in the package: written here as the tutorial defines it)."""

from __future__ import annotations

import math

import pytest
import torch
from pytorch_grad_cam import GradCAM as PgcGradCAM
from pytorch_grad_cam import HiResCAM as PgcHiResCAM
from torchvision.models import resnet18

from lightning_cam import evaluate_batch
from lightning_cam.functional.embedding import class_centroids
from lightning_cam.methods import EigenCAM, GradCAM, HiResCAM, ScoreCAM
from lightning_cam.targets.task import Task

from ..methods.conftest import assert_maps_match, structured_images


class SimilarityToConceptTarget:
    """pytorch-grad-cam's tutorial "Pixel attribution for embeddings": the cosine similarity of one image's
    embedding (``model_output``, ``(D,)``) to a concept's features."""

    def __init__(self, features: torch.Tensor) -> None:
        self.features = features

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        return torch.nn.CosineSimilarity(dim=0)(model_output, self.features)


def _embedder(dim: int = 32) -> torch.nn.Module:
    torch.manual_seed(0)
    model = resnet18(weights=None, num_classes=dim)  # a (B, 512) -> (B, dim) projection: the embedding
    return model.eval()


def _concepts(model: torch.nn.Module, k: int = 3) -> torch.Tensor:
    """Concept vectors as a user makes them: the embeddings of other images (the tutorial's "car" and "cloud")."""
    with torch.no_grad():
        return model(structured_images(k, 64, seed=11))


@pytest.mark.parametrize("ours,peer", [(GradCAM, PgcGradCAM), (HiResCAM, PgcHiResCAM)], ids=["gradcam", "hirescam"])
def test_gradient_maps_equal_the_embeddings_tutorials_similarity_target(ours: type, peer: type) -> None:
    model = _embedder()
    concepts = _concepts(model)
    task = Task("embedding")
    task.target.set_bank(concepts)
    x = structured_images(4, 64, seed=3)
    rows = [2, 0, 1, 2]
    res = ours(model, "layer4", task=task).explain(x, torch.tensor(rows))
    targets = [SimilarityToConceptTarget(concepts[r]) for r in rows]
    with peer(model=model, target_layers=[model.layer4]) as cam:
        cam.get_target_width_height = lambda _input: tuple(res.low_res.shape[-2:])[::-1]  # before upsampling
        theirs = torch.from_numpy(cam(input_tensor=x, targets=targets))
    assert assert_maps_match(res.low_res, theirs) >= 3


def test_the_score_is_the_cosine_to_the_concept_and_none_is_the_nearest() -> None:
    model = _embedder()
    concepts = _concepts(model)
    task = Task("embedding")
    task.target.set_bank(concepts)
    x = structured_images(3, 64, seed=5)
    with torch.no_grad():
        e = model(x)
    cos = torch.nn.functional.cosine_similarity(e.unsqueeze(1), concepts.unsqueeze(0), dim=2)  # (B, K)
    res = GradCAM(model, "layer4", task=task).explain(x)
    assert res.targets.tolist() == cos.argmax(1).tolist()
    score = task.target.score(e, torch.tensor([0, 1, 2]))
    torch.testing.assert_close(score, cos[torch.arange(3), torch.tensor([0, 1, 2])])
    torch.testing.assert_close(task.target.probability(e, torch.tensor([1, 1, 1])), cos[:, 1].clamp(min=0))


def test_without_a_bank_the_error_says_how_to_give_one() -> None:
    with pytest.raises(ValueError, match="set_bank"):
        GradCAM(_embedder(), "layer4", task="embedding").explain(structured_images(2, 64))


def test_a_bank_of_another_size_and_a_classifier_output_are_refused() -> None:
    task = Task("embedding")
    task.target.set_bank(torch.randn(3, 7))
    with pytest.raises(ValueError, match="7-dimensional concepts"):
        GradCAM(_embedder(), "layer4", task=task).explain(structured_images(2, 64), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"\(B, D\) embeddings"):
        Task("embedding").target.check_output(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match="float tensor"):
        task.target.set_bank(torch.zeros(3, dtype=torch.long))


def test_class_centroids_as_the_bank_and_the_metrics_read_the_similarity() -> None:
    model = _embedder()
    x = structured_images(6, 64, seed=7)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    with torch.no_grad():
        e = model(x)
    task = Task("embedding")
    task.target.set_bank(class_centroids(e, labels, 3))
    cam = GradCAM(model, "layer4", task=task)
    out = evaluate_batch(cam, x, labels, metrics=["average_drop", "increase", "complexity"])
    res = cam.explain(x, labels)
    with torch.no_grad():
        masked = model(x * res.maps.unsqueeze(1))
    y = task.target.probability(e, labels)
    o = task.target.probability(masked, labels)
    assert bool((y > 0).all())
    expected = 100 * torch.relu(y - o) / y
    torch.testing.assert_close(out["average_drop"], expected.clamp(max=100), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out["increase"], 100.0 * (o > y).float())


def test_a_pair_without_similarity_is_left_out_never_scored() -> None:
    """A concept the image's embedding points away from: no probability to drop from, NaN (a counted fault in the
    callback), never an Average Drop of 0."""
    model = _embedder()
    x = structured_images(2, 64, seed=8)
    with torch.no_grad():
        e = model(x)
    task = Task("embedding")
    task.target.set_bank(torch.stack([-e[0], e[1] + e[0]]))  # image 0's concept is its own opposite
    out = evaluate_batch(GradCAM(model, "layer4", task=task), x, torch.tensor([0, 1]), metrics=["average_drop"])
    assert math.isnan(float(out["average_drop"][0])) and math.isfinite(float(out["average_drop"][1]))


@pytest.mark.parametrize("method", [EigenCAM, ScoreCAM])
def test_other_methods_explain_an_embedding(method: type) -> None:
    model = _embedder()
    task = Task("embedding")
    task.target.set_bank(_concepts(model))
    res = method(model, "layer4", task=task).explain(structured_images(2, 64), torch.tensor([0, 1]))
    assert res.maps.shape == (2, 64, 64) and bool(torch.isfinite(res.maps).all())


def test_a_class_past_the_banks_end_is_a_pair_without_a_concept_not_a_lost_batch() -> None:
    """The callback's bank holds the classes its last run saw: a label beyond them is left out, the rest scored."""
    model = _embedder()
    x = structured_images(3, 64, seed=9)
    with torch.no_grad():
        e = model(x)
    task = Task("embedding")
    task.target.set_bank(e[:2] + 0.5 * e[2])  # classes 0 and 1 only
    out = evaluate_batch(GradCAM(model, "layer4", task=task), x, torch.tensor([0, 1, 4]), metrics=["average_drop"])
    drop = out["average_drop"]
    assert math.isfinite(float(drop[0])) and math.isfinite(float(drop[1])) and math.isnan(float(drop[2]))
    with pytest.raises(ValueError):
        GradCAM(model, "layer4", task=task).explain(x, torch.tensor([0, -1, 1]))

"""The output kinds: scores, probabilities, predicted classes and the (image, class) pairs, by hand."""

from __future__ import annotations

import math

import pytest
import torch

from lightning_cam.functional.pairs import predicted_positives, select_pairs
from lightning_cam.targets.task import (
    Task,
    check_task,
    check_task_logits,
    predicted_class,
    target_probability,
    target_score,
)


def test_target_probability_hand_computed() -> None:
    logits = torch.tensor([[0.0, math.log(3.0)], [2.0, 2.0]])
    got = target_probability(logits, torch.tensor([1, 0]))
    torch.testing.assert_close(got, torch.tensor([0.75, 0.5]))


def test_target_probability_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="logits"):
        target_probability(torch.zeros(2, 3), torch.zeros(3, dtype=torch.long))


def test_sigmoid_probabilities_are_per_class() -> None:
    # a multi-label image confident in two classes: the softmax would split them, the sigmoid keeps each at ~1
    logits = torch.tensor([[8.0, 8.0, -8.0]])
    sig = 1.0 / (1.0 + math.exp(-8.0))
    torch.testing.assert_close(target_probability(logits, torch.tensor([0]), "multilabel"), torch.tensor([sig]))
    torch.testing.assert_close(target_probability(logits, torch.tensor([0]), "multiclass"),
                               torch.tensor([math.exp(8) / (2 * math.exp(8) + math.exp(-8))]))


def test_binary_negative_class_is_the_negated_logit() -> None:
    z = torch.tensor([[1.5], [-0.5]], requires_grad=True)
    t = torch.tensor([1, 0])
    torch.testing.assert_close(target_score(z, t, "binary"), torch.tensor([1.5, 0.5]))
    p = target_probability(z, t, Task("binary"))
    torch.testing.assert_close(p, torch.tensor([1 / (1 + math.exp(-1.5)), 1 / (1 + math.exp(-0.5))]))
    (g,) = torch.autograd.grad(target_score(z, t, "binary").sum(), z)
    assert g.view(-1).tolist() == [1.0, -1.0]


def test_predicted_class_per_kind() -> None:
    assert predicted_class(torch.tensor([[0.1, 0.5, 0.2]])).tolist() == [1]
    assert predicted_class(torch.tensor([[0.2], [-0.1], [0.0]]), "binary").tolist() == [1, 0, 0]
    pos = predicted_positives(torch.tensor([[0.1, -0.1, 2.0]]), 0.5)
    assert pos.tolist() == [[True, False, True]]
    # threshold 0.8: sigmoid(z) > 0.8 <=> z > log(4)
    pos = predicted_positives(torch.tensor([[1.3, 1.4]]), 0.8)
    assert pos.tolist() == [[False, True]]


def test_select_pairs_caps_by_rank_or_class_order() -> None:
    pos = torch.tensor([[1, 1, 1, 0], [0, 0, 0, 0], [0, 1, 0, 1]], dtype=torch.bool)
    s, c = select_pairs(pos)
    assert list(zip(s.tolist(), c.tolist())) == [(0, 0), (0, 1), (0, 2), (2, 1), (2, 3)]
    s, c = select_pairs(pos, max_per_image=1)  # class order: the first positive
    assert list(zip(s.tolist(), c.tolist())) == [(0, 0), (2, 1)]
    rank = torch.tensor([[0.0, 3.0, 2.0, 9.0], [0.0] * 4, [0.0, -1.0, 0.0, 5.0]])
    s, c = select_pairs(pos, rank, max_per_image=2)  # the highest ranked positives (class 3 of image 0 is negative)
    assert list(zip(s.tolist(), c.tolist())) == [(0, 1), (0, 2), (2, 1), (2, 3)]


def test_task_options_are_checked() -> None:
    assert check_task(None) == Task()
    assert check_task({"kind": "multilabel", "threshold": 0.3}).threshold == 0.3
    with pytest.raises(ValueError, match="unknown task 'sigmoid'"):
        check_task("sigmoid")
    with pytest.raises(ValueError, match="threshold"):
        Task("multilabel", threshold=1.0)
    with pytest.raises(ValueError, match="max_labels"):
        Task("multilabel", max_labels=0)
    with pytest.raises(TypeError, match="task"):
        check_task(3)


def test_one_logit_needs_the_binary_kind() -> None:
    with pytest.raises(ValueError, match="task='binary'"):
        check_task_logits(torch.zeros(4, 1), Task())
    with pytest.raises(ValueError, match="expects one logit"):
        check_task_logits(torch.zeros(4, 2), Task("binary"))
    assert check_task_logits(torch.zeros(4, 1), Task("binary")).shape == (4, 1)


def test_head_weights_are_the_rows_that_give_the_score() -> None:
    fc = torch.arange(12.0).view(3, 4)
    torch.testing.assert_close(Task().target.head_weights(fc, torch.tensor([2, 0, 2])), fc[[2, 0, 2]])
    row = torch.tensor([[1.0, -2.0]])
    torch.testing.assert_close(Task("binary").target.head_weights(row, torch.tensor([1, 0])), torch.cat([row, -row]))

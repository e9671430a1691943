"""ADCC-family metric classes (metrics/adcc.py): the raw-input forms of ``update`` match the formulas."""

from __future__ import annotations

import torch

from lightning_cam.metrics import ADCC, AverageDrop, Coherency, Complexity, IncreaseInConfidence

NAN = float("nan")


def test_raw_input_forms_match_formulas() -> None:
    y, o = torch.tensor([0.8, 0.5]), torch.tensor([0.2, 0.9])
    d, i = AverageDrop(), IncreaseInConfidence()
    d.update(y, o)
    i.update(y, o)
    torch.testing.assert_close(d.compute(), torch.tensor(37.5))
    torch.testing.assert_close(i.compute(), torch.tensor(50.0))

    maps = torch.tensor([[[0.0, 0.5], [1.0, 0.2]]])
    c = Coherency()
    c.update(maps, maps)
    c.update(maps, 1 - maps)
    torch.testing.assert_close(c.compute(), torch.tensor(0.5))
    x = Complexity()
    x.update(maps)
    torch.testing.assert_close(x.compute(), torch.tensor(0.425))
    a = ADCC()
    a.update(torch.tensor([1.0, 1.0]), torch.tensor([0.0, 1.0]), torch.tensor([0.0, 0.0]))
    torch.testing.assert_close(a.compute(), torch.tensor(0.5))


def test_raw_form_nan_map_is_skipped() -> None:
    maps = torch.rand(3, 4, 4)
    maps[1, 0, 0] = NAN
    m = Complexity()
    m.update(maps)
    assert int(m.count) == 2 and int(m.num_skipped) == 1
    torch.testing.assert_close(m.compute(), maps[[0, 2]].mean())

"""tests/helpers.py: the method options table refuses keys that would silently drop the options."""

from __future__ import annotations

import pytest

from tests.helpers import MethodOptions


def test_method_options_take_canonical_names_only() -> None:
    table = MethodOptions({"smoothgradcam_pp": {"num_samples": 2}})
    assert table.of("smoothgradcam++") == table.of("smoothgradcam_pp") == {"num_samples": 2}
    assert table.of("gradcam") == {}
    with pytest.raises(KeyError, match=r"\['smoothgradcam\+\+'\], which are not canonical"):
        MethodOptions({"smoothgradcam++": {"num_samples": 2}})
    with pytest.raises(KeyError, match="no_such_cam"):
        MethodOptions({"no_such_cam": {}})

"""The synthetic SAM 2 at full scale has each id's Hiera shapes (built on the meta device)."""

from __future__ import annotations

import pytest
import torch

from runners.segment_anything_2.synth import SAM2_IDS, build_config, hiera_size


@pytest.mark.parametrize("size, millions", [("tiny", 31.4), ("small", 38.5), ("base-plus", 73.3), ("large", 216.9)])
def test_full_scale_hiera_shapes(size, millions):
    from transformers import Sam2Model

    for version in ("sam2", "sam2.1"):
        with torch.device("meta"):
            model = Sam2Model(build_config(f"facebook/{version}-hiera-{size}", "full"))
        assert round(sum(p.numel() for p in model.parameters()) / 1e6, 1) == millions


def test_every_id_go_livepeer_may_send_has_a_shape():
    assert len(SAM2_IDS) == 8 and "facebook/sam2-hiera-large" in SAM2_IDS
    assert {hiera_size(i) for i in SAM2_IDS} == {"tiny", "small", "base-plus", "large"}
    assert hiera_size("facebook/sam2.1_hiera_base_plus") == "base-plus"

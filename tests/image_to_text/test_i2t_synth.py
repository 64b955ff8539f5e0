"""The synthetic BLIP at full scale has the published shapes (built on the meta device: no memory, no time)."""

from __future__ import annotations

import pytest
import torch

from runners.image_to_text.synth import DEC, build_config, build_processor


@pytest.mark.parametrize("model_id, millions", [("Salesforce/blip-image-captioning-large", 446),
                                                ("Salesforce/blip-image-captioning-base", 224)])
def test_full_scale_blip_shapes(model_id, millions):
    from transformers import BlipForConditionalGeneration

    config = build_config(model_id, "full")
    with torch.device("meta"):
        model = BlipForConditionalGeneration(config)
    assert round(sum(p.numel() for p in model.parameters()) / 1e6) == millions
    assert (config.vision_config.image_size, config.vision_config.patch_size) == (384, 16)
    assert (config.text_config.vocab_size, config.text_config.bos_token_id) == (30524, DEC)


def test_tokenizer_layout():
    tok = build_processor().tokenizer
    assert tok("A photo of")["input_ids"][0] == 101 and tok("a photo of")["input_ids"][-1] == 102
    assert tok.convert_tokens_to_ids("[DEC]") == DEC and tok.decode(tok("a photo of")["input_ids"],
                                                                     skip_special_tokens=True) == "a photo of"

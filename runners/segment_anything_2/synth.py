"""Synthetic SAM 2 / SAM 2.1 checkpoints in transformers' format (config.json + model.safetensors +
preprocessor_config.json), in the Hugging Face cache layout.

"full" builds the real Hiera shapes of each id (image-model parameters: tiny 31.4 M, small 38.5 M,
base-plus 73.3 M, large 216.9 M; sam2's published counts add about 7.5 M of video memory modules that
image segmentation never runs), for GPU benchmarks; "tiny" keeps every interface (1024 x 1024 input, 256 x 256 low-resolution
masks, 3 multimask outputs, the stride-4 patch embedding and four Hiera stages) and shrinks the widths, for
tests. SAM 2 and SAM 2.1 share shapes; only the trained weights differ.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from runner_sdk.hfcache import install_snapshot

# Hiera shapes (sam2's configs): width, heads, blocks per stage, global-attention blocks, window background.
HIERA = {
    "tiny": (96, 1, [1, 2, 7, 2], [5, 7, 9], [7, 7]),
    "small": (96, 1, [1, 2, 11, 2], [7, 10, 13], [7, 7]),
    "base-plus": (112, 2, [2, 3, 16, 3], [12, 16, 20], [14, 14]),
    "large": (144, 2, [2, 6, 36, 4], [23, 33, 43], [7, 7]),
}
SAM2_IDS = [f"facebook/{v}-hiera-{size}" for v in ("sam2", "sam2.1") for size in HIERA]


def hiera_size(model_id: str) -> str:
    """"tiny", "small", "base-plus" or "large" from an id such as facebook/sam2.1-hiera-base-plus."""
    name = model_id.rsplit("/", 1)[-1].lower().replace("_", "-")
    for size in ("base-plus", "large", "small", "tiny"):
        if name.endswith(size):
            return size
    return "large"


def build_config(model_id: str, scale: str):
    """The Sam2Config of `model_id`'s Hiera size at `scale` ("tiny" or "full"; ValueError otherwise)."""
    from transformers import Sam2Config

    width, heads, blocks, global_blocks, background = HIERA[hiera_size(model_id)]
    window = [8, 4, 16, 8] if hiera_size(model_id) == "large" else [8, 4, 14, 7]
    fpn, decoder = dict(fpn_hidden_size=256), dict(hidden_size=256)
    if scale == "tiny":
        width, heads, blocks, global_blocks = 8, 1, [1, 1, 2, 1], [3]
        fpn, decoder = dict(fpn_hidden_size=32), dict(hidden_size=32, mlp_dim=64, num_attention_heads=2,
                                                      iou_head_hidden_dim=32)
    elif scale != "full":
        raise ValueError(f"scale must be 'tiny' or 'full', not {scale!r}")
    dims = [width * m for m in (1, 2, 4, 8)]
    backbone = dict(model_type="sam2_hiera_det_model", hidden_size=width, num_attention_heads=heads,
                    blocks_per_stage=blocks, embed_dim_per_stage=dims,
                    num_attention_heads_per_stage=[heads * m for m in (1, 2, 4, 8)], window_size_per_stage=window,
                    global_attention_blocks=global_blocks, window_positional_embedding_background_size=background)
    vision = dict(backbone_config=backbone, backbone_channel_list=dims[::-1], **fpn)
    return Sam2Config(vision_config=vision, prompt_encoder_config=dict(hidden_size=decoder["hidden_size"]),
                      mask_decoder_config=decoder)


PREPROCESSOR = {"image_processor_type": "Sam2ImageProcessor", "processor_class": "Sam2Processor",
                "size": {"height": 1024, "width": 1024}, "mask_size": {"height": 256, "width": 256},
                "do_resize": True, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
                "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225], "do_convert_rgb": True}


def synthesize(model_id: str, model_dir: Path, scale: str = "tiny", seed: int = 0) -> Path:
    """Write a random-weight SAM 2 for `model_id` at `scale` into `model_dir` (HF cache layout).

    Args:
        model_id: a `facebook/sam2[.1]-hiera-*` id (others get the large shapes). model_dir: the cache root.
        scale: "tiny" (tests) or "full" (real shapes). seed: the weights' random seed.
    Returns:
        The snapshot folder.
    """
    import torch
    from transformers import Sam2Model

    torch.manual_seed(seed)
    with torch.device("cuda" if scale == "full" and torch.cuda.is_available() else "cpu"):
        model = Sam2Model._from_config(build_config(model_id, scale), dtype=torch.float32)
    Path(model_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".synth-sam2-", dir=str(model_dir)) as tmp:
        out = Path(tmp) / "repo"
        model.save_pretrained(out, safe_serialization=True)
        (out / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR, indent=2))
        (out / "synthetic.json").write_text(json.dumps({"model_id": model_id, "scale": scale, "seed": seed,
                                                        "note": "random weights; real architecture"}))
        del model
        return install_snapshot(out, Path(model_dir), model_id)

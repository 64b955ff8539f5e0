"""What the operator wants to earn from, in order: the planner's input (`--demand`, `--demand-file`).

The guide's first rule: start from demand (which pipeline-model pairs gateways route), then check that the
warm footprint fits with headroom. One item is `PIPELINE[:MODEL_ID][=warm|cold]`: the model defaults to the
pipeline table's default id (the one gateways send when a request names none; the LLM's is its published
weights' id), the mode to the guide's advice for that pipeline. A demand file holds one item per line
(`#` comments) or a JSON list of such strings.

Without a demand, the guide's tier strategy for the biggest GPU is used (`default_demand`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .. import pipelines
from .known import LLM_DOWNLOAD_ID

GiB = 1024**3
# Models gateways route most for each pipeline, as the guide names them (its examples and tier lists).
GUIDE_MODELS = {
    "text-to-image": "SG161222/RealVisXL_V4.0_Lightning",
    "image-to-image": "ByteDance/SDXL-Lightning",
    "audio-to-text": "openai/whisper-large-v3",
    "llm": LLM_DOWNLOAD_ID,
    "image-to-text": "Salesforce/blip-image-captioning-large",
    "segment-anything-2": "facebook/sam2-hiera-large",
    "upscale": "stabilityai/stable-diffusion-x4-upscaler",
    "live-video-to-video": "streamdiffusion",
}
# The guide's "Warm vs cold": cold loading is acceptable for these; every other pipeline wants to be warm.
COLD_OK = ("audio-to-text", "image-to-text")


@dataclass(frozen=True)
class Demand:
    """One pipeline-model pair the operator wants to serve, and whether it should be warm.

    Attributes:
        pipeline: a pipeline of the table.
        model_id: the id gateways request.
        want: "warm" (fall back to cold, then left out) or "cold" (never warm).
        why: where the item came from (shown in plan.md).
    """

    pipeline: str
    model_id: str
    want: str = "warm"
    why: str = "your demand list"


def default_model(pipeline: str) -> str:
    """The id to plan when the operator names none: the guide's model, else the table's default id."""
    return GUIDE_MODELS.get(pipeline) or pipelines.get(pipeline).default_model_id


def parse_item(text: str, why: str = "your demand list") -> Demand:
    """One demand item, `PIPELINE[:MODEL_ID][=warm|cold]`.

    Args:
        text: e.g. "text-to-image", "image-to-image=cold", "llm:meta-llama/Llama-3.2-3B-Instruct=warm".
        why: the item's origin, for plan.md.

    Returns:
        The demand item.

    Raises:
        ValueError: an unknown pipeline, an empty model id or a mode other than warm/cold.
    """
    body, _, want = text.strip().partition("=")
    pipeline, sep, model_id = body.partition(":")
    pipelines.get(pipeline)  # raises UnknownPipeline (a ValueError) naming the valid ones
    if sep and not model_id:
        raise ValueError(f"demand {text!r}: empty model id after ':'")
    want = want or "warm"
    if want not in ("warm", "cold"):
        raise ValueError(f"demand {text!r}: the mode after '=' is warm or cold")
    return Demand(pipeline, model_id or default_model(pipeline), want, why)


def read_file(path: str | Path) -> list[Demand]:
    """A demand file: one item per line (`#` comments, blank lines skipped) or a JSON list of item strings.

    Args:
        path: the file.

    Returns:
        The items in file order.

    Raises:
        ValueError: unreadable, or an item that does not parse.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read demand file {path}: {exc}") from exc
    if text.lstrip().startswith("["):
        items = json.loads(text)
    else:
        items = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    return [parse_item(str(i), f"demand file {Path(path).name}") for i in items if str(i).strip()]


def _tier(largest: int, count: int) -> tuple[str, list[str]]:
    """(the guide's tier name, its items) for a host whose biggest GPU has `largest` bytes."""
    if largest < 20 * GiB:
        return ("consumer tier (8-12 GB): audio-to-text and image-to-text warm together; llm on a separate "
                "GPU when one is available; diffusion left off",
                ["audio-to-text", "image-to-text", "llm", "segment-anything-2"])
    if largest < 39 * GiB:
        name = ("24 GB tier: text-to-image warm as the primary pipeline, audio-to-text co-warm, image-to-image "
                "cold on demand" + ("; with more GPUs, Whisper + LLM on the next GPU" if count > 1 else
                                    "; llm needs another GPU"))
        return name, ["text-to-image", "audio-to-text", "image-to-image=cold", "llm"]
    if largest < 79 * GiB:
        return ("high tier (A100 40 GB class): full pipeline access",
                ["text-to-image", "audio-to-text", "image-to-image", "llm", "upscale=cold"])
    return ("high tier (80 GB: A100 80 GB / H100): several diffusion models warm, live-video-to-video "
            "alongside, capacity > 1",
            ["text-to-image", "audio-to-text", "image-to-image", "llm", "live-video-to-video", "upscale"])


def default_demand(gpu_bytes: list[int]) -> tuple[str, list[Demand]]:
    """The guide's tier strategy for these GPUs, as a demand list.

    Args:
        gpu_bytes: each GPU's memory, in device order.

    Returns:
        (the tier's description, its demand items).
    """
    name, items = _tier(max(gpu_bytes), len(gpu_bytes))
    return name, [parse_item(i, "the guide's " + name.split(":")[0]) for i in items]

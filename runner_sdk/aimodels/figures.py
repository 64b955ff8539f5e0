"""VRAM figures for any model id, estimated from its architecture, for every pipeline of the pipeline table.

`aimodels plan` uses measured figures (`runner-sdk bench` results) when it has them for a model, the
committed reference table (reference.json) for the ids it holds, and otherwise these estimates. Every
estimate is labelled as one (`source: "estimate"`, notes starting "ESTIMATE"). Where the operator guide
gives a figure ("VRAM by pipeline" and its tier lists) that figure is used; otherwise parameters x bytes per
parameter plus activations, as the notes say.

The architecture is read from the model id: every SDXL checkpoint (`*XL*`, `*Lightning*`, `sdxl-turbo`),
SD 1.x/2.x and sd-turbo, FLUX, every Whisper size (tiny ... large-v3, turbo, distil), every Llama size
(1B ... 405B) in bf16, int8 or int4 (the LLM runner's QUANTIZE), BLIP, SAM2 sizes, SVD, the x4 upscaler,
Parler-TTS and the live-video-to-video pipelines. An id of an unknown architecture has no estimate.
"""

from __future__ import annotations

import re

from ..pipelines import PIPELINES
from .results import ModelFigures

GB = 10**9
# CUDA context and allocator slack of one process.
CONTEXT = int(0.5 * GB)
# The LLM runner's QUANTIZE values, best quality first; "" is bf16.
QUANTIZATIONS = ("", "int8", "int4")
_BYTES_PER_PARAM = {"": 2.0, "int8": 1.0, "int4": 0.5 * (1 + 4 / 64)}  # int4: bf16 scale+zero per 128

# (pattern on the lower-cased id, warm bytes, peak bytes, note) per pipeline family; first match wins.
_DIFFUSION = (
    (r"flux", 33 * GB, 37 * GB, "FLUX.1 (12B transformer + T5-XXL in bf16)"),
    (r"sd-turbo|stable-diffusion-(v1|2)|v1-5|sd-1|dreamshaper(?!.*xl)", 3 * GB, 5 * GB,
     "SD 1.x/2.x class UNet (0.9B) in fp16"),
    (r"xl|lightning|sdxl|turbo|pony|juggernaut|realvis|playground", 8 * GB, 12 * GB,
     "SDXL class: UNet 2.6B + two text encoders 0.8B + VAE in fp16, plus 1024x1024 activations and the VAE "
     "decode at peak (the reference table's SDXL figure)"),
)
_OTHER = {
    "image-to-video": ((r"stable-video-diffusion|svd", 6 * GB, 18 * GB,
                        "SVD (1.5B UNet fp16); peak: 25 frames at 1024x576 with chunked VAE decode"),),
    "upscale": ((r"x4-upscaler|upscal", 3 * GB, 12 * GB,
                 "SD x4 upscaler (0.5B UNet fp16); peak: a 512 px input upscaled to 2048 px"),),
    "image-to-text": ((r"blip.*large", 2 * GB, int(2.5 * GB), "BLIP large: the guide's ~2 GB"),
                      (r"blip", int(1.2 * GB), int(1.6 * GB), "BLIP base (0.25B fp16)")),
    "segment-anything-2": ((r"tiny", int(2.5 * GB), 4 * GB, "SAM2 hiera tiny"),
                           (r"small", 3 * GB, int(4.5 * GB), "SAM2 hiera small"),
                           (r"base", 4 * GB, 6 * GB, "SAM2 base: the guide's ~4-6 GB"),
                           (r"large|sam2", 5 * GB, 7 * GB, "SAM2 hiera large (0.22B) with video memory")),
    "text-to-speech": ((r"mini", int(2.2 * GB), int(3.5 * GB), "Parler-TTS mini (0.9B fp16)"),
                       (r"parler", 5 * GB, 7 * GB, "Parler-TTS large (2.3B fp16)")),
    "live-video-to-video": ((r".*", 10 * GB, 14 * GB,
                             "a live pipeline (StreamDiffusion/ComfyUI class) with its TensorRT engines"),),
}
# Whisper: parameters per size (encoder + decoder).
_WHISPER = (("distil", 0.756e9), ("turbo", 0.809e9), ("large", 1.55e9), ("medium", 0.769e9), ("small", 0.244e9),
            ("base", 0.074e9), ("tiny", 0.039e9))
# Llama: (size tag, parameters, embedding parameters, KV bytes per token, layers) by family size.
_LLAMA = ((405, 405.9e9, 2.1e9, 516_096), (70, 70.6e9, 1.05e9, 327_680), (8, 8.03e9, 0.525e9, 131_072),
          (3, 3.21e9, 0.394e9, 114_688), (1, 1.24e9, 0.263e9, 32_768))
CONTEXT_TOKENS = 8192


def _figures(pipeline: str, model_id: str, warm: int, peak: int, note: str) -> ModelFigures:
    return ModelFigures(pipeline=pipeline, model_id=model_id, warm_vram_bytes=int(warm), peak_vram_bytes=int(peak),
                        weights="unknown", source="estimate", notes=f"ESTIMATE by architecture: {note}.")


def whisper(model_id: str) -> ModelFigures | None:
    """Whisper of any size: fp16 weights; peak adds chunked batch decoding (about half the weights + 0.5 GB).

    Args:
        model_id: e.g. "openai/whisper-large-v3", "openai/whisper-tiny", "distil-whisper/distil-large-v3".

    Returns:
        The estimate, or None when the id names no Whisper size.
    """
    low = model_id.lower()
    if "whisper" not in low:
        return None
    for tag, params in _WHISPER:
        if tag in low:
            warm = params * 2 if tag != "large" else 3 * GB  # large: the guide's ~3 GB
            peak = warm + params * 0.6 + CONTEXT
            return _figures("audio-to-text", model_id, warm, peak,
                            f"Whisper {tag} ({params / 1e9:.2f}B parameters) in fp16; peak adds batched "
                            "decoding buffers")
    return None


def llama_size(model_id: str) -> tuple[float, float, int] | None:
    """(parameters, embedding parameters, KV bytes per token) of a Llama-family id, from its "<N>B" tag."""
    m = re.search(r"(\d+(?:\.\d+)?)b(?![a-z])", model_id.lower())
    if m is None:
        return None
    size = float(m.group(1))
    for tag, params, embed, kv in _LLAMA:
        if size >= tag * 0.8:
            return params, embed, kv
    return None


def llm(model_id: str, quantize: str = "") -> ModelFigures | None:
    """An LLM of the Llama family at bf16 (quantize ""), int8 or int4 weight-only (the runner's QUANTIZE).

    Linear layers take the quantised bytes; the input embedding stays bf16. Warm adds the CUDA context;
    peak adds a full 8192-token KV cache and the logits over the vocabulary.

    Args:
        model_id: e.g. "meta-llama/Meta-Llama-3.1-8B-Instruct", "meta-llama/Llama-3.2-1B-Instruct".
        quantize: "", "int8" or "int4".

    Returns:
        The estimate, or None when the id carries no parameter count.

    Raises:
        ValueError: an unknown quantisation.
    """
    if quantize not in _BYTES_PER_PARAM:
        raise ValueError(f"quantize {quantize!r}: use int8 or int4")
    size = llama_size(model_id)
    if size is None:
        return None
    params, embed, kv = size
    weights = (params - embed) * _BYTES_PER_PARAM[quantize] + embed * 2
    warm = weights + CONTEXT
    peak = warm + kv * CONTEXT_TOKENS + 0.9 * GB
    label = quantize or "bf16"
    fig = _figures("llm", model_id, warm, peak,
                   f"{params / 1e9:.1f}B parameters, {label} weights ({weights / GB:.1f} GB), peak with an "
                   f"{CONTEXT_TOKENS}-token KV cache; the guide's ~6-8 GB is Llama 8B at 4 bits")
    return fig


def estimate(pipeline: str, model_id: str, quantize: str = "") -> ModelFigures | None:
    """Figures for `model_id` on `pipeline` by architecture; None when the architecture is not known.

    Args:
        pipeline: a pipeline of the table.
        model_id: any model id.
        quantize: for llm only: "", "int8" or "int4".

    Returns:
        An estimate labelled as one, or None.

    Raises:
        ValueError: an unknown pipeline.
    """
    if pipeline not in PIPELINES:
        raise ValueError(f"unknown pipeline {pipeline!r}")
    if pipeline == "llm":
        return llm(model_id, quantize)
    if pipeline == "audio-to-text":
        return whisper(model_id)
    rows = _DIFFUSION if pipeline in ("text-to-image", "image-to-image") else _OTHER.get(pipeline, ())
    low = model_id.lower()
    for pattern, warm, peak, note in rows:
        if re.search(pattern, low):
            return _figures(pipeline, model_id, warm, peak, note)
    return None


def peak_at(figures: ModelFigures, capacity: int) -> int | None:
    """Peak VRAM at `capacity`: the measured run when there is one, else warm + capacity x (peak - warm).

    Args:
        figures: measured or estimated figures.
        capacity: concurrent jobs.

    Returns:
        Bytes, or None without VRAM figures.
    """
    for run in figures.by_capacity:
        if run.capacity == capacity and run.peak_vram_bytes is not None:
            return run.peak_vram_bytes
    warm, peak = figures.warm_vram_bytes, figures.peak_vram_bytes
    if peak is None:
        return warm if capacity == 1 else None
    if warm is None:
        return peak if capacity == 1 else None
    return warm + capacity * (peak - warm)

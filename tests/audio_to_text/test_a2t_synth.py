"""The synthetic Whisper checkpoints: real shapes, Whisper's token id layout, the HF cache layout."""

from __future__ import annotations

import json

import pytest
import torch

from runner_sdk.resolve import resolve_snapshot
from runners.audio_to_text.synth import build_config, build_tokenizer, shape_for


@pytest.fixture(scope="module")
def snapshot(whisper_model_dir):
    return resolve_snapshot("openai/whisper-large-v3", whisper_model_dir, download=False)


def test_a2t_v3_tokenizer_follows_whispers_id_layout(snapshot):
    from transformers import AutoProcessor

    tok = AutoProcessor.from_pretrained(snapshot).tokenizer
    ids = {t: tok.convert_tokens_to_ids(t) for t in (
        "<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|zh|>", "<|yue|>", "<|translate|>", "<|transcribe|>",
        "<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>", "<|0.00|>", "<|0.02|>",
        "<|30.00|>")}
    assert ids == {"<|endoftext|>": 50257, "<|startoftranscript|>": 50258, "<|en|>": 50259, "<|zh|>": 50260,
                   "<|yue|>": 50358, "<|translate|>": 50359, "<|transcribe|>": 50360, "<|startoflm|>": 50361,
                   "<|startofprev|>": 50362, "<|nospeech|>": 50363, "<|notimestamps|>": 50364,
                   "<|0.00|>": 50365, "<|0.02|>": 50366, "<|30.00|>": 51865}
    assert len(tok) == 51866 and tok.convert_tokens_to_ids("Ġ") == 220
    special = set(tok.all_special_ids)
    assert set(range(50257, 50365)) <= special and not special & set(range(50365, 51866))
    # Text tokens decode to text; timestamps and special tokens are not text.
    assert tok.decode(tok.encode(" hello world", add_special_tokens=False)) == " hello world"


def test_a2t_generation_config_matches_the_tokenizer(snapshot):
    from transformers import AutoProcessor

    tok = AutoProcessor.from_pretrained(snapshot).tokenizer
    gen = json.loads((snapshot / "generation_config.json").read_text())
    assert gen["no_timestamps_token_id"] == tok.convert_tokens_to_ids("<|notimestamps|>")
    assert gen["decoder_start_token_id"] == tok.convert_tokens_to_ids("<|startoftranscript|>")
    assert gen["prev_sot_token_id"] == tok.convert_tokens_to_ids("<|startofprev|>")
    assert gen["task_to_id"] == {"translate": 50359, "transcribe": 50360}
    assert all(tok.convert_tokens_to_ids(t) == i for t, i in gen["lang_to_id"].items()) and len(gen["lang_to_id"]) == 100
    assert gen["alignment_heads"] and gen["is_multilingual"] is True


def test_a2t_snapshot_is_in_the_hf_cache_layout(snapshot, whisper_model_dir):
    repo = whisper_model_dir / "models--openai--whisper-large-v3"
    assert snapshot.parent.parent == repo and (repo / "refs" / "main").read_text() == snapshot.name
    assert (snapshot / "model.safetensors").is_symlink()
    config = json.loads((snapshot / "config.json").read_text())
    assert (config["num_mel_bins"], config["vocab_size"], config["max_source_positions"]) == (128, 51866, 1500)


def test_a2t_older_whisper_layout_has_99_languages():
    tok = build_tokenizer(99)
    assert len(tok) == 51865
    assert tok.convert_tokens_to_ids("<|translate|>") == 50358 and tok.convert_tokens_to_ids("<|0.00|>") == 50364


# Parameter counts as published: large-v3 1,543,490,560 (transformers' count), distil-large-v3 756 M,
# medium 769 M (rounded on their model cards).
@pytest.mark.parametrize("model_id,decoder_layers,mels,vocab,params", [
    ("openai/whisper-large-v3", 32, 128, 51866, 1_543_490_560),
    ("distil-whisper/distil-large-v3", 2, 128, 51866, 756e6),
    ("openai/whisper-medium", 24, 80, 51865, 769e6),
])
def test_a2t_full_scale_has_the_real_shapes(model_id, decoder_layers, mels, vocab, params):
    from transformers import WhisperForConditionalGeneration

    config = build_config(shape_for(model_id, "full"))
    assert (config.decoder_layers, config.num_mel_bins, config.vocab_size) == (decoder_layers, mels, vocab)
    with torch.device("meta"):  # shapes only, no memory
        model = WhisperForConditionalGeneration(config)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(params, rel=0.01)

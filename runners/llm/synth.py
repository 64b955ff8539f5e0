"""Synthetic Llama 3.1 Instruct checkpoints: the real architecture from a config, random weights, a real
byte-level BPE tokenizer with the Llama 3 special tokens and chat template, in the Hugging Face cache layout.

`synthesize(model_id, model_dir, scale)` writes `model_id` (normally `meta-llama/Meta-Llama-3.1-8B-Instruct`)
so that serving it runs the same loading code as the real weights, offline.

- scale="tiny": 2 layers, hidden 64, 4 heads (2 KV heads), vocabulary 1024 (768 byte-level BPE tokens plus
  Llama 3's 256 special tokens), llama3 rope scaling, fp32. About 0.3 M parameters: CPU tests.
- scale="full": the real Llama 3.1 8B shapes (32 layers, hidden 4096, 32 heads, 8 KV heads, MLP 14336,
  vocabulary 128256 = 128000 BPE tokens + 256 special, rope theta 5e5 with llama3 scaling, 131072 positions)
  with random bf16 weights, written shard by shard straight to safetensors (drawn on the GPU when there is
  one): GPU benchmarks only.

The tokenizer covers the whole vocabulary (len(tokenizer) == vocab_size), so every id the model can emit
decodes. Its regular tokens are the 256 byte symbols, merges learned from a small built-in English text, then
deterministic filler merges up to the size the scale needs.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Literal

from runner_sdk.hfcache import install_snapshot

from .chat_template import LLAMA31_CHAT_TEMPLATE

Scale = Literal["tiny", "full"]

DEFAULT_MODEL_ID = "meta-llama/Meta-Llama-3.1-8B-Instruct"

# Llama 3's special tokens, in id order after the regular vocabulary (128000.. in the real tokenizer).
_NAMED_SPECIALS = [
    "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>", "<|start_header_id|>", "<|end_header_id|>",
    "<|eom_id|>", "<|eot_id|>", "<|python_tag|>",
]
SPECIAL_TOKENS = _NAMED_SPECIALS + [f"<|reserved_special_token_{i}|>" for i in range(3, 3 + 256 - 11)]
assert len(SPECIAL_TOKENS) == 256

# Llama 3's pre-tokenizer split (tokenizer.json of the real model).
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)

_CORPUS = """\
What is the capital of France? The capital of France is Paris. Paris is a city on the Seine.
You are a helpful assistant. Hello! How can I help you today? Tell me a story about a cat and a dog.
The quick brown fox jumps over the lazy dog. Write a short poem about the sea and the sky at night.
Please answer the question in one sentence. Thank you very much for your help with this question.
Machine learning models run on graphics cards; a language model predicts the next token of a text.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000 2024. Punctuation: , . ; : ! ? ( ) [ ] { } " ' - _ / \\ * + = < > @ #
"""

TINY = dict(vocab_size=1024, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2)
FULL = dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
            num_attention_heads=32, num_key_value_heads=8)


def llama_config(scale: Scale):
    from transformers import LlamaConfig

    shape = TINY if scale == "tiny" else FULL
    n_regular = shape["vocab_size"] - len(SPECIAL_TOKENS)
    return LlamaConfig(
        **shape,
        hidden_act="silu", max_position_embeddings=131072, rms_norm_eps=1e-5, initializer_range=0.02,
        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
        bos_token_id=n_regular, eos_token_id=[n_regular + 1, n_regular + 8, n_regular + 9],
        tie_word_embeddings=False, attention_bias=False, mlp_bias=False,
        dtype="float32" if scale == "tiny" else "bfloat16",
        architectures=["LlamaForCausalLM"],
    )


def _filler_merges(vocab: dict[str, int], merges: list[tuple[str, str]], n_regular: int, alphabet: list[str]):
    """Deterministic merges (pairs of existing tokens) until the regular vocabulary has n_regular tokens."""
    frontier = list(alphabet)
    while len(vocab) < n_regular:
        grown = []
        for left in frontier:
            for right in alphabet:
                token = left + right
                if token in vocab:
                    continue
                vocab[token] = len(vocab)
                merges.append((left, right))
                grown.append(token)
                if len(vocab) >= n_regular:
                    return
        frontier = grown


def build_tokenizer(n_regular: int):
    """A Llama 3 style byte-level BPE tokenizer: `n_regular` tokens, then the 256 special tokens."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    split = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    alphabet.sort()
    learned = Tokenizer(models.BPE())
    learned.pre_tokenizer = split
    trainer = trainers.BpeTrainer(vocab_size=min(n_regular, 768), initial_alphabet=alphabet,
                                  show_progress=False, min_frequency=2)
    learned.train_from_iterator([_CORPUS] * 4, trainer=trainer)
    model = json.loads(learned.to_str())["model"]
    vocab: dict[str, int] = {}
    for symbol in alphabet:  # the 256 bytes first, in a fixed order, so ids do not depend on the corpus
        vocab[symbol] = len(vocab)
    merges: list[tuple[str, str]] = []
    for merge in model["merges"]:
        left, right = merge if isinstance(merge, list) else merge.split(" ", 1)
        if left + right not in vocab and len(vocab) < n_regular:
            vocab[left + right] = len(vocab)
            merges.append((left, right))
    _filler_merges(vocab, merges, n_regular, alphabet)

    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=True))
    tok.pre_tokenizer = split
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    assert tok.get_vocab_size() == n_regular + len(SPECIAL_TOKENS)
    from tokenizers import processors

    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
        special_tokens=[("<|begin_of_text|>", n_regular)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
        chat_template=LLAMA31_CHAT_TEMPLATE, model_max_length=131072, clean_up_tokenization_spaces=True,
        model_input_names=["input_ids", "attention_mask"],
    )


def _generation_config(config) -> dict:
    # meta-llama/Meta-Llama-3.1-8B-Instruct generation_config.json (ids shifted to this vocabulary).
    return {"bos_token_id": config.bos_token_id, "eos_token_id": list(config.eos_token_id), "do_sample": True,
            "temperature": 0.6, "top_p": 0.9}


def _write_full_weights(config, out: Path, shard_bytes: int = 5 * 1024**3) -> None:
    """Random bf16 weights for every parameter, shard by shard, never holding the whole model."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    gen = torch.Generator(device=device).manual_seed(0)
    index: dict[str, str] = {}
    shard: dict[str, torch.Tensor] = {}
    size = 0
    names = [(n, p.shape) for n, p in skeleton.state_dict().items()]
    shards: list[dict[str, torch.Tensor]] = []

    def flush() -> None:
        nonlocal shard, size
        if shard:
            shards.append(shard)
            number = len(shards)
            path = out / f"model-{number:05d}-of-NNNNN.safetensors"
            save_file({k: v.cpu() for k, v in shard.items()}, str(path), metadata={"format": "pt"})
            for key in shard:
                index[key] = path.name
        shard, size = {}, 0

    for name, shape in names:
        if name.endswith("norm.weight") or "layernorm" in name:
            tensor = torch.ones(shape, dtype=torch.bfloat16, device=device)
        else:
            tensor = (torch.randn(shape, generator=gen, device=device, dtype=torch.float32) * 0.02).to(torch.bfloat16)
        shard[name] = tensor
        size += tensor.numel() * 2
        if size >= shard_bytes:
            flush()
    flush()
    total = len(shards)
    renamed = {}
    for key, fname in index.items():
        new = fname.replace("NNNNN", f"{total:05d}")
        renamed[key] = new
    for fname in sorted(set(index.values())):
        (out / fname).rename(out / fname.replace("NNNNN", f"{total:05d}"))
    total_size = sum(int(torch.Size(s).numel()) * 2 for _, s in names)
    (out / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total_size}, "weight_map": dict(sorted(renamed.items()))}, indent=2))


def synthesize(model_id: str = DEFAULT_MODEL_ID, model_dir: Path | str = ".", scale: Scale = "tiny") -> Path:
    """Write a synthetic Llama 3.1 Instruct checkpoint for `model_id` under `model_dir`; return its snapshot."""
    import torch
    from transformers import AutoModelForCausalLM

    if scale not in ("tiny", "full"):
        raise ValueError(f"scale must be tiny or full, not {scale!r}")
    config = llama_config(scale)
    n_regular = config.vocab_size - len(SPECIAL_TOKENS)
    with tempfile.TemporaryDirectory(prefix="llm-synth-") as tmp:
        out = Path(tmp)
        build_tokenizer(n_regular).save_pretrained(out)
        (out / "generation_config.json").write_text(json.dumps(_generation_config(config), indent=2))
        if scale == "tiny":
            torch.manual_seed(0)
            model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
            model.save_pretrained(out)
            (out / "generation_config.json").write_text(json.dumps(_generation_config(config), indent=2))
        else:
            config.save_pretrained(out)
            _write_full_weights(config, out)
        return install_snapshot(out, Path(model_dir), model_id)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-id", default=DEFAULT_MODEL_ID)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--scale", choices=["tiny", "full"], default="tiny")
    args = parser.parse_args()
    print(synthesize(args.model_id, Path(args.model_dir), args.scale))

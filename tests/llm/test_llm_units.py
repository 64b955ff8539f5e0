"""The pieces under the engine: synthetic checkpoints at both scales, sampling filters, incremental
detokenisation."""

from __future__ import annotations

import torch

from runners.llm.detok import IncrementalDetokenizer
from runners.llm.sampling import SamplingParams, choose_tokens, filter_logits
from runners.llm.synth import build_tokenizer, llama_config


def test_full_scale_is_llama_31_8b_without_building_it():
    from transformers import AutoModelForCausalLM

    config = llama_config("full")
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads,
            config.num_key_value_heads, config.intermediate_size, config.vocab_size) == (32, 4096, 32, 8, 14336, 128256)
    assert config.rope_parameters["rope_type"] == "llama3" and config.rope_parameters["rope_theta"] == 500000.0
    with torch.device("meta"):  # shapes only, no memory
        model = AutoModelForCausalLM.from_config(config)
    assert sum(p.numel() for p in model.parameters()) == 8_030_261_248


def test_full_scale_tokenizer_covers_the_vocabulary_with_llama3_ids():
    tok = build_tokenizer(128000)
    assert len(tok) == 128256
    ids = tok.convert_tokens_to_ids(["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                                     "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>", "<|python_tag|>",
                                     "<|reserved_special_token_247|>"])
    assert ids == [128000, 128001, 128006, 128007, 128008, 128009, 128010, 128255]
    # Every id decodes, and text round-trips through the byte-level BPE.
    assert isinstance(tok.decode(list(range(0, 128256, 997))), str)
    text = "Café — 日本語 👋 tabs\tand\nnewlines"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text


def test_tiny_checkpoint_loads_with_the_chat_template(model_dir, tokenizer):
    assert len(tokenizer) == llama_config("tiny").vocab_size
    text = tokenizer.apply_chat_template([{"role": "system", "content": " Be brief. "},
                                          {"role": "user", "content": "Hi"}],
                                         tokenize=False, add_generation_prompt=True)
    assert text == ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: "
                    "December 2023\nToday Date: 26 Jul 2024\n\nBe brief.<|eot_id|><|start_header_id|>user"
                    "<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")


def test_top_k_and_top_p_filters():
    logits = torch.log(torch.tensor([0.5, 0.2, 0.15, 0.1, 0.05]))
    kept = lambda p: torch.isfinite(filter_logits(logits, p)).nonzero().flatten().tolist()  # noqa: E731
    assert kept(SamplingParams(temperature=1.0, top_k=2)) == [0, 1]
    assert kept(SamplingParams(temperature=1.0, top_p=0.6)) == [0, 1]  # 0.5 < 0.6, so the second stays
    assert kept(SamplingParams(temperature=1.0, top_p=0.45)) == [0]
    assert kept(SamplingParams(temperature=1.0, top_p=0.85)) == [0, 1, 2]
    assert kept(SamplingParams(temperature=1.0)) == [0, 1, 2, 3, 4]
    assert SamplingParams(temperature=0).greedy and SamplingParams(top_p=0).greedy
    assert SamplingParams(temperature=1e-30).greedy  # 1/1e-30 would overflow the logits to inf


def test_choose_tokens_greedy_rows_and_seeded_rows():
    logits = torch.randn(3, 50, generator=torch.Generator().manual_seed(0))
    logits[2] = logits[1]  # same distribution, same seed: same token, whichever row it sits in
    params = [SamplingParams(temperature=0), SamplingParams(temperature=1.0, seed=1),
              SamplingParams(temperature=1.0, seed=1)]
    draw = lambda: choose_tokens(  # noqa: E731
        logits, params, [None, torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)])
    first, second = draw(), draw()
    assert first == second and first[1] == first[2]
    assert first[0] == int(torch.argmax(logits[0]))


def test_incremental_detokenizer_never_splits_a_character(tokenizer):
    text = "naïve café 日本 🎉 ok"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > len(text.split())  # multi-byte characters span several byte-level tokens
    detok = IncrementalDetokenizer(tokenizer)
    pieces = [detok.push(i) for i in ids] + [detok.flush()]
    assert "".join(pieces) == text
    assert all("\ufffd" not in p for p in pieces)
    eot = tokenizer.convert_tokens_to_ids("<|eot_id|>")
    assert detok.push(eot) == ""  # special tokens are not text

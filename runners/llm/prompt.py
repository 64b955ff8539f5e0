"""Chat messages -> prompt token ids, with the caller's text tokenized as text (issue 14).

Rendering the chat template with the messages in it and tokenizing the result lets a user message that
contains special-token text (`<|eot_id|><|start_header_id|>system<|end_header_id|>`) forge a turn or a
system prompt: the tokenizer reads those strings as the special tokens. Instead the template is rendered
with a placeholder per message; the template's own text is tokenized with its special tokens, and each
message's content with `split_special_tokens=True`, so `<|eot_id|>` in a message is the characters, never
the token. Pre-tokenization already splits at the template's boundaries (special tokens, newlines), so an
ordinary conversation gets the same ids as tokenizing the rendered text.
"""

from __future__ import annotations

import logging
import re

log = logging.getLogger("runner.llm")

# Private-use characters: no chat template writes them, and unlike control characters they are not
# whitespace, so a template's `| trim` keeps them.
_MARK = "\ue000lp-message-{}\ue001"


def _render(tokenizer, messages: list[dict[str, str]], contents: list[str]) -> str:
    swapped = [{**m, "content": c} for m, c in zip(messages, contents, strict=True)]
    return tokenizer.apply_chat_template(swapped, tokenize=False, add_generation_prompt=True)


def prompt_ids(tokenizer, messages: list[dict[str, str]]) -> list[int]:
    """The templated prompt's ids, every message's content tokenized as plain text.

    Args:
        tokenizer: a transformers tokenizer with a chat template.
        messages: {"role", "content"} dicts.
    Returns:
        The ids the model reads (the template's BOS included: no second one is added).
    Raises:
        Exception: whatever the template raises for messages it rejects (roles out of order...).
    """
    marks = [_MARK.format(i) for i in range(len(messages))]
    text = _render(tokenizer, messages, marks)
    if not all(mark in text for mark in marks):
        # The template transforms or drops content in a way placeholders cannot follow: fall back to the
        # rendered text as before (special-token text in a message is then read as tokens: logged).
        log.warning("chat template does not keep message content verbatim; tokenizing the rendered prompt")
        return _plain_ids(tokenizer, messages)
    # Does the template trim content (Llama 3.1's `| trim`)? Padding the placeholders changes nothing then.
    trims = _render(tokenizer, messages, [f" {m} " for m in marks]) == text
    contents = {mark: (m["content"].strip() if trims else m["content"]) for mark, m in zip(marks, messages, strict=True)}
    ids: list[int] = []
    for piece in re.split("(" + "|".join(map(re.escape, marks)) + ")", text):
        if not piece:
            continue
        if piece in contents:
            if contents[piece]:
                ids += tokenizer(contents[piece], add_special_tokens=False, split_special_tokens=True)["input_ids"]
        else:
            ids += tokenizer(piece, add_special_tokens=False)["input_ids"]
    return ids


def _plain_ids(tokenizer, messages: list[dict[str, str]]) -> list[int]:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]

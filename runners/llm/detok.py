"""Incremental detokenisation: turn a growing list of token ids into small text deltas.

Byte-level BPE tokens can end inside a multi-byte UTF-8 character, and a token's text can depend on its
left neighbour. Fast tokenizers use the tokenizers library's own incremental decoder (`DecodeStream`, in
Rust), which holds a delta back until it ends on a whole character. Slow tokenizers fall back to the same
idea in Python: decode a short window of recent tokens with and without the newest one (as vLLM and TGI do).

`flush` decodes all ids once and returns whatever the deltas have not said yet, so the deltas always add up
to exactly what one full `decode` gives (the streamed reply equals the non-streamed one).
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class IncrementalDetokenizer:
    """Text deltas for one sequence of token ids.

    Args:
        tokenizer: a transformers tokenizer; fast ones (with a `backend_tokenizer`) decode in Rust.
        skip_special_tokens: leave special tokens (end of turn, headers) out of the text.
    """

    def __init__(self, tokenizer, skip_special_tokens: bool = True):
        self.tokenizer = tokenizer
        self.skip = skip_special_tokens
        self.ids: list[int] = []
        self.sent: list[str] = []  # every delta returned so far, flushes included
        self.backend = _backend(tokenizer)
        self.stream = None
        if self.backend is not None:
            from tokenizers.decoders import DecodeStream

            self.stream = DecodeStream(skip_special_tokens=skip_special_tokens)
        # After a flush (or if the stream gives up), each delta is the full decode minus the text already
        # sent: O(length) per token, but exact; the runner never pushes after its one flush.
        self.by_full_decode = False
        # The slow path's window: tokens before read_offset have been emitted, prefix_offset starts the context.
        self.prefix_offset = 0
        self.read_offset = 0

    def push(self, token_id: int) -> str:
        """Add one token.

        Args:
            token_id: the newest generated id.

        Returns:
            The new text it completes; "" while it ends inside a character (or is a skipped special token).
        """
        self.ids.append(token_id)
        if self.by_full_decode:
            delta = self._unsent(final=False)
        elif self.stream is None:
            delta = self._window()
        else:
            try:
                delta = self.stream.step(self.backend, token_id) or ""
            except Exception:  # noqa: BLE001 - DecodeStream refuses some odd byte sequences (InvalidPrefix)
                self.by_full_decode = True
                delta = self._unsent(final=False)
        if delta:
            self.sent.append(delta)
        return delta

    def flush(self) -> str:
        """Text still held back at the end (an incomplete character decodes to U+FFFD, as a full decode would).

        Returns:
            The suffix of the full decode of every pushed id that the deltas have not returned yet.
        """
        rest = self._unsent(final=True)
        if rest:
            self.sent.append(rest)
        self.by_full_decode = True  # a U+FFFD just sent must not come out again if more tokens follow
        return rest

    # --- internals --------------------------------------------------------------------------------
    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=self.skip, clean_up_tokenization_spaces=False)

    def _unsent(self, final: bool) -> str:
        """The full decode minus the text sent so far; held back (unless `final`) while it ends mid-character."""
        full, sent = self._decode(self.ids), "".join(self.sent)
        self.sent = [sent]  # joined once, not again on every later call
        if not full.startswith(sent):  # never seen; what was streamed cannot be taken back
            if final:
                log.warning("incremental detokenisation diverged from the full decode after %d tokens",
                            len(self.ids))
            return ""
        rest = full[len(sent):]
        return "" if not final and rest.endswith("\ufffd") else rest

    def _window(self) -> str:
        """The slow tokenizers' delta: decode the window with and without the newest tokens."""
        prefix = self._decode(self.ids[self.prefix_offset:self.read_offset])
        full = self._decode(self.ids[self.prefix_offset:])
        if len(full) > len(prefix) and not full.endswith("\ufffd"):
            self.prefix_offset = self.read_offset
            self.read_offset = len(self.ids)
            return full[len(prefix):]
        return ""


def _backend(tokenizer):
    """The tokenizers.Tokenizer behind a fast transformers tokenizer, else None (a slow tokenizer)."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        return None
    backend = getattr(tokenizer, "backend_tokenizer", None) or getattr(tokenizer, "_tokenizer", None)
    return backend if isinstance(backend, Tokenizer) else None

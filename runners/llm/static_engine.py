"""Opt-in decode path with a static KV cache (LLM_STATIC_CACHE=1), optionally compiled with torch.compile
and CUDA graphs (LLM_COMPILE=1, CUDA only): every decode step has the same shapes, so one captured graph
replays for every token and the per-step Python and kernel-launch overhead disappears.

Layout: a transformers StaticCache of `max_batch` rows x `max_len` columns, allocated once. All rows share
one write column (the cache's `cumulative_length`), so rows are right-aligned: a sequence occupies the
columns [width - its length, width) of its row and the 2-D attention mask hides the rest. A new sequence is
prefilled on its own (uncompiled, dynamic cache) and its KV copied into a free row, ending at the current
column (if it is longer than the batch so far, the batch is first shifted right). When the write column
reaches the end, every row is shifted left by the padding they all share; this always frees space because
`check` keeps prompt + max_tokens within the context window. Free rows still compute (the shape is fixed)
but their tokens are ignored. Cache tensors are only ever written in place, so their addresses stay what
the CUDA graph captured.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache, StaticCache

from .engine import Engine, Sequence


class StaticEngine(Engine):
    def __init__(self, model, device: str, max_batch: int, eos_ids: set[int], max_len: int,
                 compile_decode: bool = False):
        super().__init__(model, device, max_batch, eos_ids)
        cfg = model.config
        self.max_len = max_len
        self.static = StaticCache(config=cfg, max_cache_len=max_len)
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.static.early_initialization(max_batch, cfg.num_key_value_heads, head_dim, model.dtype, self.device)
        self.smask = torch.zeros(max_batch, max_len, dtype=torch.long, device=self.device)
        self.width = 0  # the shared write column
        self.slot_of: list[int] = []  # parallel to self.active
        self.pos: list[int] = []  # parallel to self.active: each row's next position id
        self.shifts = {"right": 0, "left": 0}  # how often rows were moved (tests check both paths ran)
        self.forward = None  # uncompiled: self.model, looked up per step
        if compile_decode:
            # "reduce-overhead" = inductor kernels captured in a CUDA graph; fixed shapes, no recompiles.
            self.forward = torch.compile(model.forward, mode="reduce-overhead", fullgraph=False, dynamic=False)

    # --- KV bookkeeping ---------------------------------------------------------------------------
    def _set_width(self, width: int) -> None:
        self.width = width
        for layer in self.static.layers:
            layer.cumulative_length.fill_(width)

    def _shift(self, offset: int) -> None:
        """Move every row's columns by `offset` (right when positive, left when negative), in place."""
        w = self.width
        if offset > 0:
            src, dst = slice(0, w), slice(offset, offset + w)
        else:
            src, dst = slice(-offset, w), slice(0, w + offset)
        for layer in self.static.layers:
            for t in (layer.keys, layer.values):
                t[:, :, dst].copy_(t[:, :, src].clone())
        self.smask[:, dst].copy_(self.smask[:, src].clone())
        self.shifts["right" if offset > 0 else "left"] += 1
        if offset > 0:
            self.smask[:, :offset].zero_()
            self._set_width(w + offset)
        else:
            self.smask[:, w + offset:].zero_()
            self._set_width(w + offset)

    def _join(self, seq: Sequence, cache: DynamicCache, chosen: torch.Tensor) -> None:
        length = len(seq.prompt_ids)
        if not self.active:
            self.smask.zero_()
            self._set_width(length)
        elif length > self.width:
            self._shift(length - self.width)
        slot = next(i for i in range(self.max_batch) if i not in self.slot_of)
        start = self.width - length
        for mine, theirs in zip(self.static.layers, cache.layers, strict=True):
            mine.keys[slot, :, start:self.width].copy_(theirs.keys[0])
            mine.values[slot, :, start:self.width].copy_(theirs.values[0])
        self.smask[slot].zero_()
        self.smask[slot, start:self.width] = 1
        self.active.append(seq)
        self.slot_of.append(slot)
        self.pos.append(length)
        self.max_batch_seen = max(self.max_batch_seen, len(self.active))

    def _keep(self, rows: list[int]) -> None:
        if not rows:
            self._reset()
            return
        self.active = [self.active[i] for i in rows]
        self.slot_of = [self.slot_of[i] for i in rows]
        self.pos = [self.pos[i] for i in rows]

    def _reset(self) -> None:
        self.active, self.slot_of, self.pos = [], [], []
        self.smask.zero_()
        self._set_width(0)

    # --- the step ---------------------------------------------------------------------------------
    def _forward_step(self) -> list[int]:
        if self.width >= self.max_len:
            used = self.smask[self.slot_of].any(dim=0)
            self._shift(-int(torch.nonzero(used)[0, 0]))
        ids = [0] * self.max_batch
        pos = [0] * self.max_batch
        for slot, seq, position in zip(self.slot_of, self.active, self.pos, strict=True):
            ids[slot], pos[slot] = seq.generated[-1], position  # each row's newest token, not yet cached
        # One host-to-device copy for the step's inputs (ids, positions, the active slots), made before any
        # kernel of the step is queued, so it never waits for the device.
        inputs = torch.tensor([ids, pos, self.slot_of + [0] * (self.max_batch - len(self.slot_of))],
                              device=self.device)
        self.smask[:, self.width] = 1  # the column this step writes (free rows too: never a fully masked row)
        out = (self.forward or self.model)(input_ids=inputs[0, :, None], attention_mask=self.smask,
                                           position_ids=inputs[1, :, None],
                                           use_cache=True, **{self.cache_kw: self.static})
        self.width += 1  # the cache advanced its own cumulative_length inside the forward
        logits = out.logits[:, -1].index_select(0, inputs[2, :len(self.slot_of)])
        tokens = self._choose(logits, self.active).tolist()
        self.pos = [p + 1 for p in self.pos]
        return tokens

"""The `loras` request field (contract 8.1, 4.4): parsing, and adapters loaded through diffusers/peft
(`load_lora_weights`) with a bounded, least-recently-used cache.

Adapters live inside the shared UNet and text encoders, so applying a request's LoRAs changes the model
for everyone: the runner holds `AdapterLock` exclusively for requests that touch adapters (and for any
request once adapters are resident, since it must zero their weights), and shared otherwise.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from runner_sdk import BadRequest
from runner_sdk.resolve import InvalidRepoId, ModelNotFound, resolve_snapshot

log = logging.getLogger("runner.text_to_image")

MAX_LORAS_PER_REQUEST = 4
FREE_VRAM_FLOOR = 2 * 1024**3  # evict while less than this is free (upstream's rule)


def parse_loras(text: str) -> dict[str, float]:
    """`'{"repo": 1.2}'` -> {"repo": 1.2}. "" and "{}" mean no LoRAs. Errors are 400s with upstream's texts."""
    if text is None or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise BadRequest(f"Unable to parse '{text}' as JSON.") from None
    if not isinstance(value, dict):
        raise BadRequest(f"Unable to parse '{text}' as JSON object of LoRa repository to strength.")
    strengths: dict[str, float] = {}
    for repo, raw in value.items():
        strength = _number(raw)
        if strength is None or strength < 0.0:
            raise BadRequest("All strengths must be numbers greater than or equal to 0.0.")
        strengths[repo] = strength
    if len(strengths) > MAX_LORAS_PER_REQUEST:
        raise BadRequest(f"Too many LoRas provided. Maximum is {MAX_LORAS_PER_REQUEST}.")
    return strengths


def _number(raw: object) -> float | None:
    if isinstance(raw, bool):  # JSON true is not a strength
        return None
    if isinstance(raw, (int, float)):
        value = float(raw)
    elif isinstance(raw, str):  # numeric strings are accepted upstream
        try:
            value = float(raw.strip())
        except ValueError:
            return None
    else:
        return None
    return value if value == value and value != float("inf") else None  # no NaN / inf


def adapter_name(repo: str) -> str:
    """The peft adapter name of a LoRA repo id: characters other than letters, digits, `_`, `/` and `-`
    become `_` (peft stores adapters in ModuleDicts, whose keys cannot contain ".")."""
    return re.sub(r"[^0-9A-Za-z_/-]", "_", repo)


class AdapterLock:
    """A readers-writer lock: many requests without LoRA changes, or one that changes adapters."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        """Hold the lock with other readers: a request that leaves the adapters as they are."""
        with self._cond:
            while self._writer:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the lock alone: a request that loads, weights or disables adapters."""
        with self._cond:
            while self._writer or self._readers:
                self._cond.wait()
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class LoraCache:
    """Adapters resident in the pipeline, oldest-used first. Call `apply` under AdapterLock.exclusive."""

    def __init__(self, pipe, model_dir: Path, device: str, max_resident: int = 12):
        self.pipe = pipe
        self.model_dir = Path(model_dir)
        self.device = device
        self.max_resident = max_resident
        self.resident: OrderedDict[str, str] = OrderedDict()  # repo -> adapter name
        self.enabled = False

    @property
    def active(self) -> bool:
        """Whether any adapter is resident (a request without LoRAs must then zero them, exclusively)."""
        return bool(self.resident)

    def apply(self, strengths: dict[str, float]) -> None:
        """Make exactly `strengths` active (others weight 0, or LoRA disabled when empty)."""
        if not strengths:
            if self.enabled:
                self.pipe.disable_lora()
                self.enabled = False
            return
        for repo in strengths:
            if repo in self.resident:
                self.resident.move_to_end(repo)
            else:
                self._load(repo, keep=set(strengths))
        if not self.enabled:
            self.pipe.enable_lora()
            self.enabled = True
        names = [self.resident[r] for r in self.resident]
        weights = [strengths.get(r, 0.0) for r in self.resident]
        self.pipe.set_adapters(names, adapter_weights=weights)

    def _load(self, repo: str, keep: set[str]) -> None:
        self._evict(keep)
        try:
            # A request's id is a hub repo id, resolved inside MODEL_DIR: never a local path (`/etc`, `..`).
            folder = resolve_snapshot(repo, self.model_dir, allow_local=False)
        except InvalidRepoId:
            raise BadRequest(f"LoRa repository '{repo}' is not a valid repository id (org/name).") from None
        except ModelNotFound:
            raise BadRequest(f"LoRa repository '{repo}' not found.") from None
        name = adapter_name(repo)
        try:
            self.pipe.load_lora_weights(str(folder), adapter_name=name)
        except Exception as exc:
            self._forget_partial(name)
            text = str(exc)
            log.warning("loading LoRa %s failed: %s", repo, text[:500])
            if "not found in the base model" in text or "size mismatch" in text or "shape" in text.lower():
                raise BadRequest(f"LoRa incompatible with base model: '{repo}'.") from None
            raise BadRequest(f"Unable to load LoRas for adapter '{repo}'.") from None
        self.resident[repo] = name
        log.info("LoRa %s loaded (%d resident)", repo, len(self.resident))

    def _forget_partial(self, name: str) -> None:
        try:
            if name in {n for names in self.pipe.get_list_adapters().values() for n in names}:
                self.pipe.delete_adapters(name)
        except Exception:  # noqa: BLE001 - best effort clean-up of a failed load
            pass

    def _evict(self, keep: set[str]) -> None:
        while self.resident and (len(self.resident) >= self.max_resident or self._low_vram()):
            victim = next((r for r in self.resident if r not in keep), None)
            if victim is None:
                return
            self.pipe.delete_adapters(self.resident.pop(victim))
            log.info("LoRa %s evicted", victim)

    def _low_vram(self) -> bool:
        if not self.device.startswith("cuda"):
            return False
        import torch

        free, _total = torch.cuda.mem_get_info(torch.device(self.device))
        return free < FREE_VRAM_FLOOR

"""The models behind /text-to-speech, one small class each: VITS (MMS-TTS and other `VitsModel` checkpoints,
transformers 5 in the main environment) and Parler-TTS (the `parler-tts` package, which pins transformers
4.46.1, in its own environment). The runner picks one from the snapshot's config.json `model_type`.

A backend takes a batch of sentences and returns one mono float32 array per sentence, at `sampling_rate`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


class VitsBackend:
    """`VitsModel` + `VitsTokenizer` (facebook/mms-tts-*): non-autoregressive, noise-sampled (the seed
    decides the noise)."""

    kind = "vits"

    def __init__(self, snapshot: Path, device: str, dtype: Any):
        from transformers import AutoTokenizer, VitsModel

        self.tokenizer = AutoTokenizer.from_pretrained(snapshot)
        self.model = VitsModel.from_pretrained(snapshot, dtype=dtype, use_safetensors=True, device_map=device)
        self.model.eval()
        self.device, self.dtype = device, dtype
        self.sampling_rate = int(self.model.config.sampling_rate)

    def synthesize(self, texts: list[str], description: str, seed: int,
                   cancelled: Callable[[], bool]) -> list[np.ndarray]:
        """One forward pass for the batch; `description` has no meaning for VITS and is ignored.

        Args:
            texts: sentences. description: unused. seed: seeds the noise. cancelled: unused (one step).
        Returns:
            One float32 waveform per sentence, trimmed to its length.
        """
        import torch

        enc = self.tokenizer(texts, return_tensors="pt", padding=True)
        with torch.inference_mode():
            torch.manual_seed(seed)
            out = self.model(input_ids=enc["input_ids"].to(self.device),
                             attention_mask=enc["attention_mask"].to(self.device))
        wave = out.waveform.float().cpu().numpy()
        lengths = out.sequence_lengths.cpu().tolist() if out.sequence_lengths is not None else \
            [wave.shape[1]] * len(texts)
        return [wave[i, : int(n)] for i, n in enumerate(lengths)]


class ParlerBackend:
    """`ParlerTTSForConditionalGeneration` (parler-tts/parler-tts-large-v1, -mini-v1): the description steers
    the voice, the text is the prompt; autoregressive codec tokens, sampled, decoded by DAC at 44.1 kHz."""

    kind = "parler_tts"

    def __init__(self, snapshot: Path, device: str, dtype: Any, max_new_tokens: int | None = None):
        from parler_tts import ParlerTTSForConditionalGeneration
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(snapshot)
        # Q41: the dtype goes to the model (upstream passed it to the tokenizer, where it did nothing). The
        # attention stays the default: the T5 encoder of transformers 4.46 has no SDPA path.
        self.model = ParlerTTSForConditionalGeneration.from_pretrained(snapshot, torch_dtype=dtype).to(device)
        self.model.eval()
        self.device, self.dtype = device, dtype
        self.sampling_rate = int(self.model.config.sampling_rate)
        self.max_new_tokens = max_new_tokens

    def synthesize(self, texts: list[str], description: str, seed: int,
                   cancelled: Callable[[], bool]) -> list[np.ndarray]:
        """One sampled `generate` call for the batch, every sentence with the same description.

        Args:
            texts: sentences. description: the voice. seed: seeds sampling. cancelled: stops generation early.
        Returns:
            One float32 waveform per sentence, trimmed to its length.
        """
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        class Cancelled(StoppingCriteria):
            """Stop generating once the request's client has gone away."""

            def __call__(self, input_ids, scores, **kwargs):
                return cancelled()

        desc = self.tokenizer([description] * len(texts), return_tensors="pt", padding=True).to(self.device)
        prompt = self.tokenizer(texts, return_tensors="pt", padding=True).to(self.device)
        kwargs: dict[str, Any] = {"max_new_tokens": self.max_new_tokens} if self.max_new_tokens else {}
        with torch.inference_mode():
            torch.manual_seed(seed)
            out = self.model.generate(input_ids=desc.input_ids, attention_mask=desc.attention_mask,
                                      prompt_input_ids=prompt.input_ids, prompt_attention_mask=prompt.attention_mask,
                                      do_sample=True, return_dict_in_generate=True,
                                      stopping_criteria=StoppingCriteriaList([Cancelled()]), **kwargs)
        wave = out.sequences.float().cpu().numpy().reshape(len(texts), -1)
        lengths = [int(n) for n in out.audios_length]
        return [wave[i, :n] for i, n in enumerate(lengths)]


def model_type(snapshot: Path) -> str:
    """The snapshot config's `model_type` ("vits", "parler_tts", ...), "" when absent."""
    import json

    config = Path(snapshot) / "config.json"
    return json.loads(config.read_text()).get("model_type", "") if config.exists() else ""

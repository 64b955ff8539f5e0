"""What the LLM runner generates with: a backend turns a checked `Prompt` into text deltas and a finish reason.

The runner (runner.py) owns the wire: request checks, chunks, exact usage, the error chunk. A backend owns
the model: loading it, generating, cancelling, and saying whether it can still serve. Three exist, chosen by
LLM_BACKEND:

- `transformers` (backend_transformers.py): the portable engine on transformers, any device, CPU included.
- `vllm` (backend_vllm.py): vLLM's in-process async engine (paged KV cache, prefix caching, tensor parallel).
- `openai` (backend_openai.py): any OpenAI-compatible server at LLM_UPSTREAM_URL (vLLM, SGLang, Ollama,
  llama.cpp's server); nothing is loaded here.

`auto` (the default) is `vllm` on CUDA when vLLM is installed, else `transformers`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

from runner_sdk import Job, LoadContext

if TYPE_CHECKING:
    from .runner import LLMRequest, LLMRunner

BackendName = Literal["auto", "transformers", "vllm", "openai"]

# ("text", delta, completion tokens so far) as tokens arrive, then ("finish", "stop" | "length", completion).
Event = tuple[str, Any, int]


@dataclasses.dataclass
class Prompt:
    """What the runner's `decode` hands to `predict`: the request, its templated token ids (None when the
    upstream server templates, LLM_BACKEND=openai), and the response's identity and running token counts
    (shared with `stream_error_chunk`). A backend that learns the counts from elsewhere (an upstream's
    `usage`) sets them."""

    request: LLMRequest
    ids: list[int] | None
    id: str = dataclasses.field(default_factory=lambda: f"chatcmpl-{uuid.uuid4()}")
    prompt_tokens: int = 0
    completion: int = 0

    def __post_init__(self) -> None:
        if self.ids is not None and not self.prompt_tokens:
            self.prompt_tokens = len(self.ids)


class Backend:
    """Base class of the LLM backends. `setup` runs once in the runner's setup; the rest per request.

    Attributes:
        name: the LLM_BACKEND value.
        tokenizer: the model's tokenizer when prompts are templated here (transformers, vllm); None when
            the upstream server templates them (openai).
        context_len: prompt + max_tokens limit checked before a request queues (None: the upstream checks).
    """

    name: str = ""
    tokenizer: Any = None
    context_len: int | None = None

    def __init__(self, runner: LLMRunner):
        self.runner = runner
        self.settings, self.options, self.device = runner.settings, runner.options, runner.device

    def setup(self, ctx: LoadContext) -> None:
        """Load (or connect). Raise to put the runner in ERROR with the reason."""

    def warmup(self) -> None:
        """One short generation so the first request is not slower."""

    def generate(self, prompt: Prompt, job: Job) -> Iterator[Event]:
        """The reply as events (see `Event`), on the request's job thread.

        Raises:
            BadRequest: the upstream refused the request as the caller's error (before the first event only).
            JobCancelled: `job` was cancelled (the client went away); generation has stopped.
            NonFiniteOutput: the model produced NaN/Inf logits.
            Anything else: the request fails (500, or the error chunk once streaming).
        """
        raise NotImplementedError

    def healthy(self) -> str | None:
        """None while it can serve, else why not (/health turns ERROR)."""
        return None

    def info(self) -> dict[str, Any]:
        """Live facts for /runner/info."""
        return {}

    def close(self) -> None:
        """Stop background work (engine threads, pollers)."""


def resolve_backend(name: str, device: str) -> str:
    """The backend LLM_BACKEND=`name` means on `device`: `auto` is `vllm` on CUDA when vLLM is installed,
    else `transformers`."""
    if name != "auto":
        return name
    if device.startswith("cuda") and importlib.util.find_spec("vllm") is not None:
        return "vllm"
    return "transformers"


def make_backend(runner: LLMRunner) -> Backend:
    """The backend instance for the runner's LLM_BACKEND (not yet set up)."""
    name = resolve_backend(runner.options.llm_backend, runner.device)
    if name == "vllm":
        from .backend_vllm import VLLMBackend

        return VLLMBackend(runner)
    if name == "openai":
        from .backend_openai import OpenAIBackend

        return OpenAIBackend(runner)
    from .backend_transformers import TransformersBackend

    return TransformersBackend(runner)

"""Runner settings: the env vars go-livepeer passes (contract 1.2, 2) plus our own, also as CLI flags."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The ai-runner contract version we match; /version reports it with our identity as a pre-release suffix,
# because gateway minimum-version rules refer to ai-runner's version line (contract 3.2).
CONTRACT_VERSION = "0.14.1"
SDK_VERSION = "0.1.0"
DEFAULT_VERSION = f"{CONTRACT_VERSION}-lpsdk.{SDK_VERSION}"

TRUE_WORDS = {"true", "1", "yes", "on"}


def flag_on(value: str | bool | None) -> bool:
    """SFAST/DEEPCACHE semantics: on iff value.strip().lower() == "true" (contract 9)."""
    if isinstance(value, bool):
        return value
    return value is not None and value.strip().lower() == "true"


def bool_word(value: str | bool | None) -> bool:
    """Our parsing of the other boolean env vars: true/1/yes/on, never "any non-empty value" (Q21)."""
    if isinstance(value, bool):
        return value
    return value is not None and value.strip().lower() in TRUE_WORDS


class RunnerSettings(BaseSettings):
    """Everything a runner process is configured with. Env names are upper-case field names."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore", protected_namespaces=())

    pipeline: str = Field("", description="Livepeer pipeline name, e.g. text-to-image (PIPELINE)")
    model_id: str = Field("", description="Hugging Face repo id or a local directory (MODEL_ID)")
    model_dir: Path = Field(
        default_factory=lambda: Path(os.path.expanduser("~/.lpData/models")),
        description="Hugging Face hub cache root (MODEL_DIR)",
    )
    version: str = Field(DEFAULT_VERSION, description="Semver reported by /version (VERSION)")
    auth_token: str = Field("", description="Bearer token for generate routes; empty disables auth")
    verbose_logging: bool = Field(False, description='VERBOSE_LOGGING: exactly "1" enables debug logs')
    sfast: bool = Field(False, description="SFAST=true: stable-fast (torch.compile fallback)")
    deepcache: bool = Field(False, description="DEEPCACHE=true: DeepCache (non-Lightning/Turbo models)")
    bfloat16: bool = Field(False, description="BFLOAT16: bf16 instead of fp16 on CUDA")

    device: str = Field(
        "auto", validation_alias=AliasChoices("RUNNER_DEVICE", "DEVICE", "device"),
        description="auto, cpu, cuda or cuda:N",
    )
    # MAX_NUM_SEQS: the stock LLM image's batch size, read as capacity when nothing more specific is set.
    capacity: int = Field(1, ge=1, validation_alias=AliasChoices("RUNNER_CAPACITY", "CAPACITY", "MAX_NUM_SEQS",
                                                                 "capacity"))
    queue_size: int = Field(
        4, ge=0, validation_alias=AliasChoices("RUNNER_QUEUE_SIZE", "QUEUE_SIZE", "queue_size"),
        description="requests waiting behind the capacity slots before 'insufficient capacity'",
    )
    load_wait_s: float = Field(
        300.0, gt=0, validation_alias=AliasChoices("RUNNER_LOAD_WAIT_S", "load_wait_s"),
        description="how long a request that arrives while LOADING waits for the model",
    )
    host: str = Field("0.0.0.0", description="HOST")
    port: int = Field(8000, description="PORT")
    warmup: bool = Field(True, validation_alias=AliasChoices("RUNNER_WARMUP", "warmup"))
    # Extra runner-specific options (e.g. BACKEND for audio-to-text) are read by the runner from `extra_env`.

    @field_validator("verbose_logging", mode="before")
    @classmethod
    def _exactly_one(cls, v: object) -> bool:
        return v is True or v == "1"  # upstream compares the raw value: " 1" is not "1"

    @field_validator("sfast", "deepcache", mode="before")
    @classmethod
    def _flag(cls, v: object) -> bool:
        return flag_on(v if isinstance(v, (str, bool)) else None)

    @field_validator("bfloat16", "warmup", mode="before")
    @classmethod
    def _bool_word(cls, v: object) -> bool:
        return bool_word(v if isinstance(v, (str, bool)) else None)

    @field_validator("model_dir", mode="before")
    @classmethod
    def _expand(cls, v: object) -> object:
        return Path(os.path.expanduser(str(v))) if v not in (None, "") else v

    def optimisations_requested(self) -> dict[str, bool]:
        return {"SFAST": self.sfast, "DEEPCACHE": self.deepcache}

    def public_dict(self) -> dict[str, object]:
        """Settings safe to show (the token never leaves the process)."""
        data = self.model_dump(mode="json")
        data["auth_token"] = "set" if self.auth_token else "unset"
        return data

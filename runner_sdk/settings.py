"""Runner settings: the env vars go-livepeer passes (contract 1.2, 2) plus our own, also as CLI flags."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The ai-runner contract version we match; /version reports it with our identity as a pre-release suffix,
# because gateway minimum-version rules refer to ai-runner's version line (contract 3.2).
CONTRACT_VERSION = "0.14.1"
SDK_VERSION = "0.1.0"
DEFAULT_VERSION = f"{CONTRACT_VERSION}-lpsdk.{SDK_VERSION}"

TRUE_WORDS = {"true", "1", "yes", "on"}
FALSE_WORDS = {"false", "0", "no", "off", ""}

log = logging.getLogger("runner_sdk")

# Field -> how an operator names it (env var / flag) and what it allows: the one line a setting error prints.
SETTING_NAMES = {
    "pipeline": "PIPELINE / --pipeline", "model_id": "MODEL_ID / --model-id", "model_dir": "MODEL_DIR / --model-dir",
    "version": "VERSION / --version", "device": "RUNNER_DEVICE / --device",
    "capacity": "RUNNER_CAPACITY / --capacity", "queue_size": "RUNNER_QUEUE_SIZE / --queue-size",
    "load_wait_s": "RUNNER_LOAD_WAIT_S / --load-wait-s", "host": "HOST / --host", "port": "PORT / --port",
    "sfast": "SFAST / --sfast", "deepcache": "DEEPCACHE / --deepcache", "bfloat16": "BFLOAT16 / --bfloat16",
    "warmup": "RUNNER_WARMUP / --warmup", "on_preflight_failure": "RUNNER_ON_PREFLIGHT_FAILURE / --on-preflight-failure",
}
ALLOWED = {
    "capacity": "an integer >= 1", "queue_size": "an integer >= 0", "load_wait_s": "a number of seconds > 0",
    "port": "an integer 1-65535", "device": "auto, cpu, cuda or cuda:N", "bfloat16": "true/1/yes/on or false/0/no/off",
    "warmup": "true/1/yes/on or false/0/no/off", "on_preflight_failure": "error or exit",
}


class SettingError(ValueError):
    """A setting with a value it cannot take; `str()` is the one line the CLI prints (exit 2).

    Attributes:
        setting: how the operator names it ("RUNNER_CAPACITY / --capacity"). value: the value given.
        allowed: what it accepts.
    """

    def __init__(self, setting: str, value: object, allowed: str):
        self.setting, self.value, self.allowed = setting, value, allowed
        super().__init__(f"invalid setting {setting}: {value!r} (allowed: {allowed})")


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


def strict_bool_word(value: str | bool | None) -> bool:
    """BFLOAT16 and RUNNER_WARMUP: true/1/yes/on or false/0/no/off (or empty).

    Raises:
        ValueError: any other word (it used to be silently false).
    """
    if isinstance(value, bool) or value is None:
        return bool(value)
    word = value.strip().lower()
    if word not in TRUE_WORDS | FALSE_WORDS:
        raise ValueError(f"{value!r} is neither true/1/yes/on nor false/0/no/off")
    return word in TRUE_WORDS


def _flag_env(value: object) -> bool:
    """SFAST/DEEPCACHE from the environment: contract 9 (only "true" is on); other words are logged."""
    if isinstance(value, str) and value.strip().lower() not in {"true", "false", ""}:
        log.warning("optimisation flag value %r is not true/false: treated as off (contract 9)", value)
    return flag_on(value if isinstance(value, (str, bool)) else None)


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
        "auto", pattern=r"^\s*(?i:auto|cpu|cuda(:\d+)?)\s*$",
        validation_alias=AliasChoices("RUNNER_DEVICE", "DEVICE", "device"),
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
    port: int = Field(8000, ge=1, le=65535, description="PORT")
    warmup: bool = Field(True, validation_alias=AliasChoices("RUNNER_WARMUP", "warmup"))
    on_preflight_failure: str = Field(
        "error", pattern="^(error|exit)$",
        validation_alias=AliasChoices("RUNNER_ON_PREFLIGHT_FAILURE", "on_preflight_failure"),
        description="error: serve /health ERROR with the reason (the default); exit: exit 1 before binding")
    # Extra runner-specific options (e.g. BACKEND for audio-to-text) are read by the runner from `extra_env`.

    @field_validator("verbose_logging", mode="before")
    @classmethod
    def _exactly_one(cls, v: object) -> bool:
        return v is True or v == "1"  # upstream compares the raw value: " 1" is not "1"

    @field_validator("sfast", "deepcache", mode="before")
    @classmethod
    def _flag(cls, v: object) -> bool:
        return _flag_env(v)

    @field_validator("bfloat16", "warmup", mode="before")
    @classmethod
    def _bool_word(cls, v: object) -> bool:
        return strict_bool_word(v if isinstance(v, (str, bool)) else None)

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


def load_settings(**overrides: object) -> RunnerSettings:
    """RunnerSettings from the environment and `overrides`, every invalid value named in one line.

    Args:
        **overrides: field values that win over the environment (the CLI's flags).
    Returns:
        The settings.
    Raises:
        SettingError: the first invalid setting, its value and what it allows.
    """
    try:
        return RunnerSettings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = next((str(p) for p in err["loc"] if str(p) in RunnerSettings.model_fields), None)
        if field is None:  # an alias in the location (RUNNER_CAPACITY): map it back to its field
            alias = str(err["loc"][0]).lower() if err["loc"] else ""
            field = next((n for n, f in RunnerSettings.model_fields.items() if f.validation_alias is not None
                          and alias in [str(c).lower() for c in f.validation_alias.choices]), alias)
        name = SETTING_NAMES.get(field, field.upper())
        raise SettingError(name, err.get("input"), ALLOWED.get(field, err["msg"])) from None

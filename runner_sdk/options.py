"""A runner's own settings (its env vars beyond the SDK's), declared once as a pydantic-settings class.

    class WhisperOptions(RunnerOptions):
        whisper_batch_size: int | None = Field(None, ge=1)   # read from WHISPER_BATCH_SIZE

A field is read from the env var of its upper-cased name (or its `validation_alias`). A bad value fails the
load with a message that names the variable and what it accepts, e.g.
`WHISPER_BATCH_SIZE='x': Input should be a valid integer`, so /health says ERROR with that reason.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


class OptionsError(ValueError):
    """An env var of a runner's Options is invalid; the message names the variable."""


class RunnerOptions(BaseSettings):
    """Base class of a runner's options. No fields: a runner without options of its own uses it as is."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore", protected_namespaces=())

    @classmethod
    def from_env(cls, **overrides: Any):
        """Read the options from the environment (keyword overrides win, e.g. in tests).

        Raises:
            OptionsError: a value does not validate; names the env var, the value given and the rule.
        """
        try:
            return cls(**overrides)
        except ValidationError as exc:
            raise OptionsError("; ".join(_describe(cls, err) for err in exc.errors())) from None


def _describe(cls: type[BaseSettings], err: dict[str, Any]) -> str:
    field = str(err["loc"][0]) if err.get("loc") else ""
    info = cls.model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    name = alias if isinstance(alias, str) else field
    value = err.get("input")
    shown = f"={value!r}" if isinstance(value, (str, int, float)) else ""
    return f"{name.upper()}{shown}: {err['msg']}"

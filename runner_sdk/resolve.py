"""Model resolution in the Hugging Face cache layout (contract 2: MODEL_DIR is an HF hub cache root).

An id resolves to `<MODEL_DIR>/models--org--name/snapshots/<rev>/`; it is downloaded (with a progress bar)
only when missing and the hub is allowed. HF_HUB_OFFLINE=1 never touches the network. A MODEL_ID that is
an existing directory is used as it is.
"""

from __future__ import annotations

import os
from pathlib import Path

import huggingface_hub
from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError
from huggingface_hub.utils import validate_repo_id


class ModelNotFound(Exception):
    """The model's files are not in MODEL_DIR (and could not, or may not, be downloaded)."""


class InvalidRepoId(ModelNotFound):
    """An id that is not a hub repo id where only one is accepted (a request's LoRA, for instance)."""


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def cache_folder(model_dir: Path, repo_id: str) -> Path:
    return Path(model_dir) / ("models--" + repo_id.replace("/", "--"))


def is_local_dir(model_id: str) -> bool:
    return os.path.isdir(os.path.expanduser(model_id))


def resolve_snapshot(
    repo_id: str, model_dir: Path, allow_patterns: list[str] | None = None, download: bool | None = None,
    allow_local: bool = True,
) -> Path:
    """Local snapshot folder of `repo_id`, downloading the allowed files only when missing and allowed.

    Args:
        repo_id: a hub id ("org/name"), or a local directory when `allow_local`.
        model_dir: MODEL_DIR, a hub cache root (contract 2).
        allow_patterns: only these files count and are fetched (e.g. ["*.json", "*.safetensors"]); None: all.
        download: True fetches when missing, False never does, None fetches unless HF_HUB_OFFLINE=1.
        allow_local: False for ids that come from a request: only a valid hub repo id is accepted (never a
            path such as `/etc`, `..` or `~`), and it resolves inside MODEL_DIR's cache layout or not at all.
    Returns:
        The snapshot folder (`<MODEL_DIR>/models--org--name/snapshots/<rev>`) or the local directory.
    Raises:
        ModelNotFound: not in MODEL_DIR and not downloadable (offline, unknown, gated).
        InvalidRepoId: `allow_local=False` and `repo_id` is not a hub repo id.
    """
    if not allow_local:
        try:
            validate_repo_id(repo_id)
        except HFValidationError as exc:
            raise InvalidRepoId(f"{repo_id!r} is not a Hugging Face repo id (org/name)") from exc
    elif is_local_dir(repo_id):
        return Path(os.path.expanduser(repo_id))
    try:
        return Path(huggingface_hub.snapshot_download(
            repo_id, cache_dir=str(model_dir), allow_patterns=allow_patterns, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        pass
    if download is False or (download is None and hub_offline()):
        raise ModelNotFound(
            f"model {repo_id!r} is not in MODEL_DIR={model_dir} (looked for {cache_folder(model_dir, repo_id)}) "
            "and the hub is offline; run `runner-sdk download` or `runner-sdk synth` first")
    try:
        return Path(huggingface_hub.snapshot_download(
            repo_id, cache_dir=str(model_dir), allow_patterns=allow_patterns))  # tqdm progress bars
    except Exception as exc:  # network errors, gated repos, unknown ids
        raise ModelNotFound(f"model {repo_id!r} could not be downloaded into {model_dir}: {exc}") from exc


def has_files(snapshot: Path, pattern: str) -> bool:
    return any(snapshot.rglob(pattern))

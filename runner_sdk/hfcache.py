"""Write files into a Hugging Face hub cache exactly as `snapshot_download` would leave them:
`models--org--name/{blobs/<sha256>, refs/main, snapshots/<commit>/<path> -> ../../blobs/<sha256>}`.
`runner-sdk synth` uses it, so serving a synthetic model runs the same id-dependent loading code as real
weights with HF_HUB_OFFLINE=1.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from .resolve import cache_folder


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def install_snapshot(source: Path, model_dir: Path, repo_id: str, revision: str | None = None) -> Path:
    """Move every file under `source` into the cache of `repo_id` (how tests and `synth` lay out weights).

    Args:
        source: a folder of model files (config.json, *.safetensors, ...); emptied by the move.
        model_dir: the hub cache root (MODEL_DIR). repo_id: "org/name". revision: the commit hash to
            record (a hash of the files when None).
    Returns:
        The snapshot folder, which `resolve_snapshot(repo_id, model_dir)` then finds offline.
    """
    repo = cache_folder(model_dir, repo_id)
    files = sorted(p for p in Path(source).rglob("*") if p.is_file())
    commit = revision or hashlib.sha1(
        "".join(f"{p.relative_to(source)}:{p.stat().st_size}" for p in files).encode()).hexdigest()
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for path in files:
        rel = path.relative_to(source)
        blob = repo / "blobs" / _sha256(path)
        if not blob.exists():
            shutil.move(str(path), blob)
        link = snapshot / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(os.path.relpath(blob, link.parent), link)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot

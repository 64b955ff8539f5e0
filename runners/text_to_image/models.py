"""What a MODEL_ID means for text-to-image (contract 8.1, 9): which repositories to read, forced steps and
guidance, whether DeepCache may apply, and which dtype and weight variant to load."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

SDXL_BASE_REPO = "stabilityai/stable-diffusion-xl-base-1.0"
LIGHTNING_REPO = "ByteDance/SDXL-Lightning"
SAFETY_CHECKER_REPO = "CompVis/stable-diffusion-safety-checker"
CLIP_PROCESSOR_REPO = "openai/clip-vit-base-patch32"
TURBO_IDS = {"stabilityai/sdxl-turbo", "stabilityai/sd-turbo"}  # exact ids only (contract 8.1)
LIGHTNING_STEPS = (2, 4, 8)

_STEP_RE = re.compile(r"(\d+)step", re.IGNORECASE)
_NO_DEEPCACHE_RE = re.compile(r"[-_](lightning|turbo)", re.IGNORECASE)


class UnsupportedModel(ValueError):
    """The id asks for something this runner cannot serve faithfully (start-up fails with the reason)."""


@dataclass(frozen=True)
class ModelKind:
    """What a MODEL_ID means for loading and for every request (contract 8.1, 9)."""

    model_id: str
    lightning: bool  # ByteDance/SDXL-Lightning: base + Lightning UNet, trailing Euler
    steps: int | None  # forced number of steps (Lightning), else None
    turbo: bool  # exact Turbo id: guidance forced to 0
    deepcache_allowed: bool

    @property
    def forced_guidance(self) -> float | None:
        """0.0 for Lightning and the exact Turbo ids, whatever the request says; None: the request's."""
        return 0.0 if self.lightning or self.turbo else None

    @property
    def lightning_unet_file(self) -> str:
        """The distilled UNet's file in ByteDance/SDXL-Lightning for this step count."""
        return f"sdxl_lightning_{self.steps}step_unet.safetensors"


def classify(model_id: str) -> ModelKind:
    """What `model_id` means: Lightning (and its step count, 8 for the bare id), Turbo, DeepCache allowed.

    Raises:
        UnsupportedModel: a Lightning step count other than 2, 4 or 8 (upstream silently loads 8: Q23).
    """
    lightning = LIGHTNING_REPO.lower() in model_id.lower()
    steps = None
    if lightning:
        found = _STEP_RE.search(model_id)
        steps = int(found.group(1)) if found else 8  # the bare id runs the 8-step UNet
        if steps not in LIGHTNING_STEPS:
            # Upstream silently loads the 8-step UNet for e.g. "-1step" (Q23); an operator asking for one
            # step must learn at start-up that it is not what they get.
            raise UnsupportedModel(
                f"{model_id}: SDXL-Lightning {steps}-step is not supported; use one of "
                + ", ".join(f"{LIGHTNING_REPO}-{n}step" for n in LIGHTNING_STEPS) + f" or {LIGHTNING_REPO} (8 steps)")
    return ModelKind(
        model_id=model_id, lightning=lightning, steps=steps, turbo=model_id in TURBO_IDS,
        deepcache_allowed=not _NO_DEEPCACHE_RE.search(model_id),
    )


def has_fp16_files(folder: Path) -> bool:
    """Whether `folder` (a repository's cache folder) holds any `*.fp16.safetensors`."""
    return folder.is_dir() and any(folder.rglob("*.fp16.safetensors"))


def has_plain_files(folder: Path) -> bool:
    """Whether `folder` holds any `*.safetensors` that is not an fp16 variant file."""
    return folder.is_dir() and any(
        p.name.endswith(".safetensors") and ".fp16." not in p.name for p in folder.rglob("*.safetensors"))


@dataclass(frozen=True)
class LoadPlan:
    """The dtype to serve in and the weight variant to read (`load_plan`)."""

    dtype: str  # "float32" | "float16" | "bfloat16"
    variant: str | None  # "fp16" or None


def load_plan(kind: ModelKind, repo_folder: Path, device: str, bfloat16: bool) -> LoadPlan:
    """Contract 8.1: on a GPU, fp16 with the fp16 variant when `*.fp16.safetensors` exist in the repo's cache
    folder (always for Lightning); BFLOAT16 swaps the dtype, keeping the variant. On the CPU, fp32; the fp16
    files are still read (and upcast) when they are the only ones there, as for the Lightning base."""
    fp16_present = kind.lightning or has_fp16_files(repo_folder)
    if device.startswith("cuda") and fp16_present:
        return LoadPlan("bfloat16" if bfloat16 else "float16", "fp16")
    if fp16_present and not has_plain_files(repo_folder):
        return LoadPlan("float32", "fp16")
    return LoadPlan("float32", None)


def download_plan(model_id: str) -> list[tuple[str, list[str] | None]]:
    """The repositories (and files) `runner-sdk download` must fetch for `model_id`, safety checker included
    (upstream's script omits it, so the first start needed the network: Q24)."""
    kind = classify(model_id)
    extras = [(SAFETY_CHECKER_REPO, ["*.json", "*.safetensors"]),
              (CLIP_PROCESSOR_REPO, ["preprocessor_config.json", "*.txt", "tokenizer*.json", "vocab.json"])]
    if kind.lightning:
        return [(SDXL_BASE_REPO, ["*.fp16.safetensors", "*.json", "*.txt"]),
                (LIGHTNING_REPO, [kind.lightning_unet_file]), *extras]
    # As upstream's download script: the fp16 variant and the configs (no fp32 duplicates, no single-file
    # checkpoints at the root).
    return [(model_id, ["*.fp16.safetensors", "*.json", "*.txt"]), *extras]

"""What a MODEL_ID means for image-to-image (contract 8.4, 9.1): the text-to-image rules (Lightning's forced
steps, guidance 0 for Lightning and the exact Turbo ids, no DeepCache for `[-_]lightning`/`[-_]turbo`), plus
which pipeline class serves it: InstructPix2Pix, or the img2img pipeline of the model's family."""

from __future__ import annotations

from dataclasses import dataclass

from runners.text_to_image.models import ModelKind, classify

PIX2PIX_REPO = "timbrooks/instruct-pix2pix"

# Ids the synthetic builder writes as Stable Diffusion 1.x/2.x repositories (any other id: SDXL).
SD_FAMILY = {
    "stabilityai/sd-turbo": "sd2",
    "runwayml/stable-diffusion-v1-5": "sd1",
    "prompthero/openjourney-v4": "sd1",
    PIX2PIX_REPO: "pix2pix",
}


@dataclass(frozen=True)
class ImageModel:
    """An image-to-image MODEL_ID: the text-to-image `ModelKind` and whether it is InstructPix2Pix."""

    kind: ModelKind
    pix2pix: bool

    @property
    def uses_strength(self) -> bool:
        """InstructPix2Pix has no `strength`; every other branch applies it (Lightning too, unlike upstream)."""
        return not self.pix2pix


def classify_image_model(model_id: str) -> ImageModel:
    """The branch `model_id` takes (contract 8.4: chosen by substring, InstructPix2Pix by its repo name).

    Raises:
        UnsupportedModel: a Lightning step count other than 2, 4 or 8.
    """
    return ImageModel(kind=classify(model_id), pix2pix=PIX2PIX_REPO.lower() in model_id.lower())

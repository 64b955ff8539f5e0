"""One tiny synthetic SAM 2 (hiera-large shapes shrunk) per session, served by a real uvicorn server."""

from __future__ import annotations

import httpx
import pytest

from runners.image_to_text.testimages import golivepeer_multipart

MODEL_ID = "facebook/sam2-hiera-large"


@pytest.fixture(scope="session")
def sam2_model_dir(tmp_path_factory):
    from runners.segment_anything_2.synth import synthesize

    model_dir = tmp_path_factory.mktemp("sam2-models")
    synthesize(MODEL_ID, model_dir, "tiny")
    return model_dir


@pytest.fixture(scope="session")
def sam2_server(sam2_model_dir):
    from runner_sdk.testing import serve
    from runners.segment_anything_2.runner import SegmentAnything2Runner

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        with serve(SegmentAnything2Runner, model_id=MODEL_ID, model_dir=sam2_model_dir, capacity=2) as srv:
            yield srv


def _segment(srv, image: bytes, **fields: str) -> httpx.Response:
    """POST /segment-anything-2 as go-livepeer does: the file part first, then only the fields set."""
    body, headers = golivepeer_multipart(image, fields)
    return httpx.post(srv.url + "/segment-anything-2", content=body, headers=headers, timeout=120)


@pytest.fixture(scope="session")
def segment():
    return _segment

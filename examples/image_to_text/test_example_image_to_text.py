"""The captioner served for real: palette weights in MODEL_DIR's HF cache layout, real PNG uploads as
multipart, and the SDK's contract conformance checker pointed at it."""

import io
import json
from pathlib import Path

import httpx
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from examples.image_to_text.runner import CaptionRunner
from runner_sdk.hfcache import install_snapshot
from runner_sdk.testing import check_conformance, serve, server_fixture

MODEL_ID = "acme/palette"
COLOURS = {"red": (220, 20, 30), "green": (30, 200, 40), "blue": (20, 40, 220), "white": (250, 250, 250)}


def write_palette(folder: Path) -> dict:
    src = folder / "src"
    src.mkdir()
    save_file({"colours": torch.tensor(list(COLOURS.values()), dtype=torch.float32) / 255},
              src / "palette.safetensors")
    (src / "config.json").write_text(json.dumps({"names": list(COLOURS)}))
    install_snapshot(src, folder / "models", MODEL_ID)
    return {"model_dir": folder / "models"}


def png(*bands: tuple[str, int], height: int = 12) -> bytes:
    """A PNG of vertical bands: (colour name, width in pixels) from left to right."""
    image = Image.new("RGB", (sum(w for _, w in bands), height))
    x = 0
    for name, width in bands:
        image.paste(COLOURS[name], (x, 0, x + width, height))
        x += width
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module", autouse=True)
def _offline():
    with pytest.MonkeyPatch.context() as mp:  # the model must come from MODEL_DIR, never the hub
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield


server = pytest.fixture(scope="module")(server_fixture(CaptionRunner, prepare=write_palette, model_id=MODEL_ID))


def caption(url: str, image: bytes, **data: str) -> httpx.Response:
    return httpx.post(url + "/image-to-text", files={"image": ("photo.png", image, "image/png")}, data=data)


def test_captions_name_the_main_colours(server):
    r = caption(server.url, png(("red", 16)))
    assert r.status_code == 200, r.text
    assert r.json() == {"text": "a red picture"}
    assert caption(server.url, png(("blue", 10), ("green", 20))).json()["text"] == "a green and blue picture"
    assert caption(server.url, png(("white", 30)), prompt="a photograph of").json()["text"] == \
        "a photograph of a white picture"
    # bigger than the thumbnail the runner reduces it to: the shares stay the same
    assert caption(server.url, png(("red", 300), ("blue", 100), height=200)).json()["text"] == "a red and blue picture"


def test_caller_errors(server):
    bad = caption(server.url, b"\x89PNG\r\n\x1a\nnot really")
    assert bad.status_code == 400 and bad.json() == {"detail": {"msg": "Unsupported or malformed image"}}
    missing = httpx.post(server.url + "/image-to-text", data={"prompt": "x"})
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "image"]
    other = caption(server.url, png(("red", 4)), model_id="acme/other")
    assert other.status_code == 400
    assert other.json()["detail"]["msg"] == f"pipeline configured with {MODEL_ID} but called with acme/other"


def test_captioner_conforms_to_the_contract(server):
    problems = check_conformance(server.url, CaptionRunner.route, data={"prompt": "a photo of"},
                                 files={"image": ("photo.png", png(("green", 8)), "image/png")})
    assert not problems, "\n".join(problems)


def test_options_and_auth(tmp_path):
    settings = write_palette(tmp_path)
    with serve(CaptionRunner, model_id=MODEL_ID, options={"caption_min_share": 0.5}, auth_token="tok",
               **settings) as srv:
        r = httpx.post(srv.url + "/image-to-text", files={"image": ("p.png", png(("blue", 10), ("green", 20)))},
                       headers={"Authorization": "Bearer tok"})
        assert r.json() == {"text": "a green picture"}  # blue covers a third: under CAPTION_MIN_SHARE=0.5
        problems = check_conformance(srv.url, CaptionRunner.route, files={"image": ("p.png", png(("red", 4)))},
                                     auth_token="tok")
    assert not problems, "\n".join(problems)

"""The example runner served for real: weights in MODEL_DIR's HF cache layout, real multipart uploads, and the
SDK's contract conformance checker pointed at it."""

import base64
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from examples.upscale.runner import ESPCN, UpscaleRunner
from runner_sdk.hfcache import install_snapshot
from runner_sdk.testing import check_conformance, free_port, serve

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_ID = "acme/espcn-x2"


def _install_weights(model_dir: Path) -> ESPCN:
    torch.manual_seed(0)
    src = model_dir.parent / "src"
    src.mkdir()
    net = ESPCN()
    save_file(net.state_dict(), src / "model.safetensors")
    install_snapshot(src, model_dir, MODEL_ID)
    return net


def _png(picture: Image.Image) -> bytes:
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def model_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "models"


def test_upscale_runner_doubles_the_image(model_dir):
    net = _install_weights(model_dir)
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 255, (12, 20, 3), dtype=np.uint8))
    with serve(UpscaleRunner, model_id=MODEL_ID, model_dir=model_dir) as srv:
        r = httpx.post(srv.url + "/upscale", files={"image": ("in.png", _png(picture), "image/png")},
                       data={"prompt": "sharper", "seed": "3"})
        assert r.status_code == 200, r.text
        media = r.json()["images"][0]
        out = Image.open(io.BytesIO(base64.b64decode(media["url"].split(",", 1)[1])))
        assert out.size == (40, 24) and media["seed"] == 3
        # the served weights are the ones on disk: same output as running the network directly
        with torch.no_grad():
            x = torch.from_numpy(np.array(picture)).permute(2, 0, 1)[None].float() / 255
            want = net(x)[0].permute(1, 2, 0).mul(255).round().byte().numpy()
        assert np.array_equal(np.asarray(out), want)
        assert "network;dur=" in r.headers["server-timing"]

        bad = httpx.post(srv.url + "/upscale", files={"image": ("in.png", b"not an image", "image/png")},
                         data={"prompt": "x"})
        assert bad.status_code == 400 and bad.json()["detail"]["msg"] == "Unsupported or malformed image."
        missing = httpx.post(srv.url + "/upscale", data={"prompt": "x"})
        assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "image"]
        assert httpx.post(srv.url + "/upscale", files={"image": ("in.png", _png(picture), "image/png")},
                          data={"prompt": "x"}).json()["images"][0]["seed"] == 0  # no seed given


def test_upscale_runner_conforms_to_the_contract(model_dir):
    _install_weights(model_dir)
    png = _png(Image.new("RGB", (8, 6), (200, 30, 60)))
    with serve(UpscaleRunner, model_id=MODEL_ID, model_dir=model_dir, auth_token="s3cret") as srv:
        problems = check_conformance(srv.url, UpscaleRunner.route, data={"prompt": "x", "seed": "7"},
                                     files={"image": ("in.png", png, "image/png")}, auth_token="s3cret")
    assert not problems, "\n".join(problems)


def test_readme_command_serves_the_example_from_the_repo_root(tmp_path):
    """The README's line, as an author types it: the console script, RUNNER_CLASS, run from the repo root."""
    _install_weights(tmp_path / "models")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(RUNNER_CLASS="examples.upscale.runner:UpscaleRunner", PIPELINE="upscale", MODEL_ID=MODEL_ID,
               MODEL_DIR=str(tmp_path / "models"), HF_HUB_OFFLINE="1")
    script = Path(sys.executable).parent / "runner-sdk"
    proc = subprocess.Popen([str(script), "serve", "--device", "cpu", "--host", "127.0.0.1", "--port", str(port)],
                            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        status = None
        while status != "IDLE":
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, status
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/health").json()["status"]
            except httpx.TransportError:
                time.sleep(0.1)
        assert httpx.get(f"http://127.0.0.1:{port}/version").json()["pipeline"] == "upscale"
        png = _png(Image.new("RGB", (4, 4), (0, 0, 255)))
        r = httpx.post(f"http://127.0.0.1:{port}/upscale", files={"image": ("in.png", png, "image/png")},
                       data={"prompt": "x"})
        assert r.status_code == 200 and len(r.json()["images"]) == 1, r.text
    finally:
        proc.terminate()
        proc.wait(10)

"""The example runner served for real: weights in MODEL_DIR's HF cache layout, a real multipart upload."""

import base64
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from examples.upscale.runner import ESPCN, UpscaleRunner
from runner_sdk import RunnerSettings
from runner_sdk.hfcache import install_snapshot
from runner_sdk.testing import RunningServer, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]


def _install_weights(tmp_path: Path) -> ESPCN:
    torch.manual_seed(0)
    src = tmp_path / "src"
    src.mkdir()
    net = ESPCN()
    save_file(net.state_dict(), src / "model.safetensors")
    install_snapshot(src, tmp_path / "models", "acme/espcn-x2")
    return net


def test_upscale_runner_doubles_the_image(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    net = _install_weights(tmp_path)

    picture = Image.fromarray(np.random.default_rng(0).integers(0, 255, (12, 20, 3), dtype=np.uint8))
    png = io.BytesIO()
    picture.save(png, format="PNG")
    settings = RunnerSettings(pipeline="upscale", model_id="acme/espcn-x2", model_dir=tmp_path / "models",
                              device="cpu")
    with RunningServer(UpscaleRunner, settings) as srv:
        r = httpx.post(srv.url + "/upscale", files={"image": ("image", png.getvalue(), "application/octet-stream")},
                       data={"prompt": "sharper", "seed": "3"})
        assert r.status_code == 200, r.text
        media = r.json()["images"][0]
        out = Image.open(io.BytesIO(base64.b64decode(media["url"].split(",", 1)[1])))
        assert out.size == (40, 24) and media["seed"] == 3
        # the served weights are the ones on disk: same output as running the network directly
        with torch.no_grad():
            x = torch.from_numpy(np.asarray(picture)).permute(2, 0, 1)[None].float() / 255
            want = net(x)[0].permute(1, 2, 0).mul(255).round().byte().numpy()
        assert np.array_equal(np.asarray(out), want)

        bad = httpx.post(srv.url + "/upscale", files={"image": ("image", b"not an image", "application/octet-stream")},
                         data={"prompt": "x"})
        assert bad.status_code == 400 and bad.json()["detail"]["msg"] == "Unsupported or malformed image."
        assert httpx.post(srv.url + "/upscale", data={"prompt": "x"}).status_code == 422


def test_readme_command_serves_the_example_from_the_repo_root(tmp_path):
    """The README's line, as an author types it: the console script, RUNNER_CLASS, run from the repo root."""
    _install_weights(tmp_path)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(RUNNER_CLASS="examples.upscale.runner:UpscaleRunner", PIPELINE="upscale", MODEL_ID="acme/espcn-x2",
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
    finally:
        proc.terminate()
        proc.wait(10)

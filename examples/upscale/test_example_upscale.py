"""The example runner served for real: weights in MODEL_DIR's HF cache layout, a real multipart upload."""

import base64
import io

import httpx
import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from examples.upscale.runner import ESPCN, UpscaleRunner
from runner_sdk import RunnerSettings
from runner_sdk.hfcache import install_snapshot
from runner_sdk.testing import RunningServer


def test_upscale_runner_doubles_the_image(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    src = tmp_path / "src"
    src.mkdir()
    net = ESPCN()
    save_file(net.state_dict(), src / "model.safetensors")
    install_snapshot(src, tmp_path / "models", "acme/espcn-x2")

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

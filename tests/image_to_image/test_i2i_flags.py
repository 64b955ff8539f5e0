"""DEEPCACHE on the image routes (contract 9.1): applied to generic i2i, upscale and SVD models, skipped for
Lightning/Turbo ids on i2i; img2img's part-way start does not reuse another request's cached features."""

from __future__ import annotations

from image_to_image.conftest import GENERIC, LIGHTNING
from image_to_image.img_support import info, png_bytes, png_image, post, serve


def test_deepcache_on_a_generic_model_serves_any_strength_and_size(i2i_models):
    with serve("image-to-image", GENERIC, i2i_models, env={"DEEPCACHE": "true"}) as srv:
        assert "DeepCache" in info(srv)["optimisations_applied"]["DEEPCACHE"]
        for size, strength in (((16, 16), 0.5), ((24, 16), 0.9)):
            r = post(srv, "/image-to-image", {"prompt": "a", "seed": 1, "num_inference_steps": 4,
                                               "strength": strength}, png_bytes(*size))
            assert r.status_code == 200, r.text
            assert png_image(r.json()["images"][0]["url"]).size == size


def test_deepcache_is_skipped_for_lightning(i2i_models):
    with serve("image-to-image", LIGHTNING, i2i_models, env={"DEEPCACHE": "true"}) as srv:
        assert info(srv)["optimisations_applied"]["DEEPCACHE"].startswith("skipped")


def test_deepcache_on_upscale_and_svd(tmp_path):
    from runners.image_to_video.synth import synthesize as svd
    from runners.upscale.synth import synthesize as upscaler

    upscaler("stabilityai/stable-diffusion-x4-upscaler", tmp_path, "tiny", safety_checker=False)
    svd("stabilityai/stable-video-diffusion-img2vid-xt", tmp_path, "tiny", safety_checker=False)
    env = {"DEEPCACHE": "true", "UPSCALE_WARMUP_SIZE": "16", "I2V_WARMUP_SIZE": "32x32"}
    with serve("upscale", "stabilityai/stable-diffusion-x4-upscaler", tmp_path, env=env) as srv:
        assert "DeepCache" in info(srv)["optimisations_applied"]["DEEPCACHE"]
        r = post(srv, "/upscale", {"prompt": "", "seed": 1, "num_inference_steps": 4}, png_bytes(16, 16))
        assert r.status_code == 200, r.text
    with serve("image-to-video", "stabilityai/stable-video-diffusion-img2vid-xt", tmp_path, env=env) as srv:
        assert "DeepCache" in info(srv)["optimisations_applied"]["DEEPCACHE"]
        r = post(srv, "/image-to-video", {"height": 32, "width": 32, "seed": 1, "num_inference_steps": 4},
                 png_bytes(16, 16))
        assert r.status_code == 200, r.text

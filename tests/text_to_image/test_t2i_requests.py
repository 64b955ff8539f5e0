"""Request handling against a real server (tiny SDXL-Lightning-2step): the 4xx catalogue, images, seeds,
the safety flag, LoRAs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from text_to_image.t2i_support import BAD_LORA, LIGHTNING, LORA, error_msg, generate, info, png_image

from runners.text_to_image.requests import split_prompt

MODEL = f"{LIGHTNING}-2step"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"prompt": ""}, "Prompt must be provided."),
        ({"prompt": "   "}, "Prompt must be provided."),  # upstream: 500 (Q17)
        ({"prompt": "|"}, "Prompt must be provided."),
        ({"prompt": " | |\t| "}, "Prompt must be provided."),
        ({"prompt": "a cat", "model_id": "other/model"},
         f"pipeline configured with {MODEL} but called with other/model."),
        ({"prompt": "a cat", "height": 577}, "`height` and `width` have to be divisible by 8 but are 577 and 64."),
        ({"prompt": "a cat", "width": 100}, "`height` and `width` have to be divisible by 8 but are 64 and 100."),
        ({"prompt": "a cat", "width": 0}, "`height` and `width` must be positive but are 64 and 0."),
        ({"prompt": "a cat", "num_images_per_prompt": 0}, "num_images_per_prompt must be at least 1 but is 0."),
        ({"prompt": "a cat", "num_images_per_prompt": -2}, "num_images_per_prompt must be at least 1 but is -2."),
        ({"prompt": "a cat", "loras": "{not json"}, "Unable to parse '{not json' as JSON."),
        ({"prompt": "a cat", "loras": '["a/b"]'}, None),
        ({"prompt": "a cat", "loras": '{"a/b": -1}'}, "All strengths must be numbers greater than or equal to 0.0."),
        ({"prompt": "a cat", "loras": '{"a/b": "strong"}'},
         "All strengths must be numbers greater than or equal to 0.0."),
        ({"prompt": "a cat", "loras": '{"a/b": true}'}, "All strengths must be numbers greater than or equal to 0.0."),
        ({"prompt": "a cat", "loras": '{"a/1": 1, "a/2": 1, "a/3": 1, "a/4": 1, "a/5": 1}'},
         "Too many LoRas provided. Maximum is 4."),
        ({"prompt": "a cat", "loras": '{"nobody/missing-lora": 1.0}'}, "LoRa repository 'nobody/missing-lora' not found."),
    ],
)
def test_bad_input_is_a_400_with_the_contract_body(lightning2, body, message):
    r = generate(lightning2, **body)
    assert r.status_code == 400, r.text
    msg = error_msg(r)
    if message is not None:
        assert msg == message
    assert info(lightning2)["in_flight"] == 0  # nothing left behind


def test_size_bound_is_a_400_not_an_out_of_memory(lightning2):
    # The fixture sets T2I_MAX_PIXELS to four 64x64 images.
    assert generate(lightning2, prompt="a cat", num_images_per_prompt=4).status_code == 200
    r = generate(lightning2, prompt="a cat", num_images_per_prompt=5)
    assert r.status_code == 400
    assert "T2I_MAX_PIXELS" in error_msg(r)
    r = generate(lightning2, prompt="a cat", width=136, height=128)
    assert r.status_code == 400 and "17408 pixels" in error_msg(r)


@pytest.mark.parametrize("body", [{"width": 64}, {"prompt": "a cat", "seed": None}])
def test_schema_errors_are_422_lists(lightning2, body):
    r = generate(lightning2, **body)
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert isinstance(detail, list) and {"loc", "msg", "type"} <= set(detail[0])


def test_images_decode_as_pngs_of_the_requested_size(lightning2):
    r = generate(lightning2, prompt="a lighthouse", width=72, height=48, model_id=MODEL, unknown_field=1)
    assert r.status_code == 200, r.text
    (image,) = r.json()["images"]
    assert png_image(image["url"]).size == (72, 48)
    assert type(image["seed"]) is int and 0 <= image["seed"] <= 2**32 - 1  # drawn when omitted
    assert type(image["nsfw"]) is bool
    assert "denoise;dur=" in r.headers["server-timing"] and "encode;dur=" in r.headers["server-timing"]


def test_seeds_are_base_plus_i_and_reproducible(lightning2):
    first = generate(lightning2, prompt="a cat", seed=42, num_images_per_prompt=3).json()["images"]
    again = generate(lightning2, prompt="a cat", seed=42, num_images_per_prompt=3).json()["images"]
    assert [im["seed"] for im in first] == [42, 43, 44]
    pixels = [np.asarray(png_image(im["url"])) for im in first]
    assert [np.asarray(png_image(im["url"])).tobytes() for im in again] == [p.tobytes() for p in pixels]
    assert not np.array_equal(pixels[0], pixels[1])  # a different seed is a different image
    # Image i of a batch is the image a request with seed + i makes alone.
    alone = generate(lightning2, prompt="a cat", seed=43).json()["images"][0]
    assert np.array_equal(np.asarray(png_image(alone["url"])), pixels[1])


def test_prompt_splitting_feeds_the_second_text_encoder(lightning2):
    def image(prompt: str) -> np.ndarray:
        return np.asarray(png_image(generate(lightning2, prompt=prompt, seed=5).json()["images"][0]["url"]))

    # " a | b " is exactly prompt="a", prompt_2="b"; "a|a" is what diffusers does with prompt_2 omitted.
    assert np.array_equal(image(" a cat | a dog "), image("a cat|a dog"))
    assert np.array_equal(image("a cat"), image("a cat|a cat"))
    assert not np.array_equal(image("a cat|a dog"), image("a cat"))
    # Segments beyond prompt_2 are ignored on SDXL (with a warning), not an error.
    assert generate(lightning2, prompt="a|b|c|d|e", seed=5).status_code == 200


def test_split_prompt_rules():
    assert split_prompt("a|b") == {"prompt": "a", "prompt_2": "b"}
    assert split_prompt("a|b|c|d|e") == {"prompt": "a", "prompt_2": "b", "prompt_3": "c", "prompt_4": "d|e"}
    assert split_prompt(" a || b ") == {"prompt": "a", "prompt_2": "b"}
    assert split_prompt("x", "negative_prompt") == {"negative_prompt": "x"}
    assert split_prompt(" | ") == {}


def test_safety_checker_only_flags(lightning2):
    body = {"prompt": "a cat", "seed": 9}
    unchecked = generate(lightning2, safety_check=False, **body).json()["images"][0]
    assert unchecked["nsfw"] is False
    checker = lightning2.host.runner.safety
    assert checker is not None
    saved = checker.model.concept_embeds_weights.data.clone()
    try:
        checker.model.concept_embeds_weights.data.fill_(-10.0)  # a checker that flags everything
        flagged = generate(lightning2, **body).json()["images"][0]
    finally:
        checker.model.concept_embeds_weights.data.copy_(saved)
    assert flagged["nsfw"] is True
    pixels = np.asarray(png_image(flagged["url"]))
    assert np.array_equal(pixels, np.asarray(png_image(unchecked["url"])))  # never blanked
    assert pixels.any()


def test_lora_loads_applies_and_unloads(lightning2):
    body = {"prompt": "a cat", "seed": 11}
    plain = np.asarray(png_image(generate(lightning2, **body).json()["images"][0]["url"]))
    r = generate(lightning2, loras=f'{{"{LORA}": "1.0"}}', **body)  # numeric strings are accepted
    assert r.status_code == 200, r.text
    with_lora = np.asarray(png_image(r.json()["images"][0]["url"]))
    assert not np.array_equal(plain, with_lora)
    assert info(lightning2)["runner"]["loras_resident"] == [LORA]
    # A request without LoRAs gets the base model back, while the adapter stays resident.
    after = np.asarray(png_image(generate(lightning2, **body).json()["images"][0]["url"]))
    assert np.array_equal(plain, after)
    # Strength 0 is the base model too.
    zero = generate(lightning2, loras=f'{{"{LORA}": 0}}', **body).json()["images"][0]["url"]
    assert np.array_equal(plain, np.asarray(png_image(zero)))
    assert torch.is_grad_enabled()  # inference_mode never leaks out of the job thread into ours


def test_incompatible_lora_is_a_400_and_leaves_nothing_loaded(lightning2):
    before = info(lightning2)["runner"]["loras_resident"]
    r = generate(lightning2, prompt="a cat", loras=f'{{"{BAD_LORA}": 1.0}}', seed=1)
    assert r.status_code == 400
    assert error_msg(r) == f"LoRa incompatible with base model: '{BAD_LORA}'."
    assert info(lightning2)["runner"]["loras_resident"] == before
    adapters = lightning2.host.runner.pipe.get_list_adapters()
    assert all(not any("another" in name for name in names) for names in adapters.values())
    assert generate(lightning2, prompt="a cat", seed=1).status_code == 200

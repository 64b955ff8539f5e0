"""/segment-anything-2 over a real server: tiny SAM 2, go-livepeer-shaped multipart, the contract's shapes."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from runner_sdk import routes
from runner_sdk.conformance import check_response
from runner_sdk.testing import check_conformance
from runners.image_to_text.testimages import png

ROUTE = routes.SEGMENT_ANYTHING_2
W, H = 40, 30


def _arrays(r: httpx.Response) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    assert r.status_code == 200, r.text
    assert not check_response(r, ROUTE)
    body = r.json()
    assert set(body) == {"masks", "scores", "logits"} and all(isinstance(v, str) for v in body.values())
    assert body["scores"].startswith("[") and ", " in body["logits"]  # Python's printed lists
    return tuple(np.asarray(json.loads(body[k]), dtype=np.float64) for k in ("masks", "scores", "logits"))


def _check(masks, scores, logits, c: int, lead: tuple[int, ...] = ()):
    assert masks.shape == (*lead, c, H, W) and scores.shape == (*lead, c) and logits.shape == (*lead, c, 256, 256)
    assert (np.diff(scores, axis=-1) <= 0).all()  # ordered by descending score
    assert logits.min() >= -32 and logits.max() <= 32


def test_sam2_point_prompt(sam2_server, segment):
    masks, scores, logits = _arrays(segment(sam2_server, png(W, H), point_coords="[[10,12]]", point_labels="[1]"))
    _check(masks, scores, logits, 3)


def test_sam2_box_single_mask_and_binary(sam2_server, segment):
    r = segment(sam2_server, png(W, H), box="[2,3,30,25]", multimask_output="false", return_logits="false",
                model_id="facebook/sam2-hiera-large")
    masks, scores, logits = _arrays(r)
    _check(masks, scores, logits, 1)
    assert set(np.unique(masks)) <= {0.0, 1.0}
    assert "0.0" in r.json()["masks"] or "1.0" in r.json()["masks"]


def test_sam2_full_size_mask_input(sam2_server, segment):
    logits = np.random.default_rng(0).normal(0, 8, (1, 256, 256)).astype(np.float32)
    text = str(logits.tolist())
    assert len(text) > 1_048_576  # over Starlette's 1 MiB text-part limit (Q37)
    r = segment(sam2_server, png(W, H), point_coords="[[5,5],[20,20]]", point_labels="[1,0]", mask_input=text)
    _check(*_arrays(r), 3)


def test_sam2_no_prompt_and_normalized_coords(sam2_server, segment):
    _check(*_arrays(segment(sam2_server, png(W, H))), 3)
    r = segment(sam2_server, png(W, H), point_coords="[[0.5,0.5]]", point_labels="[1]", normalize_coords="false")
    _check(*_arrays(r), 3)


def test_sam2_multi_object_prompts(sam2_server, segment):
    r = segment(sam2_server, png(W, H), point_coords="[[[5,5]],[[30,20]]]", point_labels="[[1],[1]]")
    _check(*_arrays(r), 3, (2,))
    r = segment(sam2_server, png(W, H), box="[[0,0,10,10],[5,5,39,29],[1,1,2,2]]", multimask_output="false")
    _check(*_arrays(r), 1, (3,))


@pytest.mark.parametrize("fields, message", [
    ({"point_coords": "[[1,2]"}, "Error parsing JSON for point_coords: "),
    ({"point_coords": "[[1,2]]", "point_labels": "[1"}, "Error parsing JSON for point_labels: "),
    ({"box": "[1,2,3,"}, "Error parsing JSON for box: "),
    ({"mask_input": "nope"}, "Error parsing JSON for mask_input: "),
    ({"point_coords": "[[1,2]]"}, "Error during model execution: point_labels must be supplied"),
    ({"point_coords": "[[1,2,3]]", "point_labels": "[1]"}, "Invalid point_coords"),
    ({"point_coords": "[[1,2]]", "point_labels": "[1,1]"}, "Invalid point_labels"),
    ({"box": "[1,2,3]"}, "Invalid box"),
    ({"mask_input": "[[[0.5]]]"}, "Invalid mask_input: expected a 1x256x256 array"),
    ({"point_coords": "[[[1,2]],[[3,4]]]", "point_labels": "[[1],[1]]", "box": "[1,2,3,4]"}, "Invalid box"),
    ({"point_coords": "[[5,2]]", "point_labels": "[1]", "normalize_coords": "false"}, "Invalid point_coords"),
])
def test_sam2_bad_prompts_are_400(sam2_server, segment, fields, message):
    r = segment(sam2_server, png(W, H), **fields)
    assert r.status_code == 400, r.text
    assert not check_response(r, ROUTE)
    assert r.json()["detail"]["msg"].startswith(message)


def test_sam2_caller_errors(sam2_server, segment):
    bad = segment(sam2_server, b"GIF89a broken")
    assert bad.status_code == 400 and bad.json()["detail"]["msg"] == "Unsupported or malformed image."
    other = segment(sam2_server, png(), model_id="facebook/sam2-hiera-tiny")
    assert other.json()["detail"]["msg"] == ("pipeline configured with facebook/sam2-hiera-large but called with "
                                             "facebook/sam2-hiera-tiny.")
    assert segment(sam2_server, png(), point_coords="", point_labels="").status_code == 200  # "" is absent
    flag = segment(sam2_server, png(), multimask_output="maybe")
    assert flag.status_code == 422 and not check_response(flag, ROUTE)


def test_sam2_conformance(sam2_server):
    problems = check_conformance(sam2_server.url, ROUTE, data={"point_coords": "[[3,4]]", "point_labels": "[1]"},
                                 files={"image": ("image", png(), "application/octet-stream")})
    assert not problems, "\n".join(problems)


def test_sam2_cancelled_job_stops_after_the_embedding(sam2_server):
    from PIL import Image

    from runner_sdk import Job, JobCancelled
    from runners.segment_anything_2.prompts import Prompts

    runner = sam2_server.host.runner
    job = Job()
    job.cancel()
    inputs = runner._prepare(Image.new("RGB", (W, H)), Prompts(), True, True, True)
    with pytest.raises(JobCancelled):
        runner.predict(inputs, job)
    assert "embed" in job.timings and "decode_masks" not in job.timings


def test_sam2_output_is_bounded_before_any_work(sam2_server, segment):
    """Masks print every value at the input's resolution: a huge input or object count is a 400 up front."""
    runner = sam2_server.host.runner
    limit = runner.options.sam2_max_pixels
    try:
        runner.options.sam2_max_pixels = W * H - 1
        r = segment(sam2_server, png(W, H), point_coords="[[10,12]]", point_labels="[1]")
        assert r.status_code == 400 and "limit" in r.json()["detail"]["msg"]
    finally:
        runner.options.sam2_max_pixels = limit
    boxes = json.dumps([[1, 1, 5, 5]] * (runner.options.sam2_max_objects + 1))
    r = segment(sam2_server, png(W, H), box=boxes)
    assert r.status_code == 400 and "SAM2_MAX_OBJECTS" in r.json()["detail"]["msg"]
    assert sam2_server.host.capacity.in_flight == 0
    _arrays(segment(sam2_server, png(W, H), box=json.dumps([[1, 1, 5, 5]] * 2)))  # within the bound: served

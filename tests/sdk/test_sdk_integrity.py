"""Issue 14 in the SDK: non-finite and absurd numbers are a 400 naming the field and its range on every route,
non-standard JSON literals are refused, a model output with NaN is a JSON 500 (counted in /metrics) and the
next request is served, and request heads are capped."""

from __future__ import annotations

import io
import math

import httpx
import pytest
from fakes import FakeImageRunner, FakeLLMRunner

from runner_sdk import Job, Runner, routes, schemas
from runner_sdk.integrity import NonFiniteOutput, integrity_of, is_finite, numeric_error
from runner_sdk.parsing import MAX_HEADER_BYTES, NonStandardJSON, loads_strict
from runner_sdk.testing import RunningServer

NAN, INF = float("nan"), float("inf")

# Every numeric field of every request model with a range, and a value out of it.
RANGED = [(model, field, bounds) for model in (schemas.TextToImageParams, schemas.ImageToImageForm,
                                               schemas.ImageToVideoForm, schemas.UpscaleForm, schemas.LLMRequest)
          for field, bounds in model.ranges.items()]


def _base(model) -> dict:
    from pathlib import Path

    from runner_sdk.uploads import UploadedFile

    image = UploadedFile(name="image", filename=None, content_type=None, path=Path("/dev/null"), size=0)
    required = {"prompt": "a cat", "messages": [], "image": image}
    return {k: v for k, v in required.items() if k in model.model_fields}


@pytest.mark.parametrize(("model", "field", "bounds"), RANGED,
                         ids=[f"{m.__name__}.{f}" for m, f, _ in RANGED])
def test_each_ranged_field_refuses_nan_infinity_and_out_of_range(model, field, bounds):
    low, high = bounds
    is_float = model.model_fields[field].annotation in (float, "float")
    bad = [NAN, INF, -INF] if is_float else []
    bad += [v for v in ((low - 1) if low is not None else None, (high + 1) if high is not None else None,
                        2**64, -(2**64)) if v is not None]
    for value in bad:
        body = model.model_validate({**_base(model), field: value})
        why = numeric_error(body)
        assert why is not None and why.startswith(f"{field} must be "), (value, why)
        assert ("between" in why) or ("at most" in why) or ("at least" in why), why
    assert numeric_error(model.model_validate(_base(model))) is None  # the defaults are in range


def test_unranged_floats_must_still_be_finite_and_ints_fit_int64():
    class Custom(schemas.WireModel):
        x: float = 0.0
        n: int = 0

    assert numeric_error(Custom(x=NAN)) == "x must be a finite number, got nan"
    assert "between -9223372036854775808 and 9223372036854775807" in numeric_error(Custom(n=2**63))
    assert numeric_error(Custom(x=1e300, n=-(2**63))) is None


@pytest.mark.parametrize("text", ['{"a": NaN}', '{"a": Infinity}', '{"a": -Infinity}', '{"a": 1e400}', '[-1e999]'])
def test_loads_strict_refuses_non_standard_literals(text):
    with pytest.raises(NonStandardJSON):
        loads_strict(text)
    assert loads_strict('{"a": 1e38, "b": -0.5}') == {"a": 1e38, "b": -0.5}


def test_is_finite_on_tensors_arrays_and_floats():
    import numpy as np
    import torch

    assert is_finite(torch.zeros(3)) and not is_finite(torch.tensor([0.0, NAN]))
    assert not is_finite(torch.tensor([INF], dtype=torch.float16)) and is_finite(torch.tensor([1, 2]))
    assert is_finite(np.ones(2)) and not is_finite(np.array([np.nan])) and not is_finite([1.0, math.inf])


@pytest.fixture(scope="module")
def image_server(tmp_path_factory):
    from runner_sdk import RunnerSettings

    s = RunnerSettings(pipeline="text-to-image", model_id="ByteDance/SDXL-Lightning-4step", device="cpu",
                       model_dir=tmp_path_factory.mktemp("m"))
    with RunningServer(FakeImageRunner, s) as srv:
        yield srv


@pytest.mark.parametrize(("raw", "status"), [
    (b'{"prompt": "a cat", "guidance_scale": 1e38}', 400), (b'{"prompt": "a cat", "guidance_scale": 1e300}', 400),
    (b'{"prompt": "a cat", "guidance_scale": -1}', 400), (b'{"prompt": "a cat", "width": 100000}', 400),
    (b'{"prompt": "a cat", "num_inference_steps": 1e18}', 400), (b'{"prompt": "a cat", "seed": 1000000000000000000000000000000}', 400),
    (b'{"prompt": "a cat", "guidance_scale": Infinity}', 422), (b'{"prompt": "a cat", "guidance_scale": NaN}', 422),
    (b'{"prompt": "a cat", "guidance_scale": -Infinity}', 422), (b'{"prompt": "a cat", "guidance_scale": 1e999}', 422),
])
def test_text_to_image_route_refuses_absurd_numbers(image_server, raw, status):
    r = httpx.post(image_server.url + "/text-to-image", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    if status == 400:  # go-livepeer's value-error shape, naming the field and its range
        msg = r.json()["detail"]["msg"]
        assert " must be " in msg and ("between" in msg or "at most" in msg), msg  # noqa: PT018
    else:
        assert r.json()["detail"][0]["type"] == "json_invalid", r.text
    assert httpx.post(image_server.url + "/text-to-image", json={"prompt": "a cat"}).status_code == 200


def test_guidance_message_names_field_and_range(image_server):
    r = httpx.post(image_server.url + "/text-to-image", json={"prompt": "a cat", "guidance_scale": 1e38})
    assert r.json() == {"detail": {"msg": "guidance_scale must be between 0 and 50, got 1e+38"}}


def test_llm_route_answers_400_for_non_standard_literals(tmp_path):
    from runner_sdk import RunnerSettings

    s = RunnerSettings(pipeline="llm", model_id="org/model", device="cpu", model_dir=tmp_path)
    with RunningServer(FakeLLMRunner, s) as srv:
        for raw in (b'{"messages": [], "temperature": NaN}', b'{"messages": [], "top_p": Infinity}'):
            r = httpx.post(srv.url + "/llm", content=raw, headers={"Content-Type": "application/json"})
            assert r.status_code == 400 and "JSON decode error" in r.json()["detail"]["msg"], r.text
        r = httpx.post(srv.url + "/llm", json={"messages": [], "temperature": 1e9})
        assert r.status_code == 400 and r.json()["detail"]["msg"] == "temperature must be between 0 and 2, got 1000000000.0"


class FormRunner(Runner):
    """/image-to-image with the contract's form: the numbers reach it as text parts ("nan", "inf")."""

    route = routes.IMAGE_TO_IMAGE

    def predict(self, request, job: Job) -> schemas.ImageResponse:
        return schemas.ImageResponse(images=[])


@pytest.mark.parametrize(("field", "value"), [("strength", "nan"), ("strength", "1.5"), ("guidance_scale", "inf"),
                                              ("image_guidance_scale", "-Infinity"), ("guidance_scale", "1e38")])
def test_multipart_text_parts_with_non_finite_numbers_are_a_400(tmp_path, field, value):
    from runner_sdk import RunnerSettings

    s = RunnerSettings(pipeline="image-to-image", model_id="org/model", device="cpu", model_dir=tmp_path)
    with RunningServer(FormRunner, s) as srv:
        files = {"image": ("a.png", io.BytesIO(b"\x89PNG"), "image/png")}
        r = httpx.post(srv.url + "/image-to-image", data={"prompt": "a cat", field: value}, files=files)
        assert r.status_code == 400 and r.json()["detail"]["msg"].startswith(f"{field} must be between"), r.text
        ok = httpx.post(srv.url + "/image-to-image", data={"prompt": "a cat"}, files=files)
        assert ok.status_code == 200, ok.text


class NaNRunner(FakeImageRunner):
    """Emits NaN pixels while `poison` is set: must answer the JSON 500, never a 200."""

    poison = True

    def predict(self, request, job):
        import numpy as np

        pixels = np.full((8, 8, 3), np.nan if self.poison else 0.5)
        integrity_of(self).check(pixels, "pixels")
        return super().predict(request, job)


def test_nan_output_is_a_json_500_counted_in_metrics_and_the_next_request_is_served(tmp_path):
    from runner_sdk import RunnerSettings

    s = RunnerSettings(pipeline="text-to-image", model_id="ByteDance/SDXL-Lightning-4step", device="cpu",
                       model_dir=tmp_path)
    with RunningServer(NaNRunner, s) as srv:
        r = httpx.post(srv.url + "/text-to-image", json={"prompt": "a cat"})
        assert r.status_code == 500 and "non-finite values (NaN or Infinity) in its pixels" in r.json()["detail"]["msg"]
        NaNRunner.poison = False
        try:
            assert httpx.post(srv.url + "/text-to-image", json={"prompt": "a cat"}).status_code == 200
        finally:
            NaNRunner.poison = True
        metrics = httpx.get(srv.url + "/metrics").text
        assert 'runner_output_nonfinite_total{outcome="failed",stage="pixels"} 1.0' in metrics


def test_non_finite_output_error_is_a_500_runner_error():
    exc = NonFiniteOutput("logits", "Try again.")
    assert exc.status == 500 and exc.msg.endswith("in its logits; no result was returned. Try again.")


def test_request_heads_are_capped(image_server):
    ok = httpx.post(image_server.url + "/text-to-image", json={"prompt": "a cat"}, headers={"X-Pad": "a" * 4000})
    assert ok.status_code == 200
    # A head that arrives in one read: refused by the SDK with the contract's JSON 400.
    r = httpx.post(image_server.url + "/text-to-image", json={"prompt": "a cat"},
                   headers={"X-Pad": "a" * (MAX_HEADER_BYTES + 100)})
    assert r.status_code == 400 and r.json()["detail"]["msg"] == f"request headers over {MAX_HEADER_BYTES} bytes"
    # A 1 MB header: the parser refuses it (400 and close; the client may see the reset first).
    try:
        big = httpx.post(image_server.url + "/text-to-image", json={"prompt": "a cat"}, headers={"X-Pad": "a" * 2**20})
        assert big.status_code == 400
    except httpx.HTTPError:
        pass
    assert httpx.get(image_server.url + "/health").status_code == 200
    assert httpx.post(image_server.url + "/text-to-image", json={"prompt": "a cat"}).status_code == 200

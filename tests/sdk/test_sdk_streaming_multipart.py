"""SSE framing and failure handling for streaming routes; streamed multipart uploads with a size limit."""

from __future__ import annotations

import dataclasses
import json
import threading

import httpx
import pytest
from fakes import FakeAudioRunner, FakeLLMRunner

from runner_sdk import routes
from runner_sdk.testing import RunningServer

MSG = {"messages": [{"role": "user", "content": "hi"}]}


def llm_runner(**attrs):
    return type("LLM", (FakeLLMRunner,), attrs)


@pytest.fixture
def llm_settings(settings):
    return lambda **kw: settings(pipeline="llm", model_id="meta-llama/Meta-Llama-3.1-8B-Instruct", **kw)


def test_sse_framing_byte_for_byte(llm_settings):
    with RunningServer(llm_runner(), llm_settings()) as srv:
        r = httpx.post(srv.url + "/llm", json={**MSG, "stream": True, "max_tokens": 3})
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
        raw = r.content
        assert raw.endswith(b"data: [DONE]\n\n")
        events = raw.split(b"\n\n")
        assert events[-1] == b""  # the body ends right after [DONE]\n\n
        events = events[:-1]
        assert all(e.startswith(b"data: ") and b"\n" not in e for e in events)
        chunks = [json.loads(e[6:]) for e in events[:-1]]
        assert [c["choices"][0]["delta"]["content"] for c in chunks] == ["Hello", " there", ",", ""]
        finishes = [c["choices"][0]["finish_reason"] for c in chunks]
        assert finishes == ["", "", "", "length"]
        assert b'"choices":[{' in events[0] and b" " not in events[0][6:].split(b'"content"')[0]  # compact JSON


def test_non_stream_and_error_before_first_chunk_is_json(llm_settings):
    with RunningServer(llm_runner(fail_before=True), llm_settings()) as srv:
        r = httpx.post(srv.url + "/llm", json={**MSG, "stream": True})
        assert r.status_code == 500 and r.headers["content-type"] == "application/json"
        assert r.json() == {"detail": {"msg": "engine failed before the first token"}}
        r = httpx.post(srv.url + "/llm", json={"messages": [], "stream": True})
        assert r.status_code == 400 and b"data:" not in r.content
        # /llm schema errors are 400s, not 422s (Q7); a null body or null messages too
        for body in ({"messages": None}, {"messages": [{"role": "user", "content": ["part"]}]}, None):
            r = httpx.post(srv.url + "/llm", json=body)
            assert r.status_code == 400 and isinstance(r.json()["detail"]["msg"], str), body


def test_mid_stream_failure_ends_with_error_chunk_then_done(llm_settings):
    with RunningServer(llm_runner(fail_at=3), llm_settings()) as srv:
        r = httpx.post(srv.url + "/llm", json={**MSG, "stream": True})
        assert r.status_code == 200
        events = [e for e in r.content.split(b"\n\n") if e]
        assert events[-1] == b"data: [DONE]"
        last = json.loads(events[-2][6:])
        assert len(last["choices"]) == 1 and last["choices"][0]["finish_reason"] == "error"
        assert last["choices"][0]["delta"]["content"] == ""
        assert b'"error":' not in r.content
        assert srv.host.capacity.in_flight == 0


def test_stream_disconnect_stops_generation(llm_settings):
    cls = llm_runner(words=["w"] * 400, step_s=0.01)
    with RunningServer(cls, llm_settings()) as srv:
        with httpx.stream("POST", srv.url + "/llm", json={**MSG, "stream": True, "max_tokens": 400}) as r:
            for i, _line in enumerate(r.iter_lines()):
                if i > 10:
                    break  # closing the response drops the connection
        done = threading.Event()
        for _ in range(300):
            if cls.produced:
                done.set()
                break
            threading.Event().wait(0.01)
        assert done.is_set() and cls.produced[-1] < 100
        assert srv.host.capacity.in_flight == 0


def test_multipart_upload_streams_to_disk_and_413_over_limit(settings):
    limited = type("Audio", (FakeAudioRunner,), {"route": dataclasses.replace(routes.AUDIO_TO_TEXT, max_file_bytes=1000)})
    with RunningServer(limited, settings(pipeline="audio-to-text", model_id="openai/whisper-large-v3")) as srv:
        url = srv.url + "/audio-to-text"
        ok = httpx.post(url, files={"audio": ("audio", b"\x01\x02" * 500, "application/octet-stream")},
                        data={"return_timestamps": "word"})
        assert ok.status_code == 200 and ok.json()["text"] == "1000:01020102:word"
        assert not limited.last_upload.exists()  # the spooled upload is deleted after the request
        big = httpx.post(url, files={"audio": ("audio", b"\x00" * 1001, "application/octet-stream")})
        assert big.status_code == 413 and big.json() == {"detail": {"msg": "File size exceeds limit."}}
        # Upstream's order: a model mismatch is reported before the size, even for an oversized upload.
        wrong = httpx.post(url, files={"audio": ("audio", b"\x00" * 1001, "application/octet-stream")},
                           data={"model_id": "openai/whisper-tiny"})
        assert wrong.status_code == 400
        assert wrong.json()["detail"]["msg"] == (
            "pipeline configured with openai/whisper-large-v3 but called with openai/whisper-tiny.")
        missing = httpx.post(url, data={"model_id": ""})
        assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "audio"]
        as_json = httpx.post(url, json={"audio": "x"})
        assert as_json.status_code == 422


def test_only_the_routes_file_part_is_stored_and_the_first_of_its_name_wins(settings):
    """Other file parts (any name, any size) and repeats of `audio` are drained, never written to disk."""

    class Spooled(FakeAudioRunner):
        def predict(self, request, job):
            type(self).spooled = sorted(p.name for p in request.audio.path.parent.iterdir())
            return super().predict(request, job)

    limited = type("Audio", (Spooled,), {"route": dataclasses.replace(routes.AUDIO_TO_TEXT, max_file_bytes=1000)})
    with RunningServer(limited, settings(pipeline="audio-to-text", model_id="openai/whisper-large-v3")) as srv:
        files = [("junk1", ("a.bin", b"\x07" * 5000, "application/octet-stream")),
                 ("audio", ("audio", b"\x01\x02\x03", "application/octet-stream")),
                 ("audio", ("audio", b"\x09" * 5000, "application/octet-stream")),  # oversized repeat: ignored
                 ("junk2", ("b.bin", b"\x08" * 5000, "application/octet-stream"))]
        r = httpx.post(srv.url + "/audio-to-text", files=files)
        assert r.status_code == 200 and r.json()["text"].startswith("3:010203:"), r.text
        assert limited.spooled == ["part-0"]


def test_large_text_parts_up_to_16_mib_are_accepted(settings):
    """SAM2's mask_input is about 1.35 MB of text (contract 3.12, Q37): accepted; past 16 MiB in all, a JSON 400."""
    with RunningServer(FakeAudioRunner, settings(pipeline="audio-to-text", model_id="openai/whisper-large-v3")) as srv:
        url = srv.url + "/audio-to-text"
        audio = {"audio": ("audio", b"\x01\x02", "application/octet-stream")}
        big = "[" + ", ".join(["-1.232093334197998"] * 70_000) + "]"
        assert len(big) > 1_350_000
        ok = httpx.post(url, files=audio, data={"metadata": big})
        assert ok.status_code == 200, ok.text
        huge = httpx.post(url, files=audio, data={"metadata": "x" * (16 * 1024 * 1024 + 1)})
        assert huge.status_code == 400 and "16777216 bytes" in huge.json()["detail"]["msg"]

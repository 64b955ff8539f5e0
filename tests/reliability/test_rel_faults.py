"""Injected faults: out of memory inside inference, a model that cannot load, clients that vanish, an
upload over the limit, and paths smuggled into requests. Each leaves the runner answering correctly."""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest
from reliability.relkit import (
    AUTH,
    FileWatch,
    answers_valid_request,
    current_rss,
    idle,
    raw_http,
    start_server,
    target_params,
)

from benchmarks.soak.inject import (
    forward_delay,
    in_job_thread,
    module_pre_hook,
    oom_injector,
    slow_tokenizer_settings,
)
from runner_sdk.conformance import check

REAL = ["text-to-image", "audio-to-text", "llm"]


# --- out of memory inside inference -----------------------------------------------------------------

@pytest.mark.parametrize("target", target_params(REAL))
def test_oom_inside_inference_gives_500_and_the_next_request_succeeds(target, servers):
    srv = servers(target)
    runner_cls = type(srv.host.runner)
    with oom_injector() as oom:
        oom.arm()
        r = httpx.post(srv.url + target.route.path, headers=AUTH, timeout=120, **target.valid_request())
    assert oom.fired == 1, "the injected OOM never reached a model forward"
    assert r.status_code == 500 and not check(r, target.route), r.text
    assert r.json()["detail"]["msg"] == runner_cls.oom_message
    assert idle(srv)
    answers_valid_request(srv.url, target)


@pytest.mark.parametrize("target", target_params(["llm"]))
def test_oom_mid_stream_ends_the_stream_cleanly(target, servers):
    srv = servers(target)
    body = {**target.valid_request()["json"], "stream": True, "max_tokens": 6}
    # The engine runs ahead of the client: without a gate it can finish all 6 tokens before the first chunk is
    # read. So every model call after the prefill waits until the first chunk is on the wire and OOM is armed.
    released, calls = threading.Event(), []

    def hold_after_prefill(module, args) -> None:
        if type(module).__name__.endswith("ForCausalLM") and in_job_thread():
            calls.append(module)
            if len(calls) > 1:
                assert released.wait(timeout=60), "the first chunk never reached the client"

    with oom_injector() as oom, module_pre_hook(hold_after_prefill), \
            httpx.stream("POST", srv.url + "/llm", headers=AUTH, json=body, timeout=120) as r:
        assert r.status_code == 200
        lines = []
        for line in r.iter_lines():
            if line and not lines:
                oom.arm()  # after the first chunk is on the wire
                released.set()
            if line:
                lines.append(line)
    text = "\n".join(lines)
    assert oom.fired == 1
    assert lines[-1] == "data: [DONE]", text
    last = json.loads(lines[-2][6:])
    assert last["choices"][0]["finish_reason"] == "error", text
    assert idle(srv)
    answers_valid_request(srv.url, target)


# --- a model that fails to load ---------------------------------------------------------------------

def _without_weights(model_dir: Path, dest: Path) -> list[str]:
    """A copy of MODEL_DIR with every weights file removed from its snapshots; returns what was removed."""
    shutil.copytree(model_dir, dest, symlinks=True)
    removed = []
    for path in dest.glob("models--*/snapshots/*/**/*"):
        if path.name.endswith((".safetensors", ".bin")):
            path.unlink()
            removed.append(path.name)
    assert removed
    return removed


@pytest.mark.parametrize("target", target_params(REAL))
def test_missing_weights_give_error_with_reason_never_ok(target, model_dirs, tmp_path):
    broken = tmp_path / "models"
    _without_weights(model_dirs(target), broken)
    srv = start_server(target, broken, wait_ready=False)
    try:
        seen = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            health = httpx.get(srv.url + "/health").json()
            seen.append(health["status"])
            if health["status"] == "ERROR":
                break
            time.sleep(0.02)
        for _ in range(10):  # and it stays there
            seen.append(httpx.get(srv.url + "/health").json()["status"])
            time.sleep(0.02)
        assert set(seen) <= {"LOADING", "ERROR"} and seen[-1] == "ERROR", seen
        reason = health.get("error")
        assert isinstance(reason, str) and len(reason) > 20, health
        info = httpx.get(srv.url + "/runner/info").json()
        assert info["status"] == "ERROR" and info["error"] == reason
        r = httpx.post(srv.url + target.route.path, headers=AUTH, timeout=30, **target.valid_request())
        assert r.status_code == 500 and not check(r, target.route)
        assert "failed to load" in r.json()["detail"]["msg"]
    finally:
        srv.__exit__(None, None, None)


# --- clients that disconnect ------------------------------------------------------------------------

class _slow:
    """Make every request take seconds: a delayed model forward (real runners) or longer fake steps."""

    def __init__(self, srv, target, seconds: float = 0.1):
        self.srv, self.target, self.seconds = srv, target, seconds

    def __enter__(self):
        if self.target.real:
            self._ctx = forward_delay(self.seconds)
            self._ctx.__enter__()
        else:
            cls = type(self.srv.host.runner)
            self._saved = (cls.step_s, getattr(cls, "steps", None))
            cls.step_s = self.seconds
            if hasattr(cls, "steps"):
                cls.steps = 30
        return self

    def __exit__(self, *exc):
        if self.target.real:
            self._ctx.__exit__(*exc)
        else:
            cls = type(self.srv.host.runner)
            cls.step_s = self._saved[0]
            if self._saved[1] is not None:
                cls.steps = self._saved[1]


def _time_to_idle(srv, limit: float = 1.0) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit + 2:
        if srv.host.capacity.in_flight == 0 and srv.host.capacity.queued == 0:
            return time.monotonic() - t0
        time.sleep(0.005)
    return float("inf")


@pytest.mark.parametrize("target", target_params())
def test_disconnect_mid_request_frees_the_slot_within_a_second(target, servers):
    srv = servers(target)
    kwargs = target.valid_request()
    if target.route.streams:
        kwargs["json"] = {**kwargs["json"], "max_tokens": 5}
    raw = raw_http(httpx.Request("POST", srv.url + target.route.path, headers=AUTH, **kwargs))
    with _slow(srv, target):
        sock = socket.create_connection(("127.0.0.1", srv.port))
        sock.sendall(raw)
        deadline = time.monotonic() + 10
        while srv.host.capacity.in_flight < 1:
            assert time.monotonic() < deadline, "the request never started"
            time.sleep(0.005)
        time.sleep(0.15)  # well inside the inference
        sock.close()
        freed_s = _time_to_idle(srv)
    assert freed_s < 1.0, f"slot still held {freed_s:.2f} s after the client left"
    answers_valid_request(srv.url, target)


@pytest.mark.parametrize("target", target_params(["fake-llm", "llm"]))
def test_disconnect_mid_stream_frees_the_slot_within_a_second(target, servers):
    srv = servers(target)
    body = {**target.valid_request()["json"], "stream": True, "max_tokens": 20}
    with _slow(srv, target), httpx.Client(timeout=60) as client:
        with client.stream("POST", srv.url + "/llm", headers=AUTH, json=body) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if line.startswith("data: {"):
                    break  # one chunk read, then the client goes away mid-stream
        client.close()
        freed_s = _time_to_idle(srv)
    assert freed_s < 1.0, f"slot still held {freed_s:.2f} s after the client left"
    answers_valid_request(srv.url, target)


# --- an upload over the size limit ------------------------------------------------------------------

@pytest.mark.parametrize("target", target_params(["fake-audio", "audio-to-text"]))
def test_upload_over_the_limit_is_refused_without_being_held(target, servers):
    srv = servers(target)
    limit = target.route.max_file_bytes
    assert limit == 50 * 1024 * 1024
    boundary = "relboundary7MA4YWxkTrZu0gW"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"audio\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    block = b"\x5a" * (1024 * 1024)
    size = limit + 1

    def body():
        yield head
        sent = 0
        while sent < size:
            chunk = block[: min(len(block), size - sent)]
            sent += len(chunk)
            yield chunk
        yield tail

    spool_root = Path(tempfile.gettempdir())
    peak = {"rss": 0, "spool": 0}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak["rss"] = max(peak["rss"], current_rss())
            for part in spool_root.glob("runner-*/part-*"):
                try:
                    peak["spool"] = max(peak["spool"], part.stat().st_size)
                except FileNotFoundError:
                    pass
            stop.wait(0.005)

    spools_before = set(spool_root.glob("runner-*"))
    base = current_rss()
    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        r = httpx.post(srv.url + "/audio-to-text", content=body(), timeout=120,
                       headers={**AUTH, "Content-Type": f"multipart/form-data; boundary={boundary}",
                                "Content-Length": str(len(head) + size + len(tail))})
    finally:
        stop.set()
        sampler.join()
    assert r.status_code == 413 and r.json() == {"detail": {"msg": "File size exceeds limit."}}
    # Never held whole: the process grew by far less than the 50 MiB upload, and the spooled part never
    # went past the limit.
    assert peak["rss"] - base < 20 * 2**20, (base, peak)
    assert peak["spool"] <= limit
    assert idle(srv)
    assert not set(spool_root.glob("runner-*")) - spools_before, "the refused upload's spool was left behind"
    answers_valid_request(srv.url, target)


# --- paths in requests ------------------------------------------------------------------------------

def _outside_bait(root: Path) -> Path:
    """A directory outside MODEL_DIR that looks like a model and a LoRA, so a runner that followed a path
    there would try to read it."""
    bait = root / "outside"
    bait.mkdir(exist_ok=True)
    (bait / "config.json").write_text("{}")
    (bait / "model_index.json").write_text("{}")
    (bait / "pytorch_lora_weights.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    (bait / "secret.txt").write_text("outside MODEL_DIR")
    return bait


def _path_like(bait: Path) -> list[str]:
    return [str(bait), str(bait / "secret.txt"), "../outside", "../../../../../../etc/passwd", "/etc/passwd",
            "/etc", "..", "~", "file:///etc/passwd", "models--x--y/../../outside", "org/../../outside",
            "\x00/etc/passwd"]


def _model_field_requests(target, bait: Path):
    """(what, httpx kwargs): the route's model-naming field set to each path-like value."""
    for value in _path_like(bait):
        if target.route.multipart:
            yield f"model_id={value!r}", {**target.valid_request(), "data": {"model_id": value}}
        elif target.route.streams:
            yield f"model={value!r}", {"json": {**target.valid_request()["json"], "model": value}}
        else:
            yield f"model_id={value!r}", {"json": {**target.valid_request()["json"], "model_id": value}}


def _lora_requests(target, bait: Path):
    """LoRAs are text-to-image only: a repo id that is a path must not load anything from the disk."""
    for value in _path_like(bait):
        yield f"loras={value!r}", {"json": {**target.valid_request()["json"], "loras": json.dumps({value: 1.0})}}


def _assert_refused_without_touching(srv, target, bait: Path, requests) -> None:
    # A reference runner refuses a model it does not serve (400); the SDK fakes ignore the field, so for
    # them only the file accesses are the property.
    expected = {400} if target.real else {200, 400}
    failures = []
    with FileWatch([bait, Path("/etc")]) as watch:
        for what, kwargs in requests:
            r = httpx.post(srv.url + target.route.path, headers=AUTH, timeout=120, **kwargs)
            if r.status_code not in expected or check(r, target.route):
                failures.append((what, r.status_code, r.text[:200]))
    assert not failures, failures
    assert not watch.hits, watch.hits
    info = httpx.get(srv.url + "/runner/info").json()
    assert not info["runner"].get("loras_resident"), info["runner"]
    answers_valid_request(srv.url, target)


@pytest.mark.parametrize("target", target_params(["fake-image", "fake-audio", "fake-llm", *REAL]))
def test_model_ids_that_are_paths_never_reach_files_outside_model_dir(target, servers, tmp_path):
    srv = servers(target)
    bait = _outside_bait(tmp_path)
    assert not str(bait.resolve()).startswith(str(Path(srv.host.settings.model_dir).resolve()))
    _assert_refused_without_touching(srv, target, bait, _model_field_requests(target, bait))


@pytest.mark.parametrize("target", target_params(["text-to-image"]))
def test_lora_ids_that_are_paths_never_reach_files_outside_model_dir(target, model_dirs, tmp_path):
    # Its own server: a LoRA load that half-succeeds can leave adapters behind, which would change how the
    # shared server runs later tests (requests with resident adapters are serialised).
    srv = start_server(target, model_dirs(target))
    try:
        bait = _outside_bait(tmp_path)
        _assert_refused_without_touching(srv, target, bait, _lora_requests(target, bait))
    finally:
        srv.__exit__(None, None, None)


# --- concurrent requests ----------------------------------------------------------------------------

def _prompt_variant(target, i: int) -> dict:
    """The valid request with a prompt (or message) whose length differs per request."""
    kwargs = target.valid_request()
    words = " ".join(["lighthouse"] * (1 + (i * 7) % 40))
    if target.route.multipart:
        return kwargs
    if target.route.streams:
        return {"json": {**kwargs["json"], "messages": [{"role": "user", "content": words}]}}
    return {"json": {**kwargs["json"], "prompt": words}}


def _concurrent_pairs(srv, target, rounds: int, stagger_s: float) -> list[tuple[int, int, str]]:
    results: list[tuple[int, int, str]] = []

    def send(i: int) -> None:
        r = httpx.post(srv.url + target.route.path, headers=AUTH, timeout=120, **_prompt_variant(target, i))
        results.append((i, r.status_code, r.text[:200]))

    for n in range(rounds):
        pair = [threading.Thread(target=send, args=(2 * n + k,)) for k in range(2)]
        for t in pair:
            t.start()
            time.sleep(stagger_s)
        for t in pair:
            t.join()
    return results


@pytest.mark.parametrize("target", target_params(["text-to-image", "audio-to-text", "llm"]))
def test_concurrent_requests_share_no_tokenizer_state(target, servers):
    """Two slots tokenizing different inputs at once (with the window between a fast tokenizer's settings and
    its encode widened) all get a 200: no tokenizer state is shared between concurrent requests."""
    srv = servers(target)
    with slow_tokenizer_settings(0.05):
        results = _concurrent_pairs(srv, target, rounds=3, stagger_s=0.02)
    failed = [r for r in results if r[1] != 200]
    assert not failed, failed
    assert idle(srv)

"""Capacity 2 under concurrent requests, and cancellation when the client goes away."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx


def test_a2t_capacity_2_concurrent_requests_match_sequential_results(a2t_server, audio_files, post_audio):
    """Word requests (eager attention) and segment requests (sdpa) interleave batch by batch on one model:
    every answer must be exactly what the same request gets alone."""
    jobs = [(audio_files("mp3", 45.0), "word"), (audio_files("flac", 42.0), "true"),
            (audio_files("webm-opus", 8.0), "false"), (audio_files("wav", 35.0, freq=300.0), "word")]
    alone = []
    for path, mode in jobs:
        r = post_audio(a2t_server, path, return_timestamps=mode)
        assert r.status_code == 200, r.text
        alone.append(r.json())

    seen_in_flight = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            seen_in_flight.append(httpx.get(a2t_server.url + "/runner/info").json()["in_flight"])
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(len(jobs)) as pool:
            together = list(pool.map(lambda job: post_audio(a2t_server, job[0], return_timestamps=job[1]), jobs))
    finally:
        stop.set()
        watcher.join()
    assert [r.status_code for r in together] == [200] * len(jobs)
    assert [r.json() for r in together] == alone
    assert max(seen_in_flight) == 2  # two ran at once, never more
    assert a2t_server.host.runner.transcriber.model.config._attn_implementation == "sdpa"
    assert httpx.get(a2t_server.url + "/health").json()["status"] == "IDLE"


def _raw_upload(url: str, path) -> tuple[socket.socket, int]:
    """Send a whole multipart request on a raw socket, so that the test can hang up mid-inference."""
    request = httpx.Request("POST", url + "/audio-to-text", data={"return_timestamps": "true"},
                            files={"audio": ("audio", path.read_bytes(), "application/octet-stream")})
    body = request.read()
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    head = (f"POST /audio-to-text HTTP/1.1\r\nHost: {host}\r\nContent-Type: {request.headers['content-type']}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    sock.sendall(head + body)
    return sock, len(body)


def test_a2t_client_disconnect_cancels_between_batches(a2t_server, audio_files, post_audio, runner_stats,
                                                       monkeypatch):
    transcriber = a2t_server.host.runner.transcriber
    monkeypatch.setattr(transcriber, "max_batch", 1)
    monkeypatch.setattr(transcriber, "max_new_tokens", 40)
    path = audio_files("flac", 300.0)  # 15 windows, one per batch
    before = runner_stats(a2t_server)
    sock, _ = _raw_upload(a2t_server.url, path)
    try:
        deadline = time.monotonic() + 60
        while runner_stats(a2t_server)["batches"] == before["batches"]:
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.01)
    finally:
        sock.close()  # the client goes away after the first batch
    deadline = time.monotonic() + 60
    while runner_stats(a2t_server)["cancelled"] == before["cancelled"]:
        assert time.monotonic() < deadline, "the job was not cancelled"
        time.sleep(0.02)
    after = runner_stats(a2t_server)
    assert after["windows"] - before["windows"] < 15
    assert after["transcribed"] == before["transcribed"]
    a2t_server.wait_until({"IDLE"}, timeout=30)  # the slot came back
    assert post_audio(a2t_server, audio_files("wav", 1.0)).status_code == 200

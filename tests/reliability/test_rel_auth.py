"""Auth (contract 5): with AUTH_TOKEN set, no generate route answers without it, over every POST route the
runner's OpenAPI document lists, their trailing-slash twins and every other Livepeer generate path; and the
token never shows in /runner/info, /metrics or the logs. (The served-process test in test_rel_load.py checks
a whole VERBOSE_LOGGING=1 log, start-up included.)"""

from __future__ import annotations

import base64
import logging

import httpx
import pytest
from reliability.relkit import AUTH, TOKEN, LogCapture, answers_valid_request, target_params

from runner_sdk.conformance import check
from runner_sdk.pipelines import PIPELINES

BAD_AUTH = {
    "none": {},
    "wrong token": {"Authorization": "Bearer wrong"},
    "token prefix": {"Authorization": f"Bearer {TOKEN[:-1]}"},
    "token plus one": {"Authorization": f"Bearer {TOKEN}x"},
    "basic scheme": {"Authorization": "Basic " + base64.b64encode(f"user:{TOKEN}".encode()).decode()},
    "no scheme": {"Authorization": TOKEN},
    "bearer without token": {"Authorization": "Bearer"},
    "token in another header": {"X-Auth-Token": TOKEN, "Authorization": "Token " + TOKEN},
}


def _post_paths(srv_url: str) -> set[str]:
    doc = httpx.get(srv_url + "/openapi.json").json()
    listed = {path for path, ops in doc["paths"].items() if "post" in ops}
    every = listed | {p.path for p in PIPELINES.values()}
    return every | {p + "/" for p in every}


@pytest.mark.parametrize("target", target_params())
def test_no_generate_route_answers_without_the_token(target, servers):
    srv = servers(target)
    paths = _post_paths(srv.url)
    assert target.route.path in paths
    served_before = srv.host.requests_served
    failures = []
    with httpx.Client(timeout=60) as client:
        for path in sorted(paths):
            ours = path.rstrip("/") == target.route.path
            # Every way of getting it wrong on our route; the two common ones on the other paths.
            for case, headers in BAD_AUTH.items() if ours else list(BAD_AUTH.items())[:2]:
                r = client.post(srv.url + path, headers=headers, **target.valid_request())
                if ours:
                    ok = (r.status_code == 401 and r.headers.get("www-authenticate") == "Bearer"
                          and r.json() == {"detail": {"msg": target.route.auth_message}}
                          and not check(r, target.route))
                else:  # another pipeline's path or its slash twin: a JSON 500 naming the mix-up, never an answer
                    ok = r.status_code == 500 and "not served" in r.json()["detail"]["msg"]
                if not ok:
                    failures.append((path, case, r.status_code, r.text[:150]))
    assert not failures, failures
    assert srv.host.requests_served == served_before, "a request without the token reached the runner"
    answers_valid_request(srv.url, target)  # and the token itself works


@pytest.mark.parametrize("target", target_params(["fake-image"]))
def test_other_pipelines_slash_twins_answer_json_500(target, servers):
    srv = servers(target)
    others = [p.path for p in PIPELINES.values() if p.path != target.route.path]
    with httpx.Client(timeout=60, headers=AUTH) as client:
        statuses = {p: client.post(srv.url + p + "/", json={}).status_code for p in others}
    assert set(statuses.values()) == {500}, statuses


@pytest.fixture
def captured_logs():
    handler = LogCapture()
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(old)


@pytest.mark.parametrize("target", target_params())
def test_token_never_in_runner_info_metrics_or_logs(target, servers, captured_logs):
    srv = servers(target)
    seen: list[str] = []
    with httpx.Client(timeout=120) as client:
        for headers in (AUTH, {"Authorization": "Bearer wrong"}, {}):
            for path in ("/runner/info", "/metrics", "/health", "/version", "/hardware/info", "/hardware/stats"):
                r = client.get(srv.url + path, headers=headers)
                assert r.status_code == 200
                seen.append(f"{path} {dict(r.headers)} {r.text}")
            r = client.post(srv.url + target.route.path, headers=headers, **target.valid_request())
            seen.append(f"{target.route.path} {r.status_code} {dict(r.headers)} {r.text}")
    info = httpx.get(srv.url + "/runner/info").json()
    assert info["pipeline"] == target.pipeline  # the document we searched is the real one
    assert captured_logs.lines, "nothing was logged: the capture is not working"
    leaks = [s[:300] for s in seen if TOKEN in s] + [line[:300] for line in captured_logs.lines if TOKEN in line]
    assert not leaks, leaks

"""A client that goes away stops the denoising loop at the next step and frees its slot."""

from __future__ import annotations

import threading
import time

import httpx
from text_to_image.t2i_support import generate, info


def test_cancelled_request_frees_its_slot(generic):
    requested = 200  # T2I_MAX_STEPS; at 256x256 with CFG, many seconds of work on two cores
    errors: list[BaseException] = []

    def client() -> None:
        try:
            generate(generic, prompt="a long one", num_inference_steps=requested, seed=1, width=256, height=256,
                     timeout=1.5)
        except httpx.TimeoutException:
            pass  # the client gives up and closes its connection: a disconnect for the server
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    thread = threading.Thread(target=client)
    thread.start()
    deadline = time.monotonic() + 10
    while info(generic)["in_flight"] != 1:
        assert time.monotonic() < deadline, "the request never started"
        time.sleep(0.05)
    thread.join()
    assert not errors

    deadline = time.monotonic() + 30
    while info(generic)["in_flight"] != 0:
        assert time.monotonic() < deadline, "the slot was never freed"
        time.sleep(0.05)
    assert 0 < generic.host.runner.last_steps_run < requested

    # capacity is 1: the freed slot serves the next request
    r = generate(generic, prompt="a cat", num_inference_steps=2, seed=1)
    assert r.status_code == 200, r.text
    assert httpx.get(generic.url + "/health").json()["status"] == "IDLE"

"""capacity 2: two requests denoise at once on shared networks, each with its own scheduler state, and get
exactly the images they would get alone."""

from __future__ import annotations

import threading

import numpy as np
from text_to_image.t2i_support import GENERIC, generate, png_image, serve


def test_concurrent_requests_match_sequential_ones(model_dir):
    bodies = [{"prompt": "a cat", "seed": 21, "num_inference_steps": 12},
              {"prompt": "a dog|at night", "seed": 22, "num_inference_steps": 9}]

    def pixels(srv, body) -> np.ndarray:
        r = generate(srv, **body)
        assert r.status_code == 200, r.text
        return np.asarray(png_image(r.json()["images"][0]["url"]))

    with serve(GENERIC, model_dir, capacity=2) as srv:
        alone = [pixels(srv, b) for b in bodies]
        together: list[np.ndarray | None] = [None, None]
        peak_in_flight = 0

        def run(i: int) -> None:
            together[i] = pixels(srv, bodies[i])

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            peak_in_flight = max(peak_in_flight, srv.host.capacity.in_flight)
            threads[0].join(0.005)
        for t in threads:
            t.join()
    assert peak_in_flight == 2  # they really overlapped
    for a, b in zip(alone, together, strict=True):
        assert b is not None and np.array_equal(a, b)

"""SFAST and DEEPCACHE (contract 9) on real servers."""

from __future__ import annotations

import os

import httpx
import numpy as np
import pytest
from text_to_image.t2i_support import GENERIC, LIGHTNING, generate, info, png_image, serve

from runner_sdk.compile_cache import compile_cache_dir
from runners.text_to_image import optimise


def _pixels(srv, **body) -> np.ndarray:
    r = generate(srv, **body)
    assert r.status_code == 200, r.text
    return np.asarray(png_image(r.json()["images"][0]["url"]))


def test_deepcache_applies_to_a_generic_sdxl_id(model_dir, generic):
    # 9 steps: a step ratio (111) that is a multiple of 3, where reading the step index from the wrong
    # scheduler would compute every step.
    body = {"prompt": "a cat", "seed": 4, "num_inference_steps": 9}
    with serve(GENERIC, model_dir, deepcache=True) as srv:
        facts = info(srv)
        assert facts["optimisations_applied"]["DEEPCACHE"] == "DeepCache (cache_interval=3, cache_branch_id=0)"
        assert any(n.startswith("DEEPCACHE: DeepCache") for n in facts["notes"])
        # Count the deep (mid-block) computations: with interval 3, steps 0, 3 and 6 of 9 compute.
        helper = srv.host.runner.deepcache
        key = ("mid", "mid_block", 0, 0)
        original, calls = helper.function_dict[key], []
        helper.function_dict[key] = lambda *a, **k: calls.append(1) or original(*a, **k)
        cached = _pixels(srv, **body)
        assert srv.host.runner.last_call["steps_run"] == 9
        assert len(calls) == 3
    # Reusing cached deep features on 6 of 9 steps changes the result: the cache really ran.
    assert not np.array_equal(cached, _pixels(generic, **body))


def test_deepcache_is_skipped_with_a_warning_on_lightning(model_dir, caplog):
    with serve(f"{LIGHTNING}-2step", model_dir, deepcache=True) as srv:
        facts = info(srv)
        assert facts["status"] == "IDLE"
        assert facts["optimisations_applied"]["DEEPCACHE"].startswith("skipped")
        assert any("DEEPCACHE skipped" in n for n in facts["notes"])
        assert srv.host.runner.deepcache is None
        assert generate(srv, prompt="a cat", seed=1).status_code == 200
    assert any("DEEPCACHE skipped" in rec.getMessage() for rec in caplog.records)


def test_sfast_falls_back_to_torch_compile_and_says_so(model_dir, monkeypatch):
    # stable-fast is not installed here. Compiling the UNet for real on two CPU cores takes longer than this
    # whole folder may, so torch.compile itself is replaced at that one boundary; everything else is real.
    assert not optimise.stable_fast_available()
    compiled: list[tuple[str, str, str]] = []
    monkeypatch.setattr(optimise, "torch_compile",
                        lambda module, mode, backend: compiled.append((type(module).__name__, mode, backend)))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "")  # unset for the runner; restored afterwards
    with serve(f"{LIGHTNING}-2step", model_dir, sfast=True) as srv:
        facts = info(srv)
        applied = facts["optimisations_applied"]["SFAST"]
        assert applied.startswith("torch.compile (stable-fast not installed)")
        assert any(n.startswith("SFAST: torch.compile") for n in facts["notes"])
        assert generate(srv, prompt="a cat", seed=1).status_code == 200
    assert compiled == [("UNet2DConditionModel", "default", "inductor"), ("Decoder", "default", "inductor")]
    cache = os.environ["TORCHINDUCTOR_CACHE_DIR"]
    assert cache == str(model_dir / ".compile-cache" / "inductor") and cache in applied


def test_operator_chosen_compile_cache_is_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    assert compile_cache_dir(tmp_path / "models") == (tmp_path / "mine", None)


def test_unwritable_model_dir_falls_back_to_the_user_cache(tmp_path, monkeypatch):
    # A folder that cannot be created even by root (its parent is a file) stands in for a `:ro` mount.
    (tmp_path / "blocker").write_text("")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home-cache"))
    path, note = compile_cache_dir(tmp_path / "blocker" / "models")
    assert path == tmp_path / "home-cache" / "runner-sdk" / "inductor" and path.is_dir()
    assert "not writable" in note and os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(path)


@pytest.mark.parametrize("model_id", [GENERIC])
def test_both_flags_are_an_error_state(model_dir, model_id):
    with serve(model_id, model_dir, sfast=True, deepcache=True) as srv:
        health = httpx.get(srv.url + "/health").json()
        assert health["status"] == "ERROR"
        assert "choose one" in health["error"]
        assert info(srv)["status"] == "ERROR"

"""SFAST and DEEPCACHE (contract 9), applied once the pipeline is on its device.

- SFAST: stable-fast's `compile(pipe, CompilationConfig.Default())` (xformers/Triton when importable, CUDA
  graphs as upstream) when `sfast` imports; otherwise torch.compile of the UNet and the VAE decoder, in
  place. Which one ran is returned, for /runner/info and the log: never silently nothing.
- DEEPCACHE: DeepCacheSDHelper with cache interval 3 and branch 0; not for Lightning/Turbo ids.
- Both: refused. The operator guide says to choose one; stacking a cache of UNet features on a compiled
  UNet is untested upstream, so the runner enters ERROR with that advice rather than guess.

torch.compile's caches go where runner_sdk.compile_cache puts them: MODEL_DIR/.compile-cache unless
TORCHINDUCTOR_CACHE_DIR is set (or MODEL_DIR is read-only), so a second cold start reuses the compiled kernels.
"""

from __future__ import annotations

import logging
from pathlib import Path

from runner_sdk.compile_cache import compile_cache_dir

log = logging.getLogger("runner.text_to_image")

BOTH_FLAGS = ("SFAST and DEEPCACHE are both set: choose one (the operator guide says to set only one "
              "optimization flag per model); unset one of them in aiModels.json optimization_flags")


def stable_fast_available() -> bool:
    """Whether stable-fast's diffusion compiler imports (and so SFAST uses it rather than torch.compile)."""
    try:
        import sfast.compilers.diffusion_pipeline_compiler  # noqa: F401
    except Exception:  # ImportError, or a build that does not match this torch
        return False
    return True


def apply_sfast(pipe, model_dir: Path, compile_mode: str = "default", backend: str = "inductor"):
    """SFAST: stable-fast when it imports, else torch.compile of the UNet and the VAE decoder, in place.

    Args:
        pipe: the pipeline, on its device. model_dir: MODEL_DIR (the compile cache goes under it).
        compile_mode, backend: torch.compile's (T2I_COMPILE_MODE, T2I_COMPILE_BACKEND), fallback only.
    Returns:
        (the pipeline to serve, what was applied, for /runner/info's optimisations_applied and the log).
    """
    if stable_fast_available():
        from sfast.compilers.diffusion_pipeline_compiler import CompilationConfig, compile

        config = CompilationConfig.Default()
        extras = []
        for module, attr in (("xformers", "enable_xformers"), ("triton", "enable_triton")):
            try:
                __import__(module)
                setattr(config, attr, True)
                extras.append(module)
            except ImportError:
                pass
        config.enable_cuda_graph = True  # as upstream: best for batch size 1
        pipe = compile(pipe, config)
        return pipe, "stable-fast" + (f" (with {', '.join(extras)})" if extras else "") + ", CUDA graphs"
    cache, note = compile_cache_dir(model_dir)
    torch_compile(pipe.unet, compile_mode, backend)
    torch_compile(pipe.vae.decoder, compile_mode, backend)
    return pipe, (f"torch.compile (stable-fast not installed): UNet and VAE decoder, mode={compile_mode}, "
                  f"backend={backend}, cache {cache}" + (f"; {note}" if note else ""))


def torch_compile(module, mode: str, backend: str) -> None:
    """In-place nn.Module.compile: the module keeps its class, so the pipeline and LoRA loading still see
    a UNet2DConditionModel. Compilation itself happens on the first call (the runner's warm-up)."""
    kwargs = {"backend": backend}
    if backend == "inductor" and mode != "default":
        kwargs["mode"] = mode
    module.compile(**kwargs)


def apply_deepcache(pipe, interval: int = 3, branch: int = 0):
    """DEEPCACHE: DeepCacheSDHelper wrapping `pipe`, enabled (it reads the step index from that object).

    Args:
        pipe: the one pipeline object that will run. interval: steps between full UNet passes.
        branch: the skip branch whose features are cached.
    Returns:
        (the helper, what was applied).
    """
    from DeepCache import DeepCacheSDHelper

    helper = DeepCacheSDHelper(pipe=pipe)
    helper.set_params(cache_interval=interval, cache_branch_id=branch)
    helper.enable()
    return helper, f"DeepCache (cache_interval={interval}, cache_branch_id={branch})"

"""The placement steps of `aimodels plan` (the rules are in plan.py's module doc): warm, quantised, cold,
left out, then capacity > 1 on large cards. Every step writes its reason into the placement for plan.md."""

from __future__ import annotations

from .. import pipelines
from . import figures as arch
from .demand import COLD_OK, Demand
from .plan import GPU, LARGE_CARD, MAX_CAPACITY, LeftOut, Placement, Plan, figures_for, fmt_gib
from .results import BenchResults, ModelFigures


def best_capacity(figures: ModelFigures) -> int:
    """The measured capacity with the best throughput, unless its gain over capacity 1 is within the noise
    (the spread between repeats of either run): then 1. Without measurements: 1.

    Args:
        figures: a model's figures with `by_capacity` runs.

    Returns:
        The capacity to start from (the planner lowers it when it does not fit).
    """
    runs = {r.capacity: r for r in figures.by_capacity if r.units_per_s}
    if len(runs) < 2 or 1 not in runs:
        return 1
    best = max(runs.values(), key=lambda r: (r.units_per_s, -r.capacity))
    base = runs[1]
    noise = max(getattr(base, "spread", None) or 0.0, getattr(best, "spread", None) or 0.0)
    return best.capacity if best.units_per_s > base.units_per_s * (1 + noise) else 1


def _preference(plan: Plan, pipeline: str):
    diffusion = pipeline in pipelines.names(diffusion=True)

    def key(g: GPU) -> tuple:
        has_diffusion = any(p.model.pipeline in pipelines.names(diffusion=True) for p in plan.on(g))
        return (0 if has_diffusion == diffusion else 1, len(plan.on(g, "warm")), -plan.free(g), g.index)
    return key


def _capacity_tries(plan: Plan, figures: ModelFigures, capacities: dict[str, int], external: bool) -> list[int]:
    if not external:
        return [1]
    if figures.pipeline in capacities:
        return [capacities[figures.pipeline]]
    first = best_capacity(figures)
    return sorted({c for c in range(1, first + 1)}, reverse=True)


def _try_warm(plan: Plan, item: Demand, results: BenchResults | None, capacities: dict[str, int],
              external: bool) -> Placement | None:
    variants = arch.QUANTIZATIONS if item.pipeline == "llm" and external else ("",)
    order = sorted(plan.gpus, key=_preference(plan, item.pipeline))
    for quantize in variants:
        figures = figures_for(results, item, quantize)
        if figures is None:
            continue
        warm = figures.warm_vram_bytes or arch.peak_at(figures, 1) or 0
        for capacity in _capacity_tries(plan, figures, capacities, external):
            peak = arch.peak_at(figures, capacity)
            for g in order:
                if peak is not None and plan.fits_warm(g, peak, warm, external):
                    placed = Placement(figures, g, capacity, int(peak * (1 + plan.headroom)), peak, mode="warm",
                                       external=external, quantize=quantize, warm_bytes=warm)
                    if g is not order[0]:
                        placed.why = (f"; GPU {order[0].index} would be first (diffusion and other models apart, "
                                      f"then the emptiest) but had only {fmt_gib(plan.free(order[0]))} left")
                    return placed
    return None


def _warm_why(plan: Plan, p: Placement, item: Demand) -> str:
    others = [o.model.pipeline for o in plan.on(p.gpu, "warm")]
    peaks = sum(o.peak_bytes for o in plan.on(p.gpu, "warm")) + p.peak_bytes
    fit = (f"warm peaks {fmt_gib(peaks)} x {1 + plan.headroom:.2f} = {fmt_gib(peaks * (1 + plan.headroom))} "
           f"of {fmt_gib(p.gpu.memory_bytes)}")
    why = f"warm ({item.why}): " + (f"co-warm beside {', '.join(others)}; " if others else "") + fit + p.why
    if p.quantize:
        bf16 = figures_for(None, item)
        need = fmt_gib(arch.peak_at(bf16, 1) * (1 + plan.headroom)) if bf16 else "?"
        why += (f"; QUANTIZE={p.quantize} because bf16 needs {need} warm and no GPU had that left "
                "(quality: int8 is close to bf16, int4 loses a little)")
    if not p.external:
        why += "; a go-livepeer-managed container (this build has no runner for it), one per GPU"
    return why


def _try_cold(plan: Plan, item: Demand, results: BenchResults | None) -> Placement | None:
    # Cold entries are managed containers; go-livepeer passes optimization_flags (QUANTIZE) to warm ones only.
    figures = figures_for(results, item)
    if figures is None or arch.peak_at(figures, 1) is None:
        return None
    peak = arch.peak_at(figures, 1)
    for g in sorted(plan.gpus, key=_preference(plan, item.pipeline)):
        if plan.fits_cold(g, peak):
            return Placement(figures, g, 1, peak, peak, mode="cold", external=False,
                             warm_bytes=figures.warm_vram_bytes or peak)
    return None


def _cold_why(plan: Plan, p: Placement, item: Demand, warm_failed: bool) -> str:
    if item.want == "cold":
        why = f"cold ({item.why} asks for it on demand)"
    elif warm_failed:
        why = "cold: warm does not fit beside the warm models"
    else:
        why = "cold"
    load = f", loads in about {p.model.cold_load_s:.0f} s" if p.model.cold_load_s else ""
    ok = "acceptable for this pipeline (guide)" if item.pipeline in COLD_OK else "the first job waits for the load"
    return (f"{why}; go-livepeer starts it on demand{load} ({ok}); it fits when the idle warm models plus its "
            "peak fit the GPU (no headroom: a load that meets a warm runner at its peak can fail; watch the logs)")


def _left_out(plan: Plan, item: Demand, results: BenchResults | None) -> LeftOut:
    figures = figures_for(results, item)
    if figures is None:
        return LeftOut(item.pipeline, item.model_id,
                       "no figures: its architecture is not known to the estimator and it is not in --results; "
                       "measure it with `runner-sdk bench` (or a demand with another model id)")
    peak = arch.peak_at(figures, 1)
    need = peak * (1 + plan.headroom)
    most = max(plan.gpus, key=plan.free)
    why = f"needs {fmt_gib(need)} warm (peak {fmt_gib(peak)} + {plan.headroom:.0%} headroom)"
    if item.pipeline == "llm":
        small = figures_for(results, item, "int4")
        if small is not None:
            why += f", {fmt_gib(arch.peak_at(small, 1) * (1 + plan.headroom))} as QUANTIZE=int4"
    why += f"; the most left on any GPU is {fmt_gib(plan.free(most))} ({most.label})"
    if plan.managed and plan.free(most) >= need:
        why = ("every GPU already has its managed container: go-livepeer runs one managed container per GPU "
               f"(--managed); without --managed it would run as an external runner beside the others ({why})")
    if any(plan.managed_warm(g) for g in plan.gpus):
        why += "; cold needs a GPU without a managed warm container"
    change = ("what would change it: a GPU with that much free, moving it earlier in --demand, or dropping "
              "an item before it")
    return LeftOut(item.pipeline, item.model_id, f"{why}. {change}")


def _place(plan: Plan, item: Demand, results: BenchResults | None, capacities: dict[str, int]) -> None:
    external = pipelines.get(item.pipeline).served and not plan.managed
    placed = None
    if item.want == "warm":
        placed = _try_warm(plan, item, results, capacities, external)
        if placed is not None:
            placed.why = _warm_why(plan, placed, item)
    if placed is None:
        placed = _try_cold(plan, item, results)
        if placed is not None:
            placed.why = _cold_why(plan, placed, item, item.want == "warm")
    if placed is None:
        plan.left_out.append(_left_out(plan, item, results))
        return
    plan.placements.append(placed)


def _raise_capacities(plan: Plan, capacities: dict[str, int]) -> None:
    """On large cards, raise estimated external runners' capacity one step at a time, in demand order."""
    grew = True
    while grew:
        grew = False
        for p in list(plan.placements):
            if (not p.external or p.mode != "warm" or p.gpu.memory_bytes < LARGE_CARD or p.capacity >= MAX_CAPACITY
                    or p.model.pipeline in capacities or p.model.by_capacity):
                continue
            peak = arch.peak_at(p.model, p.capacity + 1)
            plan.placements.remove(p)
            if peak is not None and plan.fits_warm(p.gpu, peak, p.warm_bytes, True):
                p.capacity, p.peak_bytes = p.capacity + 1, peak
                p.need_bytes = int(peak * (1 + plan.headroom))
                grew = True
            plan.placements.append(p)
    for p in plan.placements:
        if p.capacity > 1 and not p.model.by_capacity and p.model.pipeline not in capacities:
            p.why += (f"; capacity {p.capacity}: this card has the memory for {p.capacity} concurrent jobs "
                      f"(peak {fmt_gib(p.peak_bytes)}); measure with `runner-sdk bench` to keep it only "
                      "where throughput grows")


def place_all(plan: Plan, results: BenchResults | None, capacities: dict[str, int]) -> None:
    """Place every demand item in order, then raise capacities on large cards.

    Args:
        plan: the plan, with its GPUs and demand; placements and left_out are filled in.
        results: measured figures, or None.
        capacities: fixed capacities per pipeline.
    """
    seen: set[tuple[str, str]] = set()
    for item in plan.demand:
        if (item.pipeline, item.model_id) in seen:
            continue
        seen.add((item.pipeline, item.model_id))
        _place(plan, item, results, capacities)
    _raise_capacities(plan, capacities)
    order = {(d.pipeline, d.model_id): i for i, d in enumerate(plan.demand)}
    plan.placements.sort(key=lambda p: order.get(p.model.key, 0))
    sources = {p.model.source for p in plan.placements}
    if len(sources) > 1:
        plan.source = "measured where bench results have the model, estimates elsewhere"
    elif sources:
        plan.source = sources.pop()

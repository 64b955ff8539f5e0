"""plan.md: what `aimodels plan` decided and why, in the operator guide's terms."""

from __future__ import annotations

import re

from .plan import GiB, Plan, fmt_gib, nvidia_list


def size_note(plan: Plan) -> list[str]:
    """Where a size was given in GB (10^9 bytes), say what that is in GiB and what a card sold as "N GB" has.

    Args:
        plan: the plan (its GPUs keep the sizes as written).

    Returns:
        Markdown list items, one per GPU given in GB.
    """
    out = []
    for g in plan.gpus:
        m = re.fullmatch(r"\s*([\d.]+)\s*([A-Za-z]*)\s*", g.given or "")
        if m is None or m.group(2).upper() not in ("G", "GB"):
            continue
        n = float(m.group(1))
        out.append(f"- GPU {g.index}: you wrote {g.given!r}, {n:g} x 10^9 bytes = {fmt_gib(g.memory_bytes)}. NVIDIA's "
                   f"\"{n:g} GB\" card has {n:g} GiB ({n * 1024:.0f} MiB in nvidia-smi, {n - g.memory_bytes / GiB:.1f} GiB "
                   f"more): if you meant the card, write --gpu {n:g}GiB.")
    return out


def _header(plan: Plan) -> list[str]:
    est = " -- ESTIMATES, not measurements" if plan.source == "estimate" else ""
    est = est or ("" if plan.source == "measured" else " (each entry says which)")
    out = ["# GPU plan", "",
           f"Figures: {plan.source}{est} (measured figures from `--results` win, then the reference table, then "
           "estimates by architecture, each labelled below). "
           f"Warm models need their peaks together x {1 + plan.headroom:.2f} (headroom {plan.headroom:.0%}).", ""]
    if plan.tier:
        out += [f"Demand: the guide's {plan.tier} (give your own with --demand or --demand-file).", ""]
    else:
        out += ["Demand, in your order: " + ", ".join(f"{d.pipeline} ({d.model_id}, {d.want})"
                                                       for d in plan.demand), ""]
    return out + size_note(plan)


def explain(plan: Plan) -> str:
    """plan.md: per GPU its warm and cold entries with the reason for each; what was left out and why.

    Args:
        plan: the plan.

    Returns:
        Markdown text.
    """
    out = _header(plan)
    for gpu in plan.gpus:
        out += ["", f"## {gpu.label}: {fmt_gib(plan.used(gpu))} planned for warm peaks, {fmt_gib(plan.free(gpu))} left",
                ""]
        if not plan.on(gpu):
            out.append("- nothing placed")
        for p in plan.on(gpu):
            kind = "external runner" if p.external else "go-livepeer-managed container"
            quant = f", QUANTIZE={p.quantize}" if p.quantize else ""
            port = f", port {p.port}" if p.external else ""
            fig = p.model.source + ("" if p.model.source == "measured" else f" ({p.model.notes})")
            out.append(f"- **{p.mode}** {p.model.pipeline} `{p.model.model_id}` ({kind}{quant}, capacity "
                       f"{p.capacity}{port}): peak {fmt_gib(p.peak_bytes)}, idle {fmt_gib(p.warm_bytes)}")
            out.append(f"  - why: {p.why}")
            if p.mode == "cold":
                out.append(f"  - now: idle warm models {fmt_gib(plan.idle(gpu))} + its peak {fmt_gib(p.peak_bytes)} = "
                           f"{fmt_gib(plan.idle(gpu) + p.peak_bytes)} of {fmt_gib(gpu.memory_bytes)}")
            out.append(f"  - figures: {fig}")
    if plan.left_out:
        out += ["", "## Left out", ""]
        out += [f"- {lo.pipeline} `{lo.model_id}`: {lo.why}" for lo in plan.left_out]
    out += ["", "## Notes", ""]
    if nvidia_list(plan):
        out.append(f"- go-livepeer runs the managed and cold entries: start it with -nvidia "
                   f"{','.join(map(str, nvidia_list(plan)))} (managed warm GPUs first, in entry order, then the "
                   "GPUs with cold room; it starts a cold container on the first listed GPU without one).")
    out.append("- External runners: several may share a GPU (co-warm); go-livepeer's \"one warm model per GPU\" "
               "applies to the containers it manages.")
    out.append("- The plan sizes memory, not compute: GPUs with the same memory (A100 80 GB and H100 80 GB) get the "
               "same plan; `runner-sdk bench` throughput by capacity decides the capacities when given with --results.")
    out.append("- Prices are placeholders: set price_per_unit for your market before going live.")
    return "\n".join(out) + "\n"

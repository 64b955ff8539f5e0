"""`runner-sdk bench` pieces without a server: workloads follow the pipeline table, percentiles follow
runner_sdk.stats, and the machine description degrades to no GPU facts without NVML."""

from __future__ import annotations

import pytest

from runner_sdk import nvml, pipelines
from runner_sdk.aimodels.results import PRICING_UNITS
from runner_sdk.bench import run
from runner_sdk.bench.measure import Measurement
from runner_sdk.bench.workloads import workload
from runner_sdk.stats import percentile


@pytest.mark.parametrize("name", ["text-to-image", "audio-to-text", "llm"])
def test_workload_path_and_unit_come_from_the_table(name):
    work = workload(name, "tiny")
    row = pipelines.get(name)
    assert (work.path, work.unit) == (row.path, row.pricing_unit) == (row.path, PRICING_UNITS[name])


def test_every_served_pipeline_is_benched_or_skipped_with_a_reason():
    ok, skipped = run.benchable()
    assert sorted(ok + [s.split(":")[0] for s in skipped]) == sorted(p.name for p in pipelines.served())
    for name in ok:
        assert workload(name, "tiny").pipeline == name


def test_spread_between_repeats_and_no_capacity_chosen_on_noise():
    from runner_sdk.aimodels.placing import best_capacity
    from runner_sdk.aimodels.results import CapacityRun, ModelFigures

    m = Measurement(capacity=1, cold_load_s=1.0, load_phases_s={}, warm_vram=None, peak_vram=None,
                    repeats_units_per_s=[80.0, 100.0, 120.0])
    assert m.spread == pytest.approx(0.4)

    def fig(spread: float) -> ModelFigures:
        runs = [CapacityRun(capacity=1, units_per_s=100.0, spread=spread),
                CapacityRun(capacity=2, units_per_s=115.0, spread=spread)]
        return ModelFigures(pipeline="llm", model_id="org/m", by_capacity=runs)

    assert best_capacity(fig(0.05)) == 2  # a 15 % gain over a 5 % spread counts
    assert best_capacity(fig(0.40)) == 1  # within a 40 % spread it is noise


def test_unknown_workload_is_an_error():
    with pytest.raises(ValueError, match="no benchmark workload"):
        workload("live-video-to-video", "tiny")


def test_latency_percentiles_use_runner_sdk_stats():
    m = Measurement(capacity=1, cold_load_s=1.0, load_phases_s={}, warm_vram=None, peak_vram=None,
                    latencies_s=[0.4, 0.1, 0.3, 0.2])
    assert m.p(50) == percentile(m.latencies_s, 50) == pytest.approx(0.25)
    assert m.p(95) == pytest.approx(percentile(m.latencies_s, 95))
    assert Measurement(capacity=1, cold_load_s=1.0, load_phases_s={}, warm_vram=None, peak_vram=None).p(50) is None


def test_model_figures_latency_from_the_first_run():
    runs = [Measurement(capacity=c, cold_load_s=2.0, load_phases_s={}, warm_vram=None, peak_vram=None,
                        latencies_s=[1.0, 2.0, 3.0], units_per_s=10.0 * c) for c in (1, 2)]
    fig = run.model_figures("llm", "org/model", "synthetic-tiny", "tokens", runs)
    assert (fig.latency_s.p50, fig.throughput.units_per_s) == (2.0, 10.0)
    assert [r.capacity for r in fig.by_capacity] == [1, 2]
    assert fig.warm_vram_bytes is None and fig.peak_vram_bytes is None


def test_machine_without_nvml_has_no_gpu_facts(monkeypatch):
    def unavailable():
        raise nvml.NvmlUnavailable("no driver")

    monkeypatch.setattr(nvml, "session", unavailable)
    for device in ("cpu", "cuda:0"):
        m = run.machine(device)
        assert m.gpu_name is None and m.gpu_memory_bytes is None and "cores" in m.host

"""What go-livepeer does with one entry's values once they parsed: the pipeline must be a capability, the url
must pass the health probes, flags reach only warm managed containers, prices must be positive, and so on."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .findings import Report, Severity
from .gojson import Pairs, is_number, key_path
from .known import (
    CAPABILITY_PIPELINES,
    DEEPCACHE_SKIP,
    DIFFUSION_PIPELINES,
    KNOWN_FLAGS,
    KNOWN_MODEL_IDS,
    LLM_DOWNLOAD_ID,
    LLM_GATEWAY_DEFAULT_ID,
)

_HEALTH_FAILS = "the health probes fail and start-up aborts after 2 minutes"


@dataclass
class Entry:
    """One entry as Go filled it.

    Attributes:
        index: the entry's position in the file.
        values: the fields that parsed, without nulls (the `bad` ones are left out).
        paths: the JSON path of every field written, parsed or not.
        bad: the fields with a type error (already reported).
    """

    index: int
    values: dict[str, Any]
    paths: dict[str, str]
    bad: set[str] = field(default_factory=set)

    def path(self, name: str) -> str:
        """Where field `name` is written, or where it would go when missing."""
        return self.paths.get(name, f"$[{self.index}].{name}")

    @property
    def pipeline(self) -> str:
        return self.values.get("pipeline") or ""

    @property
    def model_id(self) -> str:
        return self.values.get("model_id") or ""

    @property
    def url(self) -> str:
        return self.values.get("url") or ""

    @property
    def warm(self) -> bool:
        return self.values.get("warm") is True


def check_entry(report: Report, entry: Entry) -> None:
    """Semantic checks on the fields that parsed (`entry.bad` ones were reported by the type checks)."""
    if "pipeline" not in entry.bad:
        _pipeline(report, entry.path("pipeline"), entry.pipeline)
    if "model_id" not in entry.bad:
        _model_id(report, entry)
    if entry.url:
        _url(report, entry.path("url"), entry.url)
    _token(report, entry)
    _capacity(report, entry)
    _flags(report, entry)
    _price(report, entry)
    _currency(report, entry)
    if entry.url and not entry.warm and "warm" not in entry.bad:
        report.add(entry.path("warm"), Severity.ADVICE,
                   "external runner without \"warm\": true: it is loaded anyway, but gateways try warm "
                   "orchestrators first, so set warm to true")


def _pipeline(report: Report, path: str, pipeline: str) -> None:
    if pipeline in CAPABILITY_PIPELINES:
        return
    close = [p for p in CAPABILITY_PIPELINES if p == pipeline.strip().lower().replace("_", "-")]
    close = close or difflib.get_close_matches(pipeline.lower(), CAPABILITY_PIPELINES, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    shown = repr(pipeline) if pipeline else "missing or empty"
    report.add(path, Severity.STOPS_NODE,
               f"pipeline {shown} is not a go-livepeer capability: panic 'Pipeline is not valid capability'{hint}")


def _model_id(report: Report, entry: Entry) -> None:
    path, model_id = entry.path("model_id"), entry.model_id
    if not model_id:
        report.add(path, Severity.STOPS_NODE if entry.warm or entry.url else Severity.ADVICE,
                   "model_id is missing or empty: a runner refuses to start without MODEL_ID, so a warm or "
                   "external runner never becomes ready and start-up aborts (a cold one fails on first use)")
        return
    if model_id != model_id.strip():
        report.add(path, Severity.ADVICE,
                   "model_id has leading or trailing spaces: routing compares it byte for byte with the "
                   "request's model id, so requests will not match")
    if ":" in model_id and "/" not in model_id:
        report.add(path, _unroutable(entry),
                   f"{model_id!r} looks like an Ollama tag: gateways send Hugging Face ids "
                   "(e.g. meta-llama/Meta-Llama-3.1-8B-Instruct), and routing is exact string equality, so no job "
                   "reaches this entry" + (_MANAGED_LOAD if _managed_warm(entry) else ""))
    elif "/" not in model_id and entry.pipeline != "live-video-to-video":  # live ids ("comfyui") have none
        report.add(path, _unroutable(entry),
                   f"{model_id!r} has no organisation prefix: gateways send Hugging Face ids like 'org/name' and "
                   "go-livepeer routes by exact string equality, so no job reaches this entry"
                   + (_MANAGED_LOAD if _managed_warm(entry) else ""))
    for known in KNOWN_MODEL_IDS:
        if model_id.lower() == known.lower() and model_id != known:
            report.add(path, Severity.IGNORED,
                       f"{model_id!r} differs from {known!r} only in case: go-livepeer routes by exact string "
                       "equality, so requests for the published id never reach this entry, and the model cache "
                       "folder is named after the exact id; write it as shown")
            break
    if entry.pipeline == "llm" and model_id in (LLM_DOWNLOAD_ID, LLM_GATEWAY_DEFAULT_ID):
        report.add(path, Severity.ADVICE, _llm_id_advice(model_id, entry.url))


_MANAGED_LOAD = ("; a managed warm container is started with this id at boot and finds no weights under it (no "
                 "Hugging Face repository has a bare name like this one), so it never becomes ready and start-up "
                 "aborts")


def _managed_warm(entry: Entry) -> bool:
    return entry.warm and not entry.url


def _unroutable(entry: Entry) -> Severity:
    """An id no gateway sends: the entry is accepted but never gets a job (ignored); a managed warm one is also
    loaded at start-up, which fails (stops the node)."""
    return Severity.STOPS_NODE if _managed_warm(entry) else Severity.IGNORED


def _llm_id_advice(model_id: str, url: str) -> str:
    """The LLM weights' id and the gateway's default id differ: what that means for this entry."""
    if model_id == LLM_DOWNLOAD_ID:
        return (f"a gateway that gets an LLM request without a model uses its default id {LLM_GATEWAY_DEFAULT_ID!r}; "
                "routing is exact string equality, so those requests will not reach this entry. "
                "Advertise the id users send (a second entry, with a runner whose MODEL_ID matches)")
    why = (f"this is the gateway's default id, but the weights are published as {LLM_DOWNLOAD_ID!r}: "
           "the runner's MODEL_ID must be this exact id (and so /version), with the weights "
           "installed under it or MODEL_ID pointing to a local directory")
    if not url:
        why += "; a managed ai-runner container looks for models--meta-llama--llama-3.1-8B-Instruct"
    return why


def _url(report: Report, path: str, url: str) -> None:
    if url != url.strip():
        report.add(path, Severity.STOPS_NODE,
                   f"url has leading or trailing whitespace; go-livepeer does not trim it, so {_HEALTH_FAILS}")
        return
    if "://" not in url:
        report.add(path, Severity.STOPS_NODE,
                   f"url {url!r} has no scheme: Go parses {url.split(':')[0]!r} as the scheme, {_HEALTH_FAILS}; "
                   f"write 'http://{url}'")
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        report.add(path, Severity.STOPS_NODE, f"url scheme {parts.scheme!r} is not http or https: {_HEALTH_FAILS}")
        return
    if not parts.hostname:
        report.add(path, Severity.STOPS_NODE, f"url {url!r} has no host: the health probes fail")
        return
    try:
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        report.add(path, Severity.STOPS_NODE, f"url {url!r} has an invalid port")
        return
    if parts.path not in ("", "/"):
        report.add(path, Severity.ADVICE,
                   f"url has a path prefix {parts.path!r}: it is kept, so go-livepeer calls "
                   f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}/health and "
                   f".../{parts.path.strip('/')}/<pipeline>; the proxy in front must route those to the runner")
    if parts.query or parts.fragment:
        report.add(path, Severity.IGNORED,
                   "url query string or fragment is dropped: go-livepeer builds request URLs from the scheme, "
                   "host and path only")


def _token(report: Report, entry: Entry) -> None:
    token, url = entry.values.get("token"), entry.url
    if token and not url:
        report.add(entry.path("token"), Severity.IGNORED,
                   "token without url: go-livepeer never passes a token to the containers it manages, so "
                   "they run without auth")
    elif url and not token:
        report.add(entry.path("token"), Severity.ADVICE,
                   "external runner without a token: anyone who can reach the url can use the GPU; set "
                   "AUTH_TOKEN on the runner and the same value here")
    elif token and token != token.strip():
        report.add(entry.path("token"), Severity.ADVICE,
                   "token has leading or trailing whitespace: it is sent verbatim and must equal the "
                   "runner's AUTH_TOKEN exactly")


def _capacity(report: Report, entry: Entry) -> None:
    capacity = entry.values.get("capacity")
    if capacity is not None and capacity < 1:
        # go-livepeer's default of 1 applies only when the field is absent; an explicit value is used as is.
        what = ("managed: that many containers, so none is started and the entry never serves"
                if not entry.url else "external: the orchestrator's counter starts there, so every job gets "
                "'insufficient capacity'")
        report.add(entry.path("capacity"), Severity.IGNORED,
                   f"capacity {capacity}: the entry is advertised but takes no job ({what}); use 1 or more")


def _flags(report: Report, entry: Entry) -> None:
    flags = entry.values.get("optimization_flags")
    if not isinstance(flags, Pairs) or not flags:
        return
    path = entry.path("optimization_flags")
    if entry.url:
        report.add(path, Severity.IGNORED,
                   "optimization_flags are ignored for url entries: set SFAST/DEEPCACHE as environment "
                   "variables of the external runner instead")
        return
    if not entry.warm:
        report.add(path, Severity.IGNORED,
                   "optimization_flags without \"warm\": true are ignored (cold managed containers get no "
                   "flags; go-livepeer logs \"'optimization_flags' set without 'warm'\")")
        return
    # What the container's environment gets: JSON booleans as "true"/"false", null as "false".
    values = {k: ("false" if v is None else str(v).lower() if isinstance(v, bool) else v) for k, v in flags}
    on = {k for k, v in values.items() if isinstance(v, str) and v.strip().lower() == "true"}
    for key, raw in flags:
        _flag(report, key_path(path, key), key, raw, values[key], on, entry.pipeline)
    _flag_combinations(report, path, on, entry.pipeline, entry.model_id)


def _flag(report: Report, fpath: str, key: str, raw: Any, v: str, on: set[str], pipeline: str) -> None:
    """One flag: `raw` as written, `v` as the container sees it, `on` the flags that are on."""
    if raw is None:
        report.add(fpath, Severity.ADVICE, "a null flag value is passed as \"false\"")
    if key not in KNOWN_FLAGS:
        report.add(fpath, Severity.IGNORED, f"unknown flag {key!r}: passed as an env var that the runners do not read")
        return
    if key in ("SFAST", "DEEPCACHE") and pipeline not in DIFFUSION_PIPELINES:
        report.add(fpath, Severity.IGNORED, f"{key} only applies to diffusion pipelines, not {pipeline!r}")
    elif key in ("SFAST", "DEEPCACHE") and isinstance(raw, str) and v.strip().lower() not in ("true", "false"):
        report.add(fpath, Severity.ADVICE,
                   f"{key}={raw!r} is off: a flag is on only when its value is \"true\" (case-insensitive)")
    if key in ("BFLOAT16", "TORCH_COMPILE") and key not in on and v != "":
        report.add(fpath, Severity.ADVICE,
                   f"{key}={v!r}: ai-runner turns {key} ON for any non-empty value, \"false\" included "
                   "(our runners parse it as a boolean); remove the key to keep it off")


def _flag_combinations(report: Report, path: str, on: set[str], pipeline: str, model_id: str) -> None:
    diffusion = pipeline in DIFFUSION_PIPELINES
    if "DEEPCACHE" in on and DEEPCACHE_SKIP.search(model_id) and diffusion:
        report.add(key_path(path, "DEEPCACHE"), Severity.IGNORED,
                   f"DEEPCACHE is skipped for {model_id!r}: Lightning and Turbo models are already "
                   "step-distilled, so the runner logs a warning and runs without it")
    elif {"SFAST", "DEEPCACHE"} <= on:
        report.add(path, Severity.ADVICE,
                   "SFAST and DEEPCACHE together: both are applied (compile first) with a warning; choose "
                   "one (DeepCache costs some quality)")
    if "SFAST" in on and diffusion:
        report.add(key_path(path, "SFAST"), Severity.ADVICE,
                   "SFAST: any non-empty flag map raises go-livepeer's health deadline from 3 to 5 minutes; "
                   "compilation must finish within it")


def _price(report: Report, entry: Entry) -> None:
    price = entry.values.get("price_per_unit")
    if "price_per_unit" in entry.paths and not is_number(price):
        pass  # present but not a number: already reported
    elif price is None or price == 0:
        report.add(entry.path("price_per_unit"), Severity.ADVICE,
                   "no price_per_unit: the -pricePerUnit flag applies; if that is 0 too, an on-chain node "
                   "panics at start-up (pricing checks are skipped with -network offchain)")
    elif is_number(price) and price < 0:
        report.add(entry.path("price_per_unit"), Severity.STOPS_NODE,
                   f"negative price_per_unit {price}: the node panics at start-up (unless -network offchain)")
    ppu = entry.values.get("pixels_per_unit")
    if is_number(ppu):
        if ppu <= 0:
            report.add(entry.path("pixels_per_unit"), Severity.STOPS_NODE,
                       f"pixels_per_unit {ppu}: must be an integer > 0 (it divides the price)")
        elif not float(ppu).is_integer():
            report.add(entry.path("pixels_per_unit"), Severity.ADVICE, f"pixels_per_unit {ppu}: use an integer > 0")


def _currency(report: Report, entry: Entry) -> None:
    currency, price = entry.values.get("currency"), entry.values.get("price_per_unit")
    if currency and str(currency).upper() not in ("WEI", "ETH"):
        report.add(entry.path("currency"), Severity.ADVICE,
                   f"currency {currency!r}: the price is converted with a price feed; without one (on-chain) "
                   "the conversion fails and the node panics; pricing is skipped with -network offchain")
    if isinstance(currency, str) and currency.upper() == "USD" and is_number(price) and price >= 1000:
        report.add(entry.path("price_per_unit"), Severity.ADVICE,
                   f"price_per_unit {price} USD per unit looks like a wei amount; USD prices are small "
                   "decimals such as 0.005")

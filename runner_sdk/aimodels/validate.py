"""Check an aiModels.json the way go-livepeer reads it (contract section 10, section 9 for the flags).

go-livepeer reads the file with Go's `encoding/json` into `[]AIModelConfig`: no schema, unknown keys
ignored, keys matched to fields case-insensitively, the last duplicate key wins, and any type error makes the
node exit. `price_per_unit`/`pixels_per_unit` are a `big.Rat` that only a JSON number parses into; the
optimization flags are a map whose values must be a JSON bool or string. Start-up then panics or aborts on a
few semantic errors (same model warm and cold, more warm managed containers than GPUs, negative price).

Each finding has a severity naming what go-livepeer does with it:
- `stops-node`: the node exits, panics or aborts start-up (or never gets past the health wait).
- `ignored`: go-livepeer accepts the file but silently drops or skips what was written.
- `advice`: accepted and used, but probably not what the operator wants.

Python's `json` keeps the difference between `2`, `2.0` and `"2"`, which is all the type checks need.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


class Severity(StrEnum):
    STOPS_NODE = "stops-node"
    IGNORED = "ignored"
    ADVICE = "advice"


@dataclass(frozen=True)
class Finding:
    path: str
    severity: Severity
    message: str

    def as_dict(self) -> dict[str, str]:
        d = asdict(self)
        d["severity"] = str(self.severity)
        return d

    def __str__(self) -> str:
        return f"{self.severity:<10}  {self.path}: {self.message}"


# Pipelines go-livepeer maps to a capability (anything else panics "Pipeline is not valid capability").
CAPABILITY_PIPELINES = (
    "text-to-image", "image-to-image", "image-to-video", "upscale", "audio-to-text", "segment-anything-2",
    "llm", "image-to-text", "text-to-speech", "live-video-to-video",
)
OUR_PIPELINES = ("text-to-image", "audio-to-text", "llm")
DIFFUSION_PIPELINES = ("text-to-image", "image-to-image", "upscale")

# Fields of go-livepeer's AIModelConfig and the JSON type each accepts.
FIELDS = ("pipeline", "model_id", "url", "token", "warm", "capacity", "optimization_flags",
          "price_per_unit", "pixels_per_unit", "currency", "gateway")
STRING_FIELDS = ("pipeline", "model_id", "url", "token", "currency", "gateway")

# Ids whose exact spelling we know: used to catch case mistakes (routing is exact string equality).
KNOWN_MODEL_IDS = (
    "ByteDance/SDXL-Lightning", "ByteDance/SDXL-Lightning-2step", "ByteDance/SDXL-Lightning-4step",
    "ByteDance/SDXL-Lightning-8step", "SG161222/RealVisXL_V4.0_Lightning", "stabilityai/sdxl-turbo",
    "stabilityai/sd-turbo", "stabilityai/stable-diffusion-xl-base-1.0", "openai/whisper-large-v3",
    "openai/whisper-medium", "distil-whisper/distil-large-v3", "meta-llama/Meta-Llama-3.1-8B-Instruct",
    "meta-llama/llama-3.1-8B-Instruct",
)
LLM_DOWNLOAD_ID = "meta-llama/Meta-Llama-3.1-8B-Instruct"
LLM_GATEWAY_DEFAULT_ID = "meta-llama/llama-3.1-8B-Instruct"

# DeepCache is skipped for these ids (contract 9).
DEEPCACHE_SKIP = re.compile(r"[-_](lightning|turbo)", re.IGNORECASE)
# Our runners and ai-runner read these flags; any other key is passed as an env var and usually ignored.
KNOWN_FLAGS = ("SFAST", "DEEPCACHE", "SFAST_WARMUP", "TORCH_COMPILE", "BFLOAT16", "SAFETY_CHECKER_DEVICE",
               "BACKEND", "USE_8BIT", "MAX_NUM_BATCHED_TOKENS", "MAX_NUM_SEQS", "MAX_MODEL_LEN",
               "GPU_MEMORY_UTILIZATION", "TENSOR_PARALLEL_SIZE", "PIPELINE_PARALLEL_SIZE")
# "0.5e-2USD": a number followed by a currency, the form the public docs show.
PRICE_WITH_CURRENCY = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z]+)\s*$")


class _Pairs(list):
    """A JSON object as its (key, value) pairs, in order, duplicates kept (Go reads them in order too)."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (Go's encoding/json rejects it)")


def parse_json(text: str) -> Any:
    return json.loads(text, object_pairs_hook=_Pairs, parse_constant=_reject_constant)


def _key_path(base: str, key: str) -> str:
    return f"{base}.{key}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) else f"{base}[{json.dumps(key)}]"


def _type_name(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, float):
        return "a decimal number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, _Pairs):
        return "an object"
    if isinstance(v, list):
        return "an array"
    return type(v).__name__


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class _Checker:
    def __init__(self, gpus: int | None) -> None:
        self.gpus = gpus
        self.findings: list[Finding] = []

    def add(self, path: str, severity: Severity, message: str) -> None:
        self.findings.append(Finding(path, severity, message))

    # --- one entry ---------------------------------------------------------------------------------
    def entry_fields(self, i: int, pairs: _Pairs) -> dict[str, tuple[str, Any]]:
        """Map each AIModelConfig field to (path, value) as Go would fill it; report unknown keys."""
        base = f"$[{i}]"
        fields: dict[str, tuple[str, Any]] = {}
        for key, value in pairs:
            path = _key_path(base, key)
            field = next((f for f in FIELDS if f == key), None) or next(
                (f for f in FIELDS if f.lower() == key.lower()), None)
            if field is None:
                close = difflib.get_close_matches(key.lower().replace("-", "_"), FIELDS, n=1, cutoff=0.7)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                self.add(path, Severity.IGNORED, f"unknown field {key!r}: go-livepeer ignores it{hint}")
                continue
            if field != key:
                self.add(path, Severity.ADVICE,
                         f"{key!r} is matched to {field!r} only because Go compares field names "
                         f"case-insensitively; write {field!r}")
            if field in fields:
                self.add(path, Severity.ADVICE,
                         f"{field!r} appears more than once in this entry; go-livepeer keeps the last one")
            fields[field] = (path, value)
        return fields

    def check_types(self, fields: dict[str, tuple[str, Any]]) -> set[str]:
        """Type errors that make encoding/json fail (the node exits). Returns the fields that have one."""
        bad: set[str] = set()
        for name in STRING_FIELDS:
            if name in fields:
                path, v = fields[name]
                if v is not None and not isinstance(v, str):
                    self.add(path, Severity.STOPS_NODE,
                             f"{name} must be a JSON string, got {_type_name(v)}: the node exits with a parse error")
                    bad.add(name)
        if "warm" in fields:
            path, v = fields["warm"]
            if v is not None and not isinstance(v, bool):
                fix = " (write true, without quotes)" if isinstance(v, str) and v.strip().lower() == "true" else ""
                self.add(path, Severity.STOPS_NODE,
                         f"warm must be a JSON boolean, got {_type_name(v)} {json.dumps(v)}{fix}: "
                         "the node exits with a parse error")
                bad.add("warm")
        if "capacity" in fields:
            path, v = fields["capacity"]
            if v is not None and not (isinstance(v, int) and not isinstance(v, bool)):
                fix = ""
                if isinstance(v, str) and v.strip().isdigit():
                    fix = f" (write {v.strip()}, without quotes)"
                elif isinstance(v, float) and v.is_integer():
                    fix = f" (write {int(v)}: Go does not read {json.dumps(v)} into an int)"
                self.add(path, Severity.STOPS_NODE,
                         f"capacity must be a JSON integer, got {_type_name(v)} {json.dumps(v)}{fix}: "
                         "the node exits with a parse error")
                bad.add("capacity")
        for name in ("price_per_unit", "pixels_per_unit"):
            if name in fields:
                path, v = fields[name]
                if not _is_number(v):
                    self.add(path, Severity.STOPS_NODE, self._price_type_message(name, v, fields))
                    bad.add(name)
        if "optimization_flags" in fields:
            path, v = fields["optimization_flags"]
            if v is not None and not isinstance(v, _Pairs):
                self.add(path, Severity.STOPS_NODE,
                         f"optimization_flags must be a JSON object, got {_type_name(v)}: "
                         "the node exits with a parse error")
                bad.add("optimization_flags")
            elif isinstance(v, _Pairs):
                for key, fv in v:
                    if not (fv is None or isinstance(fv, (bool, str))):
                        self.add(_key_path(path, key), Severity.STOPS_NODE,
                                 f"flag values must be a JSON boolean or string, got {_type_name(fv)} "
                                 f"{json.dumps(fv)}: the node exits with a parse error")
                        bad.add("optimization_flags")
        return bad

    @staticmethod
    def _price_type_message(name: str, v: Any, fields: dict[str, tuple[str, Any]]) -> str:
        got = "null" if v is None else f"{_type_name(v)} {json.dumps(v)}"
        msg = (f"{name} must be a JSON number, got {got}: go-livepeer fails with "
               f"'value is not a number: {json.dumps(v)}' and the node exits")
        if isinstance(v, str):
            m = PRICE_WITH_CURRENCY.match(v)
            if m:
                number, currency = m.group(1), m.group(2).upper()
                have = fields.get("currency", ("", None))[1]
                extra = "" if have == currency else f' and "currency": "{currency}"'
                msg += (f". The '<price><currency>' form only works in the -pricePerUnit flag; here write "
                        f'"{name}": {number}{extra}')
            elif re.fullmatch(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*", v):
                msg += f" (write {v.strip()}, without quotes)"
        return msg

    def check_entry(self, i: int, f: dict[str, Any], paths: dict[str, str], bad: set[str] = frozenset()) -> None:
        """Semantic checks on the fields that parsed (`bad` ones were reported by check_types)."""
        base = f"$[{i}]"
        pipeline = f.get("pipeline") or ""
        model_id = f.get("model_id") or ""
        url = f.get("url") or ""
        warm = f.get("warm") is True
        if "pipeline" not in bad:
            self._pipeline(paths.get("pipeline", f"{base}.pipeline"), pipeline)
        if "model_id" not in bad:
            self._model_id(paths.get("model_id", f"{base}.model_id"), pipeline, model_id, url, warm)
        if url:
            self._url(paths["url"], url)
        self._token(base, paths, f.get("token"), url)
        self._capacity(paths.get("capacity"), f.get("capacity"), url)
        self._flags(base, paths.get("optimization_flags"), f.get("optimization_flags"), pipeline, model_id,
                    url, warm)
        self._price(base, paths, f)
        if url and not warm and "warm" not in bad:
            self.add(paths.get("warm", f"{base}.warm"), Severity.ADVICE,
                     "external runner without \"warm\": true: it is loaded anyway, but gateways try warm "
                     "orchestrators first, so set warm to true")

    def _pipeline(self, path: str, pipeline: str) -> None:
        if pipeline in CAPABILITY_PIPELINES:
            return
        close = [p for p in CAPABILITY_PIPELINES if p == pipeline.strip().lower().replace("_", "-")]
        close = close or difflib.get_close_matches(pipeline.lower(), CAPABILITY_PIPELINES, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        shown = repr(pipeline) if pipeline else "missing or empty"
        self.add(path, Severity.STOPS_NODE,
                 f"pipeline {shown} is not a go-livepeer capability: "
                 f"panic 'Pipeline is not valid capability'{hint}")

    def _model_id(self, path: str, pipeline: str, model_id: str, url: str, warm: bool = True) -> None:
        if not model_id:
            self.add(path, Severity.STOPS_NODE if warm or url else Severity.ADVICE,
                     "model_id is missing or empty: a runner refuses to start without MODEL_ID, so a warm or "
                     "external runner never becomes ready and start-up aborts (a cold one fails on first use)")
            return
        if model_id != model_id.strip():
            self.add(path, Severity.ADVICE,
                     "model_id has leading or trailing spaces: routing compares it byte for byte with the "
                     "request's model id, so requests will not match")
        if ":" in model_id and "/" not in model_id:
            self.add(path, Severity.ADVICE,
                     f"{model_id!r} looks like an Ollama tag: gateways send Hugging Face ids "
                     "(e.g. meta-llama/Meta-Llama-3.1-8B-Instruct), and routing is exact string equality")
        elif "/" not in model_id:
            self.add(path, Severity.ADVICE,
                     f"{model_id!r} has no organisation prefix: gateways send Hugging Face ids like "
                     "'org/name', so requests will not route here (and a managed runner cannot download it)")
        for known in KNOWN_MODEL_IDS:
            if model_id.lower() == known.lower() and model_id != known:
                self.add(path, Severity.ADVICE,
                         f"{model_id!r} differs from {known!r} only in case: routing is case-sensitive and "
                         "the model cache folder is named after the exact id; write it as shown")
                break
        if pipeline == "llm" and model_id in (LLM_DOWNLOAD_ID, LLM_GATEWAY_DEFAULT_ID):
            other = LLM_GATEWAY_DEFAULT_ID if model_id == LLM_DOWNLOAD_ID else LLM_DOWNLOAD_ID
            if model_id == LLM_DOWNLOAD_ID:
                why = (f"a gateway that gets an LLM request without a model uses its default id {other!r}; "
                       "routing is exact string equality, so those requests will not reach this entry. "
                       "Advertise the id users send (a second entry, with a runner whose MODEL_ID matches)")
            else:
                why = (f"this is the gateway's default id, but the weights are published as {other!r}: "
                       "the runner's MODEL_ID must be this exact id (and so /version), with the weights "
                       "installed under it or MODEL_ID pointing to a local directory")
                if not url:
                    why += "; a managed ai-runner container looks for models--meta-llama--llama-3.1-8B-Instruct"
            self.add(path, Severity.ADVICE, why)

    def _url(self, path: str, url: str) -> None:
        if url != url.strip():
            self.add(path, Severity.STOPS_NODE,
                     "url has leading or trailing whitespace; go-livepeer does not trim it, so the health "
                     "probes fail and start-up aborts after 2 minutes")
            return
        if "://" not in url:
            self.add(path, Severity.STOPS_NODE,
                     f"url {url!r} has no scheme: Go parses {url.split(':')[0]!r} as the scheme, the health probes "
                     f"fail and start-up aborts after 2 minutes; write 'http://{url}'")
            return
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            self.add(path, Severity.STOPS_NODE,
                     f"url scheme {parts.scheme!r} is not http or https: the health probes fail and start-up "
                     "aborts after 2 minutes")
            return
        if not parts.hostname:
            self.add(path, Severity.STOPS_NODE, f"url {url!r} has no host: the health probes fail")
            return
        try:
            parts.port  # noqa: B018 (raises on a bad port)
        except ValueError:
            self.add(path, Severity.STOPS_NODE, f"url {url!r} has an invalid port")
            return
        if parts.path not in ("", "/"):
            self.add(path, Severity.ADVICE,
                     f"url has a path prefix {parts.path!r}: it is kept, so go-livepeer calls "
                     f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}/health and "
                     f".../{parts.path.strip('/')}/<pipeline>; the proxy in front must route those to the runner")
        if parts.query or parts.fragment:
            self.add(path, Severity.IGNORED,
                     "url query string or fragment is dropped: go-livepeer builds request URLs from the scheme, "
                     "host and path only")

    def _token(self, base: str, paths: dict[str, str], token: Any, url: str) -> None:
        if token and not url:
            self.add(paths["token"], Severity.IGNORED,
                     "token without url: go-livepeer never passes a token to the containers it manages, so "
                     "they run without auth")
        elif url and not token:
            self.add(paths.get("token", f"{base}.token"), Severity.ADVICE,
                     "external runner without a token: anyone who can reach the url can use the GPU; set "
                     "AUTH_TOKEN on the runner and the same value here")
        elif token and token != token.strip():
            self.add(paths["token"], Severity.ADVICE,
                     "token has leading or trailing whitespace: it is sent verbatim and must equal the "
                     "runner's AUTH_TOKEN exactly")

    def _capacity(self, path: str | None, capacity: Any, url: str) -> None:
        if path is None or capacity is None:
            return
        if capacity < 1:
            self.add(path, Severity.ADVICE,
                     f"capacity {capacity}: use 1 or more (external: concurrent jobs admitted; managed: number "
                     "of containers); how go-livepeer treats values below 1 is not specified, so do not rely on it")

    def _flags(self, base: str, path: str | None, flags: Any, pipeline: str, model_id: str, url: str,
               warm: bool) -> None:
        if not isinstance(flags, _Pairs) or not flags:
            return
        assert path is not None
        if url:
            self.add(path, Severity.IGNORED,
                     "optimization_flags are ignored for url entries: set SFAST/DEEPCACHE as environment "
                     "variables of the external runner instead")
            return
        if not warm:
            self.add(path, Severity.IGNORED,
                     "optimization_flags without \"warm\": true are ignored (cold managed containers get no "
                     "flags; go-livepeer logs \"'optimization_flags' set without 'warm'\")")
            return
        values = {k: ("false" if v is None else str(v).lower() if isinstance(v, bool) else v) for k, v in flags}
        on = {k for k, v in values.items() if isinstance(v, str) and v.strip().lower() == "true"}
        for key, raw in flags:
            fpath = _key_path(path, key)
            v = values[key]
            if raw is None:
                self.add(fpath, Severity.ADVICE, "a null flag value is passed as \"false\"")
            if key not in KNOWN_FLAGS:
                self.add(fpath, Severity.IGNORED,
                         f"unknown flag {key!r}: passed as an env var that the runners do not read")
                continue
            if key in ("SFAST", "DEEPCACHE") and pipeline not in DIFFUSION_PIPELINES:
                self.add(fpath, Severity.IGNORED, f"{key} only applies to diffusion pipelines, not {pipeline!r}")
            elif key in ("SFAST", "DEEPCACHE") and isinstance(raw, str) and v.strip().lower() not in ("true", "false"):
                self.add(fpath, Severity.ADVICE,
                         f"{key}={raw!r} is off: a flag is on only when its value is \"true\" (case-insensitive)")
            if key in ("BFLOAT16", "TORCH_COMPILE") and key not in on and v != "":
                self.add(fpath, Severity.ADVICE,
                         f"{key}={v!r}: ai-runner turns {key} ON for any non-empty value, \"false\" included "
                         "(our runners parse it as a boolean); remove the key to keep it off")
        if "DEEPCACHE" in on and DEEPCACHE_SKIP.search(model_id) and pipeline in DIFFUSION_PIPELINES:
            self.add(_key_path(path, "DEEPCACHE"), Severity.IGNORED,
                     f"DEEPCACHE is skipped for {model_id!r}: Lightning and Turbo models are already "
                     "step-distilled, so the runner logs a warning and runs without it")
        elif {"SFAST", "DEEPCACHE"} <= on:
            self.add(path, Severity.ADVICE,
                     "SFAST and DEEPCACHE together: both are applied (compile first) with a warning; choose "
                     "one (DeepCache costs some quality)")
        if "SFAST" in on and pipeline in DIFFUSION_PIPELINES:
            self.add(_key_path(path, "SFAST"), Severity.ADVICE,
                     "SFAST: any non-empty flag map raises go-livepeer's health deadline from 3 to 5 minutes; "
                     "compilation must finish within it")

    def _price(self, base: str, paths: dict[str, str], f: dict[str, Any]) -> None:
        price = f.get("price_per_unit")
        if "price_per_unit" in paths and not _is_number(price):
            pass  # present but not a number: already reported
        elif price is None or price == 0:
            self.add(paths.get("price_per_unit", f"{base}.price_per_unit"), Severity.ADVICE,
                     "no price_per_unit: the -pricePerUnit flag applies; if that is 0 too, an on-chain node "
                     "panics at start-up (pricing checks are skipped with -network offchain)")
        elif _is_number(price) and price < 0:
            self.add(paths["price_per_unit"], Severity.STOPS_NODE,
                     f"negative price_per_unit {price}: the node panics at start-up (unless -network offchain)")
        ppu = f.get("pixels_per_unit")
        if _is_number(ppu):
            if ppu <= 0:
                self.add(paths["pixels_per_unit"], Severity.STOPS_NODE,
                         f"pixels_per_unit {ppu}: must be an integer > 0 (it divides the price)")
            elif not float(ppu).is_integer():
                self.add(paths["pixels_per_unit"], Severity.ADVICE,
                         f"pixels_per_unit {ppu}: use an integer > 0")
        currency = f.get("currency")
        if currency and str(currency).upper() not in ("WEI", "ETH"):
            self.add(paths["currency"], Severity.ADVICE,
                     f"currency {currency!r}: the price is converted with a price feed; without one (on-chain) "
                     "the conversion fails and the node panics; pricing is skipped with -network offchain")
        if isinstance(currency, str) and currency.upper() == "USD" and _is_number(price) and price >= 1000:
            self.add(paths["price_per_unit"], Severity.ADVICE,
                     f"price_per_unit {price} USD per unit looks like a wei amount; USD prices are small "
                     "decimals such as 0.005")

    # --- whole file -------------------------------------------------------------------------------
    def check_file(self, doc: Any) -> None:
        if not isinstance(doc, list) or isinstance(doc, _Pairs):
            self.add("$", Severity.STOPS_NODE,
                     f"the file must be a JSON array of model entries, got {_type_name(doc)}: the node exits "
                     "with a parse error")
            return
        if not doc:
            self.add("$", Severity.ADVICE, "no entries: the AI worker serves nothing")
            return
        entries: list[tuple[int, dict[str, Any], dict[str, str]]] = []
        for i, item in enumerate(doc):
            if item is None:
                self.add(f"$[{i}]", Severity.STOPS_NODE,
                         "null entry: Go reads it as an entry with an empty pipeline, which panics "
                         "'Pipeline is not valid capability'")
                continue
            if not isinstance(item, _Pairs):
                self.add(f"$[{i}]", Severity.STOPS_NODE,
                         f"entry must be a JSON object, got {_type_name(item)}: the node exits with a parse error")
                continue
            fields = self.entry_fields(i, item)
            bad = self.check_types(fields)
            # go-livepeer stops at the first parse error; we go on to report everything else in one run,
            # leaving out the fields that did not parse.
            values = {k: v for k, (_p, v) in fields.items() if k not in bad and v is not None}
            paths = {k: p for k, (p, _v) in fields.items()}
            self.check_entry(i, values, paths, bad)
            if not bad:  # cross-entry rules only for entries Go could read
                entries.append((i, values, paths))
        self._across(entries)

    def _across(self, entries: list[tuple[int, dict[str, Any], dict[str, str]]]) -> None:
        groups: dict[tuple[str, str], list[tuple[int, dict[str, Any]]]] = {}
        for i, f, _paths in entries:
            groups.setdefault((f.get("pipeline", ""), f.get("model_id", "")), []).append((i, f))
        for (pipeline, model_id), items in groups.items():
            warm = [i for i, f in items if f.get("warm") is True]
            cold = [i for i, f in items if f.get("warm") is not True]
            if warm and cold:
                self.add(f"$[{cold[0]}].warm", Severity.STOPS_NODE,
                         f"{pipeline} {model_id!r} is warm in $[{warm[0]}] and cold here: go-livepeer panics "
                         "'Cannot have same model_id ... as cold and warm in same AI worker'; make every entry "
                         "for this model warm (external entries too)")
            for same in (warm, cold):
                if len(same) > 1:
                    total = sum(dict(items)[i].get("capacity", 1) for i in same)
                    urls = [dict(items)[i].get("url", "") for i in same]
                    extra = ""
                    if any(urls):
                        extra = ("; requests pick one of the external urls effectively at random (Go map order), "
                                 "not by load")
                    self.add(f"$[{same[1]}]", Severity.ADVICE,
                             f"{pipeline} {model_id!r} appears in entries "
                             f"{', '.join(f'$[{i}]' for i in same)}: their capacities are summed ({total}){extra}")
        warm_managed = [(i, f.get("capacity", 1)) for i, f, _p in entries
                        if f.get("warm") is True and not f.get("url")]
        needed = sum(max(c, 1) if isinstance(c, int) else 1 for _i, c in warm_managed)
        if warm_managed and self.gpus is not None and needed > self.gpus:
            self.add(f"$[{warm_managed[-1][0]}]", Severity.STOPS_NODE,
                     f"{needed} warm managed containers (entries x capacity) but {self.gpus} GPU(s): warming fails "
                     "with 'insufficient capacity' and start-up aborts (public docs say the extra entries are "
                     "skipped; the code aborts)")
        elif warm_managed and self.gpus is None and needed > 1:
            self.add("$", Severity.ADVICE,
                     f"{needed} warm managed containers (entries x capacity) need {needed} GPUs in -nvidia; "
                     "pass --gpus N to check")


def validate_text(text: str, gpus: int | None = None) -> list[Finding]:
    """All findings for an aiModels.json document given as text."""
    checker = _Checker(gpus)
    try:
        doc = parse_json(text)
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        checker.add("$", Severity.STOPS_NODE, f"not valid JSON ({exc}): the node exits")
        return checker.findings
    checker.check_file(doc)
    return checker.findings


def validate_file(path: str | Path, gpus: int | None = None) -> list[Finding]:
    return validate_text(Path(path).read_text(encoding="utf-8"), gpus)


def stops_node(findings: list[Finding]) -> bool:
    return any(f.severity is Severity.STOPS_NODE for f in findings)


def format_findings(findings: list[Finding], source: str) -> str:
    """Human-readable report: one line per finding, worst first, then a one-line verdict."""
    order = {Severity.STOPS_NODE: 0, Severity.IGNORED: 1, Severity.ADVICE: 2}
    lines = [str(f) for f in sorted(findings, key=lambda f: order[f.severity])]
    counts = {s: sum(1 for f in findings if f.severity is s) for s in Severity}
    verdict = "FAIL: go-livepeer would not start with this file" if counts[Severity.STOPS_NODE] else "OK"
    lines.append(f"{source}: {verdict} ({counts[Severity.STOPS_NODE]} stops-node, "
                 f"{counts[Severity.IGNORED]} ignored, {counts[Severity.ADVICE]} advice)")
    return "\n".join(lines)

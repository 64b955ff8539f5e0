"""Synthetic Parler-TTS checkpoints (imported only by synth.py for a parler id; needs the `parler-tts` package,
so it runs in the Parler-TTS environment: `make tts-env`, .venv-tts).

The layout of parler-tts/parler-tts-{mini,large}-v1: a flan-T5 text encoder for the description, a
decoder over 9 codebooks of 1088 ids (1024 codes, pad/eos 1024, bos 1025) conditioned on the T5 states with
the text prompt embedded (vocabulary 32128), and the 44.1 kHz DAC codec (always at its real size: the codec
has no smaller published shape). "full" follows the published shapes (mini: T5-large encoder, decoder 1024
wide x 24 layers, 878 M parameters in all, matching the published 880 M; large: decoder 1536 wide x 36
layers, 1.86 B in all, from memory of its config and not checked against the hub, where the model card says
2.2 B); "tiny" shrinks the T5 encoder and the decoder. The tokenizer is a small T5-style Unigram (SentencePiece
"▁" word starts, `</s>` appended), ids 0 pad, 1 eos, 2 unk as in T5.
"""

from __future__ import annotations

from pathlib import Path

WORDS = ("a male female speaker delivers slightly expressive and animated speech with moderate speed pitch "
         "hello world this is the of to in it one small step another follows yes fourth fifth voice calm "
         "quick brown fox jumps over lazy dog").split()
DECODERS = {"large": dict(hidden_size=1536, num_hidden_layers=36, num_attention_heads=24, ffn_dim=6144),
            "mini": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, ffn_dim=4096)}


def build_tokenizer():
    """A small T5-style Unigram tokenizer (T5TokenizerFast) with T5's special ids."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -3.0)]
    pieces += [("▁" + w, -1.0) for w in WORDS]
    pieces += [(c, -5.0) for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'-:;"]
    tok = Tokenizer(models.Unigram(pieces, unk_id=2, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                       special_tokens=[("</s>", 1)])
    return T5TokenizerFast(tokenizer_object=tok, eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
                           extra_ids=0, additional_special_tokens=[], model_max_length=512)


def build_config(model_id: str, scale: str):
    """The ParlerTTSConfig of `model_id` ("mini" or large) at `scale` ("tiny" or "full"; ValueError otherwise)."""
    from parler_tts import ParlerTTSConfig, ParlerTTSDecoderConfig
    from parler_tts.dac_wrapper import DACConfig
    from transformers import T5Config

    size = "mini" if "mini" in model_id.lower() else "large"
    t5 = dict(vocab_size=32128, d_model=1024, d_kv=64, d_ff=2816, num_layers=24, num_heads=16,
              feed_forward_proj="gated-gelu", tie_word_embeddings=False)
    decoder = dict(DECODERS[size])
    if scale == "tiny":
        t5.update(d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=2)
        decoder = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, ffn_dim=64)
    elif scale != "full":
        raise ValueError(f"scale must be 'tiny' or 'full', not {scale!r}")
    dac = DACConfig(num_codebooks=9, model_bitrate=8, codebook_size=1024, latent_dim=1024, frame_rate=86,
                    sampling_rate=44100)
    dec = ParlerTTSDecoderConfig(vocab_size=1088, max_position_embeddings=4096, num_codebooks=9, pad_token_id=1024,
                                 bos_token_id=1025, eos_token_id=1024, **decoder)
    return ParlerTTSConfig.from_sub_models_config(T5Config(**t5), dac, dec, vocab_size=32128,
                                                  decoder_start_token_id=1025, pad_token_id=1024)


def write_parler(model_id: str, out: Path, scale: str) -> None:
    """Save a random-weight Parler-TTS model, its generation config and tokenizer into `out`.

    Args:
        model_id: a parler-tts id ("mini" in it: the mini shapes). out: the folder. scale: "tiny" or "full".
    """
    import torch
    from parler_tts import ParlerTTSForConditionalGeneration

    model = ParlerTTSForConditionalGeneration(build_config(model_id, scale))
    if scale == "full":
        model = model.to(torch.float16 if torch.cuda.is_available() else torch.float32)
    g = model.generation_config
    g.decoder_start_token_id, g.pad_token_id, g.eos_token_id = 1025, 1024, 1024
    g.do_sample, g.guidance_scale = True, 1.0
    g.max_length = 2580 if scale == "full" else 48  # random weights never say end-of-speech: keep tiny short
    # A trained decoder only ever samples codes 0..1023 or end-of-speech 1024; random weights would sample the
    # other 63 ids, which DAC cannot decode. Only the synthetic generation config forbids them.
    g.suppress_tokens = list(range(1025, 1088))
    model.save_pretrained(out, safe_serialization=True)
    build_tokenizer().save_pretrained(out)

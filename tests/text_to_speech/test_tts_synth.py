"""The synthetic MMS-TTS (VITS) at full scale has facebook/mms-tts-eng's shape; the WAV writer's header."""

from __future__ import annotations

import io
import wave

import numpy as np
import torch

from runners.text_to_speech.synth import MMS_ENG_CHARS, build_vits_config
from runners.text_to_speech.text import join_audio, wav_bytes


def test_full_scale_vits_shape():
    from transformers import VitsModel

    config = build_vits_config("full")
    with torch.device("meta"):
        model = VitsModel(config)
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 1) == 36.3  # mms-tts-eng: 36.3 M
    assert (config.vocab_size, config.sampling_rate) == (len(MMS_ENG_CHARS), 16_000) == (38, 16_000)


def test_wav_header_and_pauses():
    audio = join_audio([np.ones(100), -np.ones(50)], 1000, pause_s=0.01)
    assert audio.shape == (160,) and audio[100:110].max() == 0
    with wave.open(io.BytesIO(wav_bytes(audio * 2, 22_050))) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (1, 2, 22_050, 160)
        frames = np.frombuffer(w.readframes(160), "<i2")
    assert frames.max() == 32767 and frames.min() == -32767  # clipped to [-1, 1]

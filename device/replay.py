"""`voice-device replay`: the whole device in a closed echo loop on recorded audio.

The device starts speaking ANSWER; its microphone hears the user's recording plus its
own voice through the simulated loudspeaker and room. OUT is exactly what the DAC
received. The figures come from the events and from the gain the DAC applied to each
sample: onset to the first sample at -20 dB or below, and onset to the end of the
fade-out, after which nothing of the interrupted answer plays.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio.simulated import MIC_RATE_HZ, SimulatedBackend
from .audio.wav import read_mono, read_wav, write_wav
from .config import Config
from .app import Engines, attach
from .core import VoiceDevice
from .errors import AudioInputError
from .listen.stack import ListeningStack
from .telemetry import EventLog, Telemetry
from .turn import RecordedAnswer

_LOGGER = logging.getLogger(__name__)

_GAIN_FLOOR = 0.1  # -20 dB


@dataclass(frozen=True)
class ReplayResult:
    """Times in seconds on the mic timeline (None when it did not happen)."""

    onset_s: float | None
    tentative_s: float | None
    confirmed_s: float | None
    output_minus20db_s: float | None
    output_silent_s: float | None
    tentatives: int
    confirmations: int
    rejections: int
    answer_played_s: float
    events: list[dict]
    history: list[dict]
    output: np.ndarray
    gains: np.ndarray
    mic: np.ndarray

    def after_onset_ms(self, value: float | None) -> float | None:
        """`value` relative to the user onset, in ms."""
        if value is None or self.onset_s is None:
            return None
        return (value - self.onset_s) * 1000.0


def read_sidecar(user_wav: Path) -> dict:
    """The JSON beside a recording (USER.json for USER.wav), or {} when there is none."""
    sidecar = user_wav.with_suffix(".json")
    if not sidecar.exists():
        return {}
    try:
        return json.loads(sidecar.read_text())
    except json.JSONDecodeError as err:
        raise AudioInputError("sidecar_invalid", f"{sidecar}: not valid JSON ({err}); fix or delete it") from None


def _first_event(events: list[dict], name: str, after_s: float) -> float | None:
    return next((e["t"] for e in events if e["event"] == name and e["t"] >= after_s), None)


def measure_output(gains: np.ndarray, rate_hz: int, onset_s: float) -> tuple[float | None, float | None]:
    """(first sample at -20 dB or below, first sample of silence) at or after `onset_s`, in seconds.

    `gains` is the gain the DAC applied to each output sample. A fade-out ends on a
    gain of exactly 0; after it the faded answer is gone, so that sample is "silent".
    """
    start = int(round(onset_s * rate_hz))
    after = gains[start:]
    ducked = np.flatnonzero(after <= _GAIN_FLOOR)
    silent = np.flatnonzero(after == 0.0)
    minus20 = (start + ducked[0]) / rate_hz if len(ducked) else None
    return minus20, ((start + silent[0]) / rate_hz if len(silent) else None)


async def replay(
    config: Config,
    user_wav: str | Path,
    answer_wav: str | Path | None = None,
    *,
    engines: Engines | None = None,
    out_wav: str | Path | None = None,
    events_path: str | Path | None = None,
    realtime: bool = False,
    onset_s: float | None = None,
    frame_observer=None,
    user_gain_db: float = 0.0,
    stack: ListeningStack | None = None,
) -> ReplayResult:
    """Run the device on USER (its mic, before echo); it starts by speaking ANSWER if given.

    With `engines` the device recognises what it hears and answers (whole turns);
    without, it only listens, which is all the barge-in figures need. `user_gain_db`
    scales the user's recording (how far away they are). `stack`: the listening stack to run
    (another barge-in classifier, an experiment); by default the config's.
    """
    user_wav = Path(user_wav)
    user = read_mono(user_wav, MIC_RATE_HZ) * np.float32(10 ** (user_gain_db / 20))
    speak = None
    length = len(user)
    if answer_wav is not None:
        answer = read_wav(answer_wav)
        speak = RecordedAnswer(answer.mono(), answer.sample_rate_hz)
        length = max(length, int(answer.duration_s * MIC_RATE_HZ))
    if onset_s is None:
        onset_s = read_sidecar(user_wav).get("onset_s")
    mic_input = np.zeros(length, dtype=np.float32)
    mic_input[: len(user)] = user
    backend = SimulatedBackend(mic_input, audio=config.audio, simulation=config.simulation, realtime=realtime)
    events = EventLog(path=events_path)
    device = VoiceDevice(config, backend, events=events, telemetry=Telemetry(config.telemetry), stack=stack)
    if engines is not None:
        attach(device, engines)
    if frame_observer is not None:
        device.frame_observers.append(frame_observer)
    try:
        await device.run(speak=speak)
    finally:
        events.close()
    rate = config.audio.playback_rate_hz
    out = backend.output
    if out_wav is not None:
        write_wav(out_wav, out, rate)
    records = events.records
    reference_s = onset_s if onset_s is not None else 0.0
    minus20, silent = measure_output(backend.gains, rate, reference_s)
    count = lambda name: sum(1 for e in records if e["event"] == name)  # noqa: E731
    return ReplayResult(
        onset_s=onset_s,
        tentative_s=_first_event(records, "bargein_tentative", reference_s),
        confirmed_s=_first_event(records, "bargein_confirmed", reference_s),
        output_minus20db_s=minus20,
        output_silent_s=silent,
        tentatives=count("bargein_tentative"),
        confirmations=count("bargein_confirmed"),
        rejections=count("bargein_rejected"),
        answer_played_s=backend.playback.samples_played / rate,
        events=records,
        history=device.conversation.to_json(),
        output=out,
        gains=backend.gains,
        mic=mic_input,
    )


def format_result(result: ReplayResult) -> str:
    """The figures replay prints, one per line."""
    def line(label: str, value: float | None, source: str = "") -> str:
        if value is None:
            return f"{label:<15} -"
        rel = result.after_onset_ms(value)
        rel_text = f"  ({rel:+.0f} ms)" if rel is not None and label != "user onset" else ""
        return f"{label:<15} {value:7.3f} s{rel_text}{source}"

    lines = [
        line("user onset", result.onset_s, "  (sidecar)" if result.onset_s is not None else ""),
        line("tentative", result.tentative_s),
        line("confirmed", result.confirmed_s),
        line("output -20 dB", result.output_minus20db_s),
        line("output silent", result.output_silent_s),
        f"{'decisions':<15} {result.tentatives} tentative, {result.confirmations} confirmed, {result.rejections} rejected",
        f"{'answer played':<15} {result.answer_played_s:7.3f} s",
    ]
    return "\n".join(lines)


def result_json(result: ReplayResult) -> str:
    """The figures as one JSON object (events left out)."""
    skip = {"events", "output", "gains", "mic"}
    return json.dumps({f.name: getattr(result, f.name) for f in dataclasses.fields(result) if f.name not in skip})

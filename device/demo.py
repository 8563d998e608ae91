"""`voice-device demo`: a whole conversation with an interruption, offline, on a shipped recording.

The recording (device/data/demo_conversation.wav, made by tests/recordings/generate.py)
asks for a story, interrupts it to ask the time, then asks the device to go on. The
device runs in the closed echo loop with its real engines: Whisper or Vosk, the LLM
(the offline responder unless an endpoint is configured), Piper. It writes what the
DAC played, the event log, the conversation history and a timeline picture, and
prints the figures.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .app import load_engines
from .config import Config
from .listen.stack import FrameReport
from .replay import ReplayResult, measure_output, read_sidecar, replay

_LOGGER = logging.getLogger(__name__)

RECORDING = Path(__file__).resolve().parent / "data" / "demo_conversation.wav"


@dataclass
class Frames:
    """Per-frame VAD and evidence, for the timeline."""

    start_s: list[float] = field(default_factory=list)
    vad: list[float] = field(default_factory=list)
    user: list[float] = field(default_factory=list)

    def __call__(self, report: FrameReport) -> None:
        self.start_s.append(report.start_s)
        self.vad.append(report.vad_prob)
        self.user.append(report.user_prob)


def run_demo(config: Config, out_dir: Path, recording: Path = RECORDING) -> str:
    """Run the demo; returns the printed summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    engines = load_engines(config)
    frames = Frames()
    result = asyncio.run(replay(config, recording, engines=engines, out_wav=out_dir / "output.wav",
                                events_path=out_dir / "events.jsonl", frame_observer=frames))
    (out_dir / "history.json").write_text(json.dumps(result.history, indent=1) + "\n")
    said = read_sidecar(recording).get("utterances", [])
    summary = summarize(config, result, said)
    (out_dir / "figures.txt").write_text(summary + "\n")
    try:
        timeline(result, frames, said, config.audio.playback_rate_hz, out_dir / "timeline.png")
    except ImportError:
        _LOGGER.warning("matplotlib is not installed: no timeline.png (pip install matplotlib)")
    return summary + f"\n\nwritten to {out_dir}/: output.wav events.jsonl history.json timeline.png figures.txt"


def summarize(config: Config, result: ReplayResult, said: list[dict]) -> str:
    """The figures: per barge-in, per answer, and the history."""
    events = result.events
    rate = config.audio.playback_rate_hz
    lines = ["What the user said, and what the device understood:"]
    transcripts = [e["text"] for e in events if e["event"] == "transcript"]
    for i, line in enumerate(said):
        heard = transcripts[i] if i < len(transcripts) else "-"
        lines.append(f"  {line['onset_s']:6.2f} s  said {line['text']!r:40} understood {heard!r}")
    lines.append("\nBarge-ins (ms after the user's onset):")
    for confirmed in (e for e in events if e["event"] == "bargein_confirmed"):
        onset = max((u["onset_s"] for u in said if u["onset_s"] <= confirmed["t"]), default=None)
        if onset is None:
            continue
        tentative = next((e["t"] for e in events if e["event"] == "bargein_tentative" and e["t"] >= onset), None)
        minus20, silent = measure_output(result.gains, rate, onset)
        cancelled = next((e for e in events if e["event"] == "turn_cancelled" and e["t"] >= confirmed["t"]), {})

        def ms(t):
            return f"{(t - onset) * 1000:5.0f}" if t is not None else "    -"

        lines.append(f"  onset {onset:6.2f} s: tentative {ms(tentative)}, confirmed {ms(confirmed['t'])}, "
                     f"output -20 dB {ms(minus20)}, silent {ms(silent)}; turn cancelled in "
                     f"{cancelled.get('cancel_ms', float('nan')):.2f} ms")
        if cancelled.get("heard"):
            lines.append(f"    the user heard: ...{cancelled['heard'][-70:]!r}")
    lines.append("\nEnd of the user's turn -> first answer audio at the DAC:")
    for utterance in (e for e in events if e["event"] == "utterance"):
        first_audio = _first_audio_after(result.output, rate, utterance["t"])
        if first_audio is not None:
            lines.append(f"  utterance ended {utterance['t']:6.2f} s -> audio {(first_audio - utterance['t']) * 1000:5.0f} ms later"
                         f" (the end itself is {config.listen.end_silence_ms:.0f} ms of silence after the last word)")
    lines.append("\nConversation history (only what the user heard):")
    for exchange in result.history:
        mark = " [interrupted]" if exchange["interrupted"] else ""
        lines.append(f"  user: {exchange['user']}")
        lines.append(f"  device: {exchange['assistant'][:110]}{'...' if len(exchange['assistant']) > 110 else ''}{mark}")
    return "\n".join(lines)


def _first_audio_after(output: np.ndarray, rate_hz: int, t_s: float) -> float | None:
    start = int(t_s * rate_hz)
    loud = np.flatnonzero(np.abs(output[start:]) > 1e-3)
    return (start + loud[0]) / rate_hz if len(loud) else None


_STATE_COLOURS = {"listening": "#cde7ff", "thinking": "#ffe9b3", "speaking": "#d7f5d0"}


def timeline(result: ReplayResult, frames: Frames, said: list[dict], rate_hz: int, path: Path) -> None:
    """A picture: mic, VAD and evidence, decisions, output and its gain, states."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mic_t = np.arange(len(result.mic)) / 16000
    out_t = np.arange(len(result.output)) / rate_hz
    end_s = max(mic_t[-1] if len(mic_t) else 0, out_t[-1] if len(out_t) else 0)
    fig, axes = plt.subplots(4, 1, figsize=(14, 9), sharex=True, gridspec_kw={"height_ratios": [2, 1.2, 2, 1]})
    step = max(1, len(result.mic) // 200000)
    axes[0].plot(mic_t[::step], result.mic[::step], lw=0.4, color="#444")
    axes[0].set_ylabel("user at the mic\n(before echo)")
    for line in said:
        axes[0].axvline(line["onset_s"], color="#0a6", lw=1)
        axes[0].text(line["onset_s"], 0.9 * max(1e-3, np.abs(result.mic).max()), " " + line["text"], fontsize=8,
                     color="#0a6", va="top")
    axes[1].plot(frames.start_s, frames.vad, lw=0.8, label="VAD p(speech)")
    axes[1].plot(frames.start_s, frames.user, lw=0.8, label="echo gate p(person)")
    axes[1].set_ylim(-0.05, 1.05)
    axes[1].legend(loc="upper right", fontsize=8)
    colours = {"bargein_tentative": "#f90", "bargein_confirmed": "#d00", "bargein_rejected": "#888"}
    for e in result.events:
        if e["event"] in colours:
            for ax in axes[1:3]:
                ax.axvline(e["t"], color=colours[e["event"]], lw=1, ls="--")
    step = max(1, len(result.output) // 200000)
    axes[2].plot(out_t[::step], result.output[::step], lw=0.4, color="#236")
    axes[2].set_ylabel("DAC output")
    gains = result.gains[: len(out_t)]
    axes[3].plot(out_t[: len(gains)][::step], 20 * np.log10(np.maximum(gains[::step], 1e-3)), color="#a30")
    axes[3].set_ylabel("output gain (dB)")
    axes[3].set_ylim(-62, 3)
    axes[3].set_xlabel("seconds (tentative: orange, confirmed: red, rejected: grey)")
    states = [(e["t"], e["to"]) for e in result.events if e["event"] == "state"] + [(end_s, "idle")]
    for (t0, state), (t1, _) in zip(states, states[1:]):
        if state in _STATE_COLOURS:
            for ax in axes:
                ax.axvspan(t0, t1, color=_STATE_COLOURS[state], alpha=0.5, lw=0)
    axes[0].set_title("voice-device demo (background: listening blue, thinking yellow, speaking green)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)

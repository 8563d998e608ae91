"""`voice-device detect` and `voice-device replay` as a user runs them, on the test recordings."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from conftest import onset_of
from device.audio.wav import read_wav

REPO = Path(__file__).resolve().parent.parent


def cli(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "device", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def events_of(stdout: str) -> list[dict]:
    records = [json.loads(line) for line in stdout.splitlines()]
    for r in records:
        assert isinstance(r["t"], float) and isinstance(r["event"], str)
    return records


def test_detect_finds_the_interruption_in_a_device_recording(recordings):
    proc = cli("detect", "--mic", recordings / "detect_mic_interrupt.wav", "--ref", recordings / "detect_ref.wav")
    records = events_of(proc.stdout)  # stdout is JSON lines and nothing else
    onset = onset_of("detect_mic_interrupt.wav")
    confirmed = [r["t"] for r in records if r["event"] == "bargein_confirmed"]
    assert confirmed and all(t > onset for t in confirmed)
    assert {r["event"] for r in records} <= {"speech_start", "speech_end", "bargein_tentative",
                                              "bargein_confirmed", "bargein_rejected"}


def test_detect_does_not_confirm_the_devices_own_echo(recordings):
    proc = cli("detect", "--mic", recordings / "detect_mic_echo_only.wav", "--ref", recordings / "detect_ref.wav")
    records = events_of(proc.stdout)
    assert not [r for r in records if r["event"] == "bargein_confirmed"]
    assert [r for r in records if r["event"] == "speech_start"]  # the VAD alone would have fired


def test_detect_without_ref_is_a_device_playing_silence(recordings):
    records = events_of(cli("detect", "--mic", recordings / "interrupt_f3.wav").stdout)
    onset = onset_of("interrupt_f3.wav")
    confirmed = [r["t"] for r in records if r["event"] == "bargein_confirmed"]
    assert len(confirmed) == 1 and onset < confirmed[0] < onset + 0.2


def test_detect_unreadable_input_fails_clearly(tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("this is not audio")
    proc = cli("detect", "--mic", bad, check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "not a RIFF/WAVE file" in proc.stderr and str(bad) in proc.stderr
    proc = cli("detect", "--mic", tmp_path / "missing.wav", check=False)
    assert proc.returncode == 2 and "no such file" in proc.stderr


def test_replay_cli_writes_output_and_events(recordings, tmp_path):
    out, events = tmp_path / "out.wav", tmp_path / "ev.jsonl"
    proc = cli("replay", "--mic", recordings / "interrupt_f3.wav", "--play", recordings / "answer.wav",
               "--out", out, "--events", events, "--room", "small")
    for label in ("user onset", "tentative", "confirmed", "output -20 dB", "output silent"):
        assert label in proc.stdout
    assert "(sidecar)" in proc.stdout
    audio = read_wav(out)
    assert audio.sample_rate_hz == 48000 and audio.duration_s > 10
    records = [json.loads(line) for line in events.read_text().splitlines()]
    assert any(r["event"] == "bargein_confirmed" for r in records)
    # After the fade nothing of the interrupted answer plays; the next sound is the answer to
    # what the user said (a new turn, which heard the words after the onset). The figures,
    # events and audio all come from one run: while the device computes, the simulated clock
    # follows the wall clock, so two runs need not place the next answer at the same instant.
    figures = json.loads(cli("replay", "--mic", recordings / "interrupt_f3.wav", "--play", recordings / "answer.wav",
                             "--out", out, "--events", events, "--room", "small", "--json").stdout)
    records = [json.loads(line) for line in events.read_text().splitlines()]
    audio = read_wav(out)
    silent_at = int(figures["output_silent_s"] * audio.sample_rate_hz)
    next_answer = next(r for r in records if r["event"] == "state" and r["cause"] == "answer_audio"
                       and r["t"] > figures["output_silent_s"])
    assert not np.any(audio.samples[silent_at : int(next_answer["t"] * audio.sample_rate_hz), 0])
    assert np.any(audio.samples[: silent_at - 100, 0]) and np.any(audio.samples[silent_at:, 0])
    transcript = next(r for r in records if r["event"] == "transcript")
    assert "tomorrow" in transcript["text"].lower()  # "Wait, stop, what about tomorrow?"

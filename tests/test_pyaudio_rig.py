"""The real PyAudio path on virtual ALSA devices (PulseAudio null sinks + file PCMs)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from device.audio.wav import read_mono, read_wav, resample
from rig import VirtualAudioRig, rig_available

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RECORDINGS = HERE / "recordings"

pytestmark = pytest.mark.rig


@pytest.fixture(scope="module")
def rig():
    missing = rig_available()
    if missing:
        pytest.skip(missing)
    with VirtualAudioRig() as running:
        yield running


def _child(rig: VirtualAudioRig, *args: str, timeout: float = 60.0) -> dict:
    proc = subprocess.run([sys.executable, str(HERE / "rig_child.py"), *args], env=rig.env,
                          capture_output=True, text=True, timeout=timeout, cwd=HERE)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_capture_is_bit_exact_and_paced_and_fade_is_exact(rig, tmp_path):
    mic = read_mono(RECORDINGS / "interrupt_f3.wav", 16000)[: 16000 * 4]
    mic_pcm = np.clip(np.round(mic * 32768.0), -32768, 32767).astype(np.int16)
    rig.set_mic(mic_pcm / 32768.0)
    rig.reset_speaker()
    answer = read_wav(RECORDINGS / "answer.wav")
    play = np.round(resample(answer.mono(), answer.sample_rate_hz, 16000)[: 16000 * 3] * 32768.0) / 32768.0
    play.astype(np.float32).tofile(tmp_path / "play.raw")
    fade_ms = 80.0

    result = _child(rig, str(tmp_path), "3.0", "1.0", str(fade_ms))

    assert result["input_device"] == "mic" and result["output_device"] == "spk"
    assert result["callback_errors"] == 0 and result["overruns"] == 0
    captured = np.fromfile(tmp_path / "captured.raw", dtype=np.float32)
    assert len(captured) > 16000 * 2
    # Capture delivers the file's samples exactly, from sample 0.
    assert np.array_equal(captured, mic_pcm[: len(captured)] / np.float32(32768.0))
    # Paced by the null sink's clock, not thousands of times faster (the bare file plugin is).
    rate = result["captured_samples"] / result["seconds_since_first_callback"]
    assert 0.6 * 16000 < rate < 1.6 * 16000, rate

    out = rig.played()
    start = int(np.flatnonzero(out)[0])
    content = play.astype(np.float32)
    ramp_len = int(fade_ms * 16)
    # Nothing plays after the fade, so the counters say exactly where it began.
    fade_at = result["samples_played"] - ramp_len
    assert fade_at >= result["fade_started_at_played"]
    assert np.array_equal(out[start : start + fade_at], content[:fade_at])  # unity gain: bit-exact
    expected = content[fade_at : fade_at + ramp_len] * (1.0 - np.arange(1, ramp_len + 1) / ramp_len)
    got = out[start + fade_at : start + fade_at + ramp_len]
    assert np.max(np.abs(got - expected)) <= 1.5 / 32768  # int16 truncation only
    assert not np.any(out[start + fade_at + ramp_len :])  # then silence: the rest was flushed
    assert result["fades_completed"] == 1


def test_whole_device_runs_on_the_rig_and_is_interrupted(rig, tmp_path):
    """`voice-device run` on the virtual devices: speak, get interrupted, fade, listen."""
    user = read_mono(RECORDINGS / "interrupt_f3.wav", 16000)[: 16000 * 5]
    onset_s = json.loads((RECORDINGS / "interrupt_f3.json").read_text())["onset_s"]
    rig.set_mic(user)
    rig.reset_speaker()
    events = tmp_path / "events.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "device", "--config", str(REPO / "hardware/virtual/voice-device.toml"), "run",
         "--play", str(RECORDINGS / "answer.wav"), "--events", str(events)],
        env=rig.env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline and proc.poll() is None:
            if events.exists() and '"utterance"' in events.read_text():
                break
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr[-2000:]
    records = [json.loads(line) for line in events.read_text().splitlines()]
    confirmed = [r for r in records if r["event"] == "bargein_confirmed"]
    assert confirmed, stderr[-2000:]
    assert confirmed[0]["t"] >= onset_s
    cancelled = [r for r in records if r["event"] == "turn_cancelled"]
    assert cancelled and cancelled[0]["finished"] is True
    utterance = next(r for r in records if r["event"] == "utterance")
    assert utterance["after_bargein"] is True and utterance["start"] < onset_s  # pre-roll kept
    # The speaker stopped: nothing of the answer after the fade, far before its end.
    played = rig.played()
    audible = np.flatnonzero(np.abs(played) > 1e-3)
    assert len(audible) and audible[-1] / 16000 < 6.0
    assert os.path.getsize(events) > 0

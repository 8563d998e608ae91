"""Silero VAD and the echo gate with real audio."""

import numpy as np

from conftest import onset_of
from device.audio.echo_path import EchoPath
from device.audio.wav import read_mono
from device.config import BargeInConfig, EchoGateConfig
from device.listen.echo_gate import EchoGate
from device.listen.vad import FRAME_SAMPLES, SileroVad
from device.models import verified_path


def frames(x):
    for i in range(0, len(x) - FRAME_SAMPLES + 1, FRAME_SAMPLES):
        yield i / 16000, x[i : i + FRAME_SAMPLES]


def test_vad_hears_speech_and_not_noise(recordings):
    vad = SileroVad(verified_path("silero_vad"))
    user = read_mono(recordings / "interrupt_f3.wav", 16000)
    onset = onset_of("interrupt_f3.wav")
    probs = [(t, vad(f)) for t, f in frames(user)]
    before = [p for t, p in probs if t < onset - 0.1]
    during = [p for t, p in probs if onset + 0.1 < t < onset + 1.0]
    assert max(before) < 0.2  # pink noise at -55 dBFS only
    assert np.mean(np.array(during) > 0.5) > 0.7  # words, with short gaps between them
    vad.reset()
    noise = read_mono(recordings / "no_user_noise.wav", 16000)
    assert max(vad(f) for _, f in frames(noise)) < 0.3


def test_vad_rejects_wrong_frame_size():
    vad = SileroVad(verified_path("silero_vad"))
    try:
        vad(np.zeros(100, dtype=np.float32))
    except ValueError as err:
        assert "512" in str(err)
    else:
        raise AssertionError("a short frame must be refused")


def test_gate_explains_echo_and_not_a_person(recordings):
    """Echo 10 dB under the user (answer -20 dBFS, user -26 dBFS, echo gain -16 dB), open loop.

    Without the duck the gate can only tell a person who is louder than the echo; in
    the closed loop the tentative duck lowers the echo 24 dB, which is what reveals a
    person at the echo's level or below it (tests/test_replay.py).
    """
    answer = read_mono(recordings / "answer.wav", 16000)
    echo = EchoPath(16000, room="small", gain_db=-16.0, delay_ms=24.0, seed=9).apply(answer)
    user = read_mono(recordings / "interrupt_m3.wav", 16000)
    echo, user = echo[: len(user)], user[: len(echo)]
    onset = onset_of("interrupt_m3.wav")
    gate = EchoGate(EchoGateConfig())
    echo_only, person = [], []
    for t, mic in frames(echo + user):
        ref = answer[int(t * 16000) : int(t * 16000) + FRAME_SAMPLES]
        p = gate.update(mic, mic, ref, 0.0, learn=t < onset)
        if 1.5 < t < onset - 0.2 and np.sqrt(np.mean(mic**2)) > 0.01:
            echo_only.append(p)
        if onset <= t < onset + 1.0:
            person.append(p)
    assert np.mean(echo_only) < 0.1  # learned within 1.5 s: the echo is explained
    # A person talking over it is not: enough frames to confirm even without the duck.
    confirm = BargeInConfig().confirm_user_prob
    assert sum(p >= confirm for p in person) >= BargeInConfig().confirm_frames, np.round(person, 2)
    assert -19 < gate.coupling_db < -13  # the echo path is -16 dB

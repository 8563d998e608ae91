"""The whole device in the closed echo loop (virtual clock), on the test recordings."""

import asyncio

import numpy as np
import pytest

from conftest import onset_of
from device.audio.simulated import SimulatedBackend
from device.audio.wav import read_mono, read_wav, write_wav
from device.config import Config, with_overrides
from device.core import VoiceDevice
from device.listen.stack import ListeningStack
from device.replay import replay
from device.telemetry import EventLog
from device.turn import RecordedAnswer


def run(recordings, name, **simulation):
    config = with_overrides(Config(), simulation=simulation) if simulation else Config()
    result = asyncio.run(asyncio.wait_for(replay(config, recordings / name, recordings / "answer.wav"), 120))
    assert not [e for e in result.events if e["event"] == "turn_failed"]
    return result


@pytest.mark.parametrize("name", ["interrupt_f3.wav", "interrupt_m3.wav"])
def test_user_interruption_is_confirmed_and_the_answer_stops(recordings, name):
    result = run(recordings, name)
    onset = onset_of(name)
    assert result.confirmations == 1 and result.confirmed_s > onset
    assert onset < result.output_minus20db_s <= result.output_silent_s
    # The fade takes 80 ms; the answer stops well before its natural end.
    assert result.answer_played_s < onset + 1.0
    cancelled = next(e for e in result.events if e["event"] == "turn_cancelled")
    assert cancelled["finished"] is True
    # What went out until the cancel, plus the fade that still plays (80 ms), plus at most
    # one output period already in flight (virtual clock: exact, not wall-clock).
    assert 0.08 <= cancelled["heard_s"] - result.confirmed_s <= 0.08 + 0.04


def test_next_turn_listens_with_preroll(recordings):
    result = run(recordings, "interrupt_f3.wav")
    onset = onset_of("interrupt_f3.wav")
    utterance = next(e for e in result.events if e["event"] == "utterance")
    assert utterance["after_bargein"] is True
    assert utterance["start"] <= onset - 0.2  # ~300 ms before the detected onset: first syllables kept
    assert utterance["end"] > onset + 1.0  # and the rest of what the user said
    states = [(e["from"], e["to"]) for e in result.events if e["event"] == "state"]
    assert states[:3] == [("idle", "speaking"), ("speaking", "speaking"), ("speaking", "listening")]


@pytest.mark.parametrize("room, output_delay_ms", [("small", 24.0), ("none", 24.0), ("small", 60.0), ("small", 100.0)])
def test_own_echo_with_noise_is_not_an_interruption(recordings, room, output_delay_ms):
    # The simulated device adds ~40 ms of buffering to output_delay_ms: 65-140 ms from the
    # DAC back to the mic. Before the reference was lined up with the echo for the
    # classifier, the device interrupted itself at 60 ms (the echo outlasted each pause
    # in its reference by three frames, which sounded like a person).
    result = run(recordings, "no_user_noise.wav", room=room, output_delay_ms=output_delay_ms)
    assert result.confirmations == 0
    assert result.answer_played_s == pytest.approx(11.2, abs=0.3)  # the whole answer went out
    assert result.tentatives <= 2  # an occasional duck, not a pumping output


def test_replay_is_deterministic(recordings):
    def virtual(result):  # every field but cancel_ms, which is measured on the wall clock
        return [{k: v for k, v in e.items() if k != "cancel_ms"} for e in result.events]

    assert virtual(run(recordings, "interrupt_m3.wav")) == virtual(run(recordings, "interrupt_m3.wav"))


@pytest.mark.parametrize("lead_s, confirmed", [(0.08, 0), (0.1, 1)])
def test_user_who_starts_talking_as_the_answer_ends_is_listened_to(recordings, tmp_path, lead_s, confirmed):
    # The user starts "Wait, stop, what about tomorrow?" just before the answer's last sample.
    # 80 ms before it the device ducks (tentative), then the answer runs out before it can
    # confirm; 100 ms before it, it confirms in time (53 ms after the onset).
    answer_s = read_wav(recordings / "answer.wav").duration_s
    user = read_mono(recordings / "interrupt_f3.wav", 16000)
    shift = answer_s - lead_s - onset_of("interrupt_f3.wav")
    write_wav(tmp_path / "late.wav", np.concatenate([np.zeros(round(shift * 16000), np.float32), user]), 16000)
    onset = onset_of("interrupt_f3.wav") + shift
    result = asyncio.run(asyncio.wait_for(
        replay(Config(), tmp_path / "late.wav", recordings / "answer.wav", onset_s=onset), 120))
    causes = [(e["from"], e["to"], e["cause"]) for e in result.events if e["event"] == "state"]
    assert result.tentatives == 1 and result.confirmations == confirmed
    # Not idle (its words would be lost): it listens to them, from before their onset.
    assert ("speaking", "listening", "bargein_confirmed" if confirmed else "answer_done_user_talking") in causes
    utterance = next(e for e in result.events if e["event"] == "utterance")
    assert utterance["start"] <= onset - 0.2 and utterance["end"] > onset + 1.0
    # The duck ended with the answer: whatever plays next starts at full volume.
    assert result.gains[-1] == 1.0


class MicKeepingStack(ListeningStack):
    """The device's listening stack, keeping every raw mic frame it was given."""

    def __init__(self, config):
        super().__init__(config)
        self.mic = []

    def process(self, mic, ref, start_index, active):
        assert start_index == 512 * len(self.mic)
        self.mic.append(mic)
        return super().process(mic, ref, start_index, active)


def test_the_recognizer_hears_the_mic_after_the_echo_canceller(recordings):
    # After a barge-in the pre-roll and the user's first words overlap the device's voice.
    # From the raw mic Whisper sometimes transcribed the device's words as the user's
    # ("always close." for "Wait, what time is it?"), so the utterance is the cancelled mic.
    config = Config()
    answer = read_wav(recordings / "answer.wav")
    user = read_mono(recordings / "interrupt_f3.wav", 16000)
    mic = np.zeros(max(len(user), round(answer.duration_s * 16000)), np.float32)
    mic[: len(user)] = user
    stack = MicKeepingStack(config)
    device = VoiceDevice(config, SimulatedBackend(mic, audio=config.audio, simulation=config.simulation),
                         events=EventLog(), stack=stack)
    asyncio.run(asyncio.wait_for(device.run(speak=RecordedAnswer(answer.mono(), answer.sample_rate_hz)), 120))

    utterance = device.utterances[0]
    assert utterance.after_bargein
    start, end = round(utterance.start_s * 16000), round(utterance.end_s * 16000)
    raw, heard = np.concatenate(stack.mic)[start:end], utterance.audio
    assert len(heard) == len(raw)
    power_db = lambda x: 10 * np.log10(np.mean(x.astype(np.float64) ** 2))  # noqa: E731
    # Before the user's onset the pre-roll holds the device's echo alone: the recognizer
    # hears it well below the mic's level.
    onset = round((onset_of("interrupt_f3.wav") - utterance.start_s) * 16000)
    assert onset >= 0.2 * 16000
    assert power_db(heard[:onset]) < power_db(raw[:onset]) - 6
    # Once the answer has faded out, the user's words reach the recognizer as the mic has them.
    words = slice(onset + 16000, None)
    assert abs(power_db(heard[words]) - power_db(raw[words])) < 1.0

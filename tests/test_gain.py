"""Gain envelope and playback engine: exact ramps, no clicks, exact counts."""

import numpy as np
import pytest

from device.audio.engines import CaptureEngine, PlaybackEngine
from device.audio.gain import GainEnvelope, db_to_gain, gain_to_db

RATE = 16000


def _render_all(engine: PlaybackEngine, samples: int, block: int) -> np.ndarray:
    out = []
    for start in range(0, samples, block):
        buf = np.zeros(min(block, samples - start), dtype=np.float32)
        engine.render(buf, start / engine.sample_rate_hz)
        out.append(buf)
    return np.concatenate(out)


def test_ramp_is_exact_whatever_the_blocks():
    ones = np.ones(1000, dtype=np.float32)
    env = GainEnvelope(max_block=512)
    env.ramp_to(0.25, 800)
    pieces = []
    for size in (1, 7, 300, 512, 180):  # uneven blocks crossing the ramp's end
        block = ones[: size].copy()
        env.apply(block)
        pieces.append(block)
    gains = np.concatenate(pieces)
    expected = np.concatenate([1.0 + (0.25 - 1.0) * np.arange(1, 801) / 800, np.full(200, 0.25)])
    np.testing.assert_allclose(gains, expected, rtol=0, atol=1e-6)
    assert gains[799] == np.float32(0.25) and env.gain == 0.25 and env.ramp_samples_left == 0


def test_set_and_db_helpers():
    env = GainEnvelope(16)
    env.ramp_to(0.0, 0)  # a zero-length ramp is a jump
    block = np.ones(4, dtype=np.float32)
    env.apply(block)
    assert not block.any()
    assert db_to_gain(-20) == pytest.approx(0.1) and gain_to_db(0.1) == pytest.approx(-20)
    assert gain_to_db(0.0) == float("-inf")
    with pytest.raises(ValueError):
        env.ramp_to(-1.0, 10)


def test_fade_has_no_click_and_ends_silent():
    engine = PlaybackEngine(sample_rate_hz=RATE, max_block=160)
    tone = np.sin(2 * np.pi * 440 * np.arange(RATE) / RATE).astype(np.float32)  # full scale
    engine.write(tone)
    head = _render_all(engine, 1600, 160)
    engine.fade_out(80)
    tail = _render_all(engine, 4000, 160)
    out = np.concatenate([head, tail])
    # The tone's own largest step is 2*pi*440/16000 = 0.173; the fade may add at most 1/1280.
    assert np.max(np.abs(np.diff(out))) <= 2 * np.pi * 440 / RATE + 1.0 / 1280 + 1e-6
    ramp = tail[:1280]
    np.testing.assert_allclose(ramp, tone[1600:2880] * (1 - np.arange(1, 1281) / 1280), atol=1e-6)
    assert not tail[1280:].any()
    assert engine.samples_played == 1600 + 1280
    assert engine.samples_flushed == RATE - 1600 - 1280
    assert engine.fades_completed == 1 and engine.queued_samples == 0


def test_fade_starts_at_the_next_block():
    engine = PlaybackEngine(sample_rate_hz=RATE, max_block=320)
    engine.write(np.ones(RATE, dtype=np.float32))
    _render_all(engine, 320, 320)
    engine.fade_out(50)
    block = np.zeros(320, dtype=np.float32)
    engine.render(block, 0.0)
    assert block[0] == pytest.approx(1 - 1 / 800)  # the very first sample of the next period


def test_audio_queued_after_a_fade_plays_at_full_level():
    engine = PlaybackEngine(sample_rate_hz=RATE, max_block=160)
    engine.write(np.full(RATE, 0.5, dtype=np.float32))
    engine.duck(-20, 10)
    _render_all(engine, 800, 160)
    engine.fade_out(80)
    new_answer = np.full(800, 0.25, dtype=np.float32)
    engine.write(new_answer)  # the next turn's audio, queued before the fade ends
    out = _render_all(engine, 1280 + 1600, 160)
    assert not np.any(out[:1280] == 0.25)  # never leaks into the fade
    np.testing.assert_array_equal(out[1280 : 1280 + 800], new_answer)  # then plays at unity
    assert not out[1280 + 800 :].any()


def test_duck_and_unduck_levels():
    engine = PlaybackEngine(sample_rate_hz=RATE, max_block=160)
    engine.write(np.ones(RATE, dtype=np.float32))
    engine.duck(-24, 15)
    out = _render_all(engine, 480, 160)
    assert out[239] == pytest.approx(db_to_gain(-24), abs=1e-6)  # 15 ms = 240 samples
    assert out[-1] == pytest.approx(db_to_gain(-24), abs=1e-6)
    engine.unduck(120)
    out = _render_all(engine, 2400, 160)
    assert out[1919] == pytest.approx(1.0) and out[-1] == 1.0


def test_flush_drops_queue_and_counts():
    engine = PlaybackEngine(sample_rate_hz=RATE, max_block=160)
    engine.write(np.ones(1000, dtype=np.float32))
    _render_all(engine, 160, 160)
    engine.flush()
    out = _render_all(engine, 320, 160)
    assert not out.any()
    assert engine.samples_played == 160 and engine.samples_flushed == 840


def test_reference_is_what_went_to_the_dac():
    engine = PlaybackEngine(sample_rate_hz=RATE, max_block=160)
    engine.write(np.ones(480, dtype=np.float32))
    engine.duck(-6, 0)
    out = _render_all(engine, 640, 160)
    ref = engine.reference.read(10000)
    np.testing.assert_array_equal(ref, out)
    assert engine.reference_stamps.latest() == (480, 480 / RATE)


def test_capture_engine_selects_channel_and_wakes():
    woke = []
    engine = CaptureEngine(sample_rate_hz=RATE, channels=6, channel=0, max_block=4)
    engine.wake = lambda: woke.append(True)
    frames = np.arange(60, dtype=np.int16).reshape(10, 6)  # 10 frames, 6 channels
    engine.push(frames.reshape(-1), adc_time_s=1.5)
    got = engine.ring.read(100)
    np.testing.assert_array_equal(got, frames[:, 0] / np.float32(32768))
    assert woke == [True] and engine.stamps.latest() == (0, 1.5) and engine.blocks == 1
    with pytest.raises(ValueError):
        CaptureEngine(sample_rate_hz=RATE, channels=2, channel=2)

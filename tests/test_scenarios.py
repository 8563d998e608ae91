"""The recorded-audio scenarios the benches and tests replay (device/scenarios.py)."""

import numpy as np

from device.scenarios import RATE_HZ, USER_VOICES, active_rms, far_field_response, interruption


def test_a_user_heard_through_a_room_keeps_their_level_and_onset_and_gains_a_tail():
    response = far_field_response(0.4, 0.0, seed=1)  # the direct sound as loud as the reverberation
    said = dict(text="Wait a second.", voice=USER_VOICES[0], at_s=1.0, total_s=4.0, noise_dbfs=None)
    dry, wet = interruption(**said), interruption(**said, response=response)

    assert abs(wet.onset_s - dry.onset_s) < 0.032  # within a frame: the direct sound comes first
    assert abs(20 * np.log10(active_rms(wet.audio) / active_rms(dry.audio))) < 1.0  # at_level: within a dB
    last = np.flatnonzero(np.abs(dry.audio) > 1e-3)[-1]  # where the dry voice ends
    after = slice(last + RATE_HZ // 50, last + RATE_HZ // 5)  # 20-200 ms later
    assert np.sqrt(np.mean(wet.audio[after] ** 2)) > 10 * np.sqrt(np.mean(dry.audio[after] ** 2)) + 1e-4

"""Would a second microphone let a person's onset through? A simulation on the held-out set.

    .venv/bin/python bench/two_mic_onset.py [--split test] [--jobs 2] [--limit N] [--spacing-cm 4.5]

The device has one mic; the target hardware has a mic array. This renders every interruption
of a running device in the split (as bench/onset_audibility.py does, from its seed, with the
person and with nobody) at the device's mic and at a second mic `--spacing-cm` beside it, in
the same simulated room (models/bargein/generate.py), and compares, per 32 ms window from the
person's onset, how far each output rises above what it leaves of the same echo:

- the raw mic and the device's front end (delay tracking and Speex), as in onset_audibility;
- mic to mic: the first mic minus the second through a fixed FIR (96 taps, the first mic 2 ms
  late), fitted by least squares on device speech with nobody talking (the nobody rendering's
  first 60 %). The loudspeaker sits centimetres from both mics, so its path from one mic to
  the other is fixed by the hardware and holds the loudspeaker's distortion, which Speex, fed
  the clean reference, cannot cancel; a person a metre or more away arrives differently;
- mic to mic, then the device's front end on its output.

What the simulation leaves out, each in the array's favour: the two mics are identical and
the loudspeaker is a point source (no vibration through the case); the room noise is
independent at the two mics. The filter is fitted in the same room as it is used in. So these
are an upper bound on what such a front end gives, not the device's figures. Prints the
median rise per window by echo level, and how many interruptions rise less than 1 dB in
their first 96 ms after each. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench"), str(REPO / "models" / "bargein")]

from generate import (DEVICE_VOICE_SEED, FRAME_SAMPLES, RATE, adc, device_lines, device_reference, draw,  # noqa: E402
                      echo_at, gain_to, render, room_irs_at, say, span)
from onset_audibility import (EARLY, QUIET_DB, device_front, print_medians, running_interruptions,  # noqa: E402
                              window_rises)

from device.scenarios import pink_noise  # noqa: E402

TAPS = 96
LOOK = 32  # samples the first mic is delayed by, so the filter can reach either side of it
FIT_SHARE = 0.6


def two_mics(spec, spacing_m: float) -> dict:
    """The scenario at the device's mic (exactly generate.render()'s, for an interruption or
    nobody) and at a second mic `spacing_m` beside it: the same sounds, at the same gains."""
    rng = np.random.default_rng(spec.seed + 7)
    lead, total = span(spec)
    ref = device_reference(spec, rng)
    irs = room_irs_at(spec, rng, [(0.0, 0.0, 0.0), (spacing_m, 0.0, 0.0)])
    echoes = [echo_at(spec, ref, ir["device"]) for ir in irs]
    gain = gain_to(echoes[0], spec.echo_dbfs)
    mics = [echo * gain + pink_noise(total / RATE + 0.1, spec.fan_dbfs, seed=spec.seed + 99_991 * m)[:total]
            for m, echo in enumerate(echoes)]
    onset = lead + int(spec.onset_s * RATE)
    if spec.kind == "interruption":
        dry = say(spec.voice[0], spec.voice[1], spec.text, spec.pitch, round(spec.speed, 2))
        wet = [np.convolve(dry, ir["user"])[: len(dry) + RATE // 4] for ir in irs]
        user_gain = gain_to(wet[0], spec.echo_dbfs - spec.echo_over_user_db)
        for mic, w in zip(mics, wet):
            end = min(total, onset + len(w))
            mic[onset:end] += w[: end - onset] * user_gain
    return {"mics": [adc(mic, spec) for mic in mics], "ref": ref, "onset": onset}


def fit(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Least-squares FIR taking the second mic to the first (delayed LOOK samples)."""
    rows = np.arange(TAPS + LOOK, len(first), 3)
    x = np.stack([second[rows - k] for k in range(TAPS)], axis=1).astype(np.float64)
    return np.linalg.lstsq(x, first[rows - LOOK].astype(np.float64), rcond=None)[0]


def mic_to_mic(first: np.ndarray, second: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """The first mic, LOOK samples late, minus what the fixed filter predicts of it from the second."""
    out = np.zeros_like(first)
    out[LOOK:] = first[:-LOOK] - np.convolve(second, taps)[LOOK : len(second)]
    return out.astype(np.float32)


def rises(job: tuple[int, float]) -> dict[str, tuple[list[float], float]]:
    """Per output, the rise (dB) of each 32 ms window from the onset of test scenario `index`
    (`job`: the index and the spacing), and of its first EARLY windows together."""
    index, spacing_m = job
    spec = draw("test", index)
    person, nobody = two_mics(spec, spacing_m), two_mics(replace(spec, kind="none"), spacing_m)
    n = len(person["ref"]) // FRAME_SAMPLES * FRAME_SAMPLES
    taps = fit(*(m[: int(FIT_SHARE * n)] for m in nobody["mics"]))
    late_ref = np.concatenate([np.zeros(LOOK, np.float32), person["ref"][:-LOOK]])[:n]
    outputs = {}
    for name, scene in (("heard", person), ("left", nobody)):
        first, second = (m[:n] for m in scene["mics"])
        both = mic_to_mic(first, second, taps)
        outputs[name] = {"no canceller (the first mic)": (first, 0),
                         "Speex (the device's front end)": (device_front(first, scene["ref"][:n]), 0),
                         "mic to mic": (both, LOOK),
                         "mic to mic, then Speex": (device_front(both, late_ref), LOOK)}
    return {name: window_rises(heard, outputs["left"][name][0], person["onset"] + late)
            for name, (heard, late) in outputs["heard"].items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spacing-cm", type=float, default=4.5, help="between the two mics")
    args, _, scenes = running_interruptions(parser)
    device_lines("test", DEVICE_VOICE_SEED)  # synthesized once, before the workers fork
    check = draw("test", scenes[0]["index"])
    if not np.array_equal(two_mics(check, args.spacing_cm / 100)["mics"][0], render(check)["mic"]):
        sys.exit("two_mics() no longer renders the device's mic as generate.render() does: mend it first")
    with ProcessPoolExecutor(args.jobs) as pool:
        rise = list(pool.map(rises, [(s["index"], args.spacing_cm / 100) for s in scenes]))
    names = list(rise[0])
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; split {args.split}: {len(scenes)} interruptions "
          f"of a running device; a second mic {args.spacing_cm:g} cm from the device's (simulated: identical mics, "
          "a point-source loudspeaker, the filter fitted in the same room)")
    print("\nmedian rise (dB) of each output over what it leaves of the same echo, per 32 ms from the onset")
    print_medians(rise, scenes, 32)
    print(f"\nrising less than {QUIET_DB:.0f} dB in their first {EARLY * 32} ms, of {len(scenes)}:")
    for name in names:
        print(f"  {name:<32}{sum(r[name][1] < QUIET_DB for r in rise):4d}")
    one = [k for k, r in enumerate(rise) if max(r[name][1] for name in names[:2]) < QUIET_DB]
    both = names[-1]
    print(f"of the {len(one)} that rise less than {QUIET_DB:.0f} dB in the first mic and after Speex, "
          f"'{both}' lifts {sum(rise[k][both][1] >= QUIET_DB for k in one)} to {QUIET_DB:.0f} dB or more, "
          f"{sum(rise[k][both][1] >= 3 for k in one)} to 3 dB or more")


if __name__ == "__main__":
    main()

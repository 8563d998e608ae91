"""How long the barge-in classifier is slow to hear a person after its state restarts.

    .venv/bin/python bench/classifier_restart.py [--split test] [--model M.onnx]

The device restarts the classifier's state when it starts speaking or thinking and after a
barge-in rejected for silence (a backchannel, a cough), so that it does not remember that
sound. The model was trained on scenarios that start from a fresh state with nobody talking
for at least 0.3 s, so a fresh state may be slow to believe in a person. This restarts it
`k` frames before each person's onset (running device, the held-out split of
bench/classifier_eval.py, open loop), optionally hearing again the frames that came before
the restart, and prints recall and onset -> confirmed p50 / p95 next to no restart at all.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np

from classifier_eval import FRAME_S, confirmed_ms, load_scenes, stack_rule
from device.config import load_config
from device.models import verified_path

BEFORE_ONSET = (1, 3, 6, 10, 16, 31)  # frames between the restart and the person's onset
REPLAYS = (0, 31, 62)  # frames heard again after the restart (0: a fresh state)


def latency_ms(scene: dict, k: int | None, replay: int, config, model) -> float | None:
    """Onset -> confirmed for the scenario's person, None if missed (a false alarm before the
    onset does not count: the run goes on from a fresh start, as after a confirmation)."""
    restart = None if k is None else scene["onset_frame"] - k
    return confirmed_ms(scene, stack_rule(scene, config, model, restart_at=restart, replay=replay))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="test")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--model", type=Path, help="another classifier ONNX (an experiment; default: the shipped one)")
    args = parser.parse_args()
    config = load_config(None)
    model = args.model or verified_path(config.bargein.classifier_model)
    longest = max(BEFORE_ONSET) + max(REPLAYS)
    # People once the canceller has converged, with enough device speech before them.
    scenes = [s for s in load_scenes(args.split, config.aec.converge_s)
              if s["kind"] == "interruption" and s["onset_frame"] >= max(s["warm_from"], longest)]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; split {args.split}: {len(scenes)} people "
          f"talking to a running device, at least {longest * FRAME_S:.1f} s into a scenario")
    print("  restart before the onset   heard again   recall  p50 ms  p95 ms")
    runs = [(None, 0)] + [(k, replay) for replay in REPLAYS for k in BEFORE_ONSET]
    with ProcessPoolExecutor(args.jobs) as pool:
        for k, replay in runs:
            got = [ms for ms in pool.map(partial(latency_ms, k=k, replay=replay, config=config, model=model), scenes,
                                         chunksize=8) if ms is not None]
            when = "never" if k is None else f"{k:2d} frames ({k * FRAME_S * 1000:.0f} ms)"
            print(f"  {when:25s}   {replay * FRAME_S:5.1f} s      {len(got) / len(scenes):.3f}  "
                  f"{np.percentile(got, 50):6.0f}  {np.percentile(got, 95):6.0f}")


if __name__ == "__main__":
    main()

"""Barge-in figures from closed-loop replays: latency, recall, false alarms per hour.

    .venv/bin/python bench/bargein.py [--jobs 2] [--quick]

Every scenario runs through `device.replay.replay` (the whole device, virtual clock,
echo loop). Interruptions, per level of the echo against the user, give recall and
onset -> tentative / confirmed / output -20 dB / output silent. Echo-only runs (the
device talking, nobody else), per level of room noise (a quiet room is the hard case:
nothing masks what the canceller leaves), give false tentatives (audible ducks) and false
confirmations (the device interrupting itself) per hour of device speech. Prints
figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from replay_set import ECHO_OVER_USER_DB, NOISE_IN_RECORDINGS_DBFS, make_set, user_gain_for  # noqa: E402

from device.config import Config, load_config, with_overrides  # noqa: E402
from device.replay import replay  # noqa: E402

ROOMS = ("small", "none")


# Room noise for the echo-only runs: the recordings hold pink noise at -55 dBFS, scaled here.
NOISE_DBFS = (-40.0, -55.0, -70.0)
WARM_S = Config().aec.converge_s  # from here on in each replay the canceller has converged


def run_one(job: tuple) -> dict:
    """One replay in a worker process; returns its figures. `level` is the echo over the
    user (interruptions) or the room noise in dBFS (echo-only runs)."""
    config_path, scenario, level, room, seed = job
    config = with_overrides(load_config(config_path), simulation={"echo_gain_db": 0.0, "room": room, "seed": seed})
    gain = user_gain_for(level) if scenario.onset_s is not None else level - NOISE_IN_RECORDINGS_DBFS
    result = asyncio.run(replay(config, scenario.user_wav, scenario.answer_wav, onset_s=scenario.onset_s,
                                user_gain_db=gain))
    early = [e["t"] for e in result.events if e["event"] == "bargein_confirmed"
             and (scenario.onset_s is None or e["t"] < scenario.onset_s)]
    # The device stops at its first false confirmation: the device speech it was exposed to
    # ends there. Each replay starts with a new echo canceller; from WARM_S on it has
    # converged, as it has in a device that has been talking since start-up.
    exposed_s = early[0] if early else (scenario.onset_s if scenario.onset_s is not None else scenario.answer_s)
    return {
        "level": level,
        "interrupt": scenario.onset_s is not None,
        "answer_s": scenario.answer_s,
        "tentative_ms": result.after_onset_ms(result.tentative_s),
        "confirmed_ms": result.after_onset_ms(result.confirmed_s),
        "minus20_ms": result.after_onset_ms(result.output_minus20db_s),
        "silent_ms": result.after_onset_ms(result.output_silent_s),
        "onset_s": scenario.onset_s,
        "false_confirms": int(bool(early)),
        "warm_false_confirms": int(bool(early) and early[0] >= WARM_S),
        "tentatives": result.tentatives,
        # speech the device played before anyone interrupted it (the exposure to false alarms)
        "exposure_s": exposed_s,
        "warm_exposure_s": max(0.0, exposed_s - WARM_S),
        "false_tentatives": sum(1 for e in result.events if e["event"] == "bargein_tentative"
                                and (scenario.onset_s is None or e["t"] < scenario.onset_s)),
    }


def _pct(values: list[float], q: float) -> str:
    return f"{np.percentile(values, q):6.0f}" if values else "     -"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="config TOML to benchmark (default: built-in defaults)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true", help="2 interruptions per answer, one echo-only room")
    args = parser.parse_args()

    interrupts, echo_only = make_set(per_answer=2 if args.quick else 6)
    jobs = []
    for echo_db in ECHO_OVER_USER_DB:
        for i, scenario in enumerate(interrupts):
            jobs.append((args.config, scenario, echo_db, ROOMS[i % 2], i))
    for noise_dbfs in NOISE_DBFS:
        for i, scenario in enumerate(echo_only):
            for room in ROOMS[:1] if args.quick else ROOMS:
                for seed in (0,) if args.quick else (0, 1, 2):
                    jobs.append((args.config, scenario, noise_dbfs, room, 1000 + 10 * i + seed))
    started = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(run_one, jobs))
    elapsed = time.perf_counter() - started

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"{len(jobs)} replays in {elapsed:.0f} s with {args.jobs} jobs\n")
    print(f"{len(interrupts)} interruptions (6 espeak-ng voices) per echo level; times in ms after the user's "
          "true onset")
    header = (f"{'echo-user':>9} | {'recall':>6} | {'tent p50':>8} {'p95':>6} | {'conf p50':>8} {'p95':>6} | "
              f"{'-20dB p50':>9} {'p95':>6} | {'silent p50':>10} {'p95':>6} | onset after {WARM_S:.0f} s: "
              "recalled, conf p50 p95")
    print(header)
    print("-" * len(header))
    for echo_db in ECHO_OVER_USER_DB:
        hit = [r for r in rows if r["interrupt"] and r["level"] == echo_db]
        confirmed = [r["confirmed_ms"] for r in hit if r["confirmed_ms"] is not None]
        tentative = [r["tentative_ms"] for r in hit if r["tentative_ms"] is not None]
        minus20 = [r["minus20_ms"] for r in hit if r["minus20_ms"] is not None]
        silent = [r["silent_ms"] for r in hit if r["silent_ms"] is not None]
        warm = [r for r in hit if r["onset_s"] >= WARM_S]
        warm_confirmed = [r["confirmed_ms"] for r in warm if r["confirmed_ms"] is not None]
        print(f"{echo_db:+7.0f}dB | {len(confirmed) / len(hit):6.2f} | {_pct(tentative, 50):>8} {_pct(tentative, 95)} | "
              f"{_pct(confirmed, 50):>8} {_pct(confirmed, 95)} | {_pct(minus20, 50):>9} {_pct(minus20, 95)} | "
              f"{_pct(silent, 50):>10} {_pct(silent, 95)} | {len(warm_confirmed)}/{len(warm)} "
              f"{_pct(warm_confirmed, 50)} {_pct(warm_confirmed, 95)}")
    before = [r for r in rows if r["interrupt"]]
    hours = sum(r["exposure_s"] for r in before) / 3600
    print(f"  before the users spoke ({hours * 60:.1f} min of device speech): "
          f"{sum(r['false_confirms'] for r in before) / hours:.1f} false confirmations/h, "
          f"{sum(r['false_tentatives'] for r in before) / hours:.0f} ducks/h")

    print("\nthe device talking, nobody else; 'ducks' are tentative barge-ins (audible dips), 'false conf' "
          "the device interrupting itself")
    print(f"{'room noise':>10} | {'device speech':>13} | {'false conf/h':>12} | {'ducks/h':>7} | "
          f"after {WARM_S:.0f} s: false conf/h")
    for noise_dbfs in NOISE_DBFS:
        level = [r for r in rows if not r["interrupt"] and r["level"] == noise_dbfs]
        hours = sum(r["exposure_s"] for r in level) / 3600
        warm_hours = sum(r["warm_exposure_s"] for r in level) / 3600
        print(f"{noise_dbfs:6.0f} dBFS | {hours * 60:9.1f} min | {sum(r['false_confirms'] for r in level) / hours:12.1f} | "
              f"{sum(r['false_tentatives'] for r in level) / hours:7.0f} | "
              f"{sum(r['warm_false_confirms'] for r in level) / warm_hours:6.1f} in {warm_hours * 60:.1f} min")


if __name__ == "__main__":
    main()

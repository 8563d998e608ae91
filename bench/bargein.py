"""Barge-in figures from closed-loop replays: latency, recall, false alarms per hour.

    .venv/bin/python bench/bargein.py [--jobs 2] [--quick]

Every scenario runs through `device.replay.replay` (the whole device, virtual clock,
echo loop). Interruptions give onset -> tentative / confirmed / output -20 dB /
output silent; echo-only runs (the device talking, nobody else) give false
tentatives (audible ducks) and false confirmations (the device interrupting itself)
per hour of device speech. Prints figures; asserts nothing about time.
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

from replay_set import ECHO_OVER_USER_DB, echo_gain_for, make_set  # noqa: E402

from device.config import load_config, with_overrides  # noqa: E402
from device.replay import replay  # noqa: E402

ROOMS = ("small", "none")


def run_one(job: tuple) -> dict:
    """One replay in a worker process; returns its figures."""
    config_path, scenario, echo_db, room, seed = job
    config = with_overrides(load_config(config_path),
                            simulation={"echo_gain_db": echo_gain_for(echo_db), "room": room, "seed": seed})
    result = asyncio.run(replay(config, scenario.user_wav, scenario.answer_wav, onset_s=scenario.onset_s))
    early = [e for e in result.events if e["event"] == "bargein_confirmed"
             and (scenario.onset_s is None or e["t"] < scenario.onset_s)]
    return {
        "echo_db": echo_db,
        "interrupt": scenario.onset_s is not None,
        "answer_s": scenario.answer_s,
        "tentative_ms": result.after_onset_ms(result.tentative_s),
        "confirmed_ms": result.after_onset_ms(result.confirmed_s),
        "minus20_ms": result.after_onset_ms(result.output_minus20db_s),
        "silent_ms": result.after_onset_ms(result.output_silent_s),
        "false_confirms": len(early),
        "tentatives": result.tentatives,
        # speech the device played before anyone interrupted it (the exposure to false alarms)
        "exposure_s": scenario.onset_s if scenario.onset_s is not None else scenario.answer_s,
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
        for i, scenario in enumerate(echo_only):
            for room in ROOMS[:1] if args.quick else ROOMS:
                for seed in (0,) if args.quick else (0, 1, 2):
                    jobs.append((args.config, scenario, echo_db, room, 1000 + 10 * i + seed))
    started = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(run_one, jobs))
    elapsed = time.perf_counter() - started

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"{len(jobs)} replays in {elapsed:.0f} s with {args.jobs} jobs")
    per_level = [r for r in rows if r["echo_db"] == ECHO_OVER_USER_DB[0]]
    print(f"per echo level: {len(interrupts)} interruptions (6 espeak-ng voices) and "
          f"{sum(r['exposure_s'] for r in per_level) / 60:.1f} min of device speech before any user spoke\n")
    header = (f"{'echo-user':>9} | {'recall':>6} | {'tent p50':>8} {'p95':>6} | {'conf p50':>8} {'p95':>6} | "
              f"{'-20dB p50':>9} {'p95':>6} | {'silent p50':>10} {'p95':>6} | {'false conf/h':>12} | {'ducks/h':>7}")
    print(header)
    print("-" * len(header))
    for echo_db in ECHO_OVER_USER_DB:
        level = [r for r in rows if r["echo_db"] == echo_db]
        hit = [r for r in level if r["interrupt"]]
        confirmed = [r["confirmed_ms"] for r in hit if r["confirmed_ms"] is not None]
        tentative = [r["tentative_ms"] for r in hit if r["tentative_ms"] is not None]
        minus20 = [r["minus20_ms"] for r in hit if r["minus20_ms"] is not None]
        silent = [r["silent_ms"] for r in hit if r["silent_ms"] is not None]
        hours = sum(r["exposure_s"] for r in level) / 3600
        false_conf = sum(r["false_confirms"] for r in level) / hours
        ducks = sum(r["false_tentatives"] for r in level) / hours
        print(f"{echo_db:+7.0f}dB | {len(confirmed) / len(hit):6.2f} | {_pct(tentative, 50):>8} {_pct(tentative, 95)} | "
              f"{_pct(confirmed, 50):>8} {_pct(confirmed, 95)} | {_pct(minus20, 50):>9} {_pct(minus20, 95)} | "
              f"{_pct(silent, 50):>10} {_pct(silent, 95)} | {false_conf:12.1f} | {ducks:7.0f}")
    print("\ntimes in ms after the user's true onset; 'ducks' are tentative barge-ins without a user "
          "(audible dips), 'false conf' the device interrupting itself")


if __name__ == "__main__":
    main()

"""The `voice-device` command line: detect, replay, run."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from .config import Config, load_config, with_overrides
from .errors import DeviceError

_LOGGER = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voice-device", description="A smart speaker you can interrupt.")
    parser.add_argument("--config", help="TOML config file (default: $VOICE_DEVICE_CONFIG, else built-in defaults)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("detect", help="run the listening stack over a recording; JSON lines on stdout")
    p.add_argument("--mic", required=True, help="what the microphone heard (WAV)")
    p.add_argument("--ref", help="what went to the DAC, sample-aligned with MIC (WAV, any rate)")

    p = sub.add_parser("replay", help="the whole device in a closed echo loop on recordings")
    p.add_argument("--mic", required=True, help="the user's recording: the mic input before echo (WAV)")
    p.add_argument("--play", help="an answer the device speaks first (WAV); without it the device starts idle")
    p.add_argument("--out", required=True, help="where to write what the DAC received (WAV)")
    p.add_argument("--events", required=True, help="where to write the event log (JSON lines)")
    p.add_argument("--room", choices=["small", "none"], help="room response of the echo path (default: config)")
    p.add_argument("--echo-db", type=float, help="echo level at the mic relative to the output (default: config)")
    p.add_argument("--realtime", action="store_true", help="pace the virtual clock to the wall clock")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.add_argument("--listen-only", action="store_true",
                   help="no recognition or answers: only the listening stack and barge-in")

    p = sub.add_parser("demo", help="a whole conversation with an interruption, offline; writes results")
    p.add_argument("--out-dir", default="demo-out", help="where to write output.wav, events, history, timeline")

    p = sub.add_parser("run", help="the device on the real audio devices set in config")
    p.add_argument("--play", help="speak this WAV first (try interrupting it)")
    p.add_argument("--events", help="event log file (default: telemetry.events_path)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        config = load_config(args.config)
        if args.command == "detect":
            from .detect import detect

            detect(config, args.mic, args.ref, sys.stdout)
        elif args.command == "replay":
            return _replay(config, args)
        elif args.command == "demo":
            from .demo import run_demo

            print(run_demo(config, Path(args.out_dir)))
        elif args.command == "run":
            return _run(config, args)
    except DeviceError as err:
        print(f"voice-device: {err}", file=sys.stderr)
        return 2
    except ExceptionGroup as group:  # raised from inside the device's TaskGroup
        matched, rest = group.split(DeviceError)
        if matched is None or rest is not None:
            raise
        for err in _leaves(matched):
            print(f"voice-device: {err}", file=sys.stderr)
        return 2
    return 0


def _leaves(group: BaseExceptionGroup):
    for err in group.exceptions:
        if isinstance(err, BaseExceptionGroup):
            yield from _leaves(err)
        else:
            yield err


def _replay(config: Config, args) -> int:
    from .replay import format_result, replay, result_json

    overrides = {}
    if args.room:
        overrides["room"] = args.room
    if args.echo_db is not None:
        overrides["echo_gain_db"] = args.echo_db
    if overrides:
        config = with_overrides(config, simulation=overrides)
    engines = None
    if not args.listen_only:
        from .app import load_engines

        engines = load_engines(config)
    result = asyncio.run(replay(config, args.mic, args.play, engines=engines, out_wav=args.out,
                                events_path=args.events, realtime=args.realtime))
    print(result_json(result) if args.json else format_result(result))
    return 0


def _run(config: Config, args) -> int:
    from .app import attach, load_engines
    from .audio.pyaudio_backend import PyAudioBackend
    from .audio.wav import read_wav
    from .core import VoiceDevice
    from .telemetry import EventLog, Telemetry
    from .turn import RecordedAnswer

    speak = None
    if args.play:
        audio = read_wav(args.play)
        speak = RecordedAnswer(audio.mono(), audio.sample_rate_hz)
    engines = load_engines(config)

    async def main_task() -> None:
        events = EventLog(path=args.events or config.telemetry.events_path or None)
        device = VoiceDevice(config, PyAudioBackend(config.audio), events=events, telemetry=Telemetry(config.telemetry))
        attach(device, engines)
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await device.run(speak=speak)
        except asyncio.CancelledError:
            _LOGGER.info("Stopped")
        finally:
            events.close()

    asyncio.run(main_task())
    return 0

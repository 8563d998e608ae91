"""One cancellation stops everything of a turn, and nothing of it survives.

The device runs in the closed echo loop with real Whisper and Piper and a real HTTP
LLM server on loopback that streams its answer slowly. The user asks for a story and
talks over the answer while the LLM is still generating and Piper is synthesizing.
"""

import asyncio
import threading
import time

import numpy as np
import pytest

from conftest import onset_of
from device.app import Engines, attach
from device.audio.simulated import SimulatedBackend
from device.audio.wav import read_mono
from device.config import Config, LlmConfig, with_overrides
from device.conversation import INTERRUPTED_MARK
from device.core import VoiceDevice
from device.llm import OpenAIChat
from device.telemetry import EventLog
from llm_server import LoopbackLLM, Reply

LONG_ANSWER = ("The hare was always boasting about how fast he could run. One morning he laughed at the tortoise. "
               "The tortoise said, let us race to the old oak tree on the hill. The hare agreed at once. "
               "When the race began the hare shot ahead and was soon out of sight. Halfway up the hill he "
               "lay down for a nap. The tortoise kept walking, one slow step after another. ") * 3


class SpySynth:
    """The real synthesizer, recording when each job ran (on the TTS worker thread)."""

    def __init__(self, real):
        self.real, self.name, self.jobs = real, real.name, []

    def synthesize(self, text):
        started = time.monotonic()
        speech = self.real.synthesize(text)
        self.jobs.append((text, started, time.monotonic(), threading.current_thread().name))
        return speech


def mic_for_test(recordings_dir):
    """The demo's question at 0.5 s, then its (loud) interruption moved to 5.5 s: about 1.5 s
    after the LLM's first token, when the answer is playing even on a slow machine (a user
    who talks before it plays has heard none of it, and the test is about what they heard)."""
    demo = read_mono(recordings_dir.parent.parent / "device" / "data" / "demo_conversation.wav", 16000)
    mic = np.zeros(16000 * 10, dtype=np.float32)
    mic[: 16000 * 3] = demo[: 16000 * 3]
    mic[16000 * 5 : 16000 * 8] = demo[int(9.5 * 16000) : int(12.5 * 16000)]
    return mic, 5.5


def run_device(mic, whisper, synth, server, monkeypatch, startup_caution=False, **llm_cfg):
    """The device on `mic` with real Whisper, `synth` and the loopback LLM; returns (device, backend, leftovers)."""
    monkeypatch.setenv("LOOPBACK_KEY", "k")
    llm = OpenAIChat(LlmConfig(base_url=server.base_url, api_key_env="LOOPBACK_KEY", **llm_cfg))
    # The barge-in tests are about the cancel, not start-up: no extra caution for a new
    # canceller, whose length in real time would depend on how fast this machine synthesizes.
    config = Config() if startup_caution else with_overrides(Config(), aec={"converge_s": 0.0})
    backend = SimulatedBackend(mic, audio=config.audio, simulation=config.simulation)
    device = attach(VoiceDevice(config, backend, events=EventLog()), Engines(whisper, llm, synth))

    async def main():
        await asyncio.wait_for(device.run(), 120)
        await llm.close()
        return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]

    return device, backend, asyncio.run(main())


def test_barge_in_cancels_llm_tts_and_playback_at_once(whisper, piper, recordings, monkeypatch):
    mic, interrupt_at = mic_for_test(recordings)
    replies = [Reply(text=LONG_ANSWER, first_token_s=0.1, token_s=0.05), Reply(text="It is half past two.")]
    with LoopbackLLM(replies) as server:
        spy = SpySynth(piper)
        device, backend, leftovers = run_device(mic, whisper, spy, server, monkeypatch)
        config = device.config
        events = device.events.records

        # The barge-in came while turn 1 was still streaming from the LLM.
        confirmed = next((e for e in events if e["event"] == "bargein_confirmed"), None)
        assert confirmed, "; ".join(f"{e['t']:.3f} {e['event']} {e.get('reason', e.get('to', ''))}" for e in events
                                    if e["event"].startswith(("bargein", "say", "state")))
        # (How fast depends on what the answer was saying at that moment, which depends on real
        # compute time here; bench/bargein.py measures latency. This test is about the cancel.)
        assert interrupt_at < confirmed["t"] < interrupt_at + 1.0
        cancelled = next(e for e in events if e["event"] == "turn_cancelled" and e["turn"] == 1)
        assert cancelled["finished"] is True
        first = server.connections[0]
        # The HTTP stream was closed by the client and the server stopped generating.
        assert first.closed_by_client_at is not None and first.finished_at is None
        assert first.tokens_sent < len(LONG_ANSWER.split())
        # Nothing of turn 1 came after its cancellation: no synthesized sentence was played.
        after = events[events.index(cancelled):]
        assert not [e for e in after if e["event"] == "say" and e["turn"] == 1]
        # No late audio: silent from the end of the fade until turn 2's answer.
        rate = config.audio.playback_rate_hz
        fade_end = int((confirmed["t"] + 0.2) * rate)
        answer2 = next(e for e in events if e["event"] == "say" and e["turn"] == 2)
        assert not np.any(backend.output[fade_end : int(answer2["t"] * rate)])
        # The new turn heard the new words and knew what the user had heard of the old one.
        transcripts = [e["text"] for e in events if e["event"] == "transcript"]
        assert "story" in transcripts[0].lower() and "time" in transcripts[1].lower()
        request2 = server.connections[-1].requests[-1]["messages"]
        interrupted = [m for m in request2 if m["role"] == "assistant"]
        assert interrupted and interrupted[0]["content"].endswith(INTERRUPTED_MARK)
        heard = interrupted[0]["content"].removesuffix(INTERRUPTED_MARK).strip()
        assert heard and LONG_ANSWER.startswith(heard.rstrip(".,"))  # a prefix: only what was played
        assert len(heard) < len(LONG_ANSWER) / 3
        # Every job ran on the one TTS worker; the device's tasks are all gone.
        assert {name for *_, name in spy.jobs} == {"tts_0"}
        assert leftovers == []
        assert server.open_connections == 0
        assert device.work_in_flight == 0


def test_barge_in_while_waiting_for_the_first_token_closes_the_request(whisper, piper, recordings, monkeypatch):
    mic, interrupt_at = mic_for_test(recordings)
    replies = [Reply(text="Too late.", first_token_s=30.0), Reply(text="It is half past two.")]
    with LoopbackLLM(replies) as server:
        device, _, leftovers = run_device(mic, whisper, piper, server, monkeypatch, first_token_timeout_s=60.0)
        events = device.events.records
        confirmed = next(e for e in events if e["event"] == "bargein_confirmed")
        assert confirmed["t"] > interrupt_at
        states = [(e["from"], e["to"]) for e in events if e["event"] == "state"]
        assert ("thinking", "listening") in states  # interrupted while thinking
        first = server.connections[0]
        assert server.wait_for(lambda: first.closed_by_client_at is not None) and first.tokens_sent == 0
        # The question is remembered; no answer was heard, so none is stored.
        assert device.conversation.exchanges[0].assistant == ""
        assert [m["role"] for m in server.connections[-1].requests[-1]["messages"]] == ["system", "user", "user"]
        assert leftovers == [] and server.open_connections == 0


def test_llm_failure_is_spoken_briefly_and_logged(whisper, piper, recordings, monkeypatch):
    from device.assistant import SORRY_BEFORE

    mic = np.zeros(16000 * 7, dtype=np.float32)
    mic[: 16000 * 3] = mic_for_test(recordings)[0][: 16000 * 3]
    with LoopbackLLM([Reply(status=500)] * 3) as server:
        # The apology is the device's first sound since start-up: the canceller is new and
        # leaks its first echo whole, which the start-up caution is there for (without it
        # the apology interrupted itself in 1 run of 4 on a loaded machine).
        device, _, leftovers = run_device(mic, whisper, piper, server, monkeypatch, startup_caution=True, retries=1)
        events = device.events.records
        failed = next(e for e in events if e["event"] == "llm_failed")
        assert failed["code"] == "llm_status" and "HTTP 500" in failed["message"]
        assert [e["text"] for e in events if e["event"] == "say"] == [SORRY_BEFORE], "\n".join(
            f"{e['t']:.3f} {e['event']} {e.get('cause', '')} {e.get('text', '')}" for e in events)
        assert sum(len(c.requests) for c in server.connections) == 2  # the first try and one retry
        assert any(e["event"] == "answer_done" for e in events) and leftovers == []

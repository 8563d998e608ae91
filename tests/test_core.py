"""The device's loop: one cancellation per turn, nothing left running, spans recorded."""

import asyncio

import numpy as np
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from conftest import onset_of
from device.audio.simulated import SimulatedBackend
from device.audio.wav import read_mono
from device.config import Config, TelemetryConfig
from device.core import VoiceDevice
from device.state import Event, State
from device.telemetry import EventLog, Telemetry
from device.stt import Partial


class StalledResponder:
    """A turn that never gets its first token: what a slow LLM looks like from the loop."""

    def __init__(self):
        self.calls: list[str] = []
        self.cancelled = 0

    async def respond(self, transcript, conversation, speak):
        self.calls.append(transcript)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


class CountingRecognizer:
    """Implements the Recognizer interface; says how much audio each utterance had."""

    name = "counting"

    def __init__(self):
        self.utterance_samples: list[int] = []

    def start(self):
        recognizer = self

        class Session:
            samples = 0

            def accept(self, audio):
                self.samples += len(audio)
                return Partial("")

            def prepare(self):
                pass

            def final(self):
                recognizer.utterance_samples.append(self.samples)
                return f"utterance {len(recognizer.utterance_samples)}"

        return Session()


def speech(recordings, name, seconds):
    onset = onset_of(name)
    audio = read_mono(recordings / name, 16000)
    return audio[int(onset * 16000) - 1600 : int((onset + seconds) * 16000)]


def conversation(recordings):
    """A question at 0.5 s, then, while the device thinks, the user speaks again at 4 s."""
    mic = np.zeros(16000 * 8, dtype=np.float32)
    first = speech(recordings, "interrupt_f3.wav", 1.8)
    second = speech(recordings, "interrupt_m3.wav", 1.2)
    mic[8000 : 8000 + len(first)] += first
    mic[64000 : 64000 + len(second)] += second
    return mic


async def run_device(recordings, responder, exporter=None, recognizer=None):
    config = Config()
    backend = SimulatedBackend(conversation(recordings), audio=config.audio, simulation=config.simulation)
    device = VoiceDevice(config, backend, events=EventLog(), responder=responder,
                         recognizer=recognizer or CountingRecognizer(),
                         telemetry=Telemetry(TelemetryConfig(), exporter=exporter))
    await asyncio.wait_for(device.run(), 60)
    leftovers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    return device, leftovers


def test_speaking_while_the_device_thinks_cancels_the_turn(recordings):
    responder, recognizer = StalledResponder(), CountingRecognizer()
    device, leftovers = asyncio.run(run_device(recordings, responder, recognizer=recognizer))
    events = device.events.records
    kinds = [e["event"] for e in events]
    assert kinds.count("bargein_confirmed") == 1
    confirmed = next(e for e in events if e["event"] == "bargein_confirmed")
    # "Okay stop please.": "okay" alone is a backchannel, "stop" confirms (~300 ms in).
    assert 4.0 < confirmed["t"] < 4.5
    # The stalled turn got exactly one cancellation, and it finished within the bound.
    cancelled = [e for e in events if e["event"] == "turn_cancelled"]
    assert cancelled[0]["cause"] == "bargein_confirmed" and cancelled[0]["finished"] is True
    assert cancelled[0]["heard_s"] == 0.0  # nothing had been played
    # The new words went to a new turn, pre-roll first: the recognizer got the whole utterance.
    assert responder.calls == ["utterance 1", "utterance 2"]
    second = device.utterances[-1]
    assert second.after_bargein and second.start_s < 4.1  # the words start at 4.1 s: none lost
    assert recognizer.utterance_samples[1] == len(second.audio)
    # Interrupted while thinking: the question is remembered, no answer was heard, none stored.
    assert [(e.user, e.assistant) for e in device.conversation.exchanges] == [("utterance 1", ""), ("utterance 2", "")]
    # At the end of the input the second turn was stopped too: every turn cancelled once.
    assert responder.cancelled == 2
    assert device.state is State.IDLE
    assert leftovers == []  # no task of any turn outlives the device


def test_turn_and_bargein_spans(recordings):
    exporter = InMemorySpanExporter()
    asyncio.run(run_device(recordings, StalledResponder(), exporter))
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert spans["bargein.detect"].attributes["outcome"] == "confirmed"
    handle = spans["bargein.handle"].attributes
    assert handle["operations_cancelled"] and handle["llm_stopped"] and handle["tts_stopped"] is False
    assert handle["cancel_ms"] >= 0
    turns = [s for s in exporter.get_finished_spans() if s.name == "turn"]
    assert len(turns) == 2 and all(s.attributes.get("cancelled") for s in turns)


def test_stale_result_of_a_cancelled_turn_is_dropped():
    config = Config()
    backend = SimulatedBackend(np.zeros(1600, np.float32), audio=config.audio, simulation=config.simulation)
    device = VoiceDevice(config, backend, events=EventLog())
    device.dispatch(Event.ANSWER_DONE, turn_id=41)  # a result of a turn that no longer exists
    assert device.state is State.IDLE
    assert device.events.records[-1]["event"] == "stale_event"

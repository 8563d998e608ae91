"""The device: one asyncio loop that owns all state and changes it in one place.

Audio arrives through the backend's callback, which only signals; `_on_audio` then
runs every complete 32 ms frame through the listening stack on the loop. Whatever
happens (a barge-in decision, the end of an utterance, a turn finishing) becomes an
Event for `dispatch`, which looks the transition up in device/state.py, records it,
and carries out its actions.

A turn starts when listening starts and is one task in the device's TaskGroup: it
recognises the utterance (fed frame by frame from here), asks the responder (LLM ->
TTS) for the answer and plays it. Cancelling that task is the one cancellation that
stops recognition, generation and synthesis together; blocking engine calls run on
one STT and one TTS worker thread, and a cancelled turn's pending result is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .audio.frontend import RATE_HZ, AudioFrontEnd
from .audio.speaker import Speaker
from .config import Config
from .conversation import Conversation
from .listen.stack import FrameReport, ListeningStack
from .state import Action, Event, State, barge_in_applies, transition
from .stt import Recognizer
from .telemetry import EventLog, Telemetry
from .tts import Speech
from .turn import END, PREPARE, Responder, Turn, Utterance

_LOGGER = logging.getLogger(__name__)

REAP_TIMEOUT_S = 2.0  # a cancelled turn that takes longer than this to finish is a bug
PREPARE_AFTER_S = 0.25  # a pause this long lets a non-streaming recognizer start early


def _await_chain(coro) -> str:
    """Where a coroutine is suspended: file:line of each coroutine in its await chain."""
    lines = []
    while coro is not None and len(lines) < 40:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            lines.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None) or getattr(coro, "gi_yieldfrom", None)
    return " <- ".join(reversed(lines))


def _stuck_report() -> str:
    """Every unfinished task and where it waits (logged when a cancelled turn does not end)."""
    return "".join(f"\n  {task.get_name()}: {_await_chain(task.get_coro())}"
                   for task in asyncio.all_tasks() if not task.done())


@dataclass(frozen=True)
class Cancellation:
    """How a turn's cancellation went (wall clock, for benchmarks)."""

    turn_id: int
    cause: str
    at_monotonic_s: float
    """time.monotonic() when the turn's task was cancelled."""
    finished_ms: float
    """From the cancel until the turn's task (and so everything it awaited) had finished."""
    finished: bool


class _UtteranceBuffer:
    """Collects an utterance (pre-roll first) and decides when it has ended."""

    def __init__(self, preroll: np.ndarray, start_index: int, now_s: float, after_bargein: bool,
                 speech_in_progress: bool, end_silence_s: float, timeout_s: float, max_s: float) -> None:
        self.chunks = [preroll]
        self.after_bargein = after_bargein
        self.start_index = start_index
        self.end_index = start_index + len(preroll)
        self.started_s = now_s
        self.speech_seen = speech_in_progress
        self.last_speech_s = now_s
        self.prepared = False
        self._end_silence_s = end_silence_s
        self._timeout_s = timeout_s
        self._max_s = max_s

    def add(self, mic: np.ndarray, start_index: int, now_s: float, speech: bool) -> bool:
        """Keep a frame unless the pre-roll already holds it; True when it was new."""
        if speech:
            self.speech_seen = True
            self.last_speech_s = now_s
            self.prepared = False
        if start_index < self.end_index:
            return False
        self.chunks.append(mic)
        self.end_index = start_index + len(mic)
        return True

    def pause_s(self, now_s: float) -> float:
        """How long the user has been quiet (0 before any speech)."""
        return now_s - self.last_speech_s if self.speech_seen else 0.0

    def ended(self, now_s: float) -> Event | None:
        """UTTERANCE_END, LISTEN_TIMEOUT, or None while the utterance goes on."""
        if self.speech_seen and self.pause_s(now_s) >= self._end_silence_s:
            return Event.UTTERANCE_END
        if not self.speech_seen and now_s - self.started_s >= self._timeout_s:
            return Event.LISTEN_TIMEOUT
        if now_s - self.started_s >= self._max_s:
            return Event.UTTERANCE_END
        return None

    def finish(self) -> Utterance:
        audio = np.concatenate(self.chunks)
        return Utterance(audio, self.start_index / RATE_HZ, self.end_index / RATE_HZ, self.after_bargein)


class VoiceDevice:
    """The state machine, the listening stack and the turn, on one event loop."""

    def __init__(
        self,
        config: Config,
        backend,
        *,
        events: EventLog,
        responder: Responder | None = None,
        recognizer: Recognizer | None = None,
        telemetry: Telemetry | None = None,
        stack: ListeningStack | None = None,
        conversation: Conversation | None = None,
    ) -> None:
        self.config = config
        self.backend = backend
        self.frontend = AudioFrontEnd(backend.capture, backend.playback, align_by_clock=backend.align_by_clock)
        self.speaker = Speaker(backend.playback)
        self.stack = stack or ListeningStack(config)
        self.events = events
        self.telemetry = telemetry or Telemetry(config.telemetry)
        self.responder = responder
        self.recognizer = recognizer
        self.conversation = conversation or Conversation(config.llm.system_prompt, config.llm.history_turns)
        self.state = State.IDLE
        self.utterances: deque[Utterance] = deque(maxlen=8)
        self.cancellations: list[Cancellation] = []
        self.frame_observers: list[Callable[[FrameReport], None]] = []  # e.g. the demo's timeline
        self.work_in_flight = 0  # engine calls and LLM waits under way (the simulator paces on it)
        self._stt_pool = ThreadPoolExecutor(1, thread_name_prefix="stt")
        self._tts_pool = ThreadPoolExecutor(1, thread_name_prefix="tts")
        self._turn: Turn | None = None
        self._turn_ids = itertools.count(1)
        self._listening: _UtteranceBuffer | None = None
        self._tg: asyncio.TaskGroup | None = None
        self._failure: asyncio.Future | None = None
        self._detect_span: Any = None
        self._handle_span: Any = None

    @property
    def now_s(self) -> float:
        """Seconds of microphone audio processed: the clock every event is stamped with."""
        return self.frontend.samples_consumed / RATE_HZ

    def emit(self, event: str, **fields: Any) -> None:
        """Record an event at the current mic time."""
        self.events.emit(self.now_s, event, **fields)

    # -- services for the turn -------------------------------------------------------------

    @contextlib.contextmanager
    def working(self):
        """Marks engine work under way (the simulated clock keeps pace with it)."""
        self.work_in_flight += 1
        try:
            yield
        finally:
            self.work_in_flight -= 1

    async def _blocking(self, pool: ThreadPoolExecutor, fn: Callable, *args):
        with self.working():
            return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    async def run_stt(self, fn: Callable, *args):
        """Run a blocking recognizer call on the STT worker thread."""
        return await self._blocking(self._stt_pool, fn, *args)

    async def run_tts(self, fn: Callable, *args):
        """Run a blocking synthesizer call on the TTS worker thread."""
        return await self._blocking(self._tts_pool, fn, *args)

    # -- running ----------------------------------------------------------------------

    async def run(self, speak: Responder | None = None) -> None:
        """Run until the backend ends (recorded input used up) or the task is cancelled."""
        loop = asyncio.get_running_loop()
        self.speaker.bind(loop)
        self._failure = loop.create_future()
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                if speak is not None:
                    self.dispatch(Event.SPEAK, answer=speak)
                backend = tg.create_task(
                    self.backend.run(self._on_audio_safely, busy=lambda: self.work_in_flight > 0),
                    name="audio-backend")
                await asyncio.wait([backend, self._failure], return_when=asyncio.FIRST_COMPLETED)
                if self._failure.done():
                    backend.cancel()
                    raise self._failure.exception()
                if self.state is not State.IDLE:
                    self.dispatch(Event.STOP, reason="input_ended")
        finally:
            self._tg = None
            # Engine jobs still running finish on their threads; nothing waits for their results.
            self._stt_pool.shutdown(wait=True, cancel_futures=True)
            self._tts_pool.shutdown(wait=True, cancel_futures=True)
            self.telemetry.shutdown()

    def _on_audio_safely(self) -> None:
        try:
            self._on_audio()
        except Exception as err:  # noqa: BLE001 - surfaced through run(), not lost in the loop
            _LOGGER.exception("Audio processing failed")
            if self._failure is not None and not self._failure.done():
                self._failure.set_exception(err)

    def _on_audio(self) -> None:
        for mic, ref, start_index in self.frontend.frames():
            report = self.stack.process(mic, ref, start_index, active=barge_in_applies(self.state))
            for observer in self.frame_observers:
                observer(report)
            self._handle_report(report, start_index)

    def _handle_report(self, report: FrameReport, start_index: int) -> None:
        if report.boundary is not None:
            self.events.emit(report.end_s, report.boundary.kind, onset=report.boundary.onset_s, state=self.state)
            if (report.boundary.kind == "speech_start" and self.state is State.IDLE
                    and self.config.listen.wake == "vad"):
                self.dispatch(Event.WAKE, onset_s=report.boundary.onset_s)
        for decision in report.decisions:
            self.events.emit(report.end_s, decision.kind, onset=decision.onset_s, reason=decision.reason,
                             vad=report.vad_prob, p_user=report.user_prob, margin_db=report.margin_db)
            self.dispatch(Event(decision.kind), onset_s=decision.onset_s, decision=decision)
        if self.state is State.LISTENING and self._listening is not None:
            self._listen(report, start_index)

    def _listen(self, report: FrameReport, start_index: int) -> None:
        # The recognizer hears the mic after the echo canceller: after a barge-in the pre-roll
        # and the user's first words overlap the device's own voice, and from the raw mic
        # Whisper sometimes transcribed the device's words as the user's.
        buffer = self._listening
        speech = report.vad_prob >= self.config.vad.offset_threshold
        if buffer.add(report.clean, start_index, report.end_s, speech) and self._turn is not None:
            self._turn.give(report.clean)
        if not buffer.prepared and buffer.pause_s(report.end_s) >= PREPARE_AFTER_S and self._turn is not None:
            buffer.prepared = True
            self._turn.give(PREPARE)
        ended = buffer.ended(report.end_s)
        if ended is not None:
            self.dispatch(ended)

    # -- the one place state changes ---------------------------------------------------

    def dispatch(self, event: Event, turn_id: int | None = None, **info: Any) -> None:
        """Apply `event`: look up the transition, record it, carry out its actions."""
        if turn_id is not None and (self._turn is None or self._turn.turn_id != turn_id):
            self.emit("stale_event", cause=event, turn=turn_id)
            return  # a result of a turn that no longer exists
        step = transition(self.state, event)
        if step is None:
            _LOGGER.debug("%s ignored in %s", event.value, self.state.value)
            return
        previous, self.state = self.state, step.next_state
        self.emit("state", **{"from": previous, "to": step.next_state, "cause": event})
        for action in step.actions:
            self._act(action, event, info)

    def _act(self, action: Action, event: Event, info: dict) -> None:
        cfg = self.config.bargein
        if action is Action.DUCK:
            self.speaker.duck(cfg.duck_db, cfg.duck_ms)
            self._detect_span = self.telemetry.start_span("bargein.detect", onset_s=info.get("onset_s"))
        elif action is Action.UNDUCK:
            self.speaker.unduck(cfg.unduck_ms)
            self._end_detect_span("rejected" if event is Event.BARGEIN_REJECTED else event.value)
        elif action is Action.FADE_OUT:
            self.speaker.fade_out(cfg.fade_ms)
        elif action is Action.CANCEL_TURN:
            self._cancel_turn(event)
        elif action is Action.START_LISTENING:
            self._start_listening(info.get("onset_s"), after_bargein=event is Event.BARGEIN_CONFIRMED)
        elif action is Action.STOP_LISTENING:
            self._stop_listening()
        elif action is Action.START_ANSWER:
            self._start_turn(info["answer"], listen=False)
        elif action is Action.END_TURN:
            self._end_turn()

    # -- actions ----------------------------------------------------------------------

    def _start_listening(self, onset_s: float | None, after_bargein: bool) -> None:
        onset_index = round(onset_s * RATE_HZ) if onset_s is not None else self.frontend.samples_consumed
        start = max(0, onset_index - round(self.config.bargein.preroll_ms * RATE_HZ / 1000))
        cfg = self.config.listen
        start, preroll = self.stack.cleaned_since(start)
        self._listening = _UtteranceBuffer(
            preroll, start, self.now_s, after_bargein, speech_in_progress=onset_s is not None,
            end_silence_s=cfg.end_silence_ms / 1000, timeout_s=cfg.timeout_s, max_s=cfg.max_utterance_s,
        )
        if after_bargein:
            self._end_detect_span("confirmed")
        turn = self._start_turn(self.responder, listen=True)
        turn.give(preroll)  # the recognizer hears the first syllables first

    def _stop_listening(self) -> None:
        if self._listening is None:
            return
        utterance = self._listening.finish()
        self.utterances.append(utterance)
        self.emit("utterance", start=utterance.start_s, end=utterance.end_s, after_bargein=utterance.after_bargein)
        self._listening = None
        if self._turn is not None:
            self._turn.give(END)

    def _start_turn(self, responder: Responder | None, listen: bool) -> Turn:
        turn = Turn(next(self._turn_ids))
        turn.span = self.telemetry.start_span("turn", turn_id=turn.turn_id)
        turn.task = self._tg.create_task(self._run_turn(turn, responder, listen), name=f"turn-{turn.turn_id}")
        self._turn = turn
        return turn

    async def _run_turn(self, turn: Turn, responder: Responder | None, listen: bool) -> None:
        """The turn's one task: everything it starts is awaited here, so cancelling it stops all."""
        try:
            if listen:
                turn.transcript = await self._recognize(turn)
                self.emit("transcript", turn=turn.turn_id, text=turn.transcript)
            if listen and not turn.transcript:
                self.emit("nothing_understood", turn=turn.turn_id)
            elif responder is None:
                self.emit("no_responder", turn=turn.turn_id)
            else:
                await responder.respond(turn.transcript or "", self.conversation,
                                        lambda speech: self._speak(turn, speech))
                await self.speaker.wait_drained()
        except Exception as err:  # noqa: BLE001 - a failed stage ends the turn, not the device
            _LOGGER.exception("Turn %d failed", turn.turn_id)
            self.emit("turn_failed", turn=turn.turn_id, error=repr(err))
            self.dispatch(Event.TURN_FAILED, turn_id=turn.turn_id)
            return
        # Someone started talking over the last words (the device ducked, had not decided
        # yet): they talk to the device, so it listens from their onset, not goes idle.
        onset_s = self.stack.policy.tentative_onset_s
        if onset_s is not None:
            self.dispatch(Event.ANSWER_DONE_USER_TALKING, turn_id=turn.turn_id, onset_s=onset_s)
        else:
            self.dispatch(Event.ANSWER_DONE, turn_id=turn.turn_id)

    async def _recognize(self, turn: Turn) -> str:
        """Feed the utterance to the recognizer as it arrives; the final transcript."""
        if self.recognizer is None:  # listening only (e.g. barge-in benchmarks): wait for the end
            while not any(isinstance(item, str) and item == END for item in await turn.take()):
                pass
            return ""
        session = await self.run_stt(self.recognizer.start)
        last_partial = ""
        ended = False
        while not ended:
            audio = []
            for item in await turn.take():
                if not isinstance(item, str):
                    audio.append(item)
                elif item == PREPARE:
                    if audio:
                        await self.run_stt(session.accept, np.concatenate(audio))
                        audio = []
                    await self.run_stt(session.prepare)
                elif item == END:
                    ended = True
            if audio:
                partial = await self.run_stt(session.accept, np.concatenate(audio))
                if partial.text and partial.text != last_partial:
                    last_partial = partial.text
                    self.emit("stt_partial", turn=turn.turn_id, text=partial.text)
                if partial.endpoint and not ended:
                    self.dispatch(Event.UTTERANCE_END, turn_id=turn.turn_id, source="stt")
        return await self.run_stt(session.final)

    async def _speak(self, turn: Turn, speech: Speech) -> None:
        span = await self.speaker.play(speech.audio, speech.sample_rate_hz)
        turn.played.append((span, speech))
        self.emit("say", turn=turn.turn_id, text=speech.text, seconds=len(speech.audio) / speech.sample_rate_hz)
        if len(turn.played) == 1:
            self.dispatch(Event.ANSWER_AUDIO, turn_id=turn.turn_id)

    def _end_turn(self) -> None:
        turn, self._turn = self._turn, None
        if turn is None:
            return
        if turn.transcript or turn.played:
            self.conversation.record(turn.transcript or "", turn.answer_text())
        self.emit("answer_done", turn=turn.turn_id)
        if turn.span is not None:
            turn.span.end()

    def _cancel_turn(self, event: Event) -> None:
        turn, self._turn = self._turn, None
        self._listening = None
        if turn is None or turn.task is None:
            return
        rate = self.speaker.sample_rate_hz
        # The fade that comes with a cancel still plays fade_ms of the answer, quieter.
        fade = round(self.config.bargein.fade_ms * rate / 1000)
        played = min(self.speaker.played_position + fade, self.speaker.engine.written_position)
        heard = turn.heard_text(played, rate)
        if turn.transcript is not None:
            # Only what the user heard is remembered; a turn cut before it spoke stores no answer.
            self.conversation.record(turn.transcript, heard, interrupted=bool(heard))
        turn.task.cancel()
        self._handle_span = self.telemetry.start_span(
            "bargein.handle" if event is Event.BARGEIN_CONFIRMED else "turn.stop",
            operations_cancelled=True, tts_stopped=bool(turn.played), llm_stopped=turn.transcript is not None,
        )
        self._tg.create_task(self._reap(turn, event, turn.heard_samples(played), heard, time.monotonic()),
                             name=f"reap-{turn.turn_id}")

    async def _reap(self, turn: Turn, event: Event, heard_samples: int, heard: str, cancelled_at: float) -> None:
        """Await the cancelled turn (bounded) and record how long it took to be gone."""
        done, _ = await asyncio.wait({turn.task}, timeout=REAP_TIMEOUT_S)
        elapsed_ms = (time.monotonic() - cancelled_at) * 1000
        if not done:
            _LOGGER.error("Turn %d still running %.1f s after cancel; tasks:%s", turn.turn_id, REAP_TIMEOUT_S,
                          _stuck_report())
        self.cancellations.append(Cancellation(turn.turn_id, event.value, cancelled_at, elapsed_ms, bool(done)))
        rate = self.speaker.sample_rate_hz
        self.emit("turn_cancelled", turn=turn.turn_id, cause=event, finished=bool(done), cancel_ms=elapsed_ms,
                  heard_s=heard_samples / rate, answer_s=turn.answer_samples() / rate, heard=heard)
        if turn.span is not None:
            turn.span.set_attribute("cancelled", True)
            turn.span.end()
        if self._handle_span is not None:
            self._handle_span.set_attribute("cancel_ms", elapsed_ms)
            self._handle_span.end()
            self._handle_span = None

    def _end_detect_span(self, outcome: str) -> None:
        if self._detect_span is not None:
            self._detect_span.set_attribute("outcome", outcome)
            self._detect_span.end()
            self._detect_span = None

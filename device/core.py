"""The device: one asyncio loop that owns all state and changes it in one place.

Audio arrives through the backend's callback, which only signals; `_on_audio` then
runs every complete 32 ms frame through the listening stack on the loop. Whatever
happens (a barge-in decision, the end of an utterance, a turn finishing) becomes an
Event for `dispatch`, which looks the transition up in device/state.py, records it,
and carries out its actions. A turn is one task in the device's TaskGroup: cancelling
it is the one cancellation that stops everything the turn was doing.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from typing import Any

import numpy as np

from .audio.frontend import RATE_HZ, AudioFrontEnd
from .audio.speaker import Speaker
from .config import Config
from .listen.stack import FrameReport, ListeningStack
from .state import Action, Event, State, barge_in_applies, transition
from .telemetry import EventLog, Telemetry
from .turn import RecordedAnswer, Responder, Turn, Utterance

_LOGGER = logging.getLogger(__name__)

REAP_TIMEOUT_S = 2.0  # a cancelled turn that takes longer than this to finish is a bug


class _UtteranceBuffer:
    """Collects an utterance and decides when it has ended."""

    def __init__(self, preroll: np.ndarray, start_index: int, now_s: float, speech_in_progress: bool,
                 end_silence_s: float, timeout_s: float, max_s: float) -> None:
        self.chunks = [preroll]
        self.start_index = start_index
        self.end_index = start_index + len(preroll)
        self.started_s = now_s
        self.speech_seen = speech_in_progress
        self.last_speech_s = now_s
        self._end_silence_s = end_silence_s
        self._timeout_s = timeout_s
        self._max_s = max_s

    def add(self, mic: np.ndarray, start_index: int, report: FrameReport, speech: bool) -> Event | None:
        if start_index >= self.end_index:  # frames already in the pre-roll are not added twice
            self.chunks.append(mic)
            self.end_index = start_index + len(mic)
        now = report.end_s
        if speech:
            self.speech_seen = True
            self.last_speech_s = now
        if self.speech_seen and now - self.last_speech_s >= self._end_silence_s:
            return Event.UTTERANCE_END
        if not self.speech_seen and now - self.started_s >= self._timeout_s:
            return Event.LISTEN_TIMEOUT
        if now - self.started_s >= self._max_s:
            return Event.UTTERANCE_END
        return None

    def finish(self, after_bargein: bool) -> Utterance:
        audio = np.concatenate(self.chunks)
        return Utterance(audio, self.start_index / RATE_HZ, self.end_index / RATE_HZ, after_bargein)


class VoiceDevice:
    """The state machine, the listening stack and the turn, on one event loop."""

    def __init__(
        self,
        config: Config,
        backend,
        *,
        events: EventLog,
        responder: Responder | None = None,
        telemetry: Telemetry | None = None,
        stack: ListeningStack | None = None,
    ) -> None:
        self.config = config
        self.backend = backend
        self.frontend = AudioFrontEnd(backend.capture, backend.playback, align_by_clock=backend.align_by_clock)
        self.speaker = Speaker(backend.playback)
        self.stack = stack or ListeningStack(config)
        self.events = events
        self.telemetry = telemetry or Telemetry(config.telemetry)
        self.responder = responder
        self.state = State.IDLE
        self.utterances: list[Utterance] = []
        self.cancel_latencies_ms: list[float] = []
        self._turn: Turn | None = None
        self._turn_ids = itertools.count(1)
        self._listening: _UtteranceBuffer | None = None
        self._listening_after_bargein = False
        self._tg: asyncio.TaskGroup | None = None
        self._failure: asyncio.Future | None = None
        self._detect_span: Any = None
        self._handle_span: Any = None

    @property
    def now_s(self) -> float:
        """Seconds of microphone audio processed: the clock every event is stamped with."""
        return self.frontend.samples_consumed / RATE_HZ

    # -- running ----------------------------------------------------------------------

    async def run(self, speak: RecordedAnswer | None = None) -> None:
        """Run until the backend ends (recorded input used up) or the task is cancelled."""
        loop = asyncio.get_running_loop()
        self.speaker.bind(loop)
        self._failure = loop.create_future()
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                if speak is not None:
                    self.dispatch(Event.SPEAK, answer=speak)
                backend = tg.create_task(self.backend.run(self._on_audio_safely), name="audio-backend")
                await asyncio.wait([backend, self._failure], return_when=asyncio.FIRST_COMPLETED)
                if self._failure.done():
                    backend.cancel()
                    raise self._failure.exception()
                if self.state is not State.IDLE:
                    self.dispatch(Event.STOP, reason="input_ended")
        finally:
            self._tg = None
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
            self._handle_report(report, mic, start_index)

    def _handle_report(self, report: FrameReport, mic: np.ndarray, start_index: int) -> None:
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
            speech = report.vad_prob >= self.config.vad.offset_threshold
            ended = self._listening.add(mic, start_index, report, speech)
            if ended is not None:
                self.dispatch(ended)

    # -- the one place state changes ---------------------------------------------------

    def dispatch(self, event: Event, turn_id: int | None = None, **info: Any) -> None:
        """Apply `event`: look up the transition, record it, carry out its actions."""
        if turn_id is not None and (self._turn is None or self._turn.turn_id != turn_id):
            self.events.emit(self.now_s, "stale_event", cause=event, turn=turn_id)
            return  # a result of a turn that no longer exists
        step = transition(self.state, event)
        if step is None:
            _LOGGER.debug("%s ignored in %s", event.value, self.state.value)
            return
        previous, self.state = self.state, step.next_state
        self.events.emit(self.now_s, "state", **{"from": previous, "to": step.next_state, "cause": event})
        for action in step.actions:
            self._act(action, event, info)

    def _act(self, action: Action, event: Event, info: dict) -> None:
        cfg = self.config.bargein
        if action is Action.DUCK:
            self.speaker.duck(cfg.duck_db, cfg.duck_ms)
            self._detect_span = self.telemetry.start_span("bargein.detect", onset_s=info.get("onset_s"))
        elif action is Action.UNDUCK:
            self.speaker.unduck(cfg.unduck_ms)
            self._end_detect_span("rejected", info)
        elif action is Action.FADE_OUT:
            self.speaker.fade_out(cfg.fade_ms)
        elif action is Action.CANCEL_TURN:
            self._cancel_turn(event, info)
        elif action is Action.START_LISTENING:
            self._start_listening(info.get("onset_s"), after_bargein=event is Event.BARGEIN_CONFIRMED)
        elif action is Action.STOP_LISTENING:
            if self._listening is not None:
                utterance = self._listening.finish(self._listening_after_bargein)
                self.utterances.append(utterance)
                self.events.emit(self.now_s, "utterance", start=utterance.start_s, end=utterance.end_s,
                                 after_bargein=utterance.after_bargein)
                self._listening = None
        elif action is Action.START_TURN:
            self._start_turn(self.responder, self.utterances[-1] if self.utterances else None)
        elif action is Action.START_ANSWER:
            self._start_turn(info["answer"], None)
        elif action is Action.END_TURN:
            turn, self._turn = self._turn, None
            if turn is not None and turn.span is not None:
                turn.span.end()

    # -- actions ----------------------------------------------------------------------

    def _start_listening(self, onset_s: float | None, after_bargein: bool) -> None:
        onset_index = round(onset_s * RATE_HZ) if onset_s is not None else self.frontend.samples_consumed
        start = max(0, onset_index - round(self.config.bargein.preroll_ms * RATE_HZ / 1000))
        cfg = self.config.listen
        self._listening = _UtteranceBuffer(
            self.frontend.mic_since(start), start, self.now_s, speech_in_progress=onset_s is not None,
            end_silence_s=cfg.end_silence_ms / 1000, timeout_s=cfg.timeout_s, max_s=cfg.max_utterance_s,
        )
        self._listening_after_bargein = after_bargein
        if after_bargein:
            self._end_detect_span("confirmed", {})

    def _start_turn(self, responder: Responder | None, utterance: Utterance | None) -> None:
        turn = Turn(next(self._turn_ids))
        turn.span = self.telemetry.start_span("turn", turn_id=turn.turn_id)
        turn.task = self._tg.create_task(self._run_turn(turn, responder, utterance), name=f"turn-{turn.turn_id}")
        self._turn = turn

    async def _run_turn(self, turn: Turn, responder: Responder | None, utterance: Utterance | None) -> None:
        """The turn's one task: everything it starts is awaited here, so cancelling it stops all."""
        try:
            if responder is None:
                self.events.emit(self.now_s, "no_responder", turn=turn.turn_id,
                                 utterance_s=len(utterance.audio) / RATE_HZ if utterance else 0.0)
            else:
                async for chunk in responder.respond(utterance):
                    span = await self.speaker.play(chunk.audio, chunk.sample_rate_hz)
                    turn.played.append((span, chunk.text))
                    if len(turn.played) == 1:
                        self.dispatch(Event.ANSWER_AUDIO, turn_id=turn.turn_id)
                await self.speaker.wait_drained()
        except Exception as err:  # noqa: BLE001 - a failed stage ends the turn, not the device
            _LOGGER.exception("Turn %d failed", turn.turn_id)
            self.events.emit(self.now_s, "turn_failed", turn=turn.turn_id, error=repr(err))
            self.dispatch(Event.TURN_FAILED, turn_id=turn.turn_id)
            return
        self.dispatch(Event.ANSWER_DONE, turn_id=turn.turn_id)

    def _cancel_turn(self, event: Event, info: dict) -> None:
        turn, self._turn = self._turn, None
        if turn is None or turn.task is None:
            return
        heard = turn.heard_samples(self.speaker.samples_played)
        was_speaking = bool(turn.played)
        turn.task.cancel()
        self._handle_span = self.telemetry.start_span(
            "bargein.handle" if event is Event.BARGEIN_CONFIRMED else "turn.stop",
            operations_cancelled=True, tts_stopped=was_speaking, llm_stopped=True,
        )
        self._tg.create_task(self._reap(turn, event, heard, time.perf_counter()), name=f"reap-{turn.turn_id}")

    async def _reap(self, turn: Turn, event: Event, heard_samples: int, cancelled_at: float) -> None:
        """Await the cancelled turn (bounded) and record how long it took to be gone."""
        done, _ = await asyncio.wait({turn.task}, timeout=REAP_TIMEOUT_S)
        elapsed_ms = (time.perf_counter() - cancelled_at) * 1000
        if not done:
            _LOGGER.error("Turn %d still running %.1f s after cancel", turn.turn_id, REAP_TIMEOUT_S)
        self.cancel_latencies_ms.append(elapsed_ms)
        rate = self.speaker.sample_rate_hz
        self.events.emit(self.now_s, "turn_cancelled", turn=turn.turn_id, cause=event, finished=bool(done),
                         cancel_ms=elapsed_ms, heard_s=heard_samples / rate, answer_s=turn.answer_samples() / rate)
        if turn.span is not None:
            turn.span.set_attribute("cancelled", True)
            turn.span.end()
        if self._handle_span is not None:
            self._handle_span.set_attribute("cancel_ms", elapsed_ms)
            self._handle_span.end()
            self._handle_span = None

    def _end_detect_span(self, outcome: str, info: dict) -> None:
        if self._detect_span is not None:
            self._detect_span.set_attribute("outcome", outcome)
            self._detect_span.end()
            self._detect_span = None

"""The device's state machine as a pure table: (state, event) -> (next state, actions).

No asyncio, no I/O. The dispatcher in device/core.py looks transitions up here and
carries the actions out; every state change of the device happens through it.
Pairs missing from the table are deliberate no-ops: the event does not apply in
that state (e.g. a barge-in while IDLE), and the dispatcher logs it as ignored.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class State(enum.Enum):
    """What the device is doing."""

    IDLE = "idle"  # waiting for a wake event
    LISTENING = "listening"  # taking in the user's words
    THINKING = "thinking"  # the turn runs: recognising, asking the LLM, synthesising
    SPEAKING = "speaking"  # the answer is playing


class Event(enum.Enum):
    """What can happen to the device."""

    WAKE = "wake"  # wake word, button, or speech in always-listening mode
    SPEAK = "speak"  # play an answer without a question (replay, announcements)
    UTTERANCE_END = "utterance_end"  # the user stopped talking
    LISTEN_TIMEOUT = "listen_timeout"  # listening, but nobody spoke
    ANSWER_AUDIO = "answer_audio"  # the first audio of the answer is queued
    ANSWER_DONE = "answer_done"  # the answer has been played (or there was none)
    ANSWER_DONE_USER_TALKING = "answer_done_user_talking"  # ... while a barge-in was tentative
    TURN_FAILED = "turn_failed"  # a stage of the turn failed
    BARGEIN_TENTATIVE = "bargein_tentative"
    BARGEIN_REJECTED = "bargein_rejected"
    BARGEIN_CONFIRMED = "bargein_confirmed"
    STOP = "stop"  # the button, or "stop": end everything, go idle


class Action(enum.Enum):
    """What the dispatcher does on a transition, in table order."""

    START_LISTENING = "start_listening"  # a new turn: recognise from the pre-roll on
    STOP_LISTENING = "stop_listening"  # the utterance is complete: the turn goes on to answer
    START_ANSWER = "start_answer"  # a turn that plays a given answer (SPEAK)
    DUCK = "duck"
    UNDUCK = "unduck"  # also when a turn ends: the next answer must not start ducked
    FADE_OUT = "fade_out"
    CANCEL_TURN = "cancel_turn"  # one cancellation for everything the turn owns
    END_TURN = "end_turn"  # the turn finished by itself


@dataclass(frozen=True)
class Transition:
    """Where an event leads and what to do on the way."""

    next_state: State
    actions: tuple[Action, ...] = ()


S, E, A = State, Event, Action
_INTERRUPT = (A.FADE_OUT, A.CANCEL_TURN)

TABLE: dict[tuple[State, Event], Transition] = {
    (S.IDLE, E.WAKE): Transition(S.LISTENING, (A.START_LISTENING,)),
    (S.IDLE, E.SPEAK): Transition(S.SPEAKING, (A.START_ANSWER,)),
    (S.LISTENING, E.UTTERANCE_END): Transition(S.THINKING, (A.STOP_LISTENING,)),
    (S.LISTENING, E.LISTEN_TIMEOUT): Transition(S.IDLE, (A.STOP_LISTENING, A.CANCEL_TURN)),
    (S.LISTENING, E.STOP): Transition(S.IDLE, (A.STOP_LISTENING, A.CANCEL_TURN)),
    (S.THINKING, E.ANSWER_AUDIO): Transition(S.SPEAKING),
    (S.THINKING, E.ANSWER_DONE): Transition(S.IDLE, (A.UNDUCK, A.END_TURN)),
    (S.THINKING, E.ANSWER_DONE_USER_TALKING): Transition(S.LISTENING, (A.UNDUCK, A.END_TURN, A.START_LISTENING)),
    (S.THINKING, E.TURN_FAILED): Transition(S.IDLE, (A.UNDUCK, A.END_TURN)),
    (S.THINKING, E.BARGEIN_TENTATIVE): Transition(S.THINKING, (A.DUCK,)),
    (S.THINKING, E.BARGEIN_REJECTED): Transition(S.THINKING, (A.UNDUCK,)),
    (S.THINKING, E.BARGEIN_CONFIRMED): Transition(S.LISTENING, (*_INTERRUPT, A.START_LISTENING)),
    (S.THINKING, E.STOP): Transition(S.IDLE, _INTERRUPT),
    (S.SPEAKING, E.ANSWER_DONE): Transition(S.IDLE, (A.UNDUCK, A.END_TURN)),
    (S.SPEAKING, E.ANSWER_DONE_USER_TALKING): Transition(S.LISTENING, (A.UNDUCK, A.END_TURN, A.START_LISTENING)),
    (S.SPEAKING, E.TURN_FAILED): Transition(S.IDLE, (A.FADE_OUT, A.END_TURN)),
    (S.SPEAKING, E.BARGEIN_TENTATIVE): Transition(S.SPEAKING, (A.DUCK,)),
    (S.SPEAKING, E.BARGEIN_REJECTED): Transition(S.SPEAKING, (A.UNDUCK,)),
    (S.SPEAKING, E.BARGEIN_CONFIRMED): Transition(S.LISTENING, (*_INTERRUPT, A.START_LISTENING)),
    (S.SPEAKING, E.STOP): Transition(S.IDLE, _INTERRUPT),
}


def transition(state: State, event: Event) -> Transition | None:
    """The transition for `event` in `state`, or None when the event does not apply."""
    return TABLE.get((state, event))


def barge_in_applies(state: State) -> bool:
    """Whether talking over the device can interrupt it in `state`."""
    return state in (State.SPEAKING, State.THINKING)

"""The transition table, every state x event."""

import pytest

from device.state import TABLE, Action, Event, State, barge_in_applies, transition

S, E, A = State, Event, Action

# What each (state, event) must do; pairs not listed must be ignored (no transition).
EXPECTED = {
    (S.IDLE, E.WAKE): (S.LISTENING, [A.START_LISTENING]),
    (S.IDLE, E.SPEAK): (S.SPEAKING, [A.START_ANSWER]),
    (S.LISTENING, E.UTTERANCE_END): (S.THINKING, [A.STOP_LISTENING]),
    (S.LISTENING, E.LISTEN_TIMEOUT): (S.IDLE, [A.STOP_LISTENING, A.CANCEL_TURN]),
    (S.LISTENING, E.STOP): (S.IDLE, [A.STOP_LISTENING, A.CANCEL_TURN]),
    (S.THINKING, E.ANSWER_AUDIO): (S.SPEAKING, []),
    (S.THINKING, E.ANSWER_DONE): (S.IDLE, [A.UNDUCK, A.END_TURN]),
    (S.THINKING, E.ANSWER_DONE_USER_TALKING): (S.LISTENING, [A.UNDUCK, A.END_TURN, A.START_LISTENING]),
    (S.THINKING, E.TURN_FAILED): (S.IDLE, [A.UNDUCK, A.END_TURN]),
    (S.THINKING, E.BARGEIN_TENTATIVE): (S.THINKING, [A.DUCK]),
    (S.THINKING, E.BARGEIN_REJECTED): (S.THINKING, [A.UNDUCK]),
    (S.THINKING, E.BARGEIN_CONFIRMED): (S.LISTENING, [A.FADE_OUT, A.CANCEL_TURN, A.START_LISTENING]),
    (S.THINKING, E.STOP): (S.IDLE, [A.FADE_OUT, A.CANCEL_TURN]),
    (S.SPEAKING, E.ANSWER_DONE): (S.IDLE, [A.UNDUCK, A.END_TURN]),
    (S.SPEAKING, E.ANSWER_DONE_USER_TALKING): (S.LISTENING, [A.UNDUCK, A.END_TURN, A.START_LISTENING]),
    (S.SPEAKING, E.TURN_FAILED): (S.IDLE, [A.FADE_OUT, A.END_TURN]),
    (S.SPEAKING, E.BARGEIN_TENTATIVE): (S.SPEAKING, [A.DUCK]),
    (S.SPEAKING, E.BARGEIN_REJECTED): (S.SPEAKING, [A.UNDUCK]),
    (S.SPEAKING, E.BARGEIN_CONFIRMED): (S.LISTENING, [A.FADE_OUT, A.CANCEL_TURN, A.START_LISTENING]),
    (S.SPEAKING, E.STOP): (S.IDLE, [A.FADE_OUT, A.CANCEL_TURN]),
}


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("event", list(Event))
def test_every_state_and_event(state, event):
    step = transition(state, event)
    if (state, event) in EXPECTED:
        next_state, actions = EXPECTED[(state, event)]
        assert step is not None and step.next_state is next_state and list(step.actions) == actions
    else:
        assert step is None, f"{state.value} + {event.value} should be ignored"


def test_table_has_nothing_unexpected():
    assert set(TABLE) == set(EXPECTED)


def test_interruption_fades_before_it_cancels_and_listens_last():
    for state in (S.SPEAKING, S.THINKING):
        actions = list(transition(state, E.BARGEIN_CONFIRMED).actions)
        assert actions.index(A.FADE_OUT) < actions.index(A.CANCEL_TURN) < actions.index(A.START_LISTENING)


def test_every_state_reachable_and_idle_reachable_from_all():
    reachable, frontier = {S.IDLE}, [S.IDLE]
    while frontier:
        state = frontier.pop()
        for (src, _), step in TABLE.items():
            if src is state and step.next_state not in reachable:
                reachable.add(step.next_state)
                frontier.append(step.next_state)
    assert reachable == set(State)
    for state in State:
        if state is not S.IDLE:
            assert transition(state, E.STOP).next_state is S.IDLE


def test_barge_in_applies_only_while_the_device_has_the_floor():
    assert [s for s in State if barge_in_applies(s)] == [S.THINKING, S.SPEAKING]

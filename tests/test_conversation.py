"""Conversation history and the offline responder."""

import asyncio
import datetime as dt

from device.conversation import INTERRUPTED_MARK, Conversation
from device.offline import CONTINUE_PREFIX, OFFLINE_NOTE, STORY, OfflineResponder

NOON = dt.datetime(2026, 11, 24, 14, 5)


def ask(text, conversation=None):
    conversation = conversation or Conversation("system")
    responder = OfflineResponder(now=lambda: NOON)

    async def collect():
        return "".join([t async for t in responder.stream(conversation.messages(text))])

    return asyncio.run(collect())


def test_history_keeps_only_what_was_heard_and_marks_it():
    conv = Conversation("be brief", max_turns=2)
    conv.record("tell me a story", "Once upon a time", interrupted=True)
    conv.record("what time is it", "")  # cut while thinking: nothing unheard is stored
    messages = conv.messages("and the date?")
    assert messages == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "tell me a story"},
        {"role": "assistant", "content": f"Once upon a time {INTERRUPTED_MARK}"},
        {"role": "user", "content": "what time is it"},
        {"role": "user", "content": "and the date?"},
    ]
    conv.record("third", "answer")
    assert [e.user for e in conv.exchanges] == ["what time is it", "third"]  # bounded


def test_offline_answers_what_an_offline_speaker_should():
    assert ask("What time is it?") == "It's 2:05 in the afternoon."
    assert ask("what's the date today") == "Today is Tuesday, November 24, 2026."
    assert ask("Repeat after me: the cat sat on the mat") == "the cat sat on the mat."
    assert ask("Tell me a story") == STORY
    assert ask("hello") == "Hello! " + OFFLINE_NOTE
    assert ask("what is the capital of France") == f"I heard: what is the capital of France. {OFFLINE_NOTE}"


def test_offline_continues_the_story_where_the_listener_stopped_it():
    conv = Conversation("system")
    heard = STORY[: STORY.index("laughed at") + len("laughed at")]  # cut in the third sentence
    conv.record("tell me a story", heard, interrupted=True)
    conv.record("what time is it", "It's 2:05 in the afternoon.")
    rest = ask("please continue", conv)
    assert rest.startswith(CONTINUE_PREFIX + " One morning he laughed at a tortoise")
    assert rest.endswith("And that is the end of the story.")
    cut = rest.index("The hare agreed") + len("The hare agreed")  # stopped again, in the next sentence
    conv.record("please continue", rest[:cut], interrupted=True)
    again = ask("go on", conv)  # from the new point, not the first one
    assert again.startswith(CONTINUE_PREFIX + " The hare agreed at once")
    conv.record("go on", again)
    assert ask("continue", conv).startswith("I heard: continue")  # heard to the end: nothing to continue

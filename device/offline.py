"""The built-in responder when no LLM endpoint is configured: useful offline, and honest.

It tells the time and the date, repeats what it is asked to, reads a short story (long
enough to interrupt), continues the story from where the listener stopped hearing it,
and otherwise says what it heard and that it is offline. It streams its answer word by
word through the same interface as the real LLM client.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from typing import AsyncIterator, Callable

from .conversation import INTERRUPTED_MARK

# Aesop's fable "The Hare and the Tortoise" (public domain), retold for this project.
STORY = (
    "Here is the story of the hare and the tortoise. "
    "A hare was always boasting about how fast he could run. "
    "One morning he laughed at a tortoise for being so slow, and the tortoise said, "
    "let us race to the old oak tree on the hill, and we will see who gets there first. "
    "The hare agreed at once, sure that he would win. "
    "When the race began, the hare shot ahead and was soon out of sight. "
    "Halfway up the hill he looked back and saw no one at all, "
    "so he lay down in the warm grass for a little nap. "
    "The tortoise kept walking, one slow step after another, never stopping to rest. "
    "The sun climbed higher, and the hare slept on. "
    "When he finally woke, he ran as fast as he could, "
    "but the tortoise was already resting under the old oak tree. "
    "Slow and steady, said the tortoise, wins the race. "
    "And that is the end of the story."
)
CONTINUE_PREFIX = "Where was I?"
OFFLINE_NOTE = "I'm working offline, so I can tell you the time or the date, repeat something, or read you a story."


def _sentences(text: str) -> list[str]:
    return re.findall(r"[^.!?]+[.!?]", text)


class OfflineResponder:
    """Rule-based answers, streamed like an LLM's."""

    name = "offline responder"

    def __init__(self, now: Callable[[], dt.datetime] = dt.datetime.now) -> None:
        self._now = now

    async def stream(self, messages: list[dict]) -> AsyncIterator[str]:
        """Yield the answer to the last user message, word by word."""
        answer = self.answer(messages)
        for i, word in enumerate(answer.split(" ")):
            yield word if i == 0 else " " + word
            await asyncio.sleep(0)

    def answer(self, messages: list[dict]) -> str:
        """The whole answer to the last user message."""
        said = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "").strip()
        heard = said.lower()
        if re.search(r"\b(continue|go on|keep going|carry on|what happened next)\b", heard):
            rest = self._story_rest(messages)
            if rest:
                return rest
        if re.search(r"\bstor(y|ies)\b|\bfable\b", heard):
            return STORY
        if re.search(r"\bwhat time\b|\bthe time\b|\btime is it\b", heard):
            now = self._now()
            return f"It's {now.strftime('%I:%M').lstrip('0')} {'in the morning' if now.hour < 12 else 'in the afternoon' if now.hour < 18 else 'in the evening'}."
        if re.search(r"\b(date|what day|today)\b", heard):
            now = self._now()
            return f"Today is {now.strftime('%A, %B')} {now.day}, {now.year}."
        match = re.search(r"\b(?:repeat(?: after me)?|say)\b[,:]?\s+(.+)", said, re.IGNORECASE)
        if match:
            return match.group(1).strip().rstrip(".") + "."
        if re.search(r"\b(hello|hi|hey)\b", heard) and len(heard.split()) <= 4:
            return "Hello! " + OFFLINE_NOTE
        if not said:
            return "Sorry, I didn't catch that. " + OFFLINE_NOTE
        return f"I heard: {said.rstrip('.?!')}. {OFFLINE_NOTE}"

    @staticmethod
    def _story_rest(messages: list[dict]) -> str | None:
        """The story from the sentence the listener was in when they last stopped it."""
        for message in reversed(messages):
            if message["role"] != "assistant":
                continue
            content = message["content"]
            heard = content.replace(INTERRUPTED_MARK, "").strip()
            heard = heard.removeprefix(CONTINUE_PREFIX).strip()
            start = STORY.find(heard[:40]) if heard else -1
            if start < 0:
                continue  # not (a heard part of) the story: look further back
            if INTERRUPTED_MARK not in content:
                return None  # that telling was heard to its end
            end = start + len(heard)
            told = 0
            for i, sentence in enumerate(_sentences(STORY)):
                told += len(sentence)
                if told > end + 1:  # the sentence they were in when they stopped me
                    return f"{CONTINUE_PREFIX} " + "".join(_sentences(STORY)[i:]).strip()
            return None
        return None

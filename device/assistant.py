"""The answer pipeline: LLM tokens -> sentences -> TTS -> speaker, all inside the turn.

`Assistant.respond()` runs inside the turn's task. The LLM stream feeds a sentence
queue from a child task while this coroutine synthesizes each sentence (on the TTS
worker thread) and hands it to the speaker, so the device starts talking after the
first sentence, not the whole answer. Both live in one TaskGroup: cancelling the turn
cancels the LLM stream (closing its HTTP connection) and the wait for the TTS job
(whose result is then dropped) in one go.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Awaitable, Callable, ContextManager

from .conversation import Conversation
from .llm import ChatModel, LlmError, SentenceChunker
from .tts import Speech, Synthesizer

_LOGGER = logging.getLogger(__name__)

SORRY_BEFORE = "Sorry, I can't reach my language model right now."
SORRY_DURING = "Sorry, I lost my train of thought."

Speak = Callable[[Speech], Awaitable[None]]
RunBlocking = Callable[..., Awaitable]


class Assistant:
    """LLM + TTS; plays through the `speak` callback the device gives each turn."""

    def __init__(self, llm: ChatModel, synthesizer: Synthesizer, run_tts: RunBlocking,
                 on_event: Callable[..., None] = lambda *a, **k: None,
                 working: Callable[[], ContextManager] = contextlib.nullcontext) -> None:
        self.llm = llm
        self.synthesizer = synthesizer
        self._run_tts = run_tts  # runs a blocking call on the TTS worker thread
        self._on_event = on_event
        self._working = working  # marks the wait for tokens as work (for the simulated clock)

    async def respond(self, transcript: str, conversation: Conversation, speak: Speak) -> None:
        """Speak the answer to `transcript`, sentence by sentence."""
        sentences: asyncio.Queue[str | None] = asyncio.Queue()
        spoken = 0
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._produce(conversation.messages(transcript), sentences), name="llm-stream")
                while (sentence := await sentences.get()) is not None:
                    await speak(await self._run_tts(self.synthesizer.synthesize, sentence))
                    spoken += 1
        except* LlmError as errors:
            err = errors.exceptions[0]
            _LOGGER.warning("LLM failed (%s): %s", err.code, err.message)
            self._on_event("llm_failed", code=err.code, message=err.message, after_sentences=spoken)
            await speak(await self._run_tts(self.synthesizer.synthesize, SORRY_DURING if spoken else SORRY_BEFORE))

    async def _produce(self, messages: list[dict], sentences: asyncio.Queue) -> None:
        chunker = SentenceChunker()
        first = True
        try:
            with self._working():
                async for token in self.llm.stream(messages):
                    if first:
                        self._on_event("llm_first_token")
                        first = False
                    for sentence in chunker.push(token):
                        sentences.put_nowait(sentence)
            rest = chunker.flush()
            if rest:
                sentences.put_nowait(rest)
        finally:
            sentences.put_nowait(None)

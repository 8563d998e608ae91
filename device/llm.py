"""The language model: an OpenAI-compatible streaming client, and a sentence chunker.

`OpenAIChat.stream()` yields text tokens from any Chat Completions endpoint (OpenAI,
Ollama, llama.cpp's server, vLLM) through the official `openai` async client. The HTTP
response is closed however the stream ends, cancellation included, so a barge-in
closes the connection and the server stops generating. A request that fails before
its first token is retried (`llm.retries`); once tokens have been spoken it is not.
The API key is read from the environment and never logged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from typing import AsyncIterator, Protocol

from .config import LlmConfig
from .errors import DeviceError

_LOGGER = logging.getLogger(__name__)


class LlmError(DeviceError):
    """The language model could not answer."""

    stage = "llm"


class ChatModel(Protocol):
    """Streams the answer to a list of chat messages."""

    name: str

    def stream(self, messages: list[dict]) -> AsyncIterator[str]: ...


# -- sentences ------------------------------------------------------------------------

_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "st", "vs", "etc", "e.g", "i.e", "no", "approx", "min", "sec"}
_SENTENCE_END = re.compile(r"[.!?…]+[\"')\]]*(?=\s)|\n+")
_CLAUSE_END = re.compile(r"[,;:](?=\s)")
_MARKDOWN = re.compile(r"[*_`#]+|^\s*[-•]\s+", re.MULTILINE)


class SentenceChunker:
    """Cuts a token stream into pieces to speak as soon as each is complete.

    Sentences end at . ! ? (not after "Dr." or inside "3.5") or a line break. The
    first piece may end at a clause (comma) once it has `first_clause_chars`, so the
    device starts talking sooner; a piece longer than `max_chars` is cut at a clause.
    """

    def __init__(self, first_clause_chars: int = 40, max_chars: int = 220) -> None:
        self._buffer = ""
        self._first = True
        self._first_clause_chars = first_clause_chars
        self._max_chars = max_chars

    def push(self, text: str) -> list[str]:
        """Add streamed text; returns the pieces completed by it."""
        self._buffer += text
        pieces = []
        while (piece := self._next_piece()) is not None:
            pieces.append(piece)
        return pieces

    def flush(self) -> str | None:
        """What is left when the stream ends."""
        rest = _clean(self._buffer)
        self._buffer = ""
        return rest or None

    def _next_piece(self) -> str | None:
        for match in _SENTENCE_END.finditer(self._buffer):
            end = match.end()
            word = re.findall(r"[\w.]+$", self._buffer[: match.start()].lower())
            if match.group().startswith(".") and word and word[0].rstrip(".") in _ABBREVIATIONS:
                continue
            return self._take(end)
        limit = self._first_clause_chars if self._first else self._max_chars
        if len(self._buffer) >= limit:
            clauses = list(_CLAUSE_END.finditer(self._buffer))
            if clauses:
                return self._take(clauses[-1].end())
        return None

    def _take(self, end: int) -> str | None:
        piece, self._buffer = _clean(self._buffer[:end]), self._buffer[end:]
        if not piece:
            return None if not self._buffer.strip() else self._next_piece()
        self._first = False
        return piece


def _clean(text: str) -> str:
    return " ".join(_MARKDOWN.sub("", text).split())


# -- OpenAI-compatible endpoint ---------------------------------------------------------


class OpenAIChat:
    """Chat Completions streaming through the official `openai` async client."""

    def __init__(self, config: LlmConfig) -> None:
        import openai

        self._cfg = config
        self._openai = openai
        key = os.environ.get(config.api_key_env, "")
        if not key and "api.openai.com" in config.base_url:
            raise LlmError("llm_no_key", f"llm.base_url is OpenAI but ${config.api_key_env} is empty; "
                           "put it in the service's EnvironmentFile (/etc/voice-device/environment)")
        # Local servers (Ollama, llama.cpp) ignore the key but the client wants one.
        self._client = openai.AsyncOpenAI(
            base_url=config.base_url, api_key=key or "unused", max_retries=0,
            timeout=openai.Timeout(connect=config.connect_timeout_s, read=config.token_timeout_s,
                                  write=config.connect_timeout_s, pool=config.connect_timeout_s),
        )
        self.name = f"{config.model} at {config.base_url}"

    async def stream(self, messages: list[dict]) -> AsyncIterator[str]:
        """Yield the answer's text as it arrives."""
        cfg = self._cfg
        for attempt in range(cfg.retries + 1):
            started = False
            try:
                async for token in self._one_request(messages):
                    started = True
                    yield token
                return
            except LlmError as err:
                if started or not _retryable(err) or attempt == cfg.retries:
                    raise
                _LOGGER.warning("LLM request failed before its first token (%s); retrying", err.message)
                await asyncio.sleep(0.3 * 2**attempt)

    async def _one_request(self, messages: list[dict]) -> AsyncIterator[str]:
        cfg = self._cfg
        openai = self._openai
        # asyncio.timeout(), not wait_for(): on Python 3.11 wait_for can swallow a cancel
        # that lands as the awaited chunk arrives, and the stream would then run on after
        # a barge-in (seen in bench/turn.py: 2 in 100 cancels took 2 s).
        try:
            async with asyncio.timeout(cfg.first_token_timeout_s):
                stream = await self._client.chat.completions.create(
                    model=cfg.model, messages=messages, stream=True,
                    max_tokens=cfg.max_tokens, temperature=cfg.temperature)
            async with stream:  # closes the HTTP response on every way out, cancellation too
                chunks = stream.__aiter__()
                timeout = cfg.first_token_timeout_s
                while True:
                    try:
                        async with asyncio.timeout(timeout):
                            chunk = await chunks.__anext__()
                    except StopAsyncIteration:
                        return
                    timeout = cfg.token_timeout_s
                    if not chunk.choices:
                        continue
                    text = chunk.choices[0].delta.content
                    if text:
                        yield text
        except (TimeoutError, asyncio.TimeoutError):
            raise LlmError("llm_timeout", f"no answer from {cfg.base_url} in time") from None
        except openai.APIStatusError as err:
            code = "llm_auth" if err.status_code in (401, 403) else "llm_status"
            raise LlmError(code, f"{cfg.base_url} answered HTTP {err.status_code}") from None
        except openai.APIConnectionError as err:
            raise LlmError("llm_connection", f"cannot reach {cfg.base_url} ({type(err.__cause__ or err).__name__})") from None
        except (openai.OpenAIError, ValueError) as err:  # ValueError: a chunk that is not JSON
            raise LlmError("llm_protocol", f"{cfg.base_url} sent something unexpected ({type(err).__name__})") from None

    async def close(self) -> None:
        """Close the client's connection pool."""
        await self._client.close()


def _retryable(err: LlmError) -> bool:
    return err.code in ("llm_timeout", "llm_connection") or (
        err.code == "llm_status" and any(f" {c}" in err.message for c in ("500", "502", "503", "504", "429")))

"""The LLM client against a real HTTP server on loopback, and the sentence chunker."""

import asyncio
import logging

import pytest

from device.config import LlmConfig
from device.llm import LlmError, OpenAIChat, SentenceChunker
from llm_server import LoopbackLLM, Reply

SECRET = "sk-test-0123456789abcdef-never-log-me"


def client(server, monkeypatch, **cfg) -> OpenAIChat:
    monkeypatch.setenv("VOICE_TEST_KEY", SECRET)
    return OpenAIChat(LlmConfig(base_url=server.base_url, model="loopback", api_key_env="VOICE_TEST_KEY",
                                **{"first_token_timeout_s": 2.0, "token_timeout_s": 1.0, **cfg}))


async def collect(llm, messages=None):
    return "".join([t async for t in llm.stream(messages or [{"role": "user", "content": "hi"}])])


def test_streams_tokens_and_sends_key_and_model(monkeypatch):
    with LoopbackLLM([Reply(text="One two. Three.")]) as server:
        text = asyncio.run(asyncio.wait_for(collect(client(server, monkeypatch)), 10))
        assert text == "One two. Three."
        conn = server.connections[0]
        assert conn.requests[0]["stream"] is True and conn.requests[0]["model"] == "loopback"
        assert conn.headers[0]["authorization"] == f"Bearer {SECRET}"


def test_retries_only_before_the_first_token(monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    with LoopbackLLM([Reply(status=503), Reply(text="Recovered.")]) as server:
        assert asyncio.run(asyncio.wait_for(collect(client(server, monkeypatch)), 10)) == "Recovered."
        assert sum(len(c.requests) for c in server.connections) == 2
    with LoopbackLLM([Reply(text="a b c d e f", break_after_tokens=3), Reply(text="never")]) as server:
        got = []

        async def run():
            async for token in client(server, monkeypatch).stream([{"role": "user", "content": "x"}]):
                got.append(token)

        with pytest.raises(LlmError) as err:
            asyncio.run(asyncio.wait_for(run(), 10))
        assert "".join(got) == "a b c" and err.value.code in ("llm_connection", "llm_protocol")
        assert sum(len(c.requests) for c in server.connections) == 1  # no retry once it has spoken
    assert SECRET not in caplog.text


@pytest.mark.parametrize("reply,code", [
    (Reply(status=401), "llm_auth"),
    (Reply(hang=True), "llm_timeout"),
    (Reply(garbage=True), "llm_protocol"),
])
def test_failures_are_typed_and_do_not_leak_the_key(monkeypatch, caplog, reply, code):
    caplog.set_level(logging.DEBUG)
    with LoopbackLLM([reply] * 4) as server:
        llm = client(server, monkeypatch, first_token_timeout_s=0.5, retries=1)
        with pytest.raises(LlmError) as err:
            asyncio.run(asyncio.wait_for(collect(llm), 10))
        assert err.value.code == code
        assert SECRET not in str(err.value) and SECRET not in caplog.text


def test_connection_refused_is_clear(monkeypatch):
    with LoopbackLLM() as server:
        port = server.port
    llm = OpenAIChat(LlmConfig(base_url=f"http://127.0.0.1:{port}/v1", retries=0, connect_timeout_s=1.0))
    with pytest.raises(LlmError) as err:
        asyncio.run(asyncio.wait_for(collect(llm), 10))
    assert err.value.code == "llm_connection" and f"127.0.0.1:{port}" in err.value.message


def test_cancelling_the_stream_closes_the_connection(monkeypatch):
    with LoopbackLLM([Reply(text=" ".join(["word"] * 200), token_s=0.05)]) as server:
        llm = client(server, monkeypatch)

        async def run():
            tokens = 0
            task = asyncio.create_task(collect(llm))
            while not server.connections or server.connections[0].tokens_sent < 3:
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return tokens

        asyncio.run(asyncio.wait_for(run(), 10))
        assert server.wait_for(lambda: server.connections[0].closed_by_client_at is not None)
        assert server.connections[0].tokens_sent < 20  # it stopped generating
        assert server.open_connections == 0


def test_missing_key_for_openai_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(LlmError, match="OPENAI_API_KEY"):
        OpenAIChat(LlmConfig(base_url="https://api.openai.com/v1"))


@pytest.mark.parametrize("tokens,expected", [
    (["Hello", " there.", " How", " are", " you?"], ["Hello there.", "How are you?"]),
    (["Dr.", " Smith", " is", " here.", " Pi", " is", " 3.14", " roughly."], ["Dr. Smith is here.", "Pi is 3.14 roughly."]),
    (["**Bold** text", "\n", "- item one", "\n"], ["Bold text", "item one"]),
    (["Well, that was a rather long first clause, wasn't it, so", " we cut it."],
     ["Well, that was a rather long first clause, wasn't it,", "so we cut it."]),
])
def test_sentence_chunker(tokens, expected):
    chunker = SentenceChunker()
    out = []
    for token in tokens:
        out += chunker.push(token)
    rest = chunker.flush()
    assert out + ([rest] if rest else []) == expected

"""Conversation context: a bounded history that remembers only what the user heard."""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass

INTERRUPTED_MARK = "[the user interrupted me here]"


@dataclass(frozen=True)
class Exchange:
    """One user turn and the device's answer as far as it was heard."""

    user: str
    assistant: str
    """The answer, or the part of it that had been played when the user interrupted."""
    interrupted: bool = False


class Conversation:
    """The last `max_turns` exchanges, turned into Chat Completions messages."""

    def __init__(self, system_prompt: str, max_turns: int = 8) -> None:
        self.system_prompt = system_prompt
        self._exchanges: deque[Exchange] = deque(maxlen=max_turns)

    @property
    def exchanges(self) -> list[Exchange]:
        """Oldest first."""
        return list(self._exchanges)

    def record(self, user: str, assistant: str, interrupted: bool = False) -> None:
        """Remember an exchange; `assistant` must be only what the user heard."""
        self._exchanges.append(Exchange(user.strip(), assistant.strip(), interrupted))

    def messages(self, user_text: str) -> list[dict]:
        """The request for a new user message: system, history, the new message."""
        messages = [{"role": "system", "content": self.system_prompt}]
        for ex in self._exchanges:
            if ex.user:
                messages.append({"role": "user", "content": ex.user})
            if ex.assistant:
                content = f"{ex.assistant} {INTERRUPTED_MARK}" if ex.interrupted else ex.assistant
                messages.append({"role": "assistant", "content": content})
            # An answer interrupted before any of it played leaves no assistant message.
        messages.append({"role": "user", "content": user_text})
        return messages

    def to_json(self) -> list[dict]:
        """The history as plain data."""
        return [asdict(ex) for ex in self._exchanges]

"""The fake Messages API speaks the wire format Claude Code expects (no claude
binary needed): server-sent events for ``stream: true``, one JSON message
otherwise, scripted replies that see tool results, and a record of every
request."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from .fake_anthropic import FakeAnthropic, MessagesRequest, Reply, bash, text

BASH_TOOL = {"name": "Bash", "input_schema": {"type": "object"}}


def post(fake: FakeAnthropic, path: str, body: dict[str, Any]) -> tuple[int, str, str]:
    req = urllib.request.Request(
        fake.base_url + path,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", "x-api-key": "k"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers["content-type"], resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["content-type"], exc.read().decode()


def sse(body: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for chunk in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in chunk.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def script(req: MessagesRequest) -> Reply:
    if not req.is_main:
        return None
    result = req.last_tool_result()
    if result is not None:
        return f"the tool said {result}"
    if "make a file" in req.all_user_text():
        return [text("on it"), bash("touch f && echo made")]
    return "plain"


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(script) as server:
        yield server


def test_streamed_tool_call_has_the_event_sequence(fake: FakeAnthropic) -> None:
    status, ctype, body = post(
        fake,
        "/v1/messages",
        {
            "model": "m",
            "stream": True,
            "tools": [BASH_TOOL],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "make a file"}]}],
        },
    )
    assert status == 200 and ctype.startswith("text/event-stream")
    events = sse(body)
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[0][1]["message"]["content"] == []
    assert events[3][1]["delta"] == {"type": "text_delta", "text": "on it"}
    tool_start = events[5][1]["content_block"]
    assert tool_start["type"] == "tool_use" and tool_start["name"] == "Bash"
    assert tool_start["input"] == {}
    partial = json.loads(events[6][1]["delta"]["partial_json"])
    assert partial["command"] == "touch f && echo made"
    assert events[8][1]["delta"]["stop_reason"] == "tool_use"


def test_the_script_sees_tool_results_and_system_messages_are_skipped(
    fake: FakeAnthropic,
) -> None:
    call = bash("x")
    messages = [
        {"role": "user", "content": "make a file"},
        {"role": "assistant", "content": [call]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "made"}],
        },
        {"role": "system", "content": [{"type": "text", "text": "<total_tokens>1</total_tokens>"}]},
    ]
    status, _, body = post(
        fake, "/v1/messages", {"model": "m", "tools": [BASH_TOOL], "messages": messages}
    )
    assert status == 200
    message = json.loads(body)
    assert message["content"] == [{"type": "text", "text": "the tool said made"}]
    assert message["stop_reason"] == "end_turn"
    [req] = fake.main_requests()
    assert req.tool_uses()[0]["id"] == call["id"]


def test_side_requests_get_the_default_text_and_everything_is_recorded(
    fake: FakeAnthropic,
) -> None:
    status, _, body = post(fake, "/v1/messages", {"model": "small", "messages": []})
    assert status == 200 and json.loads(body)["content"] == [{"type": "text", "text": "OK"}]
    status, _, body = post(fake, "/v1/messages/count_tokens", {"messages": []})
    assert status == 200 and json.loads(body)["input_tokens"] >= 1
    status, _, body = post(fake, "/api/unknown", {})
    assert status == 404 and json.loads(body)["error"]["type"] == "not_found_error"
    assert fake.unknown_paths() == ["POST /api/unknown"]
    assert [r.path for r in fake.requests] == [
        "/v1/messages",
        "/v1/messages/count_tokens",
        "/api/unknown",
    ]
    assert fake.main_requests() == []  # no Bash tool offered: a side request


def test_a_broken_script_answers_500_and_is_recorded() -> None:
    def broken(req: MessagesRequest) -> Reply:
        raise ValueError("script bug")

    with FakeAnthropic(broken) as fake:
        status, _, _ = post(fake, "/v1/messages", {"model": "m", "messages": []})
        assert status == 500
        assert "script bug" in fake.errors()[0]


def test_a_runaway_tool_loop_is_cut_off() -> None:
    with FakeAnthropic(lambda req: [bash("again")], max_main_requests=3) as fake:
        body = {"model": "m", "tools": [BASH_TOOL], "messages": []}
        replies = [json.loads(post(fake, "/v1/messages", body)[2]) for _ in range(5)]
        assert [r["stop_reason"] for r in replies] == ["tool_use"] * 3 + ["end_turn"] * 2
        assert "runaway" in fake.errors()[0]

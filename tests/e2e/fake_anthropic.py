"""A fake Anthropic Messages API on 127.0.0.1 for end-to-end tests of Claude Code.

Standard library only. One :class:`FakeAnthropic` is an HTTP server in a
thread on a random port; point Claude Code at it with
``ANTHROPIC_BASE_URL=<server.base_url>``.

What Claude Code calls, and what this answers:

- ``POST /v1/messages`` (``stream: true``: a server-sent-event stream of
  ``message_start``, ``content_block_start/delta/stop``, ``message_delta``,
  ``message_stop``; otherwise one JSON message). The reply's content blocks come
  from the test's *script*: a callable that receives a :class:`MessagesRequest`
  and returns a list of blocks (:func:`text`, :func:`tool_use`), a string, or
  ``None`` (the default reply, a short text).
- ``POST /v1/messages/count_tokens``: a rough count.
- Anything else: 404 with an Anthropic-style error body (logged in
  :attr:`FakeAnthropic.requests`).

Every request is recorded (method, path, headers, JSON body) for assertions.
"""

from __future__ import annotations

import itertools
import json
import threading
import traceback
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional, Union

Block = dict[str, Any]


@dataclass(frozen=True)
class ApiError:
    """A reply that is an HTTP error instead of a message: e.g. ``ApiError(429,
    "rate_limit_error", "...", {"retry-after": "0"})`` for a rate limit."""

    status: int
    error_type: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)


Reply = Union[None, str, list[Block], ApiError]


def text(value: str) -> Block:
    """A text content block."""
    return {"type": "text", "text": value}


def tool_use(name: str, input: dict[str, Any], *, id: Optional[str] = None) -> Block:  # noqa: A002
    """A tool_use content block (``name`` is a Claude Code tool: Bash, Write, ...)."""
    return {
        "type": "tool_use",
        "id": id or f"toolu_{uuid.uuid4().hex[:24]}",
        "name": name,
        "input": input,
    }


def bash(command: str, description: str = "run a command") -> Block:
    """A call of Claude Code's Bash tool."""
    return tool_use("Bash", {"command": command, "description": description})


def _flatten(content: Any) -> str:
    """All the text inside a message content (str or list of blocks), tool results included."""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    if isinstance(content, list):
        for block in content:
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if kind == "text":
                parts.append(str(block.get("text", "")))
            elif kind == "tool_result":
                parts.append(_flatten(block.get("content", "")))
            elif kind == "tool_use":
                parts.append(json.dumps(block.get("input", {})))
    return "\n".join(parts)


@dataclass
class MessagesRequest:
    """One POST /v1/messages body, with helpers for scripts."""

    body: dict[str, Any]
    headers: dict[str, str]
    path: str = "/v1/messages"

    @property
    def model(self) -> str:
        return str(self.body.get("model", ""))

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def messages(self) -> list[dict[str, Any]]:
        msgs = self.body.get("messages", [])
        return msgs if isinstance(msgs, list) else []

    @property
    def tools(self) -> list[str]:
        tools = self.body.get("tools") or []
        return [str(t.get("name", "")) for t in tools if isinstance(t, dict)]

    @property
    def system(self) -> str:
        return _flatten(self.body.get("system", ""))

    @property
    def is_main(self) -> bool:
        """True for the agent loop's request (it offers the Bash tool); False for side
        requests such as title or topic generation."""
        return "Bash" in self.tools

    def user_texts(self) -> list[str]:
        """The text of every user turn, oldest first (tool results included)."""
        return [_flatten(m.get("content")) for m in self.messages if m.get("role") == "user"]

    def all_user_text(self) -> str:
        return "\n".join(self.user_texts())

    def first_user_text(self) -> str:
        texts = self.user_texts()
        return texts[0] if texts else ""

    def last_message(self) -> dict[str, Any]:
        """The newest user or assistant message (Claude Code also interleaves
        ``role: system`` messages, e.g. after tool results)."""
        for msg in reversed(self.messages):
            if msg.get("role") in ("user", "assistant"):
                return msg
        return {}

    def tool_results(self) -> list[dict[str, Any]]:
        """Every tool_result block in the conversation, oldest first."""
        out: list[dict[str, Any]] = []
        for msg in self.messages:
            content = msg.get("content")
            if msg.get("role") == "user" and isinstance(content, list):
                out.extend(
                    b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"
                )
        return out

    def pending_tool_results(self) -> list[dict[str, Any]]:
        """The tool_result blocks that answer the assistant's newest turn (empty when
        the conversation does not end with tool results)."""
        out: list[dict[str, Any]] = []
        for msg in reversed(self.messages):
            role = msg.get("role")
            if role == "assistant":
                break
            content = msg.get("content")
            if role == "user":
                if not isinstance(content, list):
                    return []
                results = [
                    b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"
                ]
                if not results:
                    return []
                out[:0] = results
        return out

    def last_tool_result(self) -> Optional[str]:
        """The text of the newest tool_result when the conversation ends with tool
        results (the model is to go on after a tool call), else None."""
        results = self.pending_tool_results()
        return _flatten(results[-1].get("content", "")) if results else None

    def tool_uses(self) -> list[dict[str, Any]]:
        """Every tool_use block the (fake) assistant sent so far."""
        out: list[dict[str, Any]] = []
        for msg in self.messages:
            content = msg.get("content")
            if msg.get("role") == "assistant" and isinstance(content, list):
                out.extend(
                    b for b in content if isinstance(b, dict) and b.get("type") == "tool_use"
                )
        return out

    def turns_with_tools(self) -> int:
        """How many tool calls have been answered (the step number of a scripted loop)."""
        return len(self.tool_results())


Script = Callable[[MessagesRequest], Reply]


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int = 0
    error: Optional[str] = None


def default_script(req: MessagesRequest) -> Reply:
    return None


@dataclass
class FakeAnthropic:
    """The fake API server. Use as a context manager, or call start()/stop()."""

    script: Script = default_script
    default_text: str = "OK"
    # A runaway loop (a script that calls a tool forever) ends here: later main
    # requests get a plain text reply and an error is recorded.
    max_main_requests: int = 150
    requests: list[RecordedRequest] = field(default_factory=list)
    _server: Optional[ThreadingHTTPServer] = None
    _thread: Optional[threading.Thread] = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> FakeAnthropic:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:  # noqa: N802
                fake._handle(self, "GET")

            def do_POST(self) -> None:  # noqa: N802
                fake._handle(self, "POST")

            def do_HEAD(self) -> None:  # noqa: N802
                fake._handle(self, "HEAD")

            def do_PUT(self) -> None:  # noqa: N802
                fake._handle(self, "PUT")

            def do_DELETE(self) -> None:  # noqa: N802
                fake._handle(self, "DELETE")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- what was asked --------------------------------------------------------
    def messages_requests(self) -> list[MessagesRequest]:
        with self._lock:
            recs = list(self.requests)
        return [
            MessagesRequest(r.body, r.headers, r.path)
            for r in recs
            if r.method == "POST" and r.path == "/v1/messages" and isinstance(r.body, dict)
        ]

    def main_requests(self) -> list[MessagesRequest]:
        return [r for r in self.messages_requests() if r.is_main]

    def errors(self) -> list[str]:
        with self._lock:
            return [r.error for r in self.requests if r.error]

    def unknown_paths(self) -> list[str]:
        with self._lock:
            return [f"{r.method} {r.path}" for r in self.requests if r.status == 404]

    def describe(self) -> str:
        """A short log of every request, for assertion messages."""
        lines = []
        with self._lock:
            recs = list(self.requests)
        for r in recs:
            extra = ""
            if isinstance(r.body, dict) and r.path == "/v1/messages":
                req = MessagesRequest(r.body, r.headers)
                last = _flatten(req.last_message().get("content"))[-160:].replace("\n", " | ")
                extra = f" model={req.model} main={req.is_main} last={last!r}"
            lines.append(f"{r.method} {r.path} -> {r.status}{extra}")
            if r.error:
                lines.append("  error: " + r.error.strip().splitlines()[-1])
        return "\n".join(lines)

    # -- HTTP --------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        path = h.path.split("?", 1)[0]
        rec = RecordedRequest(method, path, {k.lower(): v for k, v in h.headers.items()}, body)
        with self._lock:
            self.requests.append(rec)
        try:
            if method == "POST" and path == "/v1/messages" and isinstance(body, dict):
                self._messages(h, rec, body)
            elif method == "POST" and path == "/v1/messages/count_tokens":
                tokens = max(1, len(json.dumps(body)) // 4)
                self._json(h, rec, 200, {"input_tokens": tokens})
            elif method == "HEAD" or (method == "GET" and path in ("/", "/v1")):
                self._json(h, rec, 200, {})
            else:
                self._json(
                    h,
                    rec,
                    404,
                    {"type": "error", "error": {"type": "not_found_error", "message": path}},
                )
        except (BrokenPipeError, ConnectionResetError):
            rec.error = "client closed the connection"
        except Exception:  # a broken script must show in the test, not hang claude
            rec.error = traceback.format_exc()
            try:
                self._json(
                    h,
                    rec,
                    500,
                    {"type": "error", "error": {"type": "api_error", "message": "fake"}},
                )
            except OSError:
                pass

    def _json(self, h: BaseHTTPRequestHandler, rec: RecordedRequest, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        rec.status = status
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.send_header("request-id", f"req_fake_{next(self._ids)}")
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(data)

    def _error(self, h: BaseHTTPRequestHandler, rec: RecordedRequest, err: ApiError) -> None:
        data = json.dumps(
            {"type": "error", "error": {"type": err.error_type, "message": err.message}}
        ).encode()
        rec.status = err.status
        h.send_response(err.status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.send_header("request-id", f"req_fake_{next(self._ids)}")
        for key, value in err.headers.items():
            h.send_header(key, value)
        h.end_headers()
        h.wfile.write(data)

    def _reply_blocks(
        self, req: MessagesRequest, rec: RecordedRequest
    ) -> Union[list[Block], ApiError]:
        if req.is_main and len(self.main_requests()) > self.max_main_requests:
            rec.error = f"more than {self.max_main_requests} main requests: runaway script?"
            return [text("fake API: request limit reached")]
        reply = self.script(req)
        if isinstance(reply, ApiError):
            return reply
        if reply is None:
            return [text(self.default_text)]
        if isinstance(reply, str):
            return [text(reply)]
        return list(reply)

    def _messages(
        self, h: BaseHTTPRequestHandler, rec: RecordedRequest, body: dict[str, Any]
    ) -> None:
        req = MessagesRequest(body, rec.headers)
        blocks = self._reply_blocks(req, rec)
        if isinstance(blocks, ApiError):
            self._error(h, rec, blocks)
            return
        stop = "tool_use" if any(b.get("type") == "tool_use" for b in blocks) else "end_turn"
        msg_id = f"msg_fake_{next(self._ids)}"
        in_tokens = max(1, len(json.dumps(body)) // 4)
        out_tokens = max(1, len(json.dumps(blocks)) // 4)
        usage = {
            "input_tokens": in_tokens,
            "output_tokens": out_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        message = {
            "id": msg_id,
            "type": "message",
            "role": "assistant",
            "model": req.model,
            "content": blocks,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": usage,
        }
        if not req.stream:
            self._json(h, rec, 200, message)
            return
        events: list[tuple[str, dict[str, Any]]] = [
            (
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        **message,
                        "content": [],
                        "stop_reason": None,
                        "usage": {**usage, "output_tokens": 1},
                    },
                },
            ),
            ("ping", {"type": "ping"}),
        ]
        for index, block in enumerate(blocks):
            if block.get("type") == "tool_use":
                start = {**block, "input": {}}
                delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
            else:
                start = {"type": "text", "text": ""}
                delta = {"type": "text_delta", "text": str(block.get("text", ""))}
            events.append(
                (
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": start},
                )
            )
            events.append(
                (
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            )
            events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
        events.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": {"output_tokens": out_tokens},
                },
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
        data = "".join(f"event: {name}\ndata: {json.dumps(ev)}\n\n" for name, ev in events).encode()
        rec.status = 200
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream; charset=utf-8")
        h.send_header("Cache-Control", "no-cache")
        h.send_header("Content-Length", str(len(data)))
        h.send_header("request-id", f"req_fake_{next(self._ids)}")
        h.end_headers()
        h.wfile.write(data)
        h.wfile.flush()


def serve_forever(script: Script = default_script) -> None:  # pragma: no cover - manual use
    """``python tests/e2e/fake_anthropic.py``: run a server and print its URL (for poking)."""
    fake = FakeAnthropic(script).start()
    print(fake.base_url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        for line in fake.describe().splitlines():
            print(line)
        fake.stop()


if __name__ == "__main__":  # pragma: no cover
    serve_forever()

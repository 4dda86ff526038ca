"""A real HTTP webhook receiver for tests: a ThreadingHTTPServer on 127.0.0.1 whose
answer is programmed per path (status codes in sequence, optionally after a delay), and
which records every request's path, headers and raw body."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Answer:
    """One programmed reply: wait `delay_s`, then answer `status` (with `headers`)."""

    status: int = 200
    delay_s: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    at: float  # time.monotonic() on arrival


@dataclass
class _Program:
    steps: list[Answer]
    then: Answer


@dataclass
class Receiver:
    host: str = "127.0.0.1"
    _programs: dict[str, _Program] = field(default_factory=dict)
    _received: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                answer = receiver._record(
                    Received(
                        self.path,
                        {name.lower(): value for name, value in self.headers.items()},
                        body,
                        time.monotonic(),
                    )
                )
                if answer.delay_s:
                    time.sleep(answer.delay_s)
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers:
                        self.send_header(name, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the dispatcher gave up waiting and closed the connection

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            # The dispatcher opens up to 16 connections at once; the default backlog of 5
            # would drop SYNs, and a retransmitted SYN comes after the 1 s time-out.
            request_queue_size = 128

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a peer that hung up mid-answer is part of the tests

        self._server = Server((self.host, 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.server_address[1]
        return port

    def new_path(
        self, steps: list[int | Answer] | None = None, then: int | Answer = 200
    ) -> tuple[str, str]:
        """A fresh path answering `steps` in order, then `then` forever: (path, url)."""
        path = f"/hook/{uuid.uuid4().hex}"
        self.program(path, steps or [], then)
        return path, f"http://{self.host}:{self.port}{path}"

    def program(self, path: str, steps: list[int | Answer], then: int | Answer = 200) -> None:
        def answer(step: int | Answer) -> Answer:
            return step if isinstance(step, Answer) else Answer(step)

        with self._lock:
            self._programs[path] = _Program([answer(s) for s in steps], answer(then))

    def _record(self, request: Received) -> Answer:
        with self._lock:
            self._received.append(request)
            program = self._programs.get(request.path)
            if program is None:
                return Answer(404)
            return program.steps.pop(0) if program.steps else program.then

    def received(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self._received if r.path == path]

    def wait(
        self,
        path: str,
        until: Callable[[list[Received]], bool],
        timeout_s: float = 15,
    ) -> list[Received]:
        """The requests to `path` once `until` holds of them (or whatever came by the
        deadline: the caller's assertion then says what is missing)."""
        deadline = time.monotonic() + timeout_s
        while True:
            got = self.received(path)
            if until(got) or time.monotonic() > deadline:
                return got
            time.sleep(0.02)

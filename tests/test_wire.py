"""The server's HTTP protocol writes a response to its socket once, whole
(``scim.api.wire``), and everything else as uvicorn would."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.server import ServerState

from scim.api.wire import HttpProtocol

Scope = dict[str, Any]


class Transport(asyncio.Transport):
    """A socket's transport that records what uvicorn does with it, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.done: list[tuple[str, bytes]] = []
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.done.append(("write", bytes(data)))

    def close(self) -> None:
        self.closing = True
        self.done.append(("close", b""))

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    @property
    def written(self) -> list[bytes]:
        return [data for what, data in self.done if what == "write"]


async def served(app: Any, request: bytes) -> Transport:
    """``request`` sent on a new connection to ``app``, once its answer is complete."""
    config = Config(app, lifespan="off", log_level="warning")
    protocol = HttpProtocol(config=config, server_state=ServerState(), app_state={})
    transport = Transport()
    protocol.connection_made(transport)
    protocol.data_received(request)
    for _ in range(100):
        await asyncio.sleep(0)
        if protocol.cycle is not None and protocol.cycle.response_complete:
            break
    await asyncio.sleep(0)  # the end of the turn that completed it
    return transport


async def answer(scope: Scope, receive: Any, send: Any) -> None:
    """As Litestar answers: the start and the whole body, one after the other."""
    headers = [(b"content-type", b"application/scim+json"), (b"content-length", b"13")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b'{"id": "abc"}'})


async def test_a_response_goes_to_the_socket_in_one_write() -> None:
    transport = await served(answer, b"GET /scim/v2/Users/abc HTTP/1.1\r\nHost: t\r\n\r\n")
    assert len(transport.written) == 1, transport.written
    head, _, body = transport.written[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"content-length: 13" in head
    assert body == b'{"id": "abc"}'


async def test_what_is_sent_across_turns_of_the_loop_is_written_as_it_comes() -> None:
    """A streamed body (a file of the browser client) is not held back beyond the turn it
    was sent in."""

    async def streamed(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"one", b"two", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b""})

    transport = await served(streamed, b"GET /admin/app.js HTTP/1.1\r\nHost: t\r\n\r\n")
    written = transport.written
    assert len(written) == 4, written
    assert written[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert written[0].endswith(b"3\r\none\r\n")  # the head with the first part
    assert written[1:] == [b"3\r\ntwo\r\n", b"5\r\nthree\r\n", b"0\r\n\r\n"]


async def test_a_connection_closed_after_its_answer_gets_the_answer_first() -> None:
    transport = await served(
        answer, b"GET /scim/v2/Users/abc HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    assert [what for what, _ in transport.done] == ["write", "close"]
    assert transport.written[0].endswith(b'{"id": "abc"}')

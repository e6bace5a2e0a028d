"""asyncio binding: the same protocol over asyncio streams.

    import asyncio, agent.aio

    async def main():
        async with agent.aio.connect("/tmp/agentd.sock", "alice") as conn:
            await conn.join("chat")
            await conn.multicast("chat", b"hello")
            async for msg in conn:
                print(msg)

    asyncio.run(main())

A connection belongs to the event loop it was made in. Coroutines of that loop may call it
concurrently: sends are serialised by one asyncio.Lock and receives by another.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Iterable, Optional, Union

from . import _address
from . import _protocol as P
from . import names as _names
from . import client as _client  # _version_for_tests: the tests change it
from . import _auth
from .client import handle_first_frame, hello_flags
from .errors import ConnectError, ConnectionClosed, ProtocolError, Timeout
from .messages import AGREED, Message, Position

_READ_BYTES = 256 * 1024
_STREAM_LIMIT = 1 << 20

__all__ = ["connect", "Connection"]


def connect(daemon: Optional[str] = None, name: Optional[str] = None, *,
            membership: bool = True, timeout: Optional[float] = 5.0,
            positions: bool = False, user=None, secret=None) -> "_Connecting":
    """Connects to an agentd; the arguments are those of :func:`agent.connect`.

    Await it (``conn = await agent.aio.connect(...)``) or use it as an async context manager
    (``async with agent.aio.connect(...) as conn:``), which closes the connection at the end.
    """
    return _Connecting(_connect(daemon, name, membership, timeout, positions, user, secret))


class _Connecting:
    """What connect() returns: awaitable, and an async context manager."""

    __slots__ = ("_coro", "_conn")

    def __init__(self, coro):
        self._coro = coro
        self._conn = None

    def __await__(self):
        return self._coro.__await__()

    async def __aenter__(self) -> "Connection":
        self._conn = await self._coro
        return self._conn

    async def __aexit__(self, *exc) -> None:
        await self._conn.close()


async def _open_socket(loop, addr: _address.Address) -> socket.socket:
    if addr.unix is not None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, addr.unix)
        except BaseException:
            sock.close()
            raise
        return sock
    last = None
    for family, type_, proto, _, sockaddr in await loop.getaddrinfo(
            addr.host, addr.port, type=socket.SOCK_STREAM):
        sock = socket.socket(family, type_, proto)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, sockaddr)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        except OSError as e:
            sock.close()
            last = e
        except BaseException:
            sock.close()
            raise
    raise last or OSError("no address for %s" % addr.host)


async def _connect(daemon, name, membership, timeout, positions, user, secret) -> "Connection":
    addr = _address.parse(daemon)
    flags = hello_flags(name, membership, positions)
    loop = asyncio.get_running_loop()
    frames = P.FrameBuffer(P.MAX_INCOMING_FRAME)
    sock = None

    # The handshake runs on the bare socket (so that an error the daemon sent before closing
    # is read even when sending the hello failed); the streams take over afterwards.
    async def handshake():
        nonlocal sock
        try:
            sock = await _open_socket(loop, addr)
        except OSError as e:
            raise ConnectError("cannot reach agentd at %s: %s" % (addr, e)) from e
        send_error = None
        hello = P.encode_hello(name or "", flags, _client._version_for_tests)
        try:
            await loop.sock_sendall(sock, hello)
        except (BrokenPipeError, ConnectionResetError) as e:
            send_error = e
        while True:
            frame = frames.next()
            if frame is not None and frame[0] == _auth.CHALLENGE:
                await loop.sock_sendall(sock, _auth.answer(frames.buf, frame[1], frame[2],
                                                           hello[P.HEADER_BYTES:], user, secret))
                continue
            if frame is not None:
                return handle_first_frame(frames, frame)
            data = await loop.sock_recv(sock, _READ_BYTES)
            if not data:
                raise _client.handshake_eof(addr, send_error)
            frames.feed(data)

    try:
        welcome = await asyncio.wait_for(handshake(), timeout)
        if addr.unix is not None:
            reader, writer = await asyncio.open_unix_connection(sock=sock, limit=_STREAM_LIMIT)
        else:
            reader, writer = await asyncio.open_connection(sock=sock, limit=_STREAM_LIMIT)
    except BaseException as e:
        if sock is not None:
            sock.close()
        if isinstance(e, asyncio.TimeoutError):
            raise ConnectError("agentd at %s did not answer within %s s"
                               % (addr, timeout)) from None
        if isinstance(e, OSError) and not isinstance(e, ConnectError):
            raise ConnectError("connection to agentd at %s failed: %s" % (addr, e)) from e
        raise
    return Connection(reader, writer, welcome, frames, addr, membership, positions)


def _close_quietly(writer) -> None:
    if writer is not None:
        try:
            writer.close()
        except Exception:
            pass


class Connection:
    """An asyncio connection to agentd. Methods that talk to the daemon are coroutines."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 welcome: P.Welcome, frames: P.FrameBuffer, address: _address.Address,
                 membership: bool, positions: bool = False):
        self._reader = reader
        self._writer = writer
        self._frames = frames
        self._send_lock = asyncio.Lock()
        self._recv_lock = asyncio.Lock()
        self._closed = False
        self._closed_by_user = False  # close() was called
        self._eof = False
        self._send_broken = False
        self.private_group: str = welcome.private_group
        self.daemon_name: str = welcome.daemon
        self.max_message: int = welcome.max_message
        self.protocol_version: int = welcome.version
        self.address: str = str(address)
        self.membership: bool = membership
        self.positions: bool = positions

    @property
    def name(self) -> str:
        return self.private_group[1:self.private_group.index("#", 1)]

    @property
    def closed(self) -> bool:
        return self._closed or self._eof or self._send_broken

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return "<agent.aio.Connection %s via %s, %s>" % (self.private_group, self.address, state)

    async def __aenter__(self) -> "Connection":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # ------------------------------------------------------------------------------ sending
    async def _send(self, frame: bytes) -> None:
        async with self._send_lock:
            if self._closed or self._eof or self._send_broken:
                raise ConnectionClosed("the connection is closed")
            try:
                self._writer.write(frame)
                await self._writer.drain()
            except (OSError, RuntimeError) as e:  # RuntimeError: transport closed under us
                self._send_broken = True  # what already arrived can still be received
                raise ConnectionClosed("the connection to agentd broke: %s" % e) from e

    async def join(self, group: str) -> None:
        await self._send(P.encode_join(_names.check_group(group)))

    async def leave(self, group: str) -> None:
        await self._send(P.encode_leave(_names.check_group(group)))

    async def history(self, group: str, after: Optional[Position] = None,
                      join: bool = False) -> None:
        """Asks for a persistent group's logged messages after ``after`` (see
        agent.Connection.history): positioned DataMessages, then a HistoryEndMessage."""
        await self._send(P.build_history(group, after, join))

    async def history_since(self, group: str, unix_ms: Union[int, float],
                            join: bool = False) -> None:
        """history() from the first message delivered at or after unix_ms (ms since 1970)."""
        await self._send(P.build_history_since(group, unix_ms, join))

    async def multicast(self, groups: Union[str, Iterable[str]], data: bytes,
                        service: int = AGREED, msg_type: int = 0,
                        self_discard: bool = False) -> None:
        await self._send(P.build_multicast(groups, data, service, msg_type, self_discard,
                                           self.max_message))

    async def multicast_many(self, groups: Union[str, Iterable[str]], messages: Iterable[bytes],
                             service: int = AGREED, msg_type: int = 0,
                             self_discard: bool = False) -> None:
        """multicast() for each of messages, in order, written together (see
        agent.Connection.multicast_many); every message is checked before any is sent."""
        if not isinstance(groups, (str, bytes, bytearray)):
            groups = list(groups)
        frames = [P.build_multicast(groups, data, service, msg_type, self_discard,
                                    self.max_message) for data in messages]
        if frames:
            await self._send(b"".join(frames))

    async def send_private(self, private_group: str, data: bytes, service: int = AGREED,
                           msg_type: int = 0, self_discard: bool = False) -> None:
        _names.check_private_group(private_group)
        await self.multicast(private_group, data, service, msg_type, self_discard)

    # ------------------------------------------------------------------------------ receiving
    def _next_buffered(self) -> Optional[Message]:
        try:
            frame = self._frames.next()
        except ProtocolError:
            self._abort()
            raise
        if frame is None:
            return None
        verb, start, end = frame
        try:
            return P.decode(verb, self._frames.buf, start, end)
        except ProtocolError:
            self._abort()
            raise

    async def _read_until_message(self) -> Message:
        # Cancellation-safe: bytes move from the StreamReader to self._frames only between
        # awaits, so a timeout never loses part of a frame.
        while True:
            msg = self._next_buffered()
            if msg is not None:
                return msg
            if self._closed:
                raise ConnectionClosed("the connection is closed")
            if self._eof:
                raise ConnectionClosed("the daemon closed the connection")
            try:
                data = await self._reader.read(_READ_BYTES)
            except OSError as e:
                self._eof = True
                raise ConnectionClosed("the connection to agentd broke: %s" % e) from e
            if not data:
                self._eof = True
                continue
            self._frames.feed(data)

    async def _locked_read(self) -> Message:
        async with self._recv_lock:
            if self._closed:
                raise ConnectionClosed("the connection is closed")
            return await self._read_until_message()

    async def receive(self, timeout: Optional[float] = None) -> Message:
        """The next message; raises agent.Timeout after timeout seconds (None: wait forever;
        0: only what has arrived) and ConnectionClosed once the connection is closed and
        drained."""
        if self._closed:
            raise ConnectionClosed("the connection is closed")
        if timeout is None:
            return await self._locked_read()
        if hasattr(asyncio, "timeout"):
            # Python 3.11+: the body runs until it really has to wait, so timeout=0 still
            # returns a message that has already arrived.
            try:
                async with asyncio.timeout(timeout):
                    return await self._locked_read()
            except TimeoutError as e:
                if isinstance(e, Timeout):
                    raise
                raise Timeout("no message within %s s" % timeout) from None
        try:
            return await asyncio.wait_for(self._locked_read(), max(timeout, 0.001))
        except asyncio.TimeoutError:
            raise Timeout("no message within %s s" % timeout) from None

    def __aiter__(self) -> "Connection":
        return self

    async def __anext__(self) -> Message:
        # Ends quietly after this program's own close(); a daemon that goes away raises
        # ConnectionClosed (as agent.Connection's iteration).
        try:
            return await self.receive()
        except ConnectionClosed:
            if self._closed_by_user:
                raise StopAsyncIteration from None
            raise

    # ------------------------------------------------------------------------------ closing
    async def close(self, wait: float = _client.DISCONNECT_WAIT) -> None:
        """Says goodbye and closes. Idempotent. As agent.Connection.close: every message a
        send accepted reaches the daemon, which it waits for (up to ``wait`` seconds,
        discarding deliveries meanwhile; not while another task is receiving)."""
        if self._closed:
            return
        self._closed_by_user = True
        if not self._eof and not self._send_broken:
            try:
                async with self._send_lock:
                    self._writer.write(P.encode_bye())
                    await asyncio.wait_for(self._writer.drain(), wait)
                    if self._writer.can_write_eof():
                        self._writer.write_eof()  # half-close: the daemon reads up to here
                if not self._recv_lock.locked():
                    async with self._recv_lock:
                        await asyncio.wait_for(self._drain_until_closed(), wait)
            except Exception:  # a timeout, or the connection failed: close anyway
                pass
        self._abort()
        try:
            await asyncio.wait_for(self._writer.wait_closed(), 2.0)
        except Exception:
            pass

    async def _drain_until_closed(self) -> None:
        # Closing with deliveries unread would make the kernel reset a TCP connection, and the
        # daemon lose what it had not read yet: read (discarding) until it closes its end.
        while await self._reader.read(_READ_BYTES):
            pass

    def _abort(self) -> None:
        self._closed = True
        _close_quietly(self._writer)

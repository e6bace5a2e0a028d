"""The blocking connection (threads, selectors). See agent.aio for asyncio."""

from __future__ import annotations

import select
import socket
import threading
import time
from typing import Iterable, Iterator, Optional, Union

from . import _address
from . import _auth
from . import _protocol as P
from . import names as _names
from .errors import (ConnectError, ConnectionClosed, ProtocolError, Timeout,
                     VersionMismatch, connect_error)
from .messages import AGREED, Message, Position

_RECV_BYTES = 256 * 1024
_SEND_BATCH_BYTES = 64 * 1024  # multicast_many writes at least this much at once
# How long close() waits for the daemon to read everything sent before the goodbye (seconds).
DISCONNECT_WAIT = 10.0
_version_for_tests = P.VERSION  # the tests change it to see the daemon's version check


def hello_flags(name: Optional[str], membership: bool, positions: bool = False) -> int:
    flags = P.HELLO_WANT_MEMBERSHIP if membership else 0
    if positions:
        flags |= P.HELLO_POSITIONS
    if name is None:
        flags |= P.HELLO_GENERATE_NAME
    else:
        _names.check_private_name(name)
    return flags


def handle_first_frame(frames: P.FrameBuffer, frame) -> P.Welcome:
    """The daemon's answer to hello: a welcome, or an error that becomes an exception."""
    verb, start, end = frame
    if verb == P.WELCOME:
        w = P.decode_welcome(frames.buf, start, end)
        if w.version != P.VERSION:
            raise VersionMismatch("the daemon answered with protocol version %d, this binding "
                                  "speaks %d" % (w.version, P.VERSION))
        return w
    if verb == P.ERROR:
        e = P.decode(verb, frames.buf, start, end)
        raise connect_error(int(e.code), e.subject, e.text)
    raise ProtocolError("the daemon answered hello with verb 0x%02x" % verb)


def handshake_eof(addr, send_error) -> ConnectError:
    if send_error is not None:
        return ConnectError("connection to agentd at %s failed: %s" % (addr, send_error))
    return ConnectError("agentd at %s closed the connection during the handshake" % addr)


def _open_socket(addr: _address.Address, timeout: Optional[float]) -> socket.socket:
    try:
        if addr.unix is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(timeout)
                sock.connect(addr.unix)
            except BaseException:
                sock.close()
                raise
        else:
            sock = socket.create_connection((addr.host, addr.port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError as e:
        raise ConnectError("cannot reach agentd at %s: %s" % (addr, e)) from e
    return sock


def connect(daemon: Optional[str] = None, name: Optional[str] = None, *,
            membership: bool = True, timeout: Optional[float] = 5.0,
            positions: bool = False, user: Optional[Union[str, bytes]] = None,
            secret: Optional[Union[str, bytes]] = None) -> "Connection":
    """Connects to an agentd and returns a :class:`Connection`.

    daemon: ``"/path/to.sock"`` (Unix socket), ``"host:port"``, ``"port"`` (127.0.0.1) or
    ``"port@host"`` (Spread's form); None means $AGENT_DAEMON, else ``/tmp/agentd.sock``.
    name: the private name (1..10 printable ASCII characters, no '#'); None lets the daemon
    choose a unique one. membership: deliver membership messages. timeout: seconds for the
    connection and the handshake (None: wait forever). positions: live DataMessages carry
    their ``position`` in the total order (history entries always do). user, secret: a name
    of the daemon's secrets file and its secret, for a TCP listener that asks clients to
    authenticate; without them ``$AGENT_SECRET_FILE`` (and ``$AGENT_USER``) are used.

    Raises ConnectError (unreachable), IllegalName, NameTaken, VersionMismatch, AuthFailed or
    Rejected.
    """
    addr = _address.parse(daemon)
    flags = hello_flags(name, membership, positions)
    deadline = None if timeout is None else time.monotonic() + timeout
    sock = _open_socket(addr, timeout)
    frames = P.FrameBuffer(P.MAX_INCOMING_FRAME)
    try:
        send_error = None
        hello = P.encode_hello(name or "", flags, _version_for_tests)
        try:
            sock.sendall(hello)
        except (BrokenPipeError, ConnectionResetError) as e:
            # A daemon that refuses a connection at once (too many clients, shutting down)
            # sends its error and closes, maybe before the hello arrived: read the error.
            send_error = e
        while True:
            frame = frames.next()
            if frame is not None and frame[0] == _auth.CHALLENGE:
                # The daemon wants to know who this is first.
                sock.sendall(_auth.answer(frames.buf, frame[1], frame[2],
                                          hello[P.HEADER_BYTES:], user, secret))
                continue
            if frame is not None:
                welcome = handle_first_frame(frames, frame)
                break
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise socket.timeout()
                sock.settimeout(remaining)
            data = sock.recv(_RECV_BYTES)
            if not data:
                raise handshake_eof(addr, send_error)
            frames.feed(data)
        sock.settimeout(None)
    except socket.timeout:
        sock.close()
        raise ConnectError("agentd at %s did not answer within %s s" % (addr, timeout)) from None
    except OSError as e:
        sock.close()
        raise ConnectError("connection to agentd at %s failed: %s" % (addr, e)) from e
    except BaseException:
        sock.close()
        raise
    return Connection(sock, welcome, frames, addr, membership, positions)


class Connection:
    """A connection to agentd: join groups, multicast, receive one ordered message stream.

    Thread safety: sends (join, leave, multicast, send_private) are serialised by one lock and
    receives by another, so any number of threads may send while one (or more) receives.
    close() may be called from any thread; it wakes a thread blocked in receive(), which then
    raises ConnectionClosed.
    """

    def __init__(self, sock: socket.socket, welcome: P.Welcome, frames: P.FrameBuffer,
                 address: _address.Address, membership: bool, positions: bool = False):
        self._sock = sock
        self._frames = frames
        self._send_lock = threading.RLock()
        self._recv_lock = threading.RLock()
        self._closed = False    # closed: by close(), or after a protocol error
        self._closed_by_user = False  # close() was called
        self._eof = False       # the daemon closed its side (buffered frames may remain)
        self._send_broken = False
        self._poll = select.poll() if hasattr(select, "poll") else None
        if self._poll is not None:
            self._poll.register(sock.fileno(), select.POLLIN)
        self.private_group: str = welcome.private_group
        self.daemon_name: str = welcome.daemon
        self.max_message: int = welcome.max_message
        self.protocol_version: int = welcome.version
        self.address: str = str(address)
        self.membership: bool = membership
        self.positions: bool = positions

    # ------------------------------------------------------------------------------ basics
    @property
    def name(self) -> str:
        """This connection's private name (the middle of ``#name#daemon``)."""
        return self.private_group[1:self.private_group.index("#", 1)]

    @property
    def closed(self) -> bool:
        return self._closed or self._eof or self._send_broken

    def fileno(self) -> int:
        """The socket, for select/selectors/poll. Readable means receive() will make progress;
        messages may also already be buffered: drain with receive(timeout=0) until Timeout, or
        check pending()."""
        return self._sock.fileno()

    def pending(self) -> int:
        """Complete messages already read from the socket and waiting in this object."""
        return self._frames.complete_frames()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return "<agent.Connection %s via %s, %s>" % (self.private_group, self.address, state)

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------------------ sending
    def _send(self, frame: bytes) -> None:
        with self._send_lock:
            if self._closed or self._eof or self._send_broken:
                raise ConnectionClosed("the connection is closed")
            try:
                self._sock.sendall(frame)
            except OSError as e:
                if self._closed:
                    self._close_fd_if_idle()
                    raise ConnectionClosed("the connection is closed") from None
                # receive() still returns what the daemon sent before it closed (error 14, 15).
                self._send_broken = True
                raise ConnectionClosed("the connection to agentd broke: %s" % e) from e

    def join(self, group: str) -> None:
        """Asks to join a public group. It has taken effect when this connection's own
        membership message for the group arrives; a refusal arrives as an ErrorMessage."""
        self._send(P.encode_join(_names.check_group(group)))

    def leave(self, group: str) -> None:
        """Asks to leave a group; a self-leave MembershipMessage confirms it."""
        self._send(P.encode_leave(_names.check_group(group)))

    def history(self, group: str, after: Optional[Position] = None, join: bool = False) -> None:
        """Asks for the logged messages of a persistent group (one the daemon's ``[persist]
        groups`` name) after position ``after`` (None: from the oldest kept). They arrive as
        DataMessages with their ``position``, oldest first, then a HistoryEndMessage; until it,
        nothing else is delivered (what the daemon held back follows it).

        join=True also joins the group: the history runs up to the join, this connection's
        view follows the end, then the live messages, with nothing missing and nothing twice at
        the hand-over. To resume after a restart, remember the position of the last message
        handled and join with the history after it. A group without a log gives an
        ErrorMessage with code 17 (ErrorCode.NOT_PERSISTENT) instead; a log the daemon cannot
        read, code 18 then an end with ``failed`` set. Raises IllegalGroup (before sending) for
        a bad or private group name."""
        self._send(P.build_history(group, after, join))

    def history_since(self, group: str, unix_ms: Union[int, float], join: bool = False) -> None:
        """history() from the first message the daemon delivered at or after ``unix_ms``
        (milliseconds since 1970; e.g. ``time.time() * 1000``)."""
        self._send(P.build_history_since(group, unix_ms, join))

    def multicast(self, groups: Union[str, Iterable[str]], data: bytes, service: int = AGREED,
                  msg_type: int = 0, self_discard: bool = False) -> None:
        """Sends data to one group (a str) or to several (an iterable of 1..256 names, public
        or private). Each receiver gets it once whatever the number of groups it is in.
        service: one of UNRELIABLE, RELIABLE, FIFO, CAUSAL, AGREED, SAFE, optionally
        ``| SELF_DISCARD`` (or self_discard=True): the sender then gets no copy."""
        self._send(P.build_multicast(groups, data, service, msg_type, self_discard,
                                     self.max_message))

    def multicast_many(self, groups: Union[str, Iterable[str]], messages: Iterable[bytes],
                       service: int = AGREED, msg_type: int = 0,
                       self_discard: bool = False) -> None:
        """multicast() for each of messages, in order, written to the daemon together (one
        system call per 64 KiB instead of one per message: the C library's AGENT_MORE). Every
        message is checked before any is sent; a bad one raises and none goes."""
        if not isinstance(groups, (str, bytes, bytearray)):
            groups = list(groups)  # an iterator would be used up by the first message
        frames = [P.build_multicast(groups, data, service, msg_type, self_discard,
                                    self.max_message) for data in messages]
        chunk, size = [], 0
        for f in frames:
            chunk.append(f)
            size += len(f)
            if size >= _SEND_BATCH_BYTES:
                self._send(b"".join(chunk))
                chunk, size = [], 0
        if chunk:
            self._send(b"".join(chunk))

    def send_private(self, private_group: str, data: bytes, service: int = AGREED,
                     msg_type: int = 0, self_discard: bool = False) -> None:
        """Sends data to one connection, addressed by its private group ``#name#daemon``."""
        _names.check_private_group(private_group)
        self.multicast(private_group, data, service, msg_type, self_discard)

    # ------------------------------------------------------------------------------ receiving
    def receive(self, timeout: Optional[float] = None) -> Message:
        """The next DataMessage, MembershipMessage, ErrorMessage or HistoryEndMessage. Waits
        up to timeout seconds (None: forever; 0: only what is already there) and raises Timeout
        when nothing came, ConnectionClosed once the connection is closed and drained."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._recv_lock:
            while True:
                if self._closed:
                    self._close_fd_if_idle()
                    raise ConnectionClosed("the connection is closed")
                try:
                    frame = self._frames.next()
                    if frame is not None:
                        verb, start, end = frame
                        return P.decode(verb, self._frames.buf, start, end)
                except ProtocolError:
                    self._abort()
                    raise
                if self._eof:
                    if self._frames.buf and self._frames.pos < len(self._frames.buf):
                        raise ConnectionClosed("the daemon closed the connection in the middle "
                                               "of a frame")
                    raise ConnectionClosed("the daemon closed the connection")
                if deadline is not None and not self._wait_readable(deadline):
                    raise Timeout("no message within %s s" % timeout)
                try:
                    data = self._sock.recv(_RECV_BYTES)
                except OSError as e:
                    if self._closed:
                        raise ConnectionClosed("the connection is closed") from None
                    self._eof = True
                    raise ConnectionClosed("the connection to agentd broke: %s" % e) from e
                if not data:
                    self._eof = True
                    continue
                self._frames.feed(data)

    def _wait_readable(self, deadline: float) -> bool:
        remaining = max(0.0, deadline - time.monotonic())
        if self._poll is not None:
            return bool(self._poll.poll(int(remaining * 1000 + 0.999)))
        r, _, _ = select.select([self._sock], [], [], remaining)
        return bool(r)

    def __iter__(self) -> Iterator[Message]:
        """Blocking iteration over the incoming messages. It ends quietly after this program's
        own close(); when the daemon goes away (it was killed, or closed the connection after
        an error such as 'daemon shutting down', which comes first) it raises
        ConnectionClosed, so that a crash is not mistaken for a normal end."""
        while True:
            try:
                yield self.receive()
            except ConnectionClosed:
                if self._closed_by_user:
                    return
                raise

    # ------------------------------------------------------------------------------ closing
    def close(self, wait: float = DISCONNECT_WAIT) -> None:
        """Says goodbye to the daemon and closes. Idempotent; callable from any thread.

        Every message a send call accepted reaches the daemon: after the goodbye it waits (up
        to ``wait`` seconds; deliveries that arrive meanwhile are discarded) until the daemon
        has read everything and closed its end. Closing at once, with deliveries unread in the
        socket, would make the kernel reset a TCP connection and the daemon lose what it had
        not read yet. (Called while another thread is receiving on this connection, it does
        not wait.)"""
        if self._closed:
            return
        self._closed_by_user = True
        said_goodbye = False
        # The goodbye must not cut into a frame another thread is sending: take the send lock,
        # but do not wait long for it (a sender may be blocked by back-pressure).
        if self._send_lock.acquire(timeout=1.0):
            try:
                if not self._closed and not self._eof:
                    self._sock.settimeout(wait)
                    self._sock.sendall(P.encode_bye())
                    said_goodbye = True
            except OSError:
                pass
            finally:
                self._closed = True
                self._send_lock.release()
        if said_goodbye and self._recv_lock.acquire(blocking=False):
            try:
                self._drain_until_closed(wait)
            finally:
                self._recv_lock.release()
        self._abort()

    def _drain_until_closed(self, wait: float) -> None:
        try:
            self._sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + wait
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._sock.settimeout(left)
                if not self._sock.recv(65536):
                    return  # the daemon closed: it has read everything
        except OSError:  # a timeout, or the connection failed
            return

    def _abort(self) -> None:
        self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes threads blocked in recv/send
        except OSError:
            pass
        self._close_fd_if_idle()

    def _close_fd_if_idle(self) -> None:
        # Close the descriptor unless another thread is inside a call on it (its number must
        # not be reused under that thread's feet); that thread closes it on its way out.
        if self._recv_lock.acquire(blocking=False):
            try:
                if self._send_lock.acquire(blocking=False):
                    try:
                        self._sock.close()
                    finally:
                        self._send_lock.release()
            finally:
                self._recv_lock.release()

"""Parsing the ``daemon`` argument of connect()."""

from __future__ import annotations

import os
from typing import NamedTuple, Optional

DEFAULT_UNIX_SOCKET = "/tmp/agentd.sock"
ENV_VAR = "AGENT_DAEMON"


class Address(NamedTuple):
    unix: Optional[str]   # a Unix socket path, or None for TCP
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        if self.unix is not None:
            return self.unix
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "%s:%d" % (host, self.port)


def _port(text: str, spec: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError("bad port %r in daemon address %r" % (text, spec))
    return int(text)


def parse(daemon: Optional[str]) -> Address:
    """``"/path/to.sock"`` (Unix; any string with a '/'), ``"host:port"``, ``"[v6]:port"``,
    ``"port"`` (127.0.0.1), ``"port@host"`` (Spread's form). None: $AGENT_DAEMON, else the
    default Unix socket /tmp/agentd.sock."""
    if daemon is None:
        daemon = os.environ.get(ENV_VAR) or DEFAULT_UNIX_SOCKET
    if isinstance(daemon, os.PathLike):
        return Address(os.fspath(daemon))
    if not isinstance(daemon, str) or not daemon:
        raise ValueError("daemon must be a non-empty str, e.g. '/tmp/agentd.sock' or "
                         "'127.0.0.1:4803', not %r" % (daemon,))
    if "/" in daemon:
        return Address(daemon)
    if daemon.isdigit():
        return Address(None, "127.0.0.1", _port(daemon, daemon))
    if "@" in daemon:
        port, _, host = daemon.partition("@")
        return Address(None, host or "127.0.0.1", _port(port, daemon))
    if daemon.startswith("["):
        host, sep, port = daemon[1:].partition("]:")
        if not sep:
            raise ValueError("bad daemon address %r: expected [v6addr]:port" % daemon)
        return Address(None, host, _port(port, daemon))
    if ":" in daemon:
        host, _, port = daemon.rpartition(":")
        return Address(None, host or "127.0.0.1", _port(port, daemon))
    # No '/', ':' or '@': a socket file in the current directory.
    return Address(daemon)

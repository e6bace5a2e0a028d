"""Exceptions raised by the agent binding.

Every exception the binding raises on purpose derives from :class:`AgentError`. Argument
errors found before anything is sent (a bad group name, service or size) also derive from
:class:`ValueError`; :class:`Timeout` also derives from :class:`TimeoutError`.
"""

from __future__ import annotations

import enum
from typing import Optional


class ErrorCode(enum.IntEnum):
    """The daemon's error codes (docs/client-protocol.md, "Error codes"). Stable."""

    MALFORMED_FRAME = 1
    FRAME_TOO_LARGE = 2
    UNKNOWN_VERB = 3
    VERSION_MISMATCH = 4
    ILLEGAL_NAME = 5
    NAME_TAKEN = 6
    ILLEGAL_GROUP = 7
    ALREADY_MEMBER = 8
    NOT_MEMBER = 9
    MESSAGE_TOO_LARGE = 10
    ILLEGAL_SERVICE = 11
    NOT_CONNECTED = 12
    TOO_MANY_GROUPS = 13
    SLOW_CLIENT = 14
    SHUTTING_DOWN = 15
    TOO_MANY_CLIENTS = 16
    NOT_PERSISTENT = 17    # history of a group the daemon keeps no log of
    LOG_FAILED = 18        # the daemon's message log could not be read or written
    ACCESS_DENIED = 19     # an access rule does not let this client join, read or send
    AUTH_FAILED = 20       # authentication required and not given, or name/secret refused
    NOT_PERMITTED = 21     # an admin action from a client that is not an operator
    BAD_ADMIN_REQUEST = 22  # an unknown admin command, or its target is not there
    DISCONNECTED_BY_OPERATOR = 23  # an operator disconnected this client (agentctl)


# The protocol document's name for each code (the same strings as proto::error_name in C++).
ERROR_NAMES = {
    ErrorCode.MALFORMED_FRAME: "malformed frame",
    ErrorCode.FRAME_TOO_LARGE: "frame too large",
    ErrorCode.UNKNOWN_VERB: "unknown verb",
    ErrorCode.VERSION_MISMATCH: "version mismatch",
    ErrorCode.ILLEGAL_NAME: "illegal private name",
    ErrorCode.NAME_TAKEN: "private name taken",
    ErrorCode.ILLEGAL_GROUP: "illegal group name",
    ErrorCode.ALREADY_MEMBER: "already a member",
    ErrorCode.NOT_MEMBER: "not a member",
    ErrorCode.MESSAGE_TOO_LARGE: "message too large",
    ErrorCode.ILLEGAL_SERVICE: "illegal service",
    ErrorCode.NOT_CONNECTED: "not connected",
    ErrorCode.TOO_MANY_GROUPS: "bad group count",
    ErrorCode.SLOW_CLIENT: "slow client disconnected",
    ErrorCode.SHUTTING_DOWN: "daemon shutting down",
    ErrorCode.TOO_MANY_CLIENTS: "too many clients",
    ErrorCode.NOT_PERSISTENT: "not a persistent group",
    ErrorCode.LOG_FAILED: "message log failed",
    ErrorCode.ACCESS_DENIED: "access denied",
    ErrorCode.AUTH_FAILED: "authentication failed",
    ErrorCode.NOT_PERMITTED: "not permitted",
    ErrorCode.BAD_ADMIN_REQUEST: "bad admin request",
    ErrorCode.DISCONNECTED_BY_OPERATOR: "disconnected by an operator",
}

# Codes after which the daemon closes the connection (the table's "after it" column). Code 12
# closes only when it answers a verb sent before hello, which this binding never does.
CLOSING_CODES = frozenset({
    ErrorCode.FRAME_TOO_LARGE,
    ErrorCode.VERSION_MISMATCH,
    ErrorCode.ILLEGAL_NAME,
    ErrorCode.NAME_TAKEN,
    ErrorCode.SLOW_CLIENT,
    ErrorCode.SHUTTING_DOWN,
    ErrorCode.TOO_MANY_CLIENTS,
    ErrorCode.AUTH_FAILED,
    ErrorCode.DISCONNECTED_BY_OPERATOR,
})


def error_code(code: int):
    """``code`` as an :class:`ErrorCode` when it is a known one, else the plain int."""
    try:
        return ErrorCode(code)
    except ValueError:
        return code


def error_name(code: int) -> str:
    known = error_code(code)
    if isinstance(known, ErrorCode):
        return ERROR_NAMES[known]
    return "unknown error %d" % code


class AgentError(Exception):
    """Base class. ``code``/``subject`` are set when the daemon reported the error."""

    def __init__(self, message: str, code: Optional[int] = None, subject: str = ""):
        super().__init__(message)
        self.code = error_code(code) if code is not None else None
        self.subject = subject


class ConnectError(AgentError):
    """The daemon could not be reached (no socket, refused, handshake timed out)."""


class ConnectionClosed(AgentError):
    """The connection is closed: by :meth:`close`, by the daemon, or by a network failure."""


class Timeout(AgentError, TimeoutError):
    """``receive(timeout=...)`` found no message in time."""


class ProtocolError(AgentError):
    """The daemon sent bytes this binding cannot decode; the connection is closed."""


class Rejected(AgentError):
    """The daemon refused the connection for a reason without its own class
    (too many clients, shutting down, ...)."""


class VersionMismatch(Rejected):
    """The daemon does not speak this binding's protocol version (error 4)."""


class NameTaken(Rejected):
    """Another client with this private name is connected to the daemon (error 6)."""


class AuthFailed(Rejected):
    """The daemon asked this TCP client to authenticate and refused its name or secret
    (error 20), or there was nothing to answer with (no ``user``/``secret`` and no
    ``$AGENT_SECRET_FILE``)."""


class IllegalName(AgentError, ValueError):
    """A private name that is empty, longer than 10 bytes or has a forbidden character."""


class IllegalGroup(AgentError, ValueError):
    """A group name that is empty, longer than 31 bytes or has a forbidden character, or a
    private group where only a public group is allowed (join/leave)."""


class IllegalService(AgentError, ValueError):
    """Not exactly one of UNRELIABLE..SAFE (optionally with SELF_DISCARD)."""


class BadGroupCount(AgentError, ValueError):
    """A multicast to no group or to more than 256 groups."""


class MessageTooLarge(AgentError, ValueError):
    """A payload larger than the daemon's ``max_message``."""


# Daemon error code -> exception raised when that error answers the hello.
CONNECT_ERRORS = {
    ErrorCode.VERSION_MISMATCH: VersionMismatch,
    ErrorCode.ILLEGAL_NAME: IllegalName,
    ErrorCode.NAME_TAKEN: NameTaken,
    ErrorCode.AUTH_FAILED: AuthFailed,
}


def connect_error(code: int, subject: str, text: str) -> AgentError:
    cls = CONNECT_ERRORS.get(error_code(code), Rejected)
    msg = "daemon refused the connection: %s (error %d)" % (error_name(code), code)
    if text:
        msg += ": " + text
    return cls(msg, code=code, subject=subject)

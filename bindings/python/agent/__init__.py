"""agent: Python binding of libagent, a Spread-style group messaging system.

Pure Python over the documented client protocol (docs/client-protocol.md): no compiler, no
shared library. ``agent.connect`` gives a blocking connection; ``agent.aio.connect`` an
asyncio one.

    import agent

    with agent.connect("/tmp/agentd.sock", "alice") as conn:
        conn.join("chat")
        conn.multicast("chat", b"hello", service=agent.AGREED)
        for msg in conn:
            if isinstance(msg, agent.DataMessage):
                print(msg.sender, msg.data)
"""

from . import aio  # noqa: F401  (agent.aio.connect)
from ._address import DEFAULT_UNIX_SOCKET
from ._protocol import MAX_GROUPS_PER_MESSAGE, VERSION as PROTOCOL_VERSION
from .client import Connection, connect
from .errors import (AgentError, AuthFailed, BadGroupCount, ConnectError, ConnectionClosed, ErrorCode,
                     IllegalGroup, IllegalName, IllegalService, MessageTooLarge, NameTaken,
                     ProtocolError, Rejected, Timeout, VersionMismatch)
from .messages import (AGREED, CAUSAL, CAUSED_BY_DISCONNECT, CAUSED_BY_JOIN, CAUSED_BY_LEAVE,
                       CAUSED_BY_NETWORK, FIFO, HISTORY_FAILED, HISTORY_GAP, REG_MEMB_MESS,
                       RELIABLE, SAFE, SELF_DISCARD, TRANSITION_MESS, UNRELIABLE, DataMessage,
                       ErrorMessage, HistoryEndMessage, Message, MembershipMessage, Position,
                       ViewId, service_name)
from .names import (MAX_DAEMON_NAME, MAX_GROUP_NAME, MAX_PRIVATE_NAME, is_private_group,
                    valid_group, valid_private_name)

__version__ = "0.1.0"

__all__ = [
    "connect", "Connection", "aio",
    "DataMessage", "MembershipMessage", "ErrorMessage", "HistoryEndMessage", "Message",
    "ViewId", "Position", "HISTORY_GAP", "HISTORY_FAILED",
    "UNRELIABLE", "RELIABLE", "FIFO", "CAUSAL", "AGREED", "SAFE", "SELF_DISCARD",
    "CAUSED_BY_JOIN", "CAUSED_BY_LEAVE", "CAUSED_BY_DISCONNECT", "CAUSED_BY_NETWORK",
    "REG_MEMB_MESS", "TRANSITION_MESS", "service_name",
    "AgentError", "AuthFailed", "ConnectError", "ConnectionClosed", "Timeout", "ProtocolError", "Rejected",
    "VersionMismatch", "NameTaken", "IllegalName", "IllegalGroup", "IllegalService",
    "BadGroupCount", "MessageTooLarge", "ErrorCode",
    "MAX_GROUP_NAME", "MAX_PRIVATE_NAME", "MAX_DAEMON_NAME", "MAX_GROUPS_PER_MESSAGE",
    "PROTOCOL_VERSION", "DEFAULT_UNIX_SOCKET",
    "valid_group", "valid_private_name", "is_private_group",
]

"""What :meth:`Connection.receive` returns: data, membership, error and history-end messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, NamedTuple, Optional, Union

from .errors import CLOSING_CODES, ErrorCode, error_code, error_name

# Services: exactly one per multicast, optionally with SELF_DISCARD. Spread's values.
UNRELIABLE = 0x01
RELIABLE = 0x02
FIFO = 0x04
CAUSAL = 0x08
AGREED = 0x10
SAFE = 0x20
SELF_DISCARD = 0x40
SERVICE_MASK = 0x3F  # the regular services
SERVICES = (UNRELIABLE, RELIABLE, FIFO, CAUSAL, AGREED, SAFE)

# Bits of a membership message's service.
CAUSED_BY_JOIN = 0x100
CAUSED_BY_LEAVE = 0x200
CAUSED_BY_DISCONNECT = 0x400
CAUSED_BY_NETWORK = 0x800
REG_MEMB_MESS = 0x1000
TRANSITION_MESS = 0x2000

_REASONS = (
    (CAUSED_BY_JOIN, "join"),
    (CAUSED_BY_LEAVE, "leave"),
    (CAUSED_BY_DISCONNECT, "disconnect"),
    (CAUSED_BY_NETWORK, "network"),
)
_SERVICE_NAMES = {UNRELIABLE: "UNRELIABLE", RELIABLE: "RELIABLE", FIFO: "FIFO",
                  CAUSAL: "CAUSAL", AGREED: "AGREED", SAFE: "SAFE"}


def service_name(service: int) -> str:
    """``"AGREED"``, ``"SAFE|SELF_DISCARD"``, ...: for logs and reprs."""
    parts = [n for bit, n in _SERVICE_NAMES.items() if service & bit]
    if service & SELF_DISCARD:
        parts.append("SELF_DISCARD")
    rest = service & ~(SERVICE_MASK | SELF_DISCARD)
    if rest:
        parts.append(hex(rest))
    return "|".join(parts) or "0"


# HistoryEndMessage.flags
HISTORY_GAP = 0x01     # retention had removed messages after the requested start
HISTORY_FAILED = 0x02  # the daemon could not read its log (an ErrorMessage, code 18, came first)


class Position(NamedTuple):
    """Where a message stands in the total order: the ring (configuration) that ordered it and
    its ordinal there. The same at every daemon; later messages have greater positions, and
    positions compare (``<``, ``max``, ``sorted``) ring first, then ordinal, as tuples do. Not
    dense: a group's messages skip the positions of other groups' messages.
    ``Position(0, 0)`` is before every message (``history(after=Position(0, 0))``: from the
    oldest kept)."""

    ring: int
    ordinal: int


class ViewId(NamedTuple):
    """Identifies one view of one group, the same at every member: the configuration the view
    was installed in and the position in the total order of the event that made it."""

    config: int
    seq: int


@dataclass
class DataMessage:
    """A multicast or private message."""

    sender: str          # the sender's private group, "#name#daemon"
    groups: List[str]    # the destinations the sender named
    msg_type: int        # the sender's int16 message type
    service: int         # the service it was sent with (may include SELF_DISCARD)
    data: bytes          # the payload
    # Its place in the total order: on history entries, and on live messages when the
    # connection asked for positions (connect(..., positions=True)); else None.
    position: Optional[Position] = None

    @property
    def is_private(self) -> bool:
        """Sent to private groups only (point to point)."""
        return all(g.startswith("#") for g in self.groups)

    def __repr__(self) -> str:
        data = self.data if len(self.data) <= 32 else self.data[:32] + b"..."
        pos = "" if self.position is None else ", position=%r" % (tuple(self.position),)
        return ("DataMessage(sender=%r, groups=%r, msg_type=%d, service=%s, data=%r (%d bytes)%s)"
                % (self.sender, self.groups, self.msg_type, service_name(self.service), data,
                   len(self.data), pos))


@dataclass
class MembershipMessage:
    """A change of a group's membership.

    ``reason`` is ``'join'``, ``'leave'``, ``'disconnect'`` or ``'network'``. A regular view
    lists the new ``members`` (sorted bytewise) and the member that ``changed``. A
    *self-leave* notice (``self_leave`` true) tells this connection that its own leave took
    effect: it has no members. A network change brings a ``transitional`` view then a regular
    one, with ``changed`` empty and ``vs_sets`` listing who came together from the same
    previous view.
    """

    group: str
    members: List[str]
    changed: str
    view: ViewId
    reason: Optional[str]
    transitional: bool
    self_leave: bool
    vs_sets: List[List[str]] = field(default_factory=list)
    service: int = 0     # the raw bits: REG_MEMB_MESS or TRANSITION_MESS | CAUSED_BY_*

    @property
    def regular(self) -> bool:
        """A new regular view (not transitional, not a self-leave notice)."""
        return bool(self.service & REG_MEMB_MESS)


@dataclass
class ErrorMessage:
    """The daemon refused a request (for example a join of a group already joined).

    ``code`` is an :class:`agent.ErrorCode` (an int) for known codes; ``name`` the protocol's
    name for it (``"already a member"``); ``subject`` the group or name concerned ('' if none);
    ``text`` the daemon's sentence for a human.
    """

    code: Union[ErrorCode, int]
    name: str
    subject: str
    text: str

    @property
    def closes(self) -> bool:
        """The daemon closes the connection after this error (slow client, shutting down...)."""
        return self.code in CLOSING_CODES


@dataclass
class HistoryEndMessage:
    """The end of a history (:meth:`Connection.history`): its entries came before it as
    DataMessages with positions, and what the daemon held back meanwhile follows it (with
    ``join=True``: this connection's own view of the group, then the live messages).

    ``count`` is the number of entries sent; ``position`` that of the last one, or the
    requested start when none was sent: ask for the history after it to go on. ``flags``:
    :data:`HISTORY_GAP`, :data:`HISTORY_FAILED` (also as ``gap`` and ``failed``).
    """

    group: str
    count: int
    flags: int
    position: Position

    @property
    def gap(self) -> bool:
        """Retention had removed messages after the requested start: some are missing."""
        return bool(self.flags & HISTORY_GAP)

    @property
    def failed(self) -> bool:
        """The daemon could not read its log; an ErrorMessage (code 18) said why."""
        return bool(self.flags & HISTORY_FAILED)


Message = Union[DataMessage, MembershipMessage, ErrorMessage, HistoryEndMessage]


def reason_of(service: int) -> Optional[str]:
    for bit, name in _REASONS:
        if service & bit:
            return name
    return None


def make_membership(service, group, config, seq, members, changed, vs_sets) -> MembershipMessage:
    transitional = bool(service & TRANSITION_MESS)
    # Spread's self-leave: CAUSED_BY_LEAVE without a view bit.
    self_leave = bool(service & CAUSED_BY_LEAVE) and not service & (REG_MEMB_MESS | TRANSITION_MESS)
    return MembershipMessage(group=group, members=members, changed=changed,
                             view=ViewId(config, seq), reason=reason_of(service),
                             transitional=transitional, self_leave=self_leave, vs_sets=vs_sets,
                             service=service)


def make_error(code: int, subject: str, text: str) -> ErrorMessage:
    return ErrorMessage(code=error_code(code), name=error_name(code), subject=subject, text=text)

"""Helpers shared by the tests."""

from __future__ import annotations

import time

import agent

WAIT = 10.0  # upper bound for anything the daemon should do "now" (sanitizer builds are slow)


def receive_until(conn, pred, timeout: float = WAIT):
    """The first message for which pred(msg) is true; the others are dropped."""
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError("no matching message within %s s; saw %r" % (timeout, seen))
        try:
            msg = conn.receive(timeout=remaining)
        except agent.Timeout:
            continue
        if pred(msg):
            return msg
        seen.append(msg)


def membership(conn, group: str, reason: str = None, timeout: float = WAIT):
    def pred(m):
        return (isinstance(m, agent.MembershipMessage) and m.group == group
                and (reason is None or m.reason == reason))
    return receive_until(conn, pred, timeout)


def data(conn, timeout: float = WAIT):
    return receive_until(conn, lambda m: isinstance(m, agent.DataMessage), timeout)


def join_and_wait(conn, group: str):
    """Joins and waits for the connection's own view of the group."""
    conn.join(group)
    return receive_until(conn, lambda m: isinstance(m, agent.MembershipMessage)
                         and m.group == group and m.reason == "join"
                         and m.changed == conn.private_group)


def assert_quiet(conn, seconds: float = 0.2):
    """Nothing more arrives within seconds."""
    try:
        msg = conn.receive(timeout=seconds)
    except agent.Timeout:
        return
    raise AssertionError("unexpected message %r" % (msg,))


def connect_when_room(daemon, name):
    """connect(), retried while the daemon still counts a client that just left (such as the
    fixture's readiness probe) against clients.max_clients."""
    deadline = time.monotonic() + WAIT
    while True:
        try:
            return agent.connect(daemon, name)
        except agent.Rejected as e:
            if e.code != agent.ErrorCode.TOO_MANY_CLIENTS or time.monotonic() > deadline:
                raise
            time.sleep(0.02)

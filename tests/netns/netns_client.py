#!/usr/bin/env python3
"""One client of the namespace fault test: connects to an agentd's Unix socket, joins a group,
multicasts a numbered message every few milliseconds and logs every send, delivery and view,
one JSON object per line, flushed at once (the driver tails the file while the test runs).

Log records (``t`` is time.monotonic(), one clock for every process of the machine):
  {"k": "hello", "pg": private group, "daemon": name}
  {"k": "send", "n": counter, "svc": service}          written before the send is attempted
  {"k": "data", "from": sender's private group, "n": counter, "g": groups, "svc": service}
  {"k": "memb", "g": group, "svc": bits, "id": [config, seq], "m": members, "ch": changed,
   "vs": vs-sets}
  {"k": "error", "code": code, "text": text}
  {"k": "closed", "why": text}   the daemon went away (killed): the client ends
  {"k": "end"}                   SIGTERM: the client closes its connection and ends

SIGUSR1 stops the sending (the driver then waits for the last messages to arrive); SIGTERM
closes the connection and ends the client.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time

import agent

CONNECT_TIMEOUT_S = 30.0  # a restarted daemon under a sanitizer takes a while to listen


class Log:
    # One os.write of a whole line per record on an O_APPEND descriptor: no buffer that a
    # signal arriving mid-write could flush twice, and a reader never sees half a record
    # except when the client is killed.
    def __init__(self, path: str):
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._lock = threading.Lock()

    def write(self, kind: str, **fields) -> None:
        with self._lock:
            fields["k"] = kind
            fields["t"] = time.monotonic()
            os.write(self._fd, (json.dumps(fields, separators=(",", ":")) + "\n").encode())


def connect(daemon: str, name: str) -> agent.Connection:
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    while True:
        try:
            return agent.connect(daemon, name)
        except agent.ConnectError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def service_of(n: int) -> int:
    # Mostly AGREED; every fifth SAFE, so that the checker also sees SAFE messages cross
    # configuration changes.
    return agent.SAFE if n % 5 == 0 else agent.AGREED


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--daemon", required=True, help="the daemon's Unix socket")
    ap.add_argument("--name", required=True, help="the private name")
    ap.add_argument("--group", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--interval-ms", type=float, default=20.0)
    args = ap.parse_args()

    log = Log(args.log)
    sending = threading.Event()
    sending.set()
    ending = threading.Event()
    signal.signal(signal.SIGUSR1, lambda *_: sending.clear())
    signal.signal(signal.SIGTERM, lambda *_: ending.set())

    try:
        conn = connect(args.daemon, args.name)
    except agent.AgentError as e:
        log.write("closed", why="cannot connect: %s" % e)
        return 1
    log.write("hello", pg=conn.private_group, daemon=conn.daemon_name)
    joined = threading.Event()

    def send_loop() -> None:
        joined.wait()
        n = 0
        next_at = time.monotonic()
        while sending.is_set() and not ending.is_set():
            n += 1
            svc = service_of(n)
            log.write("send", n=n, svc=svc)
            try:
                conn.multicast(args.group, b"%s:%d" % (conn.private_group.encode(), n), svc)
            except agent.AgentError:
                return  # the receiver logs why the connection ended
            next_at += args.interval_ms / 1000.0
            time.sleep(max(0.0, next_at - time.monotonic()))

    sender = threading.Thread(target=send_loop, daemon=True)
    sender.start()
    conn.join(args.group)
    while not ending.is_set():
        try:
            msg = conn.receive(timeout=0.1)
        except agent.Timeout:
            continue
        except agent.ConnectionClosed as e:
            log.write("closed", why=str(e))
            return 0
        if isinstance(msg, agent.DataMessage):
            sender_pg, _, n = msg.data.decode().rpartition(":")
            if sender_pg != msg.sender:
                n = -1  # a payload that does not name its sender: the checker reports it
            log.write("data", **{"from": msg.sender, "n": int(n), "g": msg.groups,
                                 "svc": msg.service})
        elif isinstance(msg, agent.MembershipMessage):
            log.write("memb", g=msg.group, svc=msg.service, id=list(msg.view), m=msg.members,
                      ch=msg.changed, vs=msg.vs_sets)
            if msg.group == args.group and msg.changed == conn.private_group:
                joined.set()
        else:
            log.write("error", code=int(msg.code), text=msg.text)
    sending.clear()
    # Logged before closing: the views that the close causes at the others come after it.
    log.write("end")
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

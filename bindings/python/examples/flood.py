#!/usr/bin/env python3
"""Throughput of the Python binding: send N messages of S bytes to a group this connection is
a member of, count its own copies coming back, print messages per second.

    python3 examples/flood.py [-d DAEMON] [-n 100000] [-s 1024] [--service AGREED] [-b 16]

At most --window messages are in flight (sent, own copy not yet received): the sender reads
while it writes, so the daemon's per-client queue never fills.
"""

import argparse
import os
import sys
import time

try:
    import agent
except ImportError:  # run from the source tree
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import agent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-d", "--daemon", default=None,
                    help="socket path, host:port or port (default $AGENT_DAEMON or "
                         "/tmp/agentd.sock)")
    ap.add_argument("-n", "--count", type=int, default=100000, help="messages to send")
    ap.add_argument("-s", "--size", type=int, default=1024, help="payload bytes")
    ap.add_argument("-g", "--group", default="flood")
    ap.add_argument("--service", default="AGREED",
                    choices=["UNRELIABLE", "RELIABLE", "FIFO", "CAUSAL", "AGREED", "SAFE"])
    ap.add_argument("-w", "--window", type=int, default=2000,
                    help="messages in flight before the sender waits for its own copies")
    ap.add_argument("-b", "--batch", type=int, default=1,
                    help="messages written at once with multicast_many (1: one write each)")
    args = ap.parse_args()
    if args.batch < 1:
        ap.error("--batch must be at least 1")
    service = getattr(agent, args.service)
    payload = b"x" * args.size

    with agent.connect(args.daemon, membership=False) as conn:
        conn.join(args.group)
        # Wait until the join took effect: send a probe and wait for its copy.
        conn.multicast(args.group, b"", msg_type=1)
        while not (isinstance(m := conn.receive(timeout=10), agent.DataMessage)
                   and m.msg_type == 1):
            pass
        sent = received = 0
        t0 = time.perf_counter()
        while received < args.count:
            while sent < args.count and sent - received < args.window:
                n = min(args.batch, args.count - sent, args.window - (sent - received))
                if n == 1:
                    conn.multicast(args.group, payload, service)
                else:
                    conn.multicast_many(args.group, [payload] * n, service)
                sent += n
            # Drain what has arrived; block only when the window is full or all are sent.
            timeout = None if (sent == args.count or sent - received >= args.window) else 0
            try:
                while True:
                    m = conn.receive(timeout=timeout)
                    if isinstance(m, agent.ErrorMessage):
                        print("error from the daemon:", m, file=sys.stderr)
                        return 1
                    received += 1
                    timeout = 0
                    if received == args.count:
                        break
            except agent.Timeout:
                pass
        elapsed = time.perf_counter() - t0

    rate = args.count / elapsed
    print("%d messages of %d bytes (%s) in %.2f s: %.0f msgs/s, %.1f MB/s"
          % (args.count, args.size, args.service, elapsed, rate, rate * args.size / 1e6))
    return 0


if __name__ == "__main__":
    sys.exit(main())

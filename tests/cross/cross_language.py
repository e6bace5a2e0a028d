"""Cross-language agreement test: a C sender (sp.h), a Python receiver (package agent) and a
Java receiver (org.libagent) in one group, on a ring of three agentd on loopback.

The Python receiver is on d2, the Java receiver on d3; the C program puts one sender on d1 and
one on d3, interleaving AGREED and SAFE messages, while a third connection joins and leaves the
group mid-stream. Both receivers log every view and data message; from the view in which the
Java receiver joined, the two logs must be identical line for line (same messages, same
order, same views with the same view ids). Also checked: every message arrived, each sender's
messages in its own order, and the expected joins and leave appear. The group is persistent
at every daemon: afterwards a Python reader asks each daemon for its history, which must hold
the C senders' messages as the receivers logged them, with the same positions everywhere.

Starts only its own processes and stops them all; bounded by --timeout seconds.

    python3 cross_language.py --agentd build/agentd/agentd --sender build/tests/cross/cross_sender \
        --java java --classpath agent-java.jar:agent-cross-receiver.jar --pythonpath bindings/python
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

GROUP = "polyglot"
COUNT = 300
RING = ("[ring]\nid = %d\ntoken_loss_ms = 2000\nconsensus_timeout_ms = 500\n")
PERSIST = '[persist]\ngroups = ["%s"]\n' % GROUP


def free_udp_ports(n):
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def accepts(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


class Run:
    def __init__(self, args):
        self.args = args
        self.deadline = time.monotonic() + args.timeout
        self.dir = tempfile.mkdtemp(prefix="agent-cross-")
        self.procs = []  # (name, Popen): everything this test started

    def left(self):
        return self.deadline - time.monotonic()

    def start(self, name, argv, env=None):
        out = open(os.path.join(self.dir, name + ".out"), "wb")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                             env=env)
        out.close()
        self.procs.append((name, p))
        return p

    def output(self, name):
        try:
            with open(os.path.join(self.dir, name + ".out"), errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def await_condition(self, what, cond):
        """Polls cond() until true; fails the test when the deadline passes or a process we
        started died."""
        while not cond():
            for name, p in self.procs:
                if p.poll() is not None and p.returncode != 0:
                    self.fail("%s exited with %s while waiting for %s:\n%s"
                              % (name, p.returncode, what, self.output(name)))
            if self.left() <= 0:
                self.fail("timed out waiting for %s" % what)
            time.sleep(0.02)

    def fail(self, text):
        raise AssertionError(text)

    def stop_all(self):
        for _, p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for _, p in reversed(self.procs):
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def read_log(path):
    try:
        with open(path) as f:
            return [line.rstrip("\n") for line in f if line.endswith("\n")]
    except OSError:
        return []


def own_join_seen(path, member):
    return any(l.startswith("VIEW %s " % GROUP) and l.split()[4] == member for l in read_log(path))


def check_logs(py, java):
    """Returns a list of problems (empty: the logs agree and are complete)."""
    problems = []
    first = java[0] if java else None
    if first is None or not first.startswith("VIEW ") or first.split()[4] != "#jrecv#d3":
        return ["the Java log does not start with its own join view: %r" % java[:3]]
    if first not in py:
        return ["the Python log never shows the view the Java receiver joined in: %s" % first]
    common = py[py.index(first):]
    if common != java:
        for i, (a, b) in enumerate(zip(common, java)):
            if a != b:
                problems.append("logs differ at line %d after the common view:\n  python: %s\n"
                                "  java:   %s" % (i, a, b))
                break
        else:
            problems.append("one log is longer: python %d lines, java %d lines"
                            % (len(common), len(java)))
    data = [l.split(" ", 5) for l in java if l.startswith("DATA ")]
    for tag, sender in (("A", "#csendA#d1"), ("B", "#csendB#d3")):
        mine = [d[5] for d in data if d[1] == sender]
        want = ["%s %d" % (tag, i) for i in range(COUNT)] + ["END " + tag]
        if mine != want:
            problems.append("sender %s: %d messages, not in its order or missing (first: %r)"
                            % (tag, len(mine), mine[:3]))
    views = [l.split() for l in java if l.startswith("VIEW ")]
    causes = [(int(v[2], 16) & 0x0f00, v[4]) for v in views]
    for cause, member in ((0x100, "#csendA#d1"), (0x100, "#csendB#d3"), (0x100, "#cctl#d1"),
                          (0x200, "#cctl#d1")):
        if (cause, member) not in causes:
            problems.append("no view caused by %s of %s" % ({0x100: "join", 0x200: "leave"}[cause],
                                                             member))
    return problems


def read_history(agent, sock, want, run):
    """The group's history at the daemon on sock, asked for again (bounded by the run's
    deadline) until it holds want entries: the log is written apart from delivery."""
    while True:
        entries = []
        with agent.connect(sock, None, membership=False, timeout=max(run.left(), 1)) as conn:
            conn.history(GROUP)
            while True:
                m = conn.receive(timeout=max(run.left(), 0.1))
                if isinstance(m, agent.HistoryEndMessage):
                    break
                if not isinstance(m, agent.DataMessage):
                    run.fail("history of %s at %s: unexpected %r" % (GROUP, sock, m))
                entries.append(m)
        if len(entries) >= want:
            return entries
        if run.left() <= 0:
            run.fail("history of %s at %s holds %d messages, not %d"
                     % (GROUP, sock, len(entries), want))
        time.sleep(0.05)


def check_history(args, socks, py_lines, run):
    """Each daemon's history of the group holds the data the Python receiver logged, in its
    order, with the same positions at every daemon."""
    sys.path.insert(0, args.pythonpath)
    import agent
    logged = [l for l in py_lines if l.startswith("DATA ")]
    histories = [read_history(agent, sock, len(logged), run) for sock in socks]
    for sock, entries in zip(socks, histories):
        lines = ["DATA %s %d %04x %s %s" % (m.sender, m.msg_type, m.service, ",".join(m.groups),
                                           m.data.decode()) for m in entries]
        if lines != logged:
            diff = next((i for i, (a, b) in enumerate(zip(lines, logged)) if a != b),
                        min(len(lines), len(logged)))
            run.fail("history at %s differs from the Python receiver's log at message %d of "
                     "%d/%d" % (sock, diff, len(lines), len(logged)))
        positions = [m.position for m in entries]
        if positions != sorted(set(positions)):
            run.fail("history at %s: positions do not grow" % sock)
        if positions != [m.position for m in histories[0]]:
            run.fail("history at %s: positions differ from those at %s" % (sock, socks[0]))
    return len(logged)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agentd", required=True)
    ap.add_argument("--sender", required=True)
    ap.add_argument("--java", required=True)
    ap.add_argument("--classpath", required=True)
    ap.add_argument("--pythonpath", required=True)
    ap.add_argument("--timeout", type=float, default=50.0)
    args = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    run = Run(args)
    try:
        ports = free_udp_ports(3)
        # The ring's cluster key, as `agentd keygen` writes it.
        key = os.path.join(run.dir, "ring.key")
        with os.fdopen(os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as kf:
            kf.write(os.urandom(32))
        socks = []
        for i in range(3):
            name = "d%d" % (i + 1)
            config = os.path.join(run.dir, name + ".toml")
            with open(config, "w") as f:
                f.write(PERSIST)
                f.write(RING % (i + 1))
                f.write("key_file = \"%s\"\n" % key)
                for k, port in enumerate(ports):
                    f.write("[[ring.daemons]]\nid = %d\naddress = \"127.0.0.1\"\nport = %d\n"
                            % (k + 1, port))
            sock = os.path.join(run.dir, name + ".sock")
            socks.append(sock)
            run.start(name, [args.agentd, "--config", config, "--name", name, "--unix", sock,
                             "--tcp", "off", "--state-dir", os.path.join(run.dir, name + "-state")])
        for sock in socks:
            run.await_condition("agentd at " + sock, lambda s=sock: accepts(s))

        budget = str(max(int(run.left()) - 5, 5))
        py_log = os.path.join(run.dir, "python.log")
        java_log = os.path.join(run.dir, "java.log")
        env = dict(os.environ, PYTHONPATH=args.pythonpath, PYTHONDONTWRITEBYTECODE="1")
        py = run.start("python-receiver", [sys.executable, os.path.join(here, "cross_receiver.py"),
                                           socks[1], "precv", GROUP, py_log, budget], env=env)
        run.await_condition("the Python receiver's join",
                            lambda: own_join_seen(py_log, "#precv#d2"))
        java = run.start("java-receiver", [args.java, "-cp", args.classpath, "CrossReceiver",
                                           socks[2], "jrecv", GROUP, java_log, budget])
        run.await_condition("the Java receiver's join, at both receivers",
                            lambda: own_join_seen(java_log, "#jrecv#d3")
                            and own_join_seen(py_log, "#jrecv#d3"))
        sender = run.start("c-sender", [args.sender, socks[0], socks[2], GROUP, str(COUNT)])
        run.await_condition("the C sender", lambda: sender.poll() is not None)
        if sender.returncode != 0:
            run.fail("the C sender exited with %s:\n%s" % (sender.returncode, run.output("c-sender")))
        run.await_condition("both receivers to see both END messages",
                            lambda: py.poll() is not None and java.poll() is not None)
        for name, p in (("python-receiver", py), ("java-receiver", java)):
            if p.returncode != 0:
                run.fail("%s exited with %s:\n%s" % (name, p.returncode, run.output(name)))
        problems = check_logs(read_log(py_log), read_log(java_log))
        if problems:
            run.fail("\n".join(problems))
        logged = check_history(args, socks, read_log(py_log), run)
        lines = read_log(java_log)
        print("cross-language: Python (d2) and Java (d3) receivers agree on %d events "
              "(%d views, %d messages) from the C sender through sp.h (d1, d3); the histories "
              "of d1, d2, d3 hold the %d messages with the same positions"
              % (len(lines), sum(l.startswith("VIEW") for l in lines),
                 sum(l.startswith("DATA") for l in lines), logged))
        return 0
    except AssertionError as e:
        print("FAILED: %s" % e)
        for name, _ in run.procs:
            if name.startswith("d"):
                print("--- %s log tail:\n%s" % (name, run.output(name)[-1500:]))
        return 1
    finally:
        run.stop_all()


if __name__ == "__main__":
    sys.exit(main())

"""The Python receiver of the cross-language test (cross_language.py): joins a group and logs
every view and data message, one line each, in the format of CrossReceiver.java, until it has
seen "END A" and "END B". Exits 2 if that takes longer than the given number of seconds.

    python3 cross_receiver.py DAEMON NAME GROUP LOG SECONDS
"""

import sys
import time

import agent


def main(daemon, name, group, log_path, seconds):
    deadline = time.monotonic() + float(seconds)
    ends = set()
    with agent.connect(daemon, name) as conn, open(log_path, "w", buffering=1) as log:
        conn.join(group)
        while len(ends) < 2:
            left = deadline - time.monotonic()
            if left <= 0:
                log.write("TIMEOUT\n")
                return 2
            try:
                m = conn.receive(timeout=left)
            except agent.Timeout:
                continue
            if isinstance(m, agent.MembershipMessage):
                log.write("VIEW %s %04x %d.%d %s %s\n" % (
                    m.group, m.service, m.view.config, m.view.seq, m.changed or "-",
                    ",".join(m.members) or "-"))
            elif isinstance(m, agent.DataMessage):
                text = m.data.decode()
                log.write("DATA %s %d %04x %s %s\n" % (m.sender, m.msg_type, m.service,
                                                      ",".join(m.groups), text))
                if text.startswith("END "):
                    ends.add(text)
            else:
                log.write("OTHER %r\n" % (m,))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:6]))

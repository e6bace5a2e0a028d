// Telling systemd how the daemon is doing (sd_notify(3)): READY=1 once it listens and its ring
// is operational, STOPPING=1 when it starts to stop, WATCHDOG=1 from its event loop. Without
// NOTIFY_SOCKET (not started by systemd with Type=notify) every call does nothing; in a build
// without libsystemd (-DAGENT_SYSTEMD=OFF) too.
#pragma once

#include <cstdint>
#include <string>

namespace agent::daemon::systemd {

// READY=1 with a STATUS= line for `systemctl status`.
void notify_ready(const std::string& status);
// STOPPING=1 with a STATUS= line.
void notify_stopping(const std::string& status);
// WATCHDOG=1: the loop that does the work is alive.
void notify_watchdog();
// How often systemd expects WATCHDOG=1 (WatchdogSec=, passed as WATCHDOG_USEC), in µs; 0 when
// no watchdog is asked for.
uint64_t watchdog_interval_us();

}  // namespace agent::daemon::systemd

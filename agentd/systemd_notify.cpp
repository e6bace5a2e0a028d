#include "agentd/systemd_notify.h"

#ifdef AGENT_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

namespace agent::daemon::systemd {

#ifdef AGENT_HAVE_SYSTEMD

namespace {
// sd_notify fails only where the socket is gone or full: systemd then learns nothing, which it
// handles by its timeouts; the daemon has nothing better to do about it.
void notify(const std::string& text) { (void)sd_notify(0, text.c_str()); }

// STATUS= is one line.
std::string one_line(std::string s) {
  for (auto& c : s)
    if (c == '\n') c = ' ';
  return s;
}
}  // namespace

void notify_ready(const std::string& status) { notify("READY=1\nSTATUS=" + one_line(status)); }
void notify_stopping(const std::string& status) {
  notify("STOPPING=1\nSTATUS=" + one_line(status));
}
void notify_watchdog() { notify("WATCHDOG=1"); }
uint64_t watchdog_interval_us() {
  uint64_t us = 0;
  return sd_watchdog_enabled(0, &us) > 0 ? us : 0;
}

#else

void notify_ready(const std::string&) {}
void notify_stopping(const std::string&) {}
void notify_watchdog() {}
uint64_t watchdog_interval_us() { return 0; }

#endif

}  // namespace agent::daemon::systemd

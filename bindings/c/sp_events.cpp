// libspread: Spread's small event loop (the E_* calls of sp.h) over poll(2), for
// single-threaded Spread programs that attach their mailbox and stdin to it.
#include <poll.h>
#include <time.h>

#include <cerrno>
#include <climits>
#include <vector>

#include "sp.h"

namespace {

struct FdHandler {
  int fd;
  int fd_type;
  void (*func)(int fd, int code, void* data);
  int code;
  void* data;
  int priority;
  bool active;
};

struct Timer {
  sp_time when;
  void (*func)(int code, void* data);
  int code;
  void* data;
};

std::vector<FdHandler> g_fds;
std::vector<Timer> g_timers;
int g_threshold = LOW_PRIORITY;
bool g_exit = false;
constexpr size_t kMaxTimers = 10000;

short poll_events(int fd_type) {
  switch (fd_type) {
    case READ_FD: return POLLIN;
    case WRITE_FD: return POLLOUT;
    default: return POLLPRI;
  }
}

FdHandler* find_fd(int fd, int fd_type) {
  for (auto& h : g_fds)
    if (h.fd == fd && h.fd_type == fd_type) return &h;
  return nullptr;
}

bool valid(int fd, int fd_type) { return fd >= 0 && fd_type >= READ_FD && fd_type <= EXCEPT_FD; }

// Runs the earliest timer that is due, if any; true if one ran.
bool run_one_due_timer() {
  if (g_timers.empty()) return false;
  sp_time now = E_get_time();
  size_t first = 0;
  for (size_t i = 1; i < g_timers.size(); ++i)
    if (E_compare_time(g_timers[i].when, g_timers[first].when) < 0) first = i;
  if (E_compare_time(g_timers[first].when, now) > 0) return false;
  Timer t = g_timers[first];
  g_timers.erase(g_timers.begin() + static_cast<long>(first));
  t.func(t.code, t.data);
  return true;
}

// Milliseconds until the earliest timer, rounded up; -1 without timers.
int next_timeout_ms() {
  if (g_timers.empty()) return -1;
  sp_time earliest = g_timers[0].when;
  for (auto& t : g_timers)
    if (E_compare_time(t.when, earliest) < 0) earliest = t.when;
  sp_time now = E_get_time();
  if (E_compare_time(earliest, now) <= 0) return 0;
  sp_time d = E_sub_time(earliest, now);
  long long ms = static_cast<long long>(d.sec) * 1000 + (d.usec + 999) / 1000;
  return ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
}

}  // namespace

extern "C" {

int E_init(void) {
  g_fds.clear();
  g_timers.clear();
  g_threshold = LOW_PRIORITY;
  g_exit = false;
  return 0;
}

sp_time E_get_time(void) {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return sp_time{static_cast<long>(ts.tv_sec), static_cast<long>(ts.tv_nsec / 1000)};
}

sp_time E_add_time(sp_time t, sp_time d) {
  sp_time r{t.sec + d.sec, t.usec + d.usec};
  while (r.usec >= 1000000) {
    r.usec -= 1000000;
    ++r.sec;
  }
  return r;
}

sp_time E_sub_time(sp_time t, sp_time d) {
  sp_time r{t.sec - d.sec, t.usec - d.usec};
  while (r.usec < 0) {
    r.usec += 1000000;
    --r.sec;
  }
  return r;
}

int E_compare_time(sp_time a, sp_time b) {
  if (a.sec != b.sec) return a.sec > b.sec ? 1 : -1;
  if (a.usec != b.usec) return a.usec > b.usec ? 1 : -1;
  return 0;
}

int E_queue(void (*func)(int, void*), int code, void* data, sp_time delta_time) {
  if (!func) return -1;
  E_dequeue(func, code, data);
  if (g_timers.size() >= kMaxTimers) return -1;
  g_timers.push_back(Timer{E_add_time(E_get_time(), delta_time), func, code, data});
  return 0;
}

int E_dequeue(void (*func)(int, void*), int code, void* data) {
  for (size_t i = 0; i < g_timers.size(); ++i)
    if (g_timers[i].func == func && g_timers[i].code == code && g_timers[i].data == data) {
      g_timers.erase(g_timers.begin() + static_cast<long>(i));
      return 0;
    }
  return -1;
}

void E_delay(sp_time t) {
  timespec ts{t.sec, t.usec * 1000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

int E_attach_fd(int fd, int fd_type, void (*func)(int, int, void*), int code, void* data,
                int priority) {
  if (!valid(fd, fd_type) || !func || priority < LOW_PRIORITY || priority > HIGH_PRIORITY)
    return -1;
  if (FdHandler* h = find_fd(fd, fd_type)) {
    *h = FdHandler{fd, fd_type, func, code, data, priority, true};
    return 0;
  }
  if (g_fds.size() >= MAX_FD_EVENTS) return -1;
  g_fds.push_back(FdHandler{fd, fd_type, func, code, data, priority, true});
  return 0;
}

int E_detach_fd(int fd, int fd_type) {
  for (size_t i = 0; i < g_fds.size(); ++i)
    if (g_fds[i].fd == fd && g_fds[i].fd_type == fd_type) {
      g_fds.erase(g_fds.begin() + static_cast<long>(i));
      return 0;
    }
  return -1;
}

int E_set_active_threshold(int priority) {
  if (priority < LOW_PRIORITY || priority > HIGH_PRIORITY) return -1;
  g_threshold = priority;
  return 0;
}

int E_activate_fd(int fd, int fd_type) {
  FdHandler* h = find_fd(fd, fd_type);
  if (!h) return -1;
  h->active = true;
  return 0;
}

int E_deactivate_fd(int fd, int fd_type) {
  FdHandler* h = find_fd(fd, fd_type);
  if (!h) return -1;
  h->active = false;
  return 0;
}

int E_num_active(int priority) {
  int n = 0;
  for (auto& h : g_fds) n += (h.active && h.priority == priority) ? 1 : 0;
  return n;
}

void E_exit_events(void) { g_exit = true; }

void E_handle_events(void) {
  g_exit = false;
  std::vector<pollfd> pfds;
  std::vector<FdHandler> polled;
  while (!g_exit) {
    while (!g_exit && run_one_due_timer()) {
    }
    if (g_exit) break;
    pfds.clear();
    polled.clear();
    for (auto& h : g_fds)
      if (h.active && h.priority >= g_threshold) {
        pfds.push_back(pollfd{h.fd, poll_events(h.fd_type), 0});
        polled.push_back(h);
      }
    int timeout = next_timeout_ms();
    if (pfds.empty() && timeout < 0) return;  // nothing could ever happen
    int r = ::poll(pfds.data(), pfds.size(), timeout);
    if (r <= 0) continue;  // timers, or EINTR
    // Serve the ready descriptors of the highest priority only, then look again.
    int top = -1;
    for (size_t i = 0; i < pfds.size(); ++i)
      if (pfds[i].revents && polled[i].priority > top) top = polled[i].priority;
    for (size_t i = 0; i < pfds.size() && !g_exit; ++i) {
      if (!pfds[i].revents || polled[i].priority != top) continue;
      // A callback may have detached or replaced a handler: call what is attached now.
      FdHandler* h = find_fd(polled[i].fd, polled[i].fd_type);
      if (h && h->active) {
        FdHandler now = *h;
        now.func(now.fd, now.code, now.data);
      }
    }
  }
}

}  // extern "C"

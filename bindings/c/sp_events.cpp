// libspread: Spread's event loop (sp_events.h) over poll(2), for single-threaded Spread programs
// that attach their mailbox and stdin to it.
//
// Timers run on the monotonic clock, so a wall-clock step neither fires nor delays them.
// E_exit_events_async_safe may run in a signal handler: it only stores to a lock-free atomic and
// writes one byte to a non-blocking pipe that E_handle_events always polls, so the loop wakes
// even when the signal lands between its check of the flag and its poll.
#include <fcntl.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <vector>

#include "base/check.h"
#include "sp_events.h"

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
  sp_time when;  // monotonic
  void (*func)(int code, void* data);
  int code;
  void* data;
};

constexpr size_t kMaxTimers = 10000;

std::vector<FdHandler> g_fds;     // at most MAX_FD_EVENTS
std::vector<Timer> g_timers;      // at most kMaxTimers, in queueing order (ties run first-queued)
int g_threshold = LOW_PRIORITY;
std::atomic<int> g_exit{0};
static_assert(std::atomic<int>::is_always_lock_free, "E_exit_events_async_safe needs it");
int g_wake[2] = {-1, -1};  // read end polled by E_handle_events, write end for the async exit

sp_time normalise(long sec, long usec) {
  sec += usec / 1000000;
  usec %= 1000000;
  if (usec < 0) {
    usec += 1000000;
    --sec;
  }
  return sp_time{sec, usec};
}

sp_time from_clock(clockid_t clock) {
  timespec ts;
  clock_gettime(clock, &ts);
  return sp_time{static_cast<long>(ts.tv_sec), static_cast<long>(ts.tv_nsec / 1000)};
}

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

bool valid_fd(int fd, int fd_type) { return fd >= 0 && fd_type >= READ_FD && fd_type <= EXCEPT_FD; }
bool valid_priority(int p) { return p >= LOW_PRIORITY && p <= HIGH_PRIORITY; }

size_t find_timer(void (*func)(int, void*), int code, void* data) {
  for (size_t i = 0; i < g_timers.size(); ++i)
    if (g_timers[i].func == func && g_timers[i].code == code && g_timers[i].data == data) return i;
  return g_timers.size();
}

// The earliest timer (the first queued among equals), or g_timers.size().
size_t earliest_timer() {
  size_t first = g_timers.size();
  for (size_t i = 0; i < g_timers.size(); ++i)
    if (first == g_timers.size() || E_compare_time(g_timers[i].when, g_timers[first].when) < 0)
      first = i;
  return first;
}

// Runs the earliest timer if it is due; true if one ran.
bool run_one_due_timer() {
  size_t first = earliest_timer();
  if (first == g_timers.size()) return false;
  if (E_compare_time(g_timers[first].when, E_get_time_monotonic()) > 0) return false;
  Timer t = g_timers[first];
  g_timers.erase(g_timers.begin() + static_cast<long>(first));
  t.func(t.code, t.data);  // may queue, dequeue, or exit
  return true;
}

// Milliseconds until the earliest timer, rounded up; -1 without timers.
int next_timeout_ms() {
  size_t first = earliest_timer();
  if (first == g_timers.size()) return -1;
  sp_time now = E_get_time_monotonic();
  if (E_compare_time(g_timers[first].when, now) <= 0) return 0;
  sp_time d = E_sub_time(g_timers[first].when, now);
  long long ms = static_cast<long long>(d.sec) * 1000 + (d.usec + 999) / 1000;
  return ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
}

void open_wake_pipe() {
  if (g_wake[0] >= 0) return;
  if (::pipe2(g_wake, O_NONBLOCK | O_CLOEXEC) != 0) g_wake[0] = g_wake[1] = -1;
}

void drain_wake_pipe() {
  char buf[64];
  while (g_wake[0] >= 0 && ::read(g_wake[0], buf, sizeof buf) > 0) {
  }
}

}  // namespace

extern "C" {

int E_init(void) {
  g_fds.clear();
  g_timers.clear();
  g_threshold = LOW_PRIORITY;
  g_exit = 0;
  open_wake_pipe();
  drain_wake_pipe();
  return 0;
}

sp_time E_get_time(void) { return from_clock(CLOCK_REALTIME); }
sp_time E_get_time_monotonic(void) { return from_clock(CLOCK_MONOTONIC); }

sp_time E_neg_time(sp_time t) { return normalise(-t.sec, -t.usec); }
sp_time E_add_time(sp_time t, sp_time d) { return normalise(t.sec + d.sec, t.usec + d.usec); }
sp_time E_sub_time(sp_time t, sp_time d) { return normalise(t.sec - d.sec, t.usec - d.usec); }

int E_compare_time(sp_time a, sp_time b) {
  a = normalise(a.sec, a.usec);
  b = normalise(b.sec, b.usec);
  if (a.sec != b.sec) return a.sec > b.sec ? 1 : -1;
  if (a.usec != b.usec) return a.usec > b.usec ? 1 : -1;
  return 0;
}

int E_queue(void (*func)(int, void*), int code, void* data, sp_time delta_time) {
  if (!func) return -1;
  E_dequeue(func, code, data);
  if (g_timers.size() >= kMaxTimers) return -1;
  g_timers.push_back(Timer{E_add_time(E_get_time_monotonic(), delta_time), func, code, data});
  AGENT_CHECK(g_timers.size() <= kMaxTimers);
  return 0;
}

int E_in_queue(void (*func)(int, void*), int code, void* data) {
  return find_timer(func, code, data) < g_timers.size() ? 1 : 0;
}

int E_dequeue(void (*func)(int, void*), int code, void* data) {
  size_t i = find_timer(func, code, data);
  if (i == g_timers.size()) return -1;
  g_timers.erase(g_timers.begin() + static_cast<long>(i));
  return 0;
}

void E_delay(sp_time t) {
  t = normalise(t.sec, t.usec);
  if (t.sec < 0) return;
  timespec ts{t.sec, t.usec * 1000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

int E_attach_fd(int fd, int fd_type, void (*func)(int, int, void*), int code, void* data,
                int priority) {
  if (!valid_fd(fd, fd_type) || !func || !valid_priority(priority)) return -1;
  if (FdHandler* h = find_fd(fd, fd_type)) {
    *h = FdHandler{fd, fd_type, func, code, data, priority, true};
    return 0;
  }
  if (g_fds.size() >= MAX_FD_EVENTS) return -1;
  g_fds.push_back(FdHandler{fd, fd_type, func, code, data, priority, true});
  return 0;
}

int E_detach_fd_priority(int fd, int fd_type, int priority) {
  for (size_t i = 0; i < g_fds.size(); ++i)
    if (g_fds[i].fd == fd && g_fds[i].fd_type == fd_type &&
        (priority < 0 || g_fds[i].priority == priority)) {
      g_fds.erase(g_fds.begin() + static_cast<long>(i));
      return 0;
    }
  return -1;
}

int E_detach_fd(int fd, int fd_type) { return E_detach_fd_priority(fd, fd_type, -1); }

int E_set_active_threshold(int priority) {
  if (!valid_priority(priority)) return -1;
  g_threshold = priority;
  return priority;
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
  if (!valid_priority(priority)) return -1;
  int n = 0;
  for (auto& h : g_fds) n += (h.active && h.priority == priority) ? 1 : 0;
  return n;
}

void E_exit_events(void) { g_exit = 1; }

void E_exit_events_async_safe(void) {
  int saved = errno;  // a signal handler must leave errno as it found it
  g_exit = 1;
  if (g_wake[1] >= 0) {
    ssize_t ignored = ::write(g_wake[1], "x", 1);  // a full pipe is already a wake-up
    (void)ignored;
  }
  errno = saved;
}

void E_handle_events(void) {
  g_exit = 0;
  open_wake_pipe();
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
    const size_t nfds = pfds.size();
    if (g_wake[0] >= 0) pfds.push_back(pollfd{g_wake[0], POLLIN, 0});
    int timeout = next_timeout_ms();
    if (pfds.empty() && timeout < 0) return;  // no wake pipe and nothing could ever happen
    int r = ::poll(pfds.data(), pfds.size(), timeout);
    if (r <= 0) continue;  // timers, or EINTR (the flag says whether to stop)
    if (pfds.size() > nfds && pfds[nfds].revents) drain_wake_pipe();
    // Serve the ready descriptors of the highest priority only, then look again.
    int top = -1;
    for (size_t i = 0; i < nfds; ++i)
      if (pfds[i].revents && polled[i].priority > top) top = polled[i].priority;
    for (size_t i = 0; i < nfds && !g_exit; ++i) {
      if (!pfds[i].revents || polled[i].priority != top) continue;
      // A callback may have detached or replaced a handler: call what is attached now.
      FdHandler* h = find_fd(polled[i].fd, polled[i].fd_type);
      if (h && h->active && h->priority >= g_threshold) {
        FdHandler now = *h;
        now.func(now.fd, now.code, now.data);
      }
    }
  }
}

}  // extern "C"

// Spread's event loop (sp_events.h, in libspread): timers, descriptor callbacks, and the exits.
// No daemon needed; each case takes well under a second.
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "sp_events.h"

namespace {

using Clock = std::chrono::steady_clock;

std::string g_order;  // what the callbacks saw, in order

void record(int code, void*) {
  g_order += static_cast<char>(code);
}
void record_and_exit(int code, void* data) {
  record(code, data);
  E_exit_events();
}
void fail_safe(int, void*) {  // a bound on every loop of these tests
  g_order += "!";
  E_exit_events();
}

sp_time ms(long n) { return sp_time{n / 1000, (n % 1000) * 1000}; }

struct Pipe {
  int fd[2] = {-1, -1};
  Pipe() { REQUIRE(::pipe(fd) == 0); }
  ~Pipe() {
    ::close(fd[0]);
    ::close(fd[1]);
  }
};

void read_one(int fd, int code, void*) {
  char c;
  REQUIRE(::read(fd, &c, 1) == 1);
  g_order += static_cast<char>(code);
  g_order += c;
}
void read_one_and_exit(int fd, int code, void* data) {
  read_one(fd, code, data);
  E_exit_events();
}

void exit_from_signal(int) { E_exit_events_async_safe(); }

}  // namespace

TEST_CASE("timers run in the order they fall due, ties in the order they were queued",
          "[sp][events]") {
  REQUIRE(E_init() == 0);
  g_order.clear();
  REQUIRE(E_queue(record, 'A', nullptr, ms(60)) == 0);
  REQUIRE(E_queue(record, 'B', nullptr, ms(20)) == 0);
  REQUIRE(E_queue(record, 'C', nullptr, ms(40)) == 0);
  REQUIRE(E_queue(record, 'D', nullptr, ms(20)) == 0);
  REQUIRE(E_queue(record, 'E', nullptr, ms(30)) == 0);
  REQUIRE(E_queue(record, 'E', nullptr, ms(50)) == 0);  // the same timer again moves it
  REQUIRE(E_queue(record, 'X', nullptr, ms(10)) == 0);
  CHECK(E_in_queue(record, 'X', nullptr) == 1);
  CHECK(E_dequeue(record, 'X', nullptr) == 0);
  CHECK(E_in_queue(record, 'X', nullptr) == 0);
  CHECK(E_dequeue(record, 'X', nullptr) == -1);
  REQUIRE(E_queue(record_and_exit, 'Z', nullptr, ms(70)) == 0);
  REQUIRE(E_queue(fail_safe, 0, nullptr, ms(5000)) == 0);
  auto start = Clock::now();
  E_handle_events();
  CHECK(g_order == "BDCEAZ");
  CHECK(Clock::now() - start >= std::chrono::milliseconds(70));
  CHECK(E_dequeue(fail_safe, 0, nullptr) == 0);
}

TEST_CASE("descriptor callbacks run when ready, highest priority first, and not when inactive",
          "[sp][events]") {
  REQUIRE(E_init() == 0);
  g_order.clear();
  Pipe low, high, off;
  REQUIRE(::write(low.fd[1], "l", 1) == 1);
  REQUIRE(::write(high.fd[1], "h", 1) == 1);
  REQUIRE(::write(off.fd[1], "o", 1) == 1);
  REQUIRE(E_attach_fd(low.fd[0], READ_FD, read_one_and_exit, 'L', nullptr, LOW_PRIORITY) == 0);
  REQUIRE(E_attach_fd(high.fd[0], READ_FD, read_one, 'H', nullptr, HIGH_PRIORITY) == 0);
  REQUIRE(E_attach_fd(off.fd[0], READ_FD, read_one, 'O', nullptr, MEDIUM_PRIORITY) == 0);
  REQUIRE(E_deactivate_fd(off.fd[0], READ_FD) == 0);
  CHECK(E_num_active(HIGH_PRIORITY) == 1);
  CHECK(E_num_active(MEDIUM_PRIORITY) == 0);
  CHECK(E_num_active(LOW_PRIORITY) == 1);
  REQUIRE(E_queue(fail_safe, 0, nullptr, ms(5000)) == 0);
  E_handle_events();
  CHECK(g_order == "HhLl");  // the inactive one waits

  // Above the threshold only; then activated again, it is served.
  g_order.clear();
  REQUIRE(::write(low.fd[1], "m", 1) == 1);
  CHECK(E_set_active_threshold(MEDIUM_PRIORITY) == MEDIUM_PRIORITY);
  REQUIRE(E_attach_fd(off.fd[0], READ_FD, read_one_and_exit, 'O', nullptr, MEDIUM_PRIORITY) == 0);
  E_handle_events();
  CHECK(g_order == "Oo");
  CHECK(E_set_active_threshold(LOW_PRIORITY) == LOW_PRIORITY);

  // Detached: never called again; by priority, only at the priority it was attached with.
  CHECK(E_detach_fd_priority(low.fd[0], READ_FD, HIGH_PRIORITY) == -1);
  CHECK(E_detach_fd_priority(low.fd[0], READ_FD, LOW_PRIORITY) == 0);
  CHECK(E_detach_fd(high.fd[0], READ_FD) == 0);
  CHECK(E_detach_fd(high.fd[0], READ_FD) == -1);
  CHECK(E_attach_fd(-1, READ_FD, read_one, 0, nullptr, LOW_PRIORITY) == -1);
  CHECK(E_attach_fd(low.fd[0], 7, read_one, 0, nullptr, LOW_PRIORITY) == -1);
  CHECK(E_dequeue(fail_safe, 0, nullptr) == 0);
}

TEST_CASE("E_exit_events_async_safe in a signal handler ends E_handle_events", "[sp][events]") {
  REQUIRE(E_init() == 0);
  g_order.clear();
  struct sigaction sa {}, old{};
  sa.sa_handler = exit_from_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  REQUIRE(sigaction(SIGUSR1, &sa, &old) == 0);
  // Nothing attached: only the signal (or the fail-safe timer) can end the loop. The signal
  // comes from another thread, so it may well land there and not interrupt the loop's poll.
  REQUIRE(E_queue(fail_safe, 0, nullptr, ms(5000)) == 0);
  std::thread t([] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ::kill(::getpid(), SIGUSR1);
  });
  auto start = Clock::now();
  E_handle_events();
  auto took = Clock::now() - start;
  t.join();
  sigaction(SIGUSR1, &old, nullptr);
  CHECK(g_order.empty());
  CHECK(took < std::chrono::seconds(2));

  // From another thread, without a signal.
  std::thread u([] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    E_exit_events_async_safe();
  });
  E_handle_events();
  u.join();
  CHECK(g_order.empty());
  CHECK(E_dequeue(fail_safe, 0, nullptr) == 0);
}

TEST_CASE("time arithmetic normalises and compares", "[sp][events]") {
  sp_time a{1, 900000}, b{0, 200000};
  sp_time sum = E_add_time(a, b);
  CHECK((sum.sec == 2 && sum.usec == 100000));
  sp_time diff = E_sub_time(b, a);
  CHECK((diff.sec == -2 && diff.usec == 300000));  // -1.7 s
  sp_time neg = E_neg_time(a);
  CHECK((neg.sec == -2 && neg.usec == 100000));  // -1.9 s
  CHECK(E_compare_time(E_add_time(neg, a), sp_time{0, 0}) == 0);
  CHECK(E_compare_time(a, b) == 1);
  CHECK(E_compare_time(b, a) == -1);
  sp_time m1 = E_get_time_monotonic();
  E_delay(ms(15));
  sp_time m2 = E_get_time_monotonic();
  sp_time waited = E_sub_time(m2, m1);
  CHECK(E_compare_time(waited, ms(15)) >= 0);
  CHECK(E_get_time().sec > 1600000000);  // wall clock
}

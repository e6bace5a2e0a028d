// What libagent (bindings/c/agent.cpp) does with the bytes its daemon sends: agent_connect's
// welcome (or error), then agent_receive or agent_next until the stream ends (frame lengths
// against the welcome's limit, the read-ahead and no-read-ahead paths, data, positioned data,
// membership with vs-sets, error and history-end frames into agent_message). A thread plays
// the daemon on a Unix socket: it writes the input after the client's hello, then closes.
//
// Input: byte 0 chooses agent_next (bit 0) and AGENT_NO_READ_AHEAD (bit 1); the rest is the
// daemon's side of the stream, welcome first (seeds from fuzz_make_corpus).
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

#include "agent.h"

namespace {

std::mutex mu;
std::string input;  // what the daemon's side writes on the next connection
std::string path;

void serve(int listener) {
  for (;;) {
    int fd = ::accept(listener, nullptr, nullptr);
    if (fd < 0) continue;
    std::string bytes;
    {
      std::lock_guard<std::mutex> lock(mu);
      bytes = input;
    }
    size_t off = 0;
    while (off < bytes.size()) {
      ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    ::shutdown(fd, SHUT_WR);
    char scratch[4096];
    while (::read(fd, scratch, sizeof scratch) > 0) {
    }
    ::close(fd);
  }
}

void start_daemon_side() {
  const char* dir = std::getenv("TMPDIR");
  path = std::string(dir && *dir ? dir : "/tmp") + "/fuzz_client." + std::to_string(getpid());
  ::unlink(path.c_str());
  int l = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
  if (l < 0 || ::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(l, 4) != 0) {
    std::perror("fuzz_client_library: daemon socket");
    std::abort();
  }
  std::atexit([] { ::unlink(path.c_str()); });
  std::thread(serve, l).detach();
}

// Reads every field the way a program would (ASan sees a missing NUL or a bad count).
size_t touch(const agent_message* m) {
  size_t n = std::strlen(m->sender) + std::strlen(m->changed) + m->len;
  for (size_t i = 0; i < m->ngroups; ++i) n += std::strlen(m->groups[i]);
  if (m->kind == AGENT_MSG_MEMBERSHIP) {
    size_t k = 0;
    for (size_t s = 0; s < m->nvs_sets; ++s)
      for (size_t i = 0; i < m->vs_set_sizes[s]; ++i) n += std::strlen(m->vs_members[k++]);
  }
  if (m->len) n += static_cast<const unsigned char*>(m->data)[m->len - 1];
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bool started = (start_daemon_side(), true);
  (void)started;
  if (size < 1) return 0;
  bool next = data[0] & 1;
  int flags = AGENT_WANT_MEMBERSHIP | ((data[0] & 2) ? AGENT_NO_READ_AHEAD : 0);
  {
    std::lock_guard<std::mutex> lock(mu);
    input.assign(reinterpret_cast<const char*>(data) + 1, size - 1);
  }
  agent_conn* c = nullptr;
  if (agent_connect(path.c_str(), "fuzz", flags, 2000, &c) != AGENT_OK) return 0;
  volatile size_t sink = std::strlen(agent_private_group(c));
  for (int i = 0; i < 10000; ++i) {
    if (next) {
      const agent_message* m = nullptr;
      if (agent_next(c, &m, 2000) != AGENT_OK) break;
      sink = sink + touch(m);
    } else {
      agent_message* m = nullptr;
      if (agent_receive(c, &m, 2000) != AGENT_OK) break;
      sink = sink + touch(m);
      agent_message_free(m);
    }
  }
  agent_disconnect(c);
  return 0;
}

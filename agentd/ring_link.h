// Hooks a UDP socket into CAF's I/O multiplexer, so datagrams are read in the same thread as
// the daemon's broker runs (no extra thread, no mailbox hop per datagram). Uses CAF 0.17's
// event_handler interface of the default multiplexer.
#pragma once

#include <functional>

#include <caf/io/network/default_multiplexer.hpp>
#include <caf/io/network/event_handler.hpp>

namespace agent::daemon {

class ReadableHook final : public caf::io::network::event_handler {
 public:
  // Calls on_readable whenever fd is readable. Owns fd from now on.
  ReadableHook(caf::io::network::default_multiplexer& mpx, int fd,
               std::function<void()> on_readable);
  void start() { activate(); }
  // Stops watching; the hook deletes itself (its base closes fd) once the multiplexer lets go.
  void stop();
  void handle_event(caf::io::network::operation op) override;
  void removed_from_loop(caf::io::network::operation op) override;
  void graceful_shutdown() override { stop(); }

 private:
  std::function<void()> on_readable_;
  bool stopping_ = false;
};

}  // namespace agent::daemon

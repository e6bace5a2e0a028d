#include "agentd/ring_link.h"

namespace agent::daemon {

using caf::io::network::operation;

ReadableHook::ReadableHook(caf::io::network::default_multiplexer& mpx, int fd,
                           std::function<void()> on_readable)
    : event_handler(mpx, fd), on_readable_(std::move(on_readable)) {}

void ReadableHook::handle_event(operation op) {
  if (op == operation::read && !stopping_) on_readable_();
}

void ReadableHook::stop() {
  if (stopping_) return;
  stopping_ = true;
  passivate();
}

void ReadableHook::removed_from_loop(operation op) {
  if (op == operation::read && stopping_) delete this;  // ~event_handler closes fd
}

}  // namespace agent::daemon

#include "agentd/caf_adapter.h"

#include <caf/io/middleman.hpp>
#include <caf/io/network/default_multiplexer.hpp>
#include <caf/io/network/event_handler.hpp>

namespace agent::daemon {

using caf::io::network::operation;

class Watch final : public caf::io::network::event_handler {
 public:
  Watch(caf::io::network::default_multiplexer& mpx, int fd, std::function<void()> on_readable)
      : event_handler(mpx, fd), on_readable_(std::move(on_readable)) {}
  void start() { activate(); }
  // The watch deletes itself (its base closes fd) once the multiplexer lets go.
  void stop() {
    if (stopping_) return;
    stopping_ = true;
    passivate();
  }
  void handle_event(operation op) override {
    if (op == operation::read && !stopping_) on_readable_();
  }
  void removed_from_loop(operation op) override {
    if (op == operation::read && stopping_) delete this;  // ~event_handler closes fd
  }
  void graceful_shutdown() override { stop(); }

 private:
  std::function<void()> on_readable_;
  bool stopping_ = false;
};

Watch* watch_readable(caf::io::broker* self, int fd, std::function<void()> on_readable) {
  auto& mpx =
      static_cast<caf::io::network::default_multiplexer&>(self->system().middleman().backend());
  auto* w = new Watch(mpx, fd, std::move(on_readable));
  w->start();
  return w;
}

void unwatch(Watch*& w) {
  if (w) w->stop();
  w = nullptr;
}

int fd_of(const Watch* w) { return w ? w->fd() : -1; }

int socket_of(caf::io::connection_handle h) { return static_cast<int>(h.id()); }

}  // namespace agent::daemon

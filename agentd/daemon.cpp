#include "agentd/daemon.h"

#include <memory>
#include <unordered_map>
#include <vector>

#include <caf/io/all.hpp>

#include "agentd/client_hub.h"
#include "agentd/log.h"
#include "membership/local_sequencer.h"

namespace agent::daemon {

using caf::io::connection_handle;

namespace {

constexpr size_t kReadChunkBytes = 256 * 1024;

// Carries out the hub's writes on the broker's connections. Writes are collected per CAF message
// and flushed once at its end, so one batch of deliveries costs one send per client.
class BrokerIo final : public ClientIo {
 public:
  explicit BrokerIo(caf::io::broker* self) : self_(self) {}

  ConnId add(connection_handle h) {
    ConnId id = static_cast<ConnId>(h.id());
    handles_.emplace(id, h);
    return id;
  }
  void remove(ConnId id) { handles_.erase(id); }

  void send(ConnId id, std::string_view bytes) override {
    auto it = handles_.find(id);
    if (it == handles_.end()) return;
    auto& buf = self_->wr_buf(it->second);
    if (buf.empty()) dirty_.push_back(it->second);
    buf.insert(buf.end(), bytes.begin(), bytes.end());
  }
  void close(ConnId id) override {
    auto it = handles_.find(id);
    if (it == handles_.end()) return;
    self_->flush(it->second);
    self_->close(it->second);
    handles_.erase(it);
  }
  void flush() {
    for (auto& h : dirty_)
      if (self_->valid(h)) self_->flush(h);
    dirty_.clear();
  }

 private:
  caf::io::broker* self_;
  std::unordered_map<ConnId, connection_handle> handles_;
  std::vector<connection_handle> dirty_;
};

struct DaemonState {
  DaemonState(caf::io::broker* self, Config c)
      : cfg(std::move(c)), io(self), hub(cfg, io, [this](groups::Event&& ev) {
          // Ring of one: an event is ordered the moment it is submitted.
          hub.deliver(sequencer.next(), ev);
        }) {
    hub.group_state().set_config(sequencer.config_id());
  }
  Config cfg;
  BrokerIo io;
  membership::LocalSequencer sequencer;
  ClientHub hub;
};

}  // namespace

caf::behavior daemon_actor(caf::io::broker* self, Config cfg, int unix_fd) {
  auto st = std::make_shared<DaemonState>(self, std::move(cfg));
  if (unix_fd >= 0) self->add_doorman(unix_fd);
  if (!st->cfg.tcp.host.empty()) {
    auto r = self->add_tcp_doorman(st->cfg.tcp.port, st->cfg.tcp.host.c_str(), true);
    if (!r) {
      AGENT_LOG(kError, "cannot listen on TCP " << st->cfg.tcp.host << ":" << st->cfg.tcp.port
                                                << ": " << self->system().render(r.error()));
      self->quit(caf::exit_reason::user_shutdown);
      return {};
    }
    AGENT_LOG(kInfo, "listening for clients on TCP " << st->cfg.tcp.host << ":"
                                                     << st->cfg.tcp.port);
  }
  return {
      [=](const caf::io::new_connection_msg& m) {
        ConnId id = st->io.add(m.handle);
        if (st->hub.on_open(id)) {
          self->configure_read(m.handle, caf::io::receive_policy::at_most(kReadChunkBytes));
          self->ack_writes(m.handle, true);
        }
        st->io.flush();
      },
      [=](const caf::io::new_data_msg& m) {
        st->hub.on_bytes(static_cast<ConnId>(m.handle.id()), m.buf.data(), m.buf.size());
        st->io.flush();
      },
      [=](const caf::io::data_transferred_msg& m) {
        st->hub.on_sent(static_cast<ConnId>(m.handle.id()), m.remaining);
      },
      [=](const caf::io::connection_closed_msg& m) {
        ConnId id = static_cast<ConnId>(m.handle.id());
        st->io.remove(id);
        st->hub.on_closed(id);
        st->io.flush();
      },
      [=](const caf::io::acceptor_closed_msg&) {
        AGENT_LOG(kWarn, "a client listener closed");
      },
      [=](shutdown_atom) {
        AGENT_LOG(kInfo, "shutting down: " << st->hub.client_count() << " clients connected");
        st->hub.shutdown();
        st->io.flush();
        self->quit();
      },
  };
}

}  // namespace agent::daemon

#include "agentd/bridge_link.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "agentd/caf_adapter.h"
#include "agentd/log.h"

namespace agent::daemon {

namespace {

using dial_atom = caf::atom_constant<caf::atom("brdial")>;

constexpr size_t kReadBytes = 256u << 10;

// One link: the TCP connection hdl, to or from another site's bridge.
caf::behavior link_actor(caf::io::broker* self, caf::io::connection_handle hdl,
                         caf::actor daemon) {
  // The daemon going takes its links with it (a link's end does not take the daemon).
  self->monitor(daemon);
  self->set_down_handler([=](const caf::down_msg&) { self->quit(caf::exit_reason::user_shutdown); });
  // Acks and small batches go at once: the link frames and batches by itself.
  int one = 1;
  ::setsockopt(socket_of(hdl), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  self->configure_read(hdl, caf::io::receive_policy::at_most(kReadBytes));
  self->send(daemon, bridge_open_atom::value, caf::actor_cast<caf::actor>(self));
  uint64_t id = self->id();
  auto closed = std::make_shared<bool>(false);
  return {
      [=](const caf::io::new_data_msg& m) {
        self->send(daemon, bridge_in_atom::value, id,
                   std::string(m.buf.data(), m.buf.data() + m.buf.size()));
      },
      [=](bridge_out_atom, const std::string& bytes) {
        auto& buf = self->wr_buf(hdl);
        buf.insert(buf.end(), bytes.begin(), bytes.end());
        self->flush(hdl);
      },
      [=](bridge_read_atom, bool on) {
        if (on) self->trigger(hdl);
        else self->halt(hdl);
      },
      [=](bridge_close_atom) {
        self->flush(hdl);
        self->close(hdl);
        if (!*closed) self->send(daemon, bridge_closed_atom::value, id);
        *closed = true;
        self->quit();
      },
      [=](const caf::io::connection_closed_msg&) {
        if (!*closed) self->send(daemon, bridge_closed_atom::value, id);
        *closed = true;
        self->quit();
      },
  };
}

// Accepts links on a listening socket; each becomes a link actor.
caf::behavior listener_actor(caf::io::broker* self, int fd, caf::actor daemon) {
  self->monitor(daemon);
  self->set_down_handler([=](const caf::down_msg&) { self->quit(caf::exit_reason::user_shutdown); });
  self->add_doorman(fd);
  return {
      [=](const caf::io::new_connection_msg& m) { self->fork(link_actor, m.handle, daemon); },
      [=](const caf::io::acceptor_closed_msg&) {
        AGENT_LOG(kWarn, "bridge: the link listener closed");
        self->quit();
      },
  };
}

struct DialerState {
  caf::actor link;  // the current link (monitored), or none
  uint32_t backoff_ms = 0;
  uint64_t failures = 0;
  static const char* name;
};
const char* DialerState::name = "bridge-dialer";

// Connects to one site's bridge, again after its link ends, with exponential backoff. It runs
// on a thread of its own: connecting blocks.
caf::behavior dialer_actor(caf::stateful_actor<DialerState>* self, BridgeSite site,
                           uint32_t backoff_min_ms, uint32_t backoff_max_ms, caf::actor daemon) {
  self->monitor(daemon);
  self->state.backoff_ms = backoff_min_ms;
  self->set_down_handler([=](const caf::down_msg& m) {
    if (m.source == daemon.address()) {
      self->quit(caf::exit_reason::user_shutdown);
      return;
    }
    if (m.source != self->state.link.address()) return;
    self->state.link = caf::actor{};
    self->delayed_send(self, std::chrono::milliseconds(backoff_min_ms), dial_atom::value);
  });
  self->send(self, dial_atom::value);
  return {
      [=](dial_atom) {
        auto& mm = self->home_system().middleman();
        caf::expected<caf::actor> r = caf::sec::cannot_connect_to_node;
        try {
          r = mm.spawn_client(link_actor, site.address.host, site.address.port, daemon);
        } catch (const std::exception& e) {
          AGENT_LOG(kWarn, "bridge: connecting to site " << site.name << ": " << e.what());
        }
        if (r) {
          if (self->state.failures > 0)
            AGENT_LOG(kInfo, "bridge: connected to site " << site.name << " at "
                                                           << site.address.host << ":"
                                                           << site.address.port << " after "
                                                           << self->state.failures
                                                           << " failed attempts");
          self->state.failures = 0;
          self->state.backoff_ms = backoff_min_ms;
          self->state.link = *r;
          self->monitor(*r);
          return;
        }
        if (self->state.failures++ == 0)
          AGENT_LOG(kWarn, "bridge: cannot connect to site " << site.name << " at "
                                                             << site.address.host << ":"
                                                             << site.address.port << " ("
                                                             << self->home_system().render(r.error())
                                                             << "); retrying with backoff up to "
                                                             << backoff_max_ms << " ms");
        self->delayed_send(self, std::chrono::milliseconds(self->state.backoff_ms),
                           dial_atom::value);
        self->state.backoff_ms = std::min(backoff_max_ms, self->state.backoff_ms * 2);
      },
  };
}

int listen_on(const Endpoint& ep, std::string& err) {
  addrinfo hints{}, *res = nullptr;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  std::string port = std::to_string(ep.port);
  if (int rc = ::getaddrinfo(ep.host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    err = "bridge.listen " + ep.host + ":" + port + ": " + ::gai_strerror(rc);
    return -1;
  }
  int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd >= 0) ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fd < 0 || ::bind(fd, res->ai_addr, res->ai_addrlen) != 0 || ::listen(fd, 16) != 0) {
    err = "bridge.listen " + ep.host + ":" + port + ": " + std::strerror(errno);
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(res);
  return fd;
}

struct StoreState {
  std::shared_ptr<persist::BridgeStore> store;
  uint64_t failures = 0;
  static const char* name;
};
const char* StoreState::name = "bridge-store";

caf::behavior store_actor(caf::stateful_actor<StoreState>* self,
                          std::shared_ptr<persist::BridgeStore> store, caf::actor daemon) {
  self->state.store = std::move(store);
  self->monitor(daemon);
  self->set_down_handler([=](const caf::down_msg&) { self->quit(caf::exit_reason::user_shutdown); });
  return {
      [=](bridge_store_atom, const BridgeChangesPtr& c) {
        auto err = self->state.store->write(*c);
        if (!err.empty() && self->state.failures++ % 1000 == 0)
          AGENT_LOG(kError, "bridge: cannot write its queue (" << err << "; " << self->state.failures
                                                                << " failures): a restart would "
                                                                   "lose what was not written");
      },
  };
}

}  // namespace

caf::actor spawn_bridge_store(caf::io::broker* daemon, std::unique_ptr<persist::BridgeStore> store) {
  return daemon->spawn<caf::detached>(store_actor,
                                      std::shared_ptr<persist::BridgeStore>(std::move(store)),
                                      caf::actor_cast<caf::actor>(daemon));
}

std::string start_bridge(caf::io::broker* daemon, const BridgeSettings& b,
                         std::vector<caf::actor>& helpers) {
  auto me = caf::actor_cast<caf::actor>(daemon);
  auto& mm = daemon->home_system().middleman();
  if (!b.listen.host.empty()) {
    std::string err;
    int fd = listen_on(b.listen, err);
    if (fd < 0) return err;
    helpers.push_back(mm.spawn_broker(listener_actor, fd, me));
  }
  for (auto& s : b.sites)
    if (b.site < s.name)
      helpers.push_back(
          daemon->spawn<caf::detached>(dialer_actor, s, b.backoff_min_ms, b.backoff_max_ms, me));
  return {};
}

}  // namespace agent::daemon

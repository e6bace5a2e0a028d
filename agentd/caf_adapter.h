// The one place that reaches into CAF 0.17's internals. The daemon's hot loop runs in CAF's I/O
// multiplexer (the broker's thread), and its own descriptors (the ring's UDP sockets, the
// timer, the client sockets' epoll sets) sit in that multiplexer next to CAF's: no extra
// thread, no mailbox hop per datagram. CAF 0.17 has no public API for that, so it is done
// here, through the default multiplexer's event_handler; and CAF names an accepted
// connection by its socket, which the client I/O reads and writes itself.
// docs/agentd.md says why the loop stays in CAF.
#pragma once

#include <functional>

#include <caf/io/broker.hpp>
#include <caf/io/connection_handle.hpp>

namespace agent::daemon {

class Watch;  // a descriptor watched in the multiplexer

// Calls on_readable (in the broker's thread) whenever fd is readable. Owns fd from now on.
Watch* watch_readable(caf::io::broker* self, int fd, std::function<void()> on_readable);
// Stops watching and forgets the watch; the descriptor is closed once the multiplexer lets
// go of it. Null is fine.
void unwatch(Watch*& w);
int fd_of(const Watch* w);

// The socket of a connection the broker accepted.
int socket_of(caf::io::connection_handle h);

}  // namespace agent::daemon

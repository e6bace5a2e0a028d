// The admin HTTP endpoint ([admin] http, docs/agentd.md "Operating a daemon"): /metrics
// (Prometheus), /status (JSON) and / (the status page), served by civetweb's threads from what
// the admin actor last published (AdminPublished). Nothing here touches the daemon's loop: a
// scrape copies a pointer under a lock and writes rendered bytes.
//
// Why civetweb: a C library Debian packages (libcivetweb-dev 1.15) whose worker threads and
// accept queue are fixed by configuration (num_threads, connection_queue), with request
// timeouts, so a crowd of scrapers or a stuck one is bounded; cpp-httplib 0.11's thread pool
// queues accepted connections without a limit.
#pragma once

#include <memory>
#include <string>

#include "agentd/admin_actor.h"
#include "agentd/config.h"

struct mg_context;

namespace agent::daemon {

class AdminHttp {
 public:
  AdminHttp() = default;
  ~AdminHttp() { stop(); }
  AdminHttp(const AdminHttp&) = delete;
  AdminHttp& operator=(const AdminHttp&) = delete;

  // Listens on where with threads workers; "" on success, else why not (address in use...).
  std::string start(const Endpoint& where, uint32_t threads,
                    std::shared_ptr<AdminPublished> pages);
  void stop();
  bool running() const { return ctx_ != nullptr; }

 private:
  mg_context* ctx_ = nullptr;
  bool initialised_ = false;  // mg_init_library called, mg_exit_library due
  std::shared_ptr<AdminPublished> pages_;
};

// The status page (agentd/admin_page.html, built in).
extern const char* const kStatusPage;

}  // namespace agent::daemon

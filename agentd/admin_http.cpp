#include "agentd/admin_http.h"

#include <civetweb.h>

#include <cstring>
#include <mutex>

namespace agent::daemon {

namespace {

// civetweb reports why it could not start through its log callback, before mg_start returns.
std::mutex g_error_mu;
std::string g_error;

int on_log(const mg_connection*, const char* message) {
  std::lock_guard<std::mutex> l(g_error_mu);
  if (g_error.size() < 1024) g_error += (g_error.empty() ? "" : "; ") + std::string(message);
  return 1;  // handled: civetweb writes nothing itself
}

const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    default: return "Service Unavailable";
  }
}

void reply(mg_connection* conn, int status, const char* type, const std::string& body) {
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
            "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
            status, reason(status), type, body.size());
  mg_write(conn, body.data(), body.size());
}

int serve(mg_connection* conn, void* data) {
  const mg_request_info* ri = mg_get_request_info(conn);
  auto* published = static_cast<AdminPublished*>(data);
  std::string uri = ri->local_uri ? ri->local_uri : "";
  if (std::strcmp(ri->request_method, "GET") != 0) {
    reply(conn, 405, "text/plain", "only GET\n");
    return 405;
  }
  if (uri == "/" || uri == "/index.html") {
    reply(conn, 200, "text/html; charset=utf-8", kStatusPage);
    return 200;
  }
  auto pages = published->get();
  if (!pages) {
    reply(conn, 503, "text/plain", "the daemon has not published its first snapshot yet\n");
    return 503;
  }
  if (uri == "/metrics") {
    reply(conn, 200, "text/plain; version=0.0.4; charset=utf-8", pages->metrics);
    return 200;
  }
  if (uri == "/status") {
    reply(conn, 200, "application/json", pages->status);
    return 200;
  }
  reply(conn, 404, "text/plain", "not found: this endpoint serves /metrics, /status and /\n");
  return 404;
}

}  // namespace

std::string AdminHttp::start(const Endpoint& where, uint32_t threads,
                             std::shared_ptr<AdminPublished> pages) {
  stop();
  mg_init_library(0);  // counted: each start's is undone by its stop (mg_exit_library)
  initialised_ = true;
  pages_ = std::move(pages);
  std::string host = where.host.find(':') != std::string::npos ? "[" + where.host + "]" : where.host;
  std::string port = host + ":" + std::to_string(where.port);
  std::string nthreads = std::to_string(threads);
  const char* options[] = {"listening_ports", port.c_str(),
                           "num_threads", nthreads.c_str(),
                           "connection_queue", "32",
                           "listen_backlog", "32",
                           "request_timeout_ms", "5000",
                           "enable_keep_alive", "no",
                           nullptr};
  mg_callbacks cb{};
  cb.log_message = on_log;
  {
    std::lock_guard<std::mutex> l(g_error_mu);
    g_error.clear();
  }
  ctx_ = mg_start(&cb, nullptr, options);
  if (!ctx_) {
    std::lock_guard<std::mutex> l(g_error_mu);
    return "admin.http " + port + ": cannot listen" + (g_error.empty() ? "" : ": " + g_error);
  }
  mg_set_request_handler(ctx_, "/", serve, pages_.get());
  return {};
}

void AdminHttp::stop() {
  if (ctx_) mg_stop(ctx_);
  ctx_ = nullptr;
  if (initialised_) mg_exit_library();
  initialised_ = false;
}

}  // namespace agent::daemon

// The configuration file as agentd reads it (agentd --config / --check-config / SIGHUP): the
// bytes are written to a file and go through load_config_file (toml11's parser, every key's
// type and range, [persist], [[access]] principals, [[ring.daemons]]), then validate() (the
// rules between keys), and for a valid one what the daemon derives from it (the ring's
// settings, a reload's changed keys).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "agentd/config.h"
#include "agentd/daemon_core.h"
#include "agentd/log.h"

using namespace agent;

namespace {

std::string file_path() {
  const char* dir = std::getenv("TMPDIR");
  return std::string(dir && *dir ? dir : "/tmp") + "/fuzz_config." + std::to_string(getpid()) +
         ".toml";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = file_path();
  // Nothing is written; set here, not in a static (log.cpp's sink may be initialised later).
  static const bool quiet =
      (log::set_level(log::Level::kError), log::set_sink([](log::Level, const std::string&) {}), true);
  (void)quiet;
  static const bool cleanup = (std::atexit([] { ::unlink(path.c_str()); }), true);
  (void)cleanup;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);

  daemon::Config cfg;
  cfg.name = "fuzz";
  std::string err = daemon::load_config_file(path, cfg);
  if (!err.empty()) return 0;
  if (!daemon::validate(cfg).empty()) return 0;
  membership::RingConfig rc = daemon::ring_config(cfg);
  (void)rc;
  daemon::changed_keys(daemon::Config{}, cfg);
  daemon::persistent_group(cfg.persist, "orders.eu");
  return 0;
}

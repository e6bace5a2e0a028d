#include "transport/private_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace agent::transport {
namespace {

// Closes the descriptor on every way out.
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

PrivateFileResult read_private_file(const std::string& path, const PrivateFileRules& rules,
                                    std::string& text) {
  text.clear();
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) return {std::strerror(errno), true};
  struct stat sb;
  if (::fstat(f.fd, &sb) != 0) return {std::strerror(errno)};
  if (!S_ISREG(sb.st_mode)) return {"not a regular file"};
  if (rules.owner_only && (sb.st_mode & (S_IRWXG | S_IRWXO))) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(sb.st_mode & 07777));
    return {std::string("mode ") + mode + " lets group or others at " + rules.contents +
            ": chmod 600 " + path};
  }
  auto size = static_cast<uint64_t>(sb.st_size);
  if (rules.size_error) {
    std::string e = rules.size_error(size);
    if (!e.empty()) return {e};
  }
  if (size > rules.max_bytes)
    return {std::to_string(size) + " bytes, more than " + std::to_string(rules.max_bytes)};
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(f.fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return {std::strerror(errno)};
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > rules.max_bytes) {
      text.clear();
      return {"grew past " + std::to_string(rules.max_bytes) + " bytes while read"};
    }
  }
  return {};
}

}  // namespace agent::transport

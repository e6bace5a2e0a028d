#include "persist/incarnation.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

namespace agent::persist {

IncarnationResult next_incarnation(const std::string& dir) {
  IncarnationResult r;
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    r.error = "cannot create state directory " + dir + ": " + std::strerror(errno);
    return r;
  }
  std::string path = dir + "/incarnation";
  uint64_t prev = 0;
  {
    std::ifstream in(path);
    if (in && !(in >> prev)) {
      r.error = path + " does not hold a number; remove it to start over";
      return r;
    }
  }
  r.incarnation = prev + 1;
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    r.error = "cannot write " + tmp + ": " + std::strerror(errno);
    return r;
  }
  std::string text = std::to_string(r.incarnation) + "\n";
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            ::fsync(fd) == 0;
  int saved = errno;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    r.error = "cannot store " + path + ": " + std::strerror(ok ? errno : saved);
    r.incarnation = 0;
  }
  return r;
}

}  // namespace agent::persist

#include "persist/state_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace agent::persist {

namespace {

// mkdir -p: "" or why not.
std::string make_dirs(const std::string& dir) {
  for (size_t pos = 1;; ++pos) {
    pos = dir.find('/', pos);
    std::string part = dir.substr(0, pos);
    if (!part.empty() && ::mkdir(part.c_str(), 0755) != 0 && errno != EEXIST)
      return "cannot create state directory " + part + ": " + std::strerror(errno);
    if (pos == std::string::npos) break;
  }
  struct stat sb;
  if (::stat(dir.c_str(), &sb) != 0) return "cannot use state directory " + dir + ": " + std::strerror(errno);
  if (!S_ISDIR(sb.st_mode)) return "state directory " + dir + " exists and is not a directory";
  return {};
}

}  // namespace

StateLock::~StateLock() {
  if (fd_ >= 0) ::close(fd_);
}

std::string StateLock::acquire(const std::string& dir) {
  if (fd_ >= 0) return "state lock taken twice";
  if (dir.empty()) return "no state directory";
  if (auto err = make_dirs(dir); !err.empty()) return err;
  std::string path = dir + "/lock";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return "cannot open " + path + ": " + std::strerror(errno);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    std::string msg;
    if (err == EWOULDBLOCK) {
      char buf[32] = {0};
      ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
      std::string pid = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
      while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
      msg = "state directory " + dir + " is in use by another daemon" +
            (pid.empty() ? "" : " (pid " + pid + ")") + ": each daemon needs its own "
            "(daemon.state_dir or --state-dir)";
    } else {
      msg = "cannot lock " + path + ": " + std::strerror(err);
    }
    ::close(fd);
    return msg;
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    int err = errno;
    ::close(fd);
    return "cannot write " + path + ": " + std::strerror(err);
  }
  fd_ = fd;
  return {};
}

}  // namespace agent::persist

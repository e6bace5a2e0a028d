#include "persist/incarnation.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <fstream>

namespace agent::persist {

namespace {

// Reads a number from path: false with error set if the file holds something else; value 0
// when there is no file.
bool read_number(const std::string& path, uint64_t& value, std::string& error) {
  value = 0;
  std::ifstream in(path);
  if (in && !(in >> value)) {
    error = path + " does not hold a number; remove it to start over";
    return false;
  }
  return true;
}

// Writes value to path atomically (temporary file, fsync, rename); returns an error message.
std::string write_number(const std::string& path, uint64_t value) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return "cannot write " + tmp + ": " + std::strerror(errno);
  std::string text = std::to_string(value) + "\n";
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            ::fsync(fd) == 0;
  int saved = errno;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0)
    return "cannot store " + path + ": " + std::strerror(ok ? errno : saved);
  // The rename is durable only once the directory's entry is: without this a crash can bring
  // back the old value.
  std::string dir = path.substr(0, path.find_last_of('/') + 1);
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd < 0) return "cannot open " + dir + " to make " + path + " durable: " + std::strerror(errno);
  bool synced = ::fsync(dfd) == 0;
  saved = errno;
  ::close(dfd);
  if (!synced) return "cannot make " + path + " durable (fsync of " + dir + "): " + std::strerror(saved);
  return {};
}

}  // namespace

IncarnationResult next_incarnation(const std::string& dir) {
  IncarnationResult r;
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    r.error = "cannot create state directory " + dir + ": " + std::strerror(errno);
    return r;
  }
  std::string path = dir + "/incarnation";
  uint64_t prev = 0;
  if (!read_number(path, prev, r.error)) return r;
  r.error = write_number(path, prev + 1);
  if (r.error.empty()) r.incarnation = prev + 1;
  return r;
}

RingSeqResult load_ring_seq(const std::string& dir) {
  RingSeqResult r;
  uint64_t v = 0;
  if (!read_number(dir + "/ring_seq", v, r.error)) return r;
  if (v > 0xffffffffu) {
    r.error = dir + "/ring_seq holds " + std::to_string(v) + ", above the largest ring sequence";
    return r;
  }
  r.seq = static_cast<uint32_t>(v);
  return r;
}

std::string store_ring_seq(const std::string& dir, uint32_t seq) {
  return write_number(dir + "/ring_seq", seq);
}

EpochResult next_ring_epoch(const std::string& dir, uint64_t now_us) {
  EpochResult r;
  std::string path = dir + "/ring_epoch";
  uint64_t prev = 0;
  if (!read_number(path, prev, r.error)) return r;
  uint64_t epoch = std::max(now_us, prev + 1);
  r.error = write_number(path, epoch);
  if (r.error.empty()) r.epoch = epoch;
  return r;
}

}  // namespace agent::persist

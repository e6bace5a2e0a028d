// Keeps two daemons from sharing one state directory: an exclusive flock(2) on
// <state_dir>/lock, held as long as the StateLock lives (the kernel drops it when the process
// ends, however it ends, so a crashed daemon leaves no stale lock). The holder's PID is written
// into the file for the message a second daemon gets.
#pragma once

#include <string>

namespace agent::persist {

class StateLock {
 public:
  StateLock() = default;
  ~StateLock();
  StateLock(const StateLock&) = delete;
  StateLock& operator=(const StateLock&) = delete;

  // Creates dir (and missing parents, mode 0755) and takes its lock. "" on success; else a
  // message naming the directory and why (another daemon's PID when it holds the lock).
  std::string acquire(const std::string& dir);
  bool held() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

}  // namespace agent::persist

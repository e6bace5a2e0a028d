// What the benchmark reads about the daemons from /proc: CPU time used and peak memory.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>

namespace agent::bench {

// User + system CPU time of a process in seconds (/proc/PID/stat); nullopt when it is gone.
std::optional<double> process_cpu_s(pid_t pid);
// Minor page faults so far (/proc/PID/stat); nullopt when it is gone.
std::optional<uint64_t> process_minor_faults(pid_t pid);
// Peak resident set (VmHWM) in KiB (/proc/PID/status); nullopt when it is gone.
std::optional<uint64_t> process_peak_rss_kib(pid_t pid);
// Current resident set (VmRSS) in KiB; nullopt when it is gone.
std::optional<uint64_t> process_rss_kib(pid_t pid);

}  // namespace agent::bench

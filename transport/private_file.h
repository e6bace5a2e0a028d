// Reading a small private file (the ring's cluster key, the clients' secrets) with the checks
// such a file deserves: a regular file, no access for group or others, a bounded size. One
// reader, so both files are refused for the same reasons with the same words.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace agent::transport {

struct PrivateFileRules {
  bool owner_only = true;            // refuse a mode that lets group or others in (mode & 077)
  std::string contents = "the file";  // in "mode 0644 lets group or others at <contents>"
  uint64_t max_bytes = 1u << 20;     // never read more than this, even if the file grows
  // Judges the size fstat reports before anything is read: "" if it is fine, else the error
  // text. Unset: anything up to max_bytes is fine.
  std::function<std::string(uint64_t size_bytes)> size_error;
};

struct PrivateFileResult {
  std::string error;         // "" when read; else what is wrong, without the path
  bool open_failed = false;  // error is open()'s (missing, unreadable): callers add a hint
};

// Reads `path` into `text` (replacing it) after the checks in `rules`.
PrivateFileResult read_private_file(const std::string& path, const PrivateFileRules& rules,
                                    std::string& text);

}  // namespace agent::transport

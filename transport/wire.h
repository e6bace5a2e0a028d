// Little-endian, bounds-checked encoding primitives shared by every wire format.
// Writer appends to a std::string; Reader never reads past its end: on any short read it
// latches a failure, returns zeros/empty views, and the caller checks ok() once at the end.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace agent::wire {

class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}

  void u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u16(uint16_t v) { put(v, 2); }
  void u32(uint32_t v) { put(v, 4); }
  void u64(uint64_t v) { put(v, 8); }
  void i16(int16_t v) { u16(static_cast<uint16_t>(v)); }
  // A string of at most 255 bytes, prefixed by its length in one byte (caller checks size).
  void str8(std::string_view s) {
    u8(static_cast<uint8_t>(s.size()));
    out_.append(s.data(), s.size());
  }
  // A byte string prefixed by its length in four bytes.
  void bytes32(std::string_view s) {
    u32(static_cast<uint32_t>(s.size()));
    out_.append(s.data(), s.size());
  }
  void raw(std::string_view s) { out_.append(s.data(), s.size()); }
  size_t size() const { return out_.size(); }
  // Overwrites a u32 written earlier at byte offset pos (for length prefixes).
  void patch_u32(size_t pos, uint32_t v) {
    for (int i = 0; i < 4; ++i) out_[pos + i] = static_cast<char>((v >> (8 * i)) & 0xff);
  }

 private:
  void put(uint64_t v, int n) {
    char b[8];
    for (int i = 0; i < n; ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xff);
    out_.append(b, n);
  }
  std::string& out_;
};

class Reader {
 public:
  Reader(const char* data, size_t size) : p_(data), end_(data + size) {}
  explicit Reader(std::string_view s) : Reader(s.data(), s.size()) {}

  uint8_t u8() { return static_cast<uint8_t>(get(1)); }
  uint16_t u16() { return static_cast<uint16_t>(get(2)); }
  uint32_t u32() { return static_cast<uint32_t>(get(4)); }
  uint64_t u64() { return get(8); }
  int16_t i16() { return static_cast<int16_t>(u16()); }
  std::string_view str8() { return bytes(u8()); }
  std::string_view bytes32() { return bytes(u32()); }
  std::string_view bytes(size_t n) {
    if (!ok_ || static_cast<size_t>(end_ - p_) < n) return fail();
    std::string_view v(p_, n);
    p_ += n;
    return v;
  }
  size_t remaining() const { return ok_ ? static_cast<size_t>(end_ - p_) : 0; }
  bool ok() const { return ok_; }
  // True when everything was read and nothing is left over: a well-formed record.
  bool done() const { return ok_ && p_ == end_; }

 private:
  uint64_t get(int n) {
    if (!ok_ || end_ - p_ < n) {
      fail();
      return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(p_[i])) << (8 * i);
    p_ += n;
    return v;
  }
  std::string_view fail() {
    ok_ = false;
    p_ = end_;
    return {};
  }
  const char* p_;
  const char* end_;
  bool ok_ = true;
};

// A length-prefixed frame, u32 length (of what follows) then u8 type, as the client protocol
// and the bridge's links write them: begin_frame writes the head with a placeholder length and
// returns where it starts; finish_frame fills the length in once the body is written.
inline size_t begin_frame(std::string& out, uint8_t type) {
  size_t start = out.size();
  Writer w(out);
  w.u32(0);
  w.u8(type);
  return start;
}
inline void finish_frame(std::string& out, size_t start) {
  Writer(out).patch_u32(start, static_cast<uint32_t>(out.size() - start - 4));
}

}  // namespace agent::wire

// A daemon's durable identity: a counter that grows on every start, so a daemon that crashed and
// came back is recognisably a new incarnation. Kept in <state_dir>/incarnation, written
// atomically (write to a temporary file, fsync, rename).
#pragma once

#include <cstdint>
#include <string>

namespace agent::persist {

struct IncarnationResult {
  uint64_t incarnation = 0;
  std::string error;  // empty on success
};

// Reads the previous incarnation (0 if none), stores previous + 1 and returns it.
IncarnationResult next_incarnation(const std::string& state_dir);

// The highest ring sequence number this daemon reserved as representative, kept in
// <state_dir>/ring_seq the same way, so that a restarted daemon never hands out a ring id again.
struct RingSeqResult {
  uint32_t seq = 0;    // 0 if none stored yet
  std::string error;   // empty on success
};
RingSeqResult load_ring_seq(const std::string& state_dir);
// Stores seq durably; returns an error message, empty on success.
std::string store_ring_seq(const std::string& state_dir, uint32_t seq);

// This start's epoch for sealing ring datagrams (transport/ring_seal.h): now_us (the wall
// clock, µs), or one above the epoch stored at the previous start if that is higher (a clock
// set back), stored in <state_dir>/ring_epoch before it is used. Receivers refuse datagrams
// of an epoch older than one they have heard, so epochs must grow from start to start: the
// clock carries them when the state directory is lost, the file when the clock goes back.
struct EpochResult {
  uint64_t epoch = 0;
  std::string error;  // empty on success
};
EpochResult next_ring_epoch(const std::string& state_dir, uint64_t now_us);

}  // namespace agent::persist

// The message log: the delivered messages of persistent groups, in RocksDB, one range per group
// ordered by the message's position in the total order. Synchronous and single-threaded; the
// daemon runs it inside its log actor (agentd/log_actor.h), never on the ring's path.
//
// Layout (one key space, a tag byte first; a group name is written with its length first, so one
// group's keys never run into another's):
//   'F'                               format marker "agentd message log 1"
//   'm' str8 group  be64 ring be64 ordinal   an entry (time, service, type, sender, groups, payload)
//   't' str8 group  be64 time_us be64 ring be64 ordinal   (empty): replay from a time, expiry
//   'g' str8 group                    the group's summary (count, bytes, first, last, removed)
//   'c' be64 ring                     what the log holds of the ring (RingCover), the newest rings
//   'i' name                          small durable values of the daemon (identity)
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "persist/entry.h"
#include "persist/glob.h"

namespace rocksdb {
class DB;
class WriteBatch;
}

namespace agent::persist {

struct GroupInfo {
  uint64_t count = 0;
  uint64_t bytes = 0;  // payload bytes
  Position first, last;
  Position removed_upto;  // the last position retention removed (zero: nothing removed)
};

struct Retention {
  uint64_t max_messages = 0;  // 0: no limit
  uint64_t max_bytes = 0;     // payload bytes; 0: no limit
  uint64_t max_age_us = 0;    // 0: no limit
};

class MessageLog {
 public:
  // Opens the log in dir, creating it if it does not exist. Refuses (error set, nullptr) a
  // directory that holds anything but a message log, or a log that does not open (corrupt):
  // nothing is ever wiped or repaired.
  static std::unique_ptr<MessageLog> open(const std::string& dir, std::string& error);
  ~MessageLog();
  MessageLog(const MessageLog&) = delete;
  MessageLog& operator=(const MessageLog&) = delete;

  // Appends the records (in position order) in one atomic write; sync: the write is on disk
  // when this returns. Records at or below a group's last position are skipped (a repeat).
  // Returns "" or what went wrong (nothing of the batch is then written).
  std::string append(const std::vector<Record>& batch, bool sync);
  // Makes every append so far durable (fsync of the write-ahead log).
  std::string sync();

  // What the log holds of each of the newest rings (appends and fills keep it, in the same
  // atomic write as the entries).
  const Coverage& coverage() const { return coverage_; }
  // Messages of `ring` from another daemon's log (catch-up): writes those it does not hold,
  // under their own time, and then holds every message of the ring up to `upto`. Refused (an
  // error) when the log holds messages of the ring delivered past a gap above `upto`'s start
  // (their ordinals are its own). Entries retention already removed here are not written back.
  std::string fill(const std::vector<Record>& batch, uint64_t ring, uint64_t upto);
  // The messages of `ring` with ordinals in (after, upto], every persistent group's, one record
  // per message (its log groups merged), in ordinal order, about max_bytes of payload (at
  // least one message when there is one). `reached`: the chunk holds every such message up to
  // it (upto when complete).
  std::vector<Record> read_ring(uint64_t ring, uint64_t after, uint64_t upto, size_t max_bytes,
                                uint64_t& reached, std::string& error) const;

  // A group's entries after `after` and before `before`, in position order, at most max_entries
  // and about max_bytes of payload (at least one entry when there is one).
  ReadResult read(const std::string& group, Position after, Position before = kEnd,
                  size_t max_entries = 1000, size_t max_bytes = 1 << 20) const;
  // The position just before the group's first entry delivered at or after time_us (reading
  // after it starts there); the group's last position when none is that late.
  Position before_time(const std::string& group, uint64_t time_us) const;

  // Removes the group's oldest entries while one of the limits is exceeded, at most
  // max_remove of them per call. Returns how many were removed (and sets error).
  uint64_t expire(const std::string& group, const Retention& r, uint64_t now_us,
                  std::string& error, uint64_t max_remove = 10000);

  const GroupInfo* info(const std::string& group) const;
  // The sequence number of the newest ring any logged message comes from (0: none).
  uint32_t last_ring_seq() const;
  const std::map<std::string, GroupInfo>& groups() const { return groups_; }
  // Bytes on disk (table files and write-ahead log), as RocksDB estimates them.
  uint64_t disk_bytes() const;

  // Whether a write failed. Then nothing more is written until the daemon restarts (RocksDB,
  // as Debian builds it, aborts on any further write to a file that failed, closing
  // included): appends return the failure, reads go on. What failed.
  bool failed() const { return !failure_.empty(); }
  const std::string& failure() const { return failure_; }

  // Small durable values (the daemon's identity), written synchronously.
  std::string put_value(const std::string& name, const std::string& value);
  bool get_value(const std::string& name, std::string& value) const;

 private:
  MessageLog() = default;
  // A group's summary as a write changes it: a copy of the kept one, staged in changed.
  GroupInfo& staged(std::map<std::string, GroupInfo>& changed, const std::string& group) const;
  // Writes wb with the changed summaries and the new coverage, atomically; on success they
  // become the log's. "" or what went wrong.
  std::string commit(rocksdb::WriteBatch& wb, const std::map<std::string, GroupInfo>& changed,
                     Coverage coverage, bool sync);
  std::unique_ptr<rocksdb::DB> db_;
  std::string failure_;
  std::string dir_;
  std::map<std::string, GroupInfo> groups_;
  Coverage coverage_;
  std::map<std::string, uint64_t> last_time_;  // time of each group's last append (this run)
};

// Encodings, exposed for tests.
std::string entry_key(const std::string& group, Position p);
std::string encode_entry(const Entry& e);
bool decode_entry(const std::string& key, const std::string& value, Entry& e);

}  // namespace agent::persist

// The WAN bridge's durable state (docs/bridge.md), in RocksDB under <state_dir>/bridge: the
// site's outgoing stream (its epoch, its newest item and the items no other site has
// acknowledged yet), how far each other site acknowledged it, and how far this site applied
// each other site's stream. A bridge daemon that restarts goes on with the same stream: its
// queue is resent from where each site stopped, and the other sites' streams resume after
// what this site had applied. Synchronous; the daemon runs it in an actor of its own
// (agentd/bridge_link.h), never on the ring's path. Writes reach the OS at once (a killed
// daemon keeps them; a crashed host may lose the last moments).
//
// Keys: 'F' format marker; 'e' epoch; 'h' newest item; 'd' the bound dropped items up to;
// 'i' be64 seq → u8 data, event bytes; 'a' site → u64 acknowledged; 'p' site → u64 epoch,
// u64 applied.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace rocksdb {
class DB;
}

namespace agent::persist {

struct StoredItem {
  uint64_t seq = 0;
  bool data = false;
  std::string event;
};

struct BridgeState {
  uint64_t epoch = 0;  // 0: none stored yet
  uint64_t head = 0;
  uint64_t dropped_through = 0;
  std::vector<StoredItem> items;  // in seq order, contiguous
  std::map<std::string, uint64_t> acked;
  std::map<std::string, std::pair<uint64_t, uint64_t>> applied;  // site -> (epoch, applied)
};

// One batch of changes, written atomically.
struct BridgeChanges {
  std::vector<StoredItem> items;  // appended
  uint64_t head = 0;              // 0: unchanged
  uint64_t trim_through = 0;      // items up to here are acknowledged everywhere (0: none)
  uint64_t dropped_through = 0;   // the bound dropped items up to here (0: none)
  std::map<std::string, uint64_t> acked;
  std::map<std::string, std::pair<uint64_t, uint64_t>> applied;
  bool empty() const {
    return items.empty() && head == 0 && trim_through == 0 && dropped_through == 0 &&
           acked.empty() && applied.empty();
  }
};

class BridgeStore {
 public:
  // Opens (creating) the store in dir and reads its state. A directory holding anything else
  // is refused, never wiped.
  static std::unique_ptr<BridgeStore> open(const std::string& dir, BridgeState& state,
                                           std::string& error);
  ~BridgeStore();
  BridgeStore(const BridgeStore&) = delete;
  BridgeStore& operator=(const BridgeStore&) = delete;

  std::string set_epoch(uint64_t epoch);
  std::string write(const BridgeChanges& c);

 private:
  BridgeStore() = default;
  std::unique_ptr<rocksdb::DB> db_;
};

}  // namespace agent::persist

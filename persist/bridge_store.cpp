#include "persist/bridge_store.h"

#include <dirent.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

namespace agent::persist {

namespace {

constexpr const char* kFormat = "agentd bridge queue 1";

void put_be64(std::string& s, uint64_t v) {
  for (int i = 7; i >= 0; --i) s.push_back(static_cast<char>(v >> (8 * i)));
}
uint64_t get_be64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 8 | static_cast<unsigned char>(p[i]);
  return v;
}
std::string item_key(uint64_t seq) {
  std::string k = "i";
  put_be64(k, seq);
  return k;
}
std::string u64_value(uint64_t v) {
  std::string s;
  put_be64(s, v);
  return s;
}

}  // namespace

BridgeStore::~BridgeStore() = default;

std::unique_ptr<BridgeStore> BridgeStore::open(const std::string& dir, BridgeState& state,
                                               std::string& error) {
  bool existing = false;
  if (DIR* d = opendir(dir.c_str())) {
    while (auto* e = readdir(d))
      if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, "..")) existing = true;
    closedir(d);
  } else if (errno != ENOENT) {
    error = "cannot read " + dir + ": " + std::strerror(errno);
    return nullptr;
  } else if (mkdir(dir.c_str(), 0750) != 0 && errno != EEXIST) {
    error = "cannot create " + dir + ": " + std::strerror(errno);
    return nullptr;
  }
  rocksdb::Options opts;
  opts.paranoid_checks = true;
  opts.create_if_missing = !existing;
  opts.IncreaseParallelism(1);
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(opts, dir, &raw);
  if (!s.ok()) {
    error = "cannot open the bridge's queue in " + dir + ": " + s.ToString() +
            " (it is left as it is; nothing was repaired or removed)";
    return nullptr;
  }
  std::unique_ptr<BridgeStore> store(new BridgeStore());
  store->db_.reset(raw);
  std::string v;
  s = raw->Get(rocksdb::ReadOptions(), "F", &v);
  if (s.IsNotFound()) {
    if (existing) {
      error = dir + " is a RocksDB database but not a bridge queue: refusing to use it";
      return nullptr;
    }
    raw->Put(rocksdb::WriteOptions(), "F", kFormat);
  } else if (!s.ok() || v != kFormat) {
    error = dir + " is not a bridge queue of this version (" + (s.ok() ? v : s.ToString()) + ")";
    return nullptr;
  }
  state = BridgeState{};
  std::unique_ptr<rocksdb::Iterator> it(raw->NewIterator(rocksdb::ReadOptions()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto k = it->key();
    auto val = it->value();
    if (k.size() < 1) continue;
    char tag = k[0];
    if ((tag == 'e' || tag == 'h' || tag == 'd') && k.size() == 1 && val.size() == 8) {
      uint64_t n = get_be64(val.data());
      (tag == 'e' ? state.epoch : tag == 'h' ? state.head : state.dropped_through) = n;
    } else if (tag == 'i' && k.size() == 9 && val.size() >= 1) {
      state.items.push_back(
          StoredItem{get_be64(k.data() + 1), val[0] != 0, std::string(val.data() + 1, val.size() - 1)});
    } else if (tag == 'a' && val.size() == 8) {
      state.acked[std::string(k.data() + 1, k.size() - 1)] = get_be64(val.data());
    } else if (tag == 'p' && val.size() == 16) {
      state.applied[std::string(k.data() + 1, k.size() - 1)] = {get_be64(val.data()),
                                                                get_be64(val.data() + 8)};
    }
  }
  if (!it->status().ok()) {
    error = "cannot read the bridge's queue in " + dir + ": " + it->status().ToString();
    return nullptr;
  }
  // Items form one contiguous run ending at the newest.
  for (size_t i = 1; i < state.items.size(); ++i)
    if (state.items[i].seq != state.items[i - 1].seq + 1) {
      error = dir + ": the bridge's queue has a hole at item " + std::to_string(state.items[i - 1].seq + 1);
      return nullptr;
    }
  if (!state.items.empty() && state.items.back().seq > state.head) state.head = state.items.back().seq;
  return store;
}

std::string BridgeStore::set_epoch(uint64_t epoch) {
  auto s = db_->Put(rocksdb::WriteOptions(), "e", u64_value(epoch));
  return s.ok() ? "" : s.ToString();
}

std::string BridgeStore::write(const BridgeChanges& c) {
  rocksdb::WriteBatch b;
  for (auto& it : c.items) {
    std::string v(1, it.data ? 1 : 0);
    v += it.event;
    b.Put(item_key(it.seq), v);
  }
  if (c.head) b.Put("h", u64_value(c.head));
  uint64_t gone = std::max(c.trim_through, c.dropped_through);
  if (gone) b.DeleteRange(item_key(0), item_key(gone + 1));
  if (c.dropped_through) b.Put("d", u64_value(c.dropped_through));
  for (auto& [site, seq] : c.acked) b.Put("a" + site, u64_value(seq));
  for (auto& [site, ea] : c.applied) b.Put("p" + site, u64_value(ea.first) + u64_value(ea.second));
  auto s = db_->Write(rocksdb::WriteOptions(), &b);
  return s.ok() ? "" : s.ToString();
}

}  // namespace agent::persist

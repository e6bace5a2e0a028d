#include "persist/message_log.h"

#include <algorithm>

#include <dirent.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

namespace agent::persist {
namespace {

constexpr const char* kFormat = "agentd message log 1";

void put_be64(std::string& out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((v >> (i * 8)) & 0xff));
}
uint64_t get_be64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 8 | static_cast<unsigned char>(p[i]);
  return v;
}
void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (i * 8)) & 0xff));
}

// Reads the little-endian fields of a value; any short read marks it failed.
struct Reader {
  const char* p;
  const char* end;
  bool ok = true;
  uint64_t le(int bytes) {
    if (end - p < bytes) {
      ok = false;
      return 0;
    }
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = v << 8 | static_cast<unsigned char>(p[i]);
    p += bytes;
    return v;
  }
  std::string str(size_t n) {
    if (static_cast<size_t>(end - p) < n) {
      ok = false;
      return {};
    }
    std::string s(p, n);
    p += n;
    return s;
  }
};

std::string group_prefix(char tag, const std::string& group) {
  std::string k;
  k.push_back(tag);
  k.push_back(static_cast<char>(group.size()));
  k.append(group);
  return k;
}

std::string time_key(const std::string& group, uint64_t time_us, Position p) {
  std::string k = group_prefix('t', group);
  put_be64(k, time_us);
  put_be64(k, p.ring);
  put_be64(k, p.ordinal);
  return k;
}

std::string encode_info(const GroupInfo& g) {
  std::string v;
  for (uint64_t x : {g.count, g.bytes, g.first.ring, g.first.ordinal, g.last.ring, g.last.ordinal,
                     g.removed_upto.ring, g.removed_upto.ordinal})
    put_le(v, x, 8);
  return v;
}

bool decode_info(const std::string& v, GroupInfo& g) {
  Reader r{v.data(), v.data() + v.size()};
  g.count = r.le(8);
  g.bytes = r.le(8);
  g.first = {r.le(8), r.le(8)};
  g.last = {r.le(8), r.le(8)};
  g.removed_upto = {r.le(8), r.le(8)};
  return r.ok && r.p == r.end;
}

std::string cover_key(uint64_t ring) {
  std::string k = "c";
  put_be64(k, ring);
  return k;
}

std::string encode_cover(const RingCover& c) {
  std::string v;
  put_le(v, c.through, 8);
  put_le(v, c.past_gap ? 1 : 0, 1);
  return v;
}

bool decode_cover(const std::string& v, RingCover& c) {
  Reader r{v.data(), v.data() + v.size()};
  c.through = r.le(8);
  uint64_t flags = r.le(1);
  c.past_gap = flags & 1;
  return r.ok && r.p == r.end && flags <= 1;
}

// The coverage entries that differ between before and after, into the batch.
void write_coverage(rocksdb::WriteBatch& wb, const Coverage& before, const Coverage& after) {
  for (auto& [ring, c] : before)
    if (!after.count(ring)) wb.Delete(cover_key(ring));
  for (auto& [ring, c] : after) {
    auto b = before.find(ring);
    if (b == before.end() || !(b->second == c)) wb.Put(cover_key(ring), encode_cover(c));
  }
}

Position position_of(const rocksdb::Slice& key, size_t prefix) {
  return {get_be64(key.data() + prefix), get_be64(key.data() + prefix + 8)};
}

rocksdb::Options options() {
  rocksdb::Options opts;
  opts.paranoid_checks = true;
  // Appends are small batches at a high rate: a larger memtable and background threads keep
  // flushes and compactions off the write path.
  opts.write_buffer_size = 64u << 20;
  opts.IncreaseParallelism(2);
  opts.max_background_jobs = 2;
  opts.compression = rocksdb::kLZ4Compression;
  return opts;
}

bool dir_has_files(const std::string& dir, bool& has_current, std::string& error) {
  has_current = false;
  DIR* d = opendir(dir.c_str());
  if (!d) {
    if (errno == ENOENT) return false;
    error = "cannot read " + dir + ": " + std::strerror(errno);
    return false;
  }
  bool any = false;
  while (auto* e = readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    any = true;
    if (n == "CURRENT") has_current = true;
  }
  closedir(d);
  return any;
}

}  // namespace

std::string entry_key(const std::string& group, Position p) {
  std::string k = group_prefix('m', group);
  put_be64(k, p.ring);
  put_be64(k, p.ordinal);
  return k;
}

namespace {
// An entry's value up to its payload (which follows it).
void encode_entry_head(std::string& v, const Entry& e, size_t payload_size) {
  put_le(v, e.time_us, 8);
  put_le(v, e.service, 4);
  put_le(v, static_cast<uint16_t>(e.msg_type), 2);
  put_le(v, e.sender.size(), 1);
  v.append(e.sender);
  put_le(v, e.groups.size(), 2);
  for (auto& g : e.groups) {
    put_le(v, g.size(), 1);
    v.append(g);
  }
  put_le(v, payload_size, 4);
}
}  // namespace

std::string encode_entry(const Entry& e) {
  std::string v;
  v.reserve(32 + e.sender.size() + e.payload.size());
  encode_entry_head(v, e, e.payload.size());
  v.append(e.payload);
  return v;
}

bool decode_entry(const std::string& key, const std::string& value, Entry& e) {
  if (key.size() < 2 || key[0] != 'm') return false;
  size_t prefix = 2 + static_cast<unsigned char>(key[1]);
  if (key.size() != prefix + 16) return false;
  e.pos = position_of(key, prefix);
  Reader r{value.data(), value.data() + value.size()};
  e.time_us = r.le(8);
  e.service = static_cast<uint32_t>(r.le(4));
  e.msg_type = static_cast<int16_t>(r.le(2));
  e.sender = r.str(r.le(1));
  size_t n = r.le(2);
  e.groups.clear();
  for (size_t i = 0; i < n && r.ok; ++i) e.groups.push_back(r.str(r.le(1)));
  e.payload = r.str(r.le(4));
  return r.ok && r.p == r.end;
}

std::unique_ptr<MessageLog> MessageLog::open(const std::string& dir, std::string& error) {
  bool has_current = false;
  bool existing = dir_has_files(dir, has_current, error);
  if (!error.empty()) return nullptr;
  if (existing && !has_current) {
    error = dir + " holds files but no message log: refusing to use it (move them away or "
                  "choose another persist.dir)";
    return nullptr;
  }
  rocksdb::Options opts = options();
  opts.create_if_missing = !existing;
  rocksdb::DB* raw = nullptr;
  if (existing) mkdir(dir.c_str(), 0750);
  else if (mkdir(dir.c_str(), 0750) != 0 && errno != EEXIST) {
    error = "cannot create " + dir + ": " + std::strerror(errno);
    return nullptr;
  }
  rocksdb::Status s = rocksdb::DB::Open(opts, dir, &raw);
  if (!s.ok()) {
    error = "cannot open the message log in " + dir + ": " + s.ToString() +
            " (it is left as it is; nothing was repaired or removed)";
    return nullptr;
  }
  std::unique_ptr<MessageLog> log(new MessageLog());
  log->db_.reset(raw);
  log->dir_ = dir;
  std::string format;
  s = raw->Get(rocksdb::ReadOptions(), "F", &format);
  if (s.IsNotFound()) {
    if (existing) {
      error = dir + " is a RocksDB database but not a message log: refusing to use it";
      return nullptr;
    }
    rocksdb::WriteOptions wo;
    wo.sync = true;
    s = raw->Put(wo, "F", kFormat);
    if (!s.ok()) {
      error = "cannot write to the message log in " + dir + ": " + s.ToString();
      return nullptr;
    }
  } else if (!s.ok()) {
    error = "cannot read the message log in " + dir + ": " + s.ToString();
    return nullptr;
  } else if (format != kFormat) {
    error = dir + " holds a message log of another format (\"" + format + "\"): refusing to use it";
    return nullptr;
  }
  std::unique_ptr<rocksdb::Iterator> it(raw->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek("g"); it->Valid() && it->key().size() >= 2 && it->key()[0] == 'g'; it->Next()) {
    std::string group = it->key().ToString().substr(2);
    GroupInfo g;
    if (!decode_info(it->value().ToString(), g)) {
      error = "the message log in " + dir + " has a damaged summary of group " + group;
      return nullptr;
    }
    log->groups_[group] = g;
  }
  for (it->Seek("c"); it->Valid() && it->key().size() == 9 && it->key()[0] == 'c'; it->Next()) {
    RingCover c;
    if (!decode_cover(it->value().ToString(), c)) {
      error = "the message log in " + dir + " has a damaged ring summary";
      return nullptr;
    }
    log->coverage_[get_be64(it->key().data() + 1)] = c;
  }
  if (!it->status().ok()) {
    error = "cannot read the message log in " + dir + ": " + it->status().ToString();
    return nullptr;
  }
  return log;
}

MessageLog::~MessageLog() {
  // A database that failed a write is left as it is: closing it would write again (see
  // failed()). The process is ending; the write-ahead log holds what was written before.
  if (failed()) (void)db_.release();
  else if (db_) db_->Close();
}

std::string MessageLog::append(const std::vector<Record>& batch, bool sync) {
  if (failed()) return failure_;
  size_t reserve = 64;
  for (auto& r : batch) reserve += (r.payload().size() + 160) * r.log_groups.size();
  rocksdb::WriteBatch wb(reserve);
  std::map<std::string, GroupInfo> changed;
  Coverage coverage = coverage_;
  std::string head, key;
  for (auto& r : batch) {
    cover(coverage, r.entry.pos, r.past_gap);
    std::string_view payload = r.payload();
    head.clear();
    for (auto& group : r.log_groups) {
      GroupInfo& g = staged(changed, group);
      if (!g.last.zero() && r.entry.pos <= g.last) continue;
      if (head.empty()) encode_entry_head(head, r.entry, payload.size());
      // The value's head and the payload go into the batch as they lie: one copy.
      key = entry_key(group, r.entry.pos);
      rocksdb::Slice key_part(key), value_parts[2] = {head, {payload.data(), payload.size()}};
      wb.Put(rocksdb::SliceParts(&key_part, 1), rocksdb::SliceParts(value_parts, 2));
      // The time index names the first entry of each run delivered at the same time (a batch
      // shares one): reading from a time starts there, and half the keys are saved.
      auto lt = last_time_.find(group);
      if (lt == last_time_.end() || lt->second != r.entry.time_us) {
        wb.Put(time_key(group, r.entry.time_us, r.entry.pos), rocksdb::Slice());
        last_time_[group] = r.entry.time_us;
      }
      if (g.count == 0) g.first = r.entry.pos;
      g.last = r.entry.pos;
      ++g.count;
      g.bytes += payload.size();
    }
  }
  if (changed.empty()) return {};
  return commit(wb, changed, std::move(coverage), sync);
}

GroupInfo& MessageLog::staged(std::map<std::string, GroupInfo>& changed,
                              const std::string& group) const {
  auto found = changed.find(group);
  if (found == changed.end()) {
    auto cur = groups_.find(group);
    found = changed.emplace(group, cur == groups_.end() ? GroupInfo{} : cur->second).first;
  }
  return found->second;
}

std::string MessageLog::commit(rocksdb::WriteBatch& wb,
                               const std::map<std::string, GroupInfo>& changed,
                               Coverage coverage, bool sync) {
  for (auto& [group, g] : changed) wb.Put(group_prefix('g', group), encode_info(g));
  write_coverage(wb, coverage_, coverage);
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  rocksdb::Status s = db_->Write(wo, &wb);
  if (!s.ok()) return failure_ = s.ToString();
  for (auto& [group, g] : changed) groups_[group] = g;
  coverage_ = std::move(coverage);
  return {};
}

std::string MessageLog::fill(const std::vector<Record>& batch, uint64_t ring, uint64_t upto) {
  if (failed()) return failure_;
  Coverage coverage = coverage_;
  RingCover& cov = coverage[ring];
  if (cov.past_gap && upto > cov.through)
    return "the log holds messages of ring " + Position{ring, 0}.str() +
           " delivered past a gap: it cannot take others' above ordinal " +
           std::to_string(cov.through);
  rocksdb::WriteBatch wb;
  std::map<std::string, GroupInfo> changed;
  std::string existing;
  for (auto& r : batch) {
    if (r.entry.pos.ring != ring || r.entry.pos.ordinal > upto) return "a filled message is out of range";
    std::string value;
    for (auto& group : r.log_groups) {
      GroupInfo& g = staged(changed, group);
      if (!g.removed_upto.zero() && r.entry.pos <= g.removed_upto) continue;  // expired here
      std::string key = entry_key(group, r.entry.pos);
      rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), key, &existing);
      if (s.ok()) continue;  // held already
      if (!s.IsNotFound()) return s.ToString();
      if (value.empty()) {
        encode_entry_head(value, r.entry, r.payload().size());
        value.append(r.payload());
      }
      wb.Put(key, value);
      wb.Put(time_key(group, r.entry.time_us, r.entry.pos), rocksdb::Slice());
      if (g.count == 0 || r.entry.pos < g.first) g.first = r.entry.pos;
      if (g.count == 0 || g.last < r.entry.pos) g.last = r.entry.pos;
      ++g.count;
      g.bytes += r.payload().size();
    }
  }
  cov.through = std::max(cov.through, upto);
  while (coverage.size() > kCoveredRings) coverage.erase(coverage.begin());
  return commit(wb, changed, std::move(coverage), false);
}

std::vector<Record> MessageLog::read_ring(uint64_t ring, uint64_t after, uint64_t upto,
                                          size_t max_bytes, uint64_t& reached,
                                          std::string& error) const {
  reached = upto;
  std::vector<Record> out;
  if (!db_ || after >= upto) return out;
  // One cursor per group, merged by ordinal: a message logged under several groups is one
  // record with all of them.
  struct Cursor {
    const std::string* group;
    std::string prefix;
    std::unique_ptr<rocksdb::Iterator> it;
    uint64_t ordinal = 0;  // 0: this group has no more of the range
  };
  std::vector<Cursor> cursors;
  auto advance = [&](Cursor& c, bool first) {
    if (!first) c.it->Next();
    c.ordinal = 0;
    if (!c.it->Valid()) return;
    rocksdb::Slice k = c.it->key();
    if (!k.starts_with(c.prefix) || k.size() != c.prefix.size() + 16) return;
    Position p = position_of(k, c.prefix.size());
    if (p.ring == ring && p.ordinal > after && p.ordinal <= upto) c.ordinal = p.ordinal;
  };
  for (auto& [group, info] : groups_) {
    Cursor c{&group, group_prefix('m', group), nullptr};
    c.it.reset(db_->NewIterator(rocksdb::ReadOptions()));
    c.it->Seek(entry_key(group, {ring, after + 1}));
    advance(c, true);
    cursors.push_back(std::move(c));
  }
  size_t bytes = 0;
  for (;;) {
    uint64_t next = 0;
    for (auto& c : cursors)
      if (c.ordinal && (!next || c.ordinal < next)) next = c.ordinal;
    if (!next) break;
    Record r;
    size_t cost = 0;
    for (auto& c : cursors) {
      if (c.ordinal != next) continue;
      if (r.log_groups.empty()) {
        if (!decode_entry(c.it->key().ToString(), c.it->value().ToString(), r.entry)) {
          error = "damaged entry " + Position{ring, next}.str() + " of group " + *c.group;
          return {};
        }
        cost += 64 + r.entry.payload.size() + r.entry.sender.size();
        for (auto& g : r.entry.groups) cost += g.size() + 1;
      }
      r.log_groups.push_back(*c.group);
      cost += c.group->size() + 1;
      advance(c, false);
    }
    if (!out.empty() && bytes + cost > max_bytes) {
      reached = out.back().entry.pos.ordinal;  // the chunk ends before this message
      break;
    }
    bytes += cost;
    out.push_back(std::move(r));
  }
  for (auto& c : cursors)
    if (!c.it->status().ok()) {
      error = c.it->status().ToString();
      return {};
    }
  return out;
}

std::string MessageLog::sync() {
  if (failed()) return failure_;  // nothing to sync: the failed write did not happen
  rocksdb::Status s = db_->SyncWAL();
  return s.ok() ? std::string() : failure_ = s.ToString();
}

ReadResult MessageLog::read(const std::string& group, Position after, Position before,
                            size_t max_entries, size_t max_bytes) const {
  ReadResult out;
  out.after = after;
  if (!db_) {
    out.error = failure_;
    return out;
  }
  auto g = groups_.find(group);
  if (g != groups_.end() && !g->second.removed_upto.zero() && after < g->second.removed_upto)
    out.gap = true;
  std::string prefix = group_prefix('m', group);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  size_t bytes = 0;
  for (it->Seek(entry_key(group, after)); it->Valid(); it->Next()) {
    rocksdb::Slice k = it->key();
    if (!k.starts_with(prefix) || k.size() != prefix.size() + 16) break;
    Position p = position_of(k, prefix.size());
    if (p <= after) continue;
    if (!(p < before)) break;
    if (out.entries.size() >= max_entries || (bytes >= max_bytes && !out.entries.empty())) {
      out.more = true;
      break;
    }
    Entry e;
    if (!decode_entry(k.ToString(), it->value().ToString(), e)) {
      out.error = "damaged entry " + p.str() + " of group " + group;
      return out;
    }
    bytes += e.payload.size() + 64;
    out.entries.push_back(std::move(e));
  }
  if (!it->status().ok()) out.error = it->status().ToString();
  return out;
}

Position MessageLog::before_time(const std::string& group, uint64_t time_us) const {
  auto g = groups_.find(group);
  if (g == groups_.end() || !db_) return {};
  std::string prefix = group_prefix('t', group);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  std::string start = prefix;
  put_be64(start, time_us);
  it->Seek(start);
  if (!it->Valid() || !it->key().starts_with(prefix) || it->key().size() != prefix.size() + 24)
    return g->second.last;
  Position p = position_of(it->key(), prefix.size() + 8);
  // Positions are ordered pairs: just before p is p's ring with the ordinal before, or the
  // ring before's last possible ordinal.
  if (p.ordinal > 0) return {p.ring, p.ordinal - 1};
  return p.ring > 0 ? Position{p.ring - 1, ~0ull} : Position{};
}

uint64_t MessageLog::expire(const std::string& group, const Retention& r, uint64_t now_us,
                            std::string& error, uint64_t max_remove) {
  auto found = groups_.find(group);
  if (found == groups_.end() || failed()) return 0;
  GroupInfo g = found->second;
  std::string prefix = group_prefix('m', group);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  rocksdb::WriteBatch wb;
  uint64_t removed = 0;
  for (it->Seek(prefix); it->Valid() && removed < max_remove; it->Next()) {
    rocksdb::Slice k = it->key();
    if (!k.starts_with(prefix) || k.size() != prefix.size() + 16) break;
    Entry e;
    if (!decode_entry(k.ToString(), it->value().ToString(), e)) {
      error = "damaged entry in group " + group;
      break;
    }
    bool over = (r.max_messages && g.count > r.max_messages) ||
                (r.max_bytes && g.bytes > r.max_bytes) ||
                (r.max_age_us && e.time_us + r.max_age_us < now_us);
    if (!over) break;
    wb.Delete(k);
    wb.Delete(time_key(group, e.time_us, e.pos));
    --g.count;
    g.bytes -= std::min<uint64_t>(g.bytes, e.payload.size());
    g.removed_upto = e.pos;
    ++removed;
  }
  if (!it->status().ok() && error.empty()) error = it->status().ToString();
  if (removed == 0) return 0;
  if (g.count > 0) {
    // The iterator still sees the removed entries: the first one after them is the new first.
    it->Seek(entry_key(group, g.removed_upto));
    for (; it->Valid(); it->Next()) {
      rocksdb::Slice k = it->key();
      if (!k.starts_with(prefix)) break;
      Position p = position_of(k, prefix.size());
      if (g.removed_upto < p) {
        g.first = p;
        // The new first entry may have shared its time with removed ones that carried the
        // run's index key: it carries one now.
        Entry first;
        if (decode_entry(k.ToString(), it->value().ToString(), first))
          wb.Put(time_key(group, first.time_us, first.pos), rocksdb::Slice());
        break;
      }
    }
  }
  wb.Put(group_prefix('g', group), encode_info(g));
  rocksdb::Status s = db_->Write(rocksdb::WriteOptions(), &wb);
  if (!s.ok()) {
    error = failure_ = s.ToString();
    return 0;
  }
  found->second = g;
  return removed;
}

uint32_t MessageLog::last_ring_seq() const {
  uint64_t ring = 0;
  for (auto& [group, g] : groups_) ring = std::max(ring, g.last.ring);
  return static_cast<uint32_t>(ring >> 32);
}

const GroupInfo* MessageLog::info(const std::string& group) const {
  auto g = groups_.find(group);
  return g == groups_.end() ? nullptr : &g->second;
}

uint64_t MessageLog::disk_bytes() const {
  uint64_t sst = 0, wal = 0;
  if (!db_) return 0;
  db_->GetIntProperty("rocksdb.total-sst-files-size", &sst);
  db_->GetIntProperty("rocksdb.cur-size-all-mem-tables", &wal);
  return sst + wal;
}

std::string MessageLog::put_value(const std::string& name, const std::string& value) {
  if (failed()) return failure_;
  rocksdb::WriteOptions wo;
  wo.sync = true;
  rocksdb::Status s = db_->Put(wo, "i" + name, value);
  return s.ok() ? std::string() : failure_ = s.ToString();
}

bool MessageLog::get_value(const std::string& name, std::string& value) const {
  return db_ && db_->Get(rocksdb::ReadOptions(), "i" + name, &value).ok();
}

}  // namespace agent::persist

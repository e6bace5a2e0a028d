// What the fuzz targets share: a daemon core (agentd/daemon_core.h, the class agentd's loop
// runs) driven by a trace of inputs, and the trace format the corpus generator writes.
//
// A trace is a sequence of operations, each an op byte and its fields (little-endian):
//
//   0 advance   u32 delta_us            time moves on (no call)
//   1 run                               core.run(now)
//   2 datagram  u8 from | u16 n | n bytes   a datagram from peer `from` (an index into the
//                                       target's peers), handed to the target's receive path
//   3 open      u8 slot                 a client connects (a client in that slot goes away)
//   4 bytes     u8 slot | u16 n | n bytes   what the slot's client wrote
//   5 closed    u8 slot                 the slot's client went away
//   6 sent      u8 slot | u32 queued    the shell reports a connection's unsent bytes
//
// Slots stand for connections the way the shell's calls do: the ops of a slot whose
// connection the daemon closed (or never had) are skipped, and every open is a new id.
//   7 sealed    u8 from | u16 n | n bytes   (sealed-ring target) the bytes sealed by peer
//                                       `from` with the cluster key, then received
//
// An op byte is taken modulo the number of ops; a short field ends the trace. Everything runs
// in virtual time, so a trace replays exactly: the generator records the inputs one daemon of
// a simulated ring got and the fuzzers start from those.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agentd/daemon_core.h"
#include "transport/client_protocol.h"
#include "transport/ring_seal.h"

namespace agent::fuzz {

enum Op : uint8_t {
  kAdvance = 0,
  kRun = 1,
  kDatagram = 2,
  kOpen = 3,
  kBytes = 4,
  kClosed = 5,
  kSent = 6,
  kSealed = 7,
  kOpCount = 8
};

// Appends operations to a trace (the generator's side).
class TraceWriter {
 public:
  void advance(uint32_t delta_us);
  void run();
  void datagram(uint8_t from, std::string_view bytes, Op op = kDatagram);
  void open(uint8_t conn);
  void bytes(uint8_t conn, std::string_view bytes);
  void closed(uint8_t conn);
  void sent(uint8_t conn, uint32_t queued);
  const std::string& str() const { return out_; }

 private:
  std::string out_;
};

// Takes the core's output: discards datagrams, and checks that every byte it sends a client
// is a well-formed frame of a daemon-to-client verb that decodes (an oracle besides the
// sanitizers: a daemon must never send a client something libagent would refuse).
class FuzzIo : public daemon::CoreIo {
 public:
  void send(daemon::ConnId id, std::string_view bytes) override;
  void close(daemon::ConnId id) override { readers_.erase(id); }
  void send_datagram(membership::NodeId to, std::string_view bytes,
                     const std::vector<membership::NodeId>& ring_members) override;
  void set_client_input(bool) override {}
  void log_append(std::vector<persist::Record>& batch) override;
  void log_read(const daemon::LogRead& read) override { reads.push_back(read); }
  void admin(daemon::ConnId id, const proto::Admin& req) override { admins.emplace_back(id, req); }
  std::string store_ring_seq(uint32_t) override { return {}; }
  // Forgets a connection's partial output (it closed, or its id is used again).
  void forget(daemon::ConnId id) { readers_.erase(id); }

  uint64_t datagram_bytes = 0;
  // The generator's simulated network takes the datagrams (the fuzzers drop them).
  struct Datagram {
    membership::NodeId to;
    std::string bytes;
    std::vector<membership::NodeId> ring_members;
  };
  bool capture = false;
  std::vector<Datagram> captured;
  std::vector<daemon::LogRead> reads;  // answered by the driver
  std::vector<std::pair<daemon::ConnId, proto::Admin>> admins;  // answered by the driver
  persist::Position logged;            // the last position handed to the log

 private:
  std::map<daemon::ConnId, proto::FrameReader> readers_;
};

// A configuration for daemon `self` of a ring of `ring` daemons (ids 1..ring; 1: alone), with
// limits small enough that a fuzzer reaches them, a persistent group pattern ("p*") and an
// access rule ("locked*" only for TCP clients).
daemon::Config fuzz_config(membership::NodeId self, uint32_t ring);
// The same with the ring sealed under a fixed cluster key (fuzz_key()); each daemon's epoch
// is fuzz_epoch(id).
daemon::Config sealed_config(membership::NodeId self, uint32_t ring);
ringseal::Key fuzz_key();
inline uint64_t fuzz_epoch(membership::NodeId id) { return uint64_t{id} * 1'000'000; }

// One daemon core fed by a trace, or by calls (the generator), which it can record as one.
// The message log is simulated: appends are synced at every run, reads are answered with one
// entry after the requested position.
class Driver {
 public:
  explicit Driver(daemon::Config cfg);
  // The ring's datagram path for ops kDatagram and kSealed; by default the bytes go to
  // core.on_datagram from peer(from).
  using Receive = std::function<void(Driver&, uint8_t from, std::string_view bytes, Op op)>;
  void set_receive(Receive r) { receive_ = std::move(r); }
  // Every call below is appended to trace from now on (null: none).
  void record(TraceWriter* trace) { record_ = trace; }

  // Plays a trace; ops whose bit is not in allowed are skipped (their fields still read).
  void play(std::string_view trace, uint32_t allowed = ~0u);
  // Then: lets the core's timers run for a while (configuration changes, retransmissions).
  void settle(membership::Time for_us);

  void advance_to(membership::Time t);
  void run();
  void datagram(uint8_t from, std::string_view bytes, Op op = kDatagram);
  void open(uint8_t conn);
  void bytes(uint8_t conn, std::string_view bytes);
  void closed(uint8_t conn);
  void sent(uint8_t conn, uint32_t queued);

  // The daemon a datagram op's `from` names (an index into the other configured daemons);
  // 0 when the ring has no others. index_of: the reverse.
  membership::NodeId peer(uint8_t from) const;
  uint8_t index_of(membership::NodeId id) const;
  daemon::DaemonCore& core() { return *core_; }
  const daemon::Config& config() const { return *cfg_; }
  FuzzIo& io() { return io_; }
  membership::Time now() const { return now_; }

 private:
  void answer_reads();
  void answer_admins();
  // The connection a trace's slot names, while the hub has it (0: none).
  daemon::ConnId conn(uint8_t slot) const;

  std::unique_ptr<daemon::Config> cfg_;  // the core keeps a reference: a stable address
  FuzzIo io_;
  std::unique_ptr<daemon::DaemonCore> core_;
  membership::Time now_ = 0;
  std::vector<membership::NodeId> peers_;
  Receive receive_;
  TraceWriter* record_ = nullptr;
  persist::Position synced_;
  // A trace names connections by slot; each open is a new connection id, as the shell's are.
  std::map<uint8_t, daemon::ConnId> slots_;
  daemon::ConnId last_conn_ = 0;
};

}  // namespace agent::fuzz

#include "tests/sim/sim.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "tests/sim/rng.h"

namespace agent::sim {

namespace {
constexpr double kLosses[] = {0, 0.05, 0.2, 0.3};

std::string format_double(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  // The shortest form that reads back to the same value.
  for (int prec = 1; prec <= 17; ++prec) {
    char b[32];
    std::snprintf(b, sizeof b, "%.*g", prec, v);
    if (std::strtod(b, nullptr) == v) return b;
  }
  return buf;
}
}  // namespace

bool valid_fault(std::string_view f) {
  return f.empty() || f == "skip-retransmit" || f == "out-of-order" || f == "safe-early" ||
         f == "skip-recovery" || f == "deliver-past-gap" || f == "skip-durable-gate";
}

SimParams resolve(SimParams p) {
  Rng rng(p.seed, 0x504152414d53);
  if (p.nodes == 0) p.nodes = static_cast<size_t>((p.seed - 1) % 7 + 1);
  double loss = kLosses[rng.below(4)];
  if (p.loss < 0) p.loss = loss;
  return p;
}

ClusterConfig make_config(const SimParams& p) {
  Rng rng(p.seed, 0x434f4e464947);  // independent of nodes and loss: they are explicit
  ClusterConfig c;
  c.seed = p.seed;
  c.nodes = p.nodes;
  c.fault = p.fault;
  c.fault_node = p.fault_node;
  c.verbose = p.verbose;
  c.trace = p.trace;

  auto& r = c.ring;
  // Small packets so that packing and fragmentation are exercised; now and then tiny ones.
  r.max_packet_bytes = rng.below(8) == 0 ? static_cast<uint32_t>(rng.range(200, 400))
                                         : static_cast<uint32_t>(rng.range(1024, 2048));
  r.global_window = static_cast<uint32_t>(rng.pick(std::vector<uint64_t>{4, 16, 64, 256}));
  r.personal_window = static_cast<uint32_t>(rng.range(1, r.global_window));
  r.accelerated_window = rng.below(2) ? static_cast<uint32_t>(rng.range(1, r.personal_window)) : 0;
  r.max_outstanding = static_cast<uint32_t>(rng.pick(std::vector<uint64_t>{32, 256, 4096}));
  r.max_retransmit_requests = static_cast<uint32_t>(rng.pick(std::vector<uint64_t>{8, 64, 512}));
  r.token_retransmit_us = rng.range(5000, 20000);
  r.token_hold_us = rng.range(200, 2000);

  auto& n = c.net;
  n.loss = p.loss;
  n.duplicate = rng.pick(std::vector<double>{0, 0.01, 0.05});
  n.base_delay_us = rng.range(50, 200);
  n.jitter_us = rng.pick(std::vector<uint64_t>{0, 50, 300, 1000});

  c.clients_per_daemon = rng.range(1, 3);
  c.lossy_tail_us = rng.range(0, 200000);
  auto& w = c.workload;
  w.actions = rng.range(150, 800);
  w.groups = rng.range(2, 5);
  w.mean_gap_us = rng.pick(std::vector<uint64_t>{100, 500, 2000});
  w.max_packet_bytes = r.max_packet_bytes;
  w.max_payload_bytes = rng.below(4) == 0 ? 10 * r.max_packet_bytes : 4 * r.max_packet_bytes;
  // Back-pressure on some seeds: a pending queue only a few large messages deep. It must still
  // hold the largest message, or that one would be refused for ever.
  uint64_t largest = w.max_payload_bytes + 1024;  // the encoded event's fields around the payload
  r.max_pending_bytes = rng.below(3) == 0 ? largest + rng.range(0, 4 * largest) : (64u << 20);

  if (p.faults) {
    // Crashes, restarts, partitions and heals during the workload. Fast failure detection keeps
    // the runs short in virtual time and makes configuration changes overlap.
    auto& f = c.faults;
    f.enabled = true;
    switch (rng.below(4)) {
      case 0: f.partitions = false; break;                 // crashes and restarts only
      case 1: f.crashes = f.restarts = false; break;       // partitions and heals only
      default: break;                                      // everything
    }
    r.token_retransmit_us = rng.range(1000, 5000);
    r.token_hold_us = std::min<Time>(r.token_hold_us, r.token_retransmit_us / 2);
    // An idle rotation (every member holding the token, plus the hops) must fit well within
    // token_loss_us, or a quiet ring would reconfigure for ever.
    Time rotation = p.nodes * (r.token_hold_us + n.base_delay_us + n.jitter_us);
    r.token_loss_us = std::max<Time>(r.token_retransmit_us * rng.range(3, 8), 2 * rotation + r.token_retransmit_us);
    r.join_timeout_us = rng.range(1500, 5000);
    r.consensus_timeout_us = r.join_timeout_us * rng.range(3, 6);
    // Faults come every 1..4 detection times on average (some closer: bursts, and faults
    // armed to strike while a change is under way), 3..10 of them; the workload spans them.
    Time detection = r.token_loss_us + r.consensus_timeout_us;
    f.mean_gap_us = detection * rng.range(1, 4);
    Time duration = f.mean_gap_us * rng.range(3, 10);
    w.mean_gap_us = rng.pick(std::vector<uint64_t>{100, 300, 1000});
    w.actions = std::clamp<size_t>(duration / w.mean_gap_us, 100, 1500);
    f.p_burst = rng.pick(std::vector<double>{0, 0.2, 0.4});
    f.burst_us = rng.range(200, 2 * r.token_loss_us);
    f.p_on_change = rng.pick(std::vector<double>{0, 0.25, 0.5});
    f.on_change_max_delay_us = rng.range(0, 3000);
    c.lossy_tail_us = rng.range(0, 50000);
  }
  // Token pacing on a third of the seeds, drawn apart so that the other settings of a seed
  // stay what they were before pacing existed.
  Rng pacing(p.seed, 0x50414345);
  if (pacing.below(3) == 0)
    r.min_rotation_us = std::min<Time>(pacing.range(100, 3000), r.token_retransmit_us / 2);
  // Clients that stop reading for a while, against a daemon whose limit on a client's unread
  // bytes is low on some seeds (they are dropped) and agentd's default on others.
  Rng readers(p.seed, 0x52454144);
  c.p_pause = readers.pick(std::vector<double>{0, 0.02, 0.1});
  c.client_queue_bytes = readers.pick(std::vector<uint64_t>{16u << 10, 128u << 10, 64u << 20});
  // The slow-client policy on half of the seeds (its own stream: the other settings stay):
  // back-pressure holds the ring while a paused client catches up, with a timeout shorter than
  // a pause (the client is dropped after holding), about one, or agentd's default.
  Rng slow(p.seed, 0x534c4f57);
  c.backpressure = slow.below(2) == 0;
  c.slow_timeout_ms = slow.pick(std::vector<uint32_t>{5, 20, 10000});
  if (p.persist == "always") {
    // The message log with durability "always": some or all groups persistent, and a disk whose
    // syncs take from a few tens of microseconds (a rotation is faster) to several ms.
    Rng disk(p.seed, 0x4449534b);
    r.durable_gate = true;
    c.persist_groups = disk.pick(std::vector<std::vector<std::string>>{{"g*"}, {"g0", "g1"}, {"g1"}});
    c.sync_min_us = disk.pick(std::vector<uint64_t>{20, 200, 1000});
    c.sync_max_us = c.sync_min_us * disk.range(2, 5);
  }
  return c;
}

std::string repro_command(const SimParams& p, std::string_view program) {
  std::string s(program);
  s += " --seed " + std::to_string(p.seed) + " --nodes " + std::to_string(p.nodes) + " --loss " +
       format_double(p.loss);
  if (p.faults) s += " --faults";
  if (!p.persist.empty()) s += " --persist " + p.persist;
  if (!p.fault.empty())
    s += " --fault " + p.fault + " --fault-node " +
         (p.fault_node == 0 ? std::string("all") : std::to_string(p.fault_node));
  return s;
}

SeedResult run_seed(const SimParams& given) {
  auto start = std::chrono::steady_clock::now();
  SeedResult res;
  res.params = resolve(given);
  ClusterConfig cfg = make_config(res.params);
  Cluster cluster(cfg);
  cluster.run();
  res.verdict = check(cluster.records());
  ClusterStats s = cluster.stats();
  const Records& rec = cluster.records();
  char buf[1536];
  std::snprintf(
      buf, sizeof buf,
      "nodes=%zu clients=%zu loss=%g dup=%g delay=%llu+%lluus packet=%u windows=%u/%u/acc%u pace=%lluus "
      "pending=%llu | actions=%zu submitted=%llu refused=%llu delivered=%llu configs=%llu "
      "client_deliveries=%llu slow_dropped=%llu policy=%s/%ums holds=%llu packets=%llu retransmitted=%llu tokens=%llu token_retx=%llu dup_pkts=%llu "
      "bad_pkts=%llu lost=%llu cut=%llu warnings=%llu | crashes=%llu restarts=%llu partitions=%llu "
      "heals=%llu gathers=%llu rings=%llu recovered=%llu | logged=%llu syncs=%llu safe_on_disk=%llu filled=%llu | events=%llu heal=%.1fms converged=%.1fms end=%.1fms%s",
      cfg.nodes, cfg.nodes * cfg.clients_per_daemon, cfg.net.loss, cfg.net.duplicate,
      static_cast<unsigned long long>(cfg.net.base_delay_us),
      static_cast<unsigned long long>(cfg.net.jitter_us), cfg.ring.max_packet_bytes,
      cfg.ring.global_window, cfg.ring.personal_window, cfg.ring.accelerated_window,
      static_cast<unsigned long long>(cfg.ring.min_rotation_us),
      static_cast<unsigned long long>(cfg.ring.max_pending_bytes), cfg.workload.actions,
      static_cast<unsigned long long>(s.submissions), static_cast<unsigned long long>(s.refusals),
      static_cast<unsigned long long>(s.ring_deliveries),
      static_cast<unsigned long long>(s.configurations),
      static_cast<unsigned long long>(s.client_deliveries),
      static_cast<unsigned long long>(s.slow_clients_dropped),
      cfg.backpressure ? "backpressure" : "disconnect", cfg.slow_timeout_ms,
      static_cast<unsigned long long>(s.slow_holds),
      static_cast<unsigned long long>(s.ring.packets_sent),
      static_cast<unsigned long long>(s.ring.packets_retransmitted),
      static_cast<unsigned long long>(s.ring.tokens_received),
      static_cast<unsigned long long>(s.ring.tokens_retransmitted),
      static_cast<unsigned long long>(s.ring.duplicate_packets),
      static_cast<unsigned long long>(s.ring.bad_packets),
      static_cast<unsigned long long>(s.net.lost), static_cast<unsigned long long>(s.net.cut),
      static_cast<unsigned long long>(s.warnings), static_cast<unsigned long long>(s.crashes),
      static_cast<unsigned long long>(s.restarts), static_cast<unsigned long long>(s.partitions),
      static_cast<unsigned long long>(s.heals), static_cast<unsigned long long>(s.ring.gathers),
      static_cast<unsigned long long>(s.ring.rings_installed),
      static_cast<unsigned long long>(s.ring.recovered_packets),
      static_cast<unsigned long long>(s.logged), static_cast<unsigned long long>(s.syncs),
      static_cast<unsigned long long>(s.safe_on_disk_checks),
      static_cast<unsigned long long>(s.filled), static_cast<unsigned long long>(s.events), rec.heal_at / 1000.0,
      rec.converged_at / 1000.0, rec.end_at / 1000.0, rec.quiescent ? "" : " NOT-QUIESCENT");
  res.summary = buf;
  res.wall_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return res;
}

}  // namespace agent::sim

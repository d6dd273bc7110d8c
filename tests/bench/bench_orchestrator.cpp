// The run orchestrator's own cost, on the memory store (no I/O), in one run:
//   (a) store_pair: memory_store::acquire_lease + transition_lease to released, each with the
//       activity event the orchestrator writes — the floor any orchestrator on this store pays;
//   (b) orchestrator_pair: run_orchestrator::acquire_for_run + release_for_run with the real
//       local_driver (resolve, policy, driver calls, details documents, fencing, activity).
// Prints `ratio orchestrator_pair_memory_us = b in microseconds (target <= 5)` (the issue's
// absolute target) and `ratio orchestrator_pair_vs_store_pair = b / a (target <= 3)`.
//
// Run: build-dir/tests/bench/bench_orchestrator [--benchmark_min_time=2]

#include "bench_support.hpp"
#include "lease_pair.hpp"

#include <berth/berth.hpp>
#include <berth/drivers/local.hpp>
#include <berth/model/ids.hpp>
#include <berth/src.hpp>
#include <berth/stores/memory.hpp>

#include <benchmark/benchmark.h>

#include <string>

namespace {

void store_pair(benchmark::State& state) {
    berth::memory_store store;
    berth::bench::lease_pair_context c;
    c.environment_id = store.ensure_local_environment(c.company, c.now).id;
    for (auto _ : state) benchmark::DoNotOptimize(berth::bench::write_lease_pair(store, c));
}

void orchestrator_pair(benchmark::State& state) {
    using stack = berth::stack<berth::drivers<berth::local_driver>, berth::policies<berth::ephemeral>,
                               berth::memory_store>;
    berth::memory_store store;
    berth::run_orchestrator<stack> orch{store, berth::local_driver{}};
    std::string const company = berth::new_id(), agent = berth::new_id();
    (void)orch.resolve_environment({.company_id = company});
    for (auto _ : state) {
        auto const run = berth::new_id();
        auto const acq = orch.acquire_for_run(
            {.company_id = company, .agent_id = agent, .heartbeat_run_id = run, .issue_id = berth::new_id()});
        auto const rel = orch.release_for_run({.company_id = company, .agent_id = agent, .heartbeat_run_id = run});
        if (rel.released.size() != 1 || !rel.errors.empty()) state.SkipWithError("release_for_run failed");
        benchmark::DoNotOptimize(acq.lease.epoch);
    }
}

}  // namespace

int main(int argc, char** argv) {
    benchmark::RegisterBenchmark("store_pair", store_pair)->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark("orchestrator_pair", orchestrator_pair)->Unit(benchmark::kMicrosecond);
    return berth::bench::run_and_report(
        argc, argv,
        {{"orchestrator_pair_memory_us", "orchestrator_pair", "", 5.0},
         {"orchestrator_pair_vs_store_pair", "orchestrator_pair", "store_pair", 3.0}});
}

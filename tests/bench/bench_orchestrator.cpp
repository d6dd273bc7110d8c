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

#include <berth/berth.hpp>
#include <berth/drivers/local.hpp>
#include <berth/model/ids.hpp>
#include <berth/src.hpp>
#include <berth/stores/memory.hpp>

#include <benchmark/benchmark.h>

#include <chrono>
#include <string>

namespace {

void store_pair(benchmark::State& state) {
    berth::memory_store store;
    auto now = berth::timestamp::from_micros(1767225600000000);
    std::string const company = berth::new_id(), agent = berth::new_id();
    auto const env = store.ensure_local_environment(company, now);
    for (auto _ : state) {
        now = now + std::chrono::microseconds(1);
        berth::new_lease const nl{.id = berth::new_id(),
                                  .company_id = company,
                                  .environment_id = env.id,
                                  .issue_id = berth::new_id(),
                                  .heartbeat_run_id = berth::new_id(),
                                  .provider = "local",
                                  .metadata = berth::json_object{{"driver", "local"},
                                                                 {"executionWorkspaceMode", nullptr}}};
        berth::activity_event const acquired{.id = berth::new_id(),
                                             .company_id = company,
                                             .actor_type = "agent",
                                             .actor_id = agent,
                                             .action = berth::actions::lease_acquired,
                                             .entity_type = "environment_lease",
                                             .entity_id = nl.id,
                                             .agent_id = agent,
                                             .run_id = nl.heartbeat_run_id,
                                             .details = {{"environmentId", env.id},
                                                         {"driver", "local"},
                                                         {"leasePolicy", "ephemeral"},
                                                         {"provider", "local"},
                                                         {"executionWorkspaceId", nullptr},
                                                         {"issueId", *nl.issue_id}},
                                             .created_at = now};
        auto const lease = store.acquire_lease(nl, now, &acquired);
        berth::activity_event const released{.id = berth::new_id(),
                                             .company_id = company,
                                             .actor_type = "agent",
                                             .actor_id = agent,
                                             .action = berth::actions::lease_released,
                                             .entity_type = "environment_lease",
                                             .entity_id = lease.id,
                                             .agent_id = agent,
                                             .run_id = lease.heartbeat_run_id,
                                             .details = {{"environmentId", env.id},
                                                         {"driver", "local"},
                                                         {"leasePolicy", "ephemeral"},
                                                         {"provider", "local"},
                                                         {"executionWorkspaceId", nullptr},
                                                         {"issueId", *lease.issue_id},
                                                         {"status", "released"},
                                                         {"cleanupStatus", nullptr},
                                                         {"failureReason", nullptr}},
                                             .created_at = now};
        auto const done = store.transition_lease(
            {.id = lease.id, .expected_epoch = lease.epoch, .to = berth::lease_status::released}, now, &released);
        benchmark::DoNotOptimize(done.epoch);
    }
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

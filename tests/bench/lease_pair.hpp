#pragma once
// One lease pair as the orchestrator writes it — acquire_lease + transition_lease to released,
// each with the activity event the orchestrator records — on any lease store, for the benchmarks
// that measure a store's write path (bench_sqlite_store, bench_orchestrator).

#include <berth/model/activity.hpp>
#include <berth/model/ids.hpp>
#include <berth/model/lease.hpp>

#include <chrono>
#include <cstdint>
#include <random>
#include <optional>
#include <utility>
#include <string>

namespace berth::bench {

/// An id the caller brings (a heartbeat run's, an issue's): a random version 4 UUID, as upstream
/// makes them, so that the benchmarks do not credit berth with the index locality of its own
/// time-ordered ids (berth::new_id) for keys it does not choose.
inline std::string foreign_id() {
    thread_local std::mt19937_64 engine{std::random_device{}()};
    std::uint64_t hi = (engine() & ~std::uint64_t{0xf000}) | 0x4000;
    std::uint64_t lo = (engine() & ~(std::uint64_t{0x3} << 62)) | (std::uint64_t{0x2} << 62);
    static constexpr char hex[] = "0123456789abcdef";
    std::string id(36, '-');
    for (int i = 35; i >= 0; --i) {
        if (i == 8 || i == 13 || i == 18 || i == 23) continue;
        auto& bits = i >= 19 ? lo : hi;
        id[static_cast<std::size_t>(i)] = hex[bits & 0xf];
        bits >>= 4;
    }
    return id;
}

struct lease_pair_context {
    std::string company = berth::new_id();
    std::string agent = berth::new_id();
    std::string environment_id;
    berth::timestamp now = berth::timestamp::from_micros(1767225600000000);
};

/// Writes one pair; `with_activity = false` writes the same leases without their events.
/// Returns the released lease's epoch.
template <class Store>
std::uint64_t write_lease_pair(Store& store, lease_pair_context& c, bool with_activity = true) {
    c.now = c.now + std::chrono::microseconds(1);
    berth::new_lease const nl{.id = berth::new_id(),
                              .company_id = c.company,
                              .environment_id = c.environment_id,
                              .execution_workspace_id = std::nullopt,
                              .issue_id = foreign_id(),
                              .heartbeat_run_id = foreign_id(),
                              .lease_policy = berth::lease_policy_kind::ephemeral,
                              .provider = "local",
                              .provider_lease_id = std::nullopt,
                              .expires_at = std::nullopt,
                              .metadata = berth::json_object{{"driver", "local"}, {"executionWorkspaceMode", nullptr}}};
    auto event = [&](char const* action, std::string const& lease_id, berth::json_object details,
                     berth::timestamp at) {
        return berth::activity_event{.id = berth::new_id(),
                                     .company_id = c.company,
                                     .actor_type = "agent",
                                     .actor_id = c.agent,
                                     .action = action,
                                     .entity_type = "environment_lease",
                                     .entity_id = lease_id,
                                     .agent_id = c.agent,
                                     .run_id = nl.heartbeat_run_id,
                                     .details = std::move(details),
                                     .created_at = at};
    };
    berth::json_object details{{"environmentId", c.environment_id},
                               {"driver", "local"},
                               {"leasePolicy", "ephemeral"},
                               {"provider", "local"},
                               {"executionWorkspaceId", nullptr},
                               {"issueId", *nl.issue_id}};
    std::optional<berth::activity_event> acquired;
    if (with_activity) acquired = event(berth::actions::lease_acquired, nl.id, details, c.now);
    auto const lease = store.acquire_lease(nl, c.now, std::move(acquired));

    auto const later = c.now + std::chrono::microseconds(1);
    details["status"] = "released";
    details["cleanupStatus"] = nullptr;
    details["failureReason"] = nullptr;
    std::optional<berth::activity_event> released;
    if (with_activity) released = event(berth::actions::lease_released, lease.id, std::move(details), later);
    return store
        .transition_lease(
            berth::lease_transition{.id = lease.id, .expected_epoch = lease.epoch, .to = berth::lease_status::released},
            later, std::move(released))
        .epoch;
}

}  // namespace berth::bench

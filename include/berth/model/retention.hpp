#pragma once
// What a store's prune_history call removes: ended leases (released, expired, failed — the
// terminal statuses of model/lease_transitions.hpp) and the activity events about them, by age or
// beyond a count per environment. Active, retained and pending_cleanup leases are never pruned:
// they still hold, or may again hold, a resource.

#include <berth/model/time.hpp>

#include <cstddef>   // std::size_t
#include <optional>  // std::optional

namespace berth {

/// Input of prune_history. With both bounds set, a lease that breaks either is pruned.
struct history_retention {
    /// Prune ended leases whose last_used_at (the instant they ended, unless their metadata was
    /// written later) is before this instant.
    std::optional<timestamp> ended_before{};
    /// Per environment, keep only this many ended leases, the newest in list order (last_used_at,
    /// then id), and prune the rest.
    std::optional<std::size_t> keep_per_environment{};
    /// Leases pruned per transaction. Between two batches the store lets other writers in, so a
    /// prune of a year's history delays a run's write by one batch at most.
    std::size_t batch = 500;
};

/// What prune_history removed.
struct prune_result {
    std::size_t leases = 0;
    std::size_t events = 0;  ///< events whose entity was a pruned lease
};

/// The entity type under which the orchestrator records a lease's events; prune_history removes
/// the events of this type whose entity id is a pruned lease's id.
inline constexpr char const* lease_entity_type = "environment_lease";

}  // namespace berth

#pragma once
// The environment lease record (upstream table `environment_leases`) plus berth's fencing `epoch`,
// and the inputs the lease store takes.

#include <berth/model/enums.hpp>
#include <berth/model/paging.hpp>
#include <berth/model/record.hpp>
#include <berth/model/time.hpp>

#include <cstddef>   // std::size_t
#include <cstdint>   // std::uint64_t, std::int64_t
#include <optional>  // std::optional
#include <string>    // std::string

namespace berth {

struct environment_lease {
    std::string id{};
    std::string company_id{};
    std::string environment_id{};
    std::optional<std::string> execution_workspace_id{};
    std::optional<std::string> issue_id{};
    std::optional<std::string> heartbeat_run_id{};
    lease_status status = lease_status::active;
    lease_policy_kind lease_policy = lease_policy_kind::ephemeral;
    std::optional<std::string> provider{};
    std::optional<std::string> provider_lease_id{};
    timestamp acquired_at{};
    timestamp last_used_at{};
    std::optional<timestamp> expires_at{};
    std::optional<timestamp> released_at{};  ///< null while active and while retained
    std::optional<std::string> failure_reason{};
    std::optional<berth::cleanup_status> cleanup_status{};
    std::optional<json_object> metadata{};
    /// Fencing token: starts at 1 and increases by one on every status transition. A writer that
    /// read an older epoch is refused (store_errc::stale_epoch), so a paused holder cannot act.
    std::uint64_t epoch = 1;
    timestamp created_at{};
    timestamp updated_at{};
    /// berth: the opaque key of the reuse scope this lease holds while active (chosen by its lease
    /// policy; null: none). Within an environment at most one active lease holds a key
    /// (model/lease_rules.hpp).
    std::optional<std::string> reuse_scope{};
    /// berth: the name of the driver that holds the lease (`D::name`, recorded by the orchestrator
    /// at acquire), so that it is released by that driver even if the environment's config changes.
    std::optional<std::string> driver_name{};
    /// berth: the name of the lease policy it was acquired under (`P::name`); `lease_policy` keeps
    /// upstream's kind.
    std::optional<std::string> policy_name{};
    /// The holder (docs/reliability.md): the host it runs on for this boot
    /// (process::host_identity(): machine id + boot id), its pid and that pid's start time (clock
    /// ticks since boot), so that "the holder is dead" is decided without a TTL and a reused pid
    /// is not mistaken for it. Null for leases written before schema version 9 or by a caller that
    /// names no holder; such leases end by their expiry only.
    std::optional<std::string> holder_host{};
    std::optional<std::int64_t> holder_pid{};
    std::optional<std::int64_t> holder_start_time{};
};
BOOST_DESCRIBE_STRUCT(environment_lease, (),
                      (id, company_id, environment_id, execution_workspace_id, issue_id, heartbeat_run_id, status,
                       lease_policy, provider, provider_lease_id, acquired_at, last_used_at, expires_at, released_at,
                       failure_reason, cleanup_status, metadata, epoch, created_at, updated_at,
                       reuse_scope, driver_name, policy_name, holder_host, holder_pid, holder_start_time))
template <> inline constexpr char const* record_name<environment_lease> = "environment_lease";

/// Input of lease_store::acquire_lease. The caller chooses the id so that it can name the lease in
/// the activity event written in the same transaction.
struct new_lease {
    std::string id{};
    std::string company_id{};
    std::string environment_id{};
    std::optional<std::string> execution_workspace_id{};
    std::optional<std::string> issue_id{};
    std::optional<std::string> heartbeat_run_id{};
    lease_policy_kind lease_policy = lease_policy_kind::ephemeral;
    std::optional<std::string> provider{};
    std::optional<std::string> provider_lease_id{};
    std::optional<timestamp> expires_at{};
    std::optional<json_object> metadata{};
    /// The reuse scope the lease holds (its policy's key; nullopt: none). The store refuses it with
    /// `conflict` while another active lease of the environment holds the same key.
    std::optional<std::string> reuse_scope{};
    std::optional<std::string> driver_name{};  ///< the holding driver's name (see environment_lease)
    std::optional<std::string> policy_name{};  ///< the policy's name (see environment_lease)
    std::optional<std::string> holder_host{};  ///< see environment_lease::holder_host
    std::optional<std::int64_t> holder_pid{};
    std::optional<std::int64_t> holder_start_time{};
};

/// Input of lease_store::transition_lease: move lease `id` from epoch `expected_epoch` to `to`.
struct lease_transition {
    std::string id{};
    std::uint64_t expected_epoch = 0;
    lease_status to = lease_status::released;
    std::optional<std::string> failure_reason{};          ///< kept as stored when nullopt
    std::optional<berth::cleanup_status> cleanup_status{};  ///< kept as stored when nullopt
};

/// Where a page of leases starts: just after the lease with this sort key. Lease lists are ordered
/// newest `last_used_at` first, then greatest `id` first; a cursor is the key of the last lease of
/// the previous page (lease_cursor_of).
struct lease_cursor {
    timestamp last_used_at{};
    std::string id{};
};

/// The cursor that continues a lease list after `lease`.
[[nodiscard]] inline lease_cursor lease_cursor_of(environment_lease const& lease) {
    return lease_cursor{.last_used_at = lease.last_used_at, .id = lease.id};
}

/// Filter of lease_store::list_leases and list_run_leases: the leases in `status` (any when
/// nullopt), at most `limit` of them, starting after `after` (from the first when nullopt).
struct lease_filter {
    std::optional<lease_status> status{};
    std::size_t limit = default_list_limit;
    std::optional<lease_cursor> after{};
};

}  // namespace berth

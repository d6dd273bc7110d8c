#pragma once
// The environment lease record (upstream table `environment_leases`) plus berth's fencing `epoch`,
// and the inputs the lease store takes.

#include <berth/model/enums.hpp>
#include <berth/model/record.hpp>
#include <berth/model/time.hpp>

#include <cstdint>   // std::uint64_t
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
};
BOOST_DESCRIBE_STRUCT(environment_lease, (),
                      (id, company_id, environment_id, execution_workspace_id, issue_id, heartbeat_run_id, status,
                       lease_policy, provider, provider_lease_id, acquired_at, last_used_at, expires_at, released_at,
                       failure_reason, cleanup_status, metadata, epoch, created_at, updated_at))
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
};

/// Input of lease_store::transition_lease: move lease `id` from epoch `expected_epoch` to `to`.
struct lease_transition {
    std::string id{};
    std::uint64_t expected_epoch = 0;
    lease_status to = lease_status::released;
    std::optional<std::string> failure_reason{};          ///< kept as stored when nullopt
    std::optional<berth::cleanup_status> cleanup_status{};  ///< kept as stored when nullopt
};

/// Filter of lease_store::list_leases.
struct lease_filter {
    std::optional<lease_status> status{};
};

}  // namespace berth

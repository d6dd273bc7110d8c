#pragma once
// Every enum of the model, with upstream's exact values (Paperclip packages/shared constants.ts).
// Described with Boost.Describe: strings, JSON, fmt and SQL columns all derive from these lists.

#include <berth/model/enum_string.hpp>

#include <boost/describe/enum.hpp>  // BOOST_DEFINE_ENUM_CLASS

namespace berth {

/// ENVIRONMENT_DRIVERS: the driver *family* an environment runs on (upstream's stored
/// `environments.driver`). Each driver type names its family (`D::family`) and, within it, itself
/// (`D::name`: "local", "bubblewrap", ...); concepts/environment_driver.hpp says how a config
/// selects a driver within a family.
BOOST_DEFINE_ENUM_CLASS(driver_kind, local, ssh, sandbox, plugin)

/// ENVIRONMENT_STATUSES.
BOOST_DEFINE_ENUM_CLASS(environment_status, active, archived)

/// ENVIRONMENT_LEASE_STATUSES. Transitions between them: model/lease_transitions.hpp.
BOOST_DEFINE_ENUM_CLASS(lease_status, active, released, expired, failed, retained, pending_cleanup)

/// ENVIRONMENT_LEASE_POLICIES. The behaviour of each is a policy type in berth/policies/
/// (the concept berth::lease_policy), hence the `_kind` suffix.
BOOST_DEFINE_ENUM_CLASS(lease_policy_kind, ephemeral, reuse_by_environment, reuse_by_execution_workspace,
                        retain_on_failure)

/// ENVIRONMENT_LEASE_CLEANUP_STATUSES.
BOOST_DEFINE_ENUM_CLASS(cleanup_status, pending, success, failed)

/// EnvironmentErrorCode of the run orchestrator.
BOOST_DEFINE_ENUM_CLASS(environment_error_code, environment_not_found, environment_inactive,
                        unsupported_environment, unsupported_adapter_environment, probe_failed,
                        lease_acquire_failed, workspace_realization_failed, transport_resolution_failed,
                        lease_release_failed, lease_cleanup_failed)

/// How a run ended; release_for_run maps it to a lease status through the lease policy.
/// (Upstream heartbeat run statuses that end a run.)
BOOST_DEFINE_ENUM_CLASS(run_outcome, succeeded, failed, cancelled, timed_out)

// Labels used in parse errors; the first five are upstream's messages verbatim.
template <> inline constexpr char const* enum_label<driver_kind> = "environment driver";
template <> inline constexpr char const* enum_label<environment_status> = "environment status";
template <> inline constexpr char const* enum_label<lease_status> = "environment lease status";
template <> inline constexpr char const* enum_label<lease_policy_kind> = "environment lease policy";
template <> inline constexpr char const* enum_label<cleanup_status> = "environment lease cleanup status";
template <> inline constexpr char const* enum_label<environment_error_code> = "environment error code";
template <> inline constexpr char const* enum_label<run_outcome> = "run outcome";

}  // namespace berth

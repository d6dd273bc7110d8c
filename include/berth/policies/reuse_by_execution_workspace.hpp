#pragma once
// berth::reuse_by_execution_workspace — a reusable sandbox belongs to an execution workspace:
// every agent that runs in that workspace resumes the same sandbox (upstream declares this policy
// and never assigns it; berth gives it this meaning). The gate, release and destroy rules are
// those of reuse_by_environment; only the candidates differ (the agent is not part of the scope).
// Part of the berth::sandbox component.

#include <berth/concepts/lease_policy.hpp>
#include <berth/policies/detail/outcome.hpp>
#include <berth/policies/detail/sandbox_reuse.hpp>

namespace berth {

struct reuse_by_execution_workspace {
    using lease_policy_concept = lease_policy_tag;
    static constexpr std::string_view name = "reuse_by_execution_workspace";
    static constexpr lease_policy_kind kind = lease_policy_kind::reuse_by_execution_workspace;

    [[nodiscard]] constexpr lease_status status_for(run_outcome o) const noexcept {
        return detail::upstream_status_for(o);
    }
    /// `retained` for a successful run's lease whose sandbox the driver kept for reuse.
    [[nodiscard]] lease_status status_for(run_outcome o, environment_lease const& lease) const noexcept {
        return detail::sandbox_reuse_hooks::status_for(o, lease);
    }
    [[nodiscard]] std::optional<timestamp> expires_at(environment const& env, timestamp now) const {
        return detail::ttl_expiry(env, now);
    }
    /// One active lease per execution workspace of the environment; a run without one has no scope.
    [[nodiscard]] std::optional<std::string> reuse_scope(acquire_request const& r) const {
        if (!r.execution_workspace_id) return std::nullopt;
        return "execution_workspace:" + *r.execution_workspace_id;
    }
    /// A kept sandbox's lease is retained (policies/detail/sandbox_reuse.hpp): only those are read.
    static constexpr lease_status reuse_candidate_status = lease_status::retained;
    [[nodiscard]] std::optional<environment_lease> find_reusable(acquire_request const& r,
                                                                 std::vector<environment_lease> const& leases) const {
        return detail::sandbox_reuse_hooks::find_reusable(r, leases);
    }
    [[nodiscard]] bool matches(acquire_request const& r, environment_lease const& candidate) const {
        return detail::sandbox_reuse_hooks::matches(r, candidate);
    }
    void stamp(acquire_request const& r, lease_grant& grant) const { detail::sandbox_reuse_hooks::stamp(r, grant); }
};
static_assert(policy_with_reuse_scope<reuse_by_execution_workspace> && policy_with_reuse<reuse_by_execution_workspace> &&
              policy_with_lease_status<reuse_by_execution_workspace>);

}  // namespace berth

#pragma once
// berth::reuse_by_environment — upstream's reusable sandbox leases (§2.3, §3): a lease whose
// provider offers reuse and whose config says `reuseLease`, acquired by a heartbeat run with an
// execution workspace and an agent, keeps its sandbox at the end of a successful run (the lease
// ends `retained`); the next run of the same company, environment, execution workspace, agent,
// provider and config fingerprint resumes it instead of creating one (the orchestrator runs the
// hooks: concepts/lease_policy.hpp). A kept sandbox whose record no longer matches is destroyed
// (`lease_fingerprint_mismatch`), one that cannot be resumed too (`resume_failed`); a cancelled
// run's is destroyed at release (`lease_expired`), a failed run's too. Other leases end as with
// ephemeral. The hooks are policies/detail/sandbox_reuse.hpp; part of the berth::sandbox component.

#include <berth/concepts/lease_policy.hpp>
#include <berth/policies/detail/outcome.hpp>
#include <berth/policies/detail/sandbox_reuse.hpp>

namespace berth {

struct reuse_by_environment {
    using lease_policy_concept = lease_policy_tag;
    static constexpr std::string_view name = "reuse_by_environment";
    static constexpr lease_policy_kind kind = lease_policy_kind::reuse_by_environment;

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
    /// One active lease per (execution workspace, agent) of the environment — the scope a sandbox
    /// is reused in, so that two runs never resume one sandbox at once; a run without both has none.
    [[nodiscard]] std::optional<std::string> reuse_scope(acquire_request const& r) const {
        if (!r.execution_workspace_id || !r.agent_id.has_value()) return std::nullopt;
        return "execution_workspace:" + *r.execution_workspace_id + "/agent:" + *r.agent_id;
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
static_assert(policy_with_reuse_scope<reuse_by_environment> && policy_with_reuse<reuse_by_environment> &&
              policy_with_lease_status<reuse_by_environment>);

}  // namespace berth

#pragma once
// berth::reuse_by_environment — upstream's reusable sandbox leases (§2.3, §3): a lease whose
// provider offers reuse and whose config says `reuseLease` keeps its sandbox at the end of a run;
// the next run of the same company, environment, execution workspace, agent, provider and config
// fingerprint resumes it instead of creating one. Runs end as with ephemeral (cancelled → expired,
// which destroys the sandbox: `lease_expired`; failed, timed_out → failed; succeeded → released).
// The sandbox driver applies the reuse gate and writes the scope record (drivers/sandbox/reuse.hpp).

#include <berth/concepts/lease_policy.hpp>
#include <berth/policies/detail/outcome.hpp>

namespace berth {

struct reuse_by_environment {
    using lease_policy_concept = lease_policy_tag;
    static constexpr std::string_view name = "reuse_by_environment";
    static constexpr lease_policy_kind kind = lease_policy_kind::reuse_by_environment;

    [[nodiscard]] constexpr lease_status status_for(run_outcome o) const noexcept {
        return detail::upstream_status_for(o);
    }
    [[nodiscard]] std::optional<timestamp> expires_at(environment const& env, timestamp now) const {
        return detail::ttl_expiry(env, now);
    }
    /// One active lease per environment: every lease of the policy holds the same key.
    [[nodiscard]] std::optional<std::string> reuse_scope(acquire_request const&) const { return "environment"; }
};
static_assert(policy_with_reuse_scope<reuse_by_environment>);

}  // namespace berth

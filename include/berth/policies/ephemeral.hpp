#pragma once
// berth::ephemeral — upstream's default policy: a lease lives for one run and ends with the
// run-derived status (cancelled → expired; failed, timed_out → failed; succeeded → released).
// An environment may bound its leases' life with config `leaseTtlSeconds`.

#include <berth/concepts/lease_policy.hpp>
#include <berth/policies/detail/outcome.hpp>

namespace berth {

struct ephemeral {
    using lease_policy_concept = lease_policy_tag;
    static constexpr std::string_view name = "ephemeral";
    static constexpr lease_policy_kind kind = lease_policy_kind::ephemeral;

    [[nodiscard]] constexpr lease_status status_for(run_outcome o) const noexcept {
        return detail::upstream_status_for(o);
    }
    [[nodiscard]] std::optional<timestamp> expires_at(environment const& env, timestamp now) const {
        return detail::ttl_expiry(env, now);
    }
};
static_assert(lease_policy<ephemeral>);

}  // namespace berth

#pragma once
// berth::retain_on_failure — like ephemeral, except that a failed or timed-out run leaves its lease
// `retained` (released_at null) so the environment can be inspected; a retained lease can later be
// resumed, released, expired or sent to cleanup (see model/lease_transitions.hpp).
// Upstream declares this policy but never assigns it; berth assigns it from config `leasePolicy`.

#include <berth/concepts/lease_policy.hpp>
#include <berth/policies/detail/outcome.hpp>

namespace berth {

struct retain_on_failure {
    using lease_policy_concept = lease_policy_tag;
    static constexpr std::string_view name = "retain_on_failure";
    static constexpr lease_policy_kind kind = lease_policy_kind::retain_on_failure;

    [[nodiscard]] constexpr lease_status status_for(run_outcome o) const noexcept {
        auto const s = detail::upstream_status_for(o);
        return s == lease_status::failed ? lease_status::retained : s;
    }
    [[nodiscard]] std::optional<timestamp> expires_at(environment const& env, timestamp now) const {
        return detail::ttl_expiry(env, now);
    }
};
static_assert(lease_policy<retain_on_failure>);

}  // namespace berth

// expect-error: In instantiation of 'struct berth::policy_requirements<reuse_without_stamp>'
// expect-error: static assertion failed: berth::policy_with_reuse: the policy declares one of `find_reusable`, `matches`, `stamp`, but not all three
// expect-error: In instantiation of 'struct berth::policy_requirements<status_for_may_throw>'
// expect-error: static assertion failed: berth::lease_policy: the policy must have `berth::lease_status status_for\(berth::run_outcome\) const noexcept`
//
// Policies are checked one by one like drivers: a reuse policy with find_reusable and matches but
// no stamp would silently never reuse; a status_for without noexcept is not a policy at all.
#include <berth/orchestrator/stack.hpp>
#include <berth/policies/ephemeral.hpp>
#include <berth/stores/memory.hpp>
#include <berth/testing/fake_driver.hpp>

struct reuse_without_stamp : berth::archetypes::policy {
    static constexpr std::string_view name = "half-reuse";
    std::optional<berth::environment_lease> find_reusable(berth::acquire_request const&,
                                                          std::vector<berth::environment_lease> const&) const {
        return std::nullopt;
    }
    bool matches(berth::acquire_request const&, berth::environment_lease const&) const { return false; }
#ifdef BERTH_COMPILE_FAIL_CONTROL
    void stamp(berth::acquire_request const&, berth::lease_grant&) const {}
#endif
};

struct status_for_may_throw {
    using lease_policy_concept = berth::lease_policy_tag;
    static constexpr std::string_view name = "throwing";
    static constexpr berth::lease_policy_kind kind = berth::lease_policy_kind::ephemeral;
#ifdef BERTH_COMPILE_FAIL_CONTROL
    berth::lease_status status_for(berth::run_outcome) const noexcept { return berth::lease_status::released; }
#else
    berth::lease_status status_for(berth::run_outcome) const { return berth::lease_status::released; }
#endif
    std::optional<berth::timestamp> expires_at(berth::environment const&, berth::timestamp) const {
        return std::nullopt;
    }
};

using my_stack = berth::stack<berth::drivers<berth::testing::fake_driver<>>,
                              berth::policies<berth::ephemeral, reuse_without_stamp, status_for_may_throw>,
                              berth::memory_store>;
static_assert(my_stack::policy_count == 3);

int main() {}

// expect-error: a policy's status_for ends an active lease in a status the lease status table does not allow from active
//
// A lease policy whose status_for sends a finished run's lease to a status `active` cannot move to
// (here: `active` itself) is refused when the stack is named, with berth's message — the shipped
// policies' end states are checked against the constexpr lease status table at compile time.
#include <berth/orchestrator/stack.hpp>
#include <berth/stores/memory.hpp>
#include <berth/testing/fake_driver.hpp>

struct never_ends {
    using lease_policy_concept = berth::lease_policy_tag;
    static constexpr std::string_view name = "ends-in-active";
    static constexpr berth::lease_policy_kind kind = berth::lease_policy_kind::ephemeral;
    constexpr berth::lease_status status_for(berth::run_outcome o) const noexcept {
#ifdef BERTH_COMPILE_FAIL_CONTROL  // a legal end state: must compile
        return o == berth::run_outcome::succeeded ? berth::lease_status::released : berth::lease_status::failed;
#else
        return o == berth::run_outcome::succeeded ? berth::lease_status::released : berth::lease_status::active;
#endif
    }
    std::optional<berth::timestamp> expires_at(berth::environment const&, berth::timestamp) const { return {}; }
};

using bad = berth::stack<berth::drivers<berth::testing::fake_driver<>>, berth::policies<never_ends>, berth::memory_store>;
static_assert(bad::policy_index("ends-in-active").has_value());

int main() {}

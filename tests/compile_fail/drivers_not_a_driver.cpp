// expect-error: In instantiation of 'struct berth::driver_requirements<half_a_driver>'
// expect-error: static assertion failed: berth::environment_driver: the driver must have `berth::release_outcome release\(berth::environment const&, berth::environment_lease const&, berth::lease_status\) const` \(missing, or another signature\)
// expect-error: In instantiation of 'struct berth::driver_requirements<not_a_driver>'
// expect-error: static assertion failed: berth::environment_driver: the driver must opt in with `using driver_concept = berth::driver_tag
//
// A type that is not an environment driver inside berth::drivers<...>: the stack checks each
// driver on its own, so the error names each failing type and the requirement it misses (here a
// release with the wrong lease_status parameter, and a type that never opted in), never only
// "constraints not satisfied" for the whole pack. The orchestrator over that stack reports the
// same.
#include <berth/drivers/local.hpp>
#include <berth/orchestrator/run_orchestrator.hpp>
#include <berth/policies/ephemeral.hpp>
#include <berth/stores/memory.hpp>

struct half_a_driver {
    using driver_concept = berth::driver_tag;
    static constexpr std::string_view name = "half";
    static constexpr berth::driver_kind family = berth::driver_kind::plugin;
    berth::lease_grant acquire(berth::acquire_request const&) const { return {}; }
#ifdef BERTH_COMPILE_FAIL_CONTROL
    berth::release_outcome release(berth::environment const&, berth::environment_lease const&,
                                   berth::lease_status) const {
        return {};
    }
#else
    berth::release_outcome release(berth::environment const&, berth::environment_lease const&, int) const {
        return {};
    }
#endif
};

#ifdef BERTH_COMPILE_FAIL_CONTROL
using not_a_driver = berth::local_driver;
#else
struct not_a_driver {};
#endif

using my_stack = berth::stack<berth::drivers<berth::local_driver, half_a_driver, not_a_driver>,
                              berth::policies<berth::ephemeral>, berth::memory_store>;
#ifdef BERTH_COMPILE_FAIL_CONTROL
using my_stack_ok = berth::stack<berth::drivers<berth::local_driver, half_a_driver>,
                                 berth::policies<berth::ephemeral>, berth::memory_store>;
static_assert(sizeof(berth::run_orchestrator<my_stack_ok>) > 0);
#else
static_assert(sizeof(berth::run_orchestrator<my_stack>) > 0);
#endif

int main() {}

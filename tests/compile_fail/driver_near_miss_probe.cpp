// expect-error: In instantiation of 'struct berth::driver_requirements<probe_without_noexcept>'
// expect-error: static assertion failed: berth::driver_with_probe: the driver declares `probe`, but not as `berth::probe_result probe\(berth::environment const&\) const noexcept`
//
// A probe without noexcept does not model berth::driver_with_probe. Without the diagnostic, the
// stack would read the driver as "cannot probe" and the run would learn it only at run time; here
// naming the stack is an error that names the driver and the requirement.
#include <berth/orchestrator/stack.hpp>
#include <berth/policies/ephemeral.hpp>
#include <berth/stores/memory.hpp>

struct probe_without_noexcept {
    using driver_concept = berth::driver_tag;
    static constexpr std::string_view name = "probing";
    static constexpr berth::driver_kind family = berth::driver_kind::plugin;
    berth::lease_grant acquire(berth::acquire_request const&) const { return {}; }
    berth::release_outcome release(berth::environment const&, berth::environment_lease const&,
                                   berth::lease_status) const {
        return {};
    }
#ifdef BERTH_COMPILE_FAIL_CONTROL  // the same probe, noexcept: must compile
    berth::probe_result probe(berth::environment const&) const noexcept { return {}; }
#else
    berth::probe_result probe(berth::environment const&) const { return {}; }
#endif
};

using my_stack = berth::stack<berth::drivers<probe_without_noexcept>, berth::policies<berth::ephemeral>,
                              berth::memory_store>;
static_assert(my_stack::driver_count == 1);

int main() {}

// expect-error: two drivers have the same name
// expect-error: distinct_driver_names<[^>]*bubblewrap_a[^>]*bubblewrap_b
//
// Two drivers with one name cannot be told apart by an environment's config, so a stack naming
// both is refused when it is named, and the diagnostic names both types.
#include <berth/orchestrator/stack.hpp>
#include <berth/policies/ephemeral.hpp>
#include <berth/stores/memory.hpp>

struct bubblewrap_a {
    using driver_concept = berth::driver_tag;
    static constexpr std::string_view name = "bubblewrap";
    static constexpr berth::driver_kind family = berth::driver_kind::sandbox;
    berth::lease_grant acquire(berth::acquire_request const&) const { return {}; }
    berth::release_outcome release(berth::environment const&, berth::environment_lease const&,
                                   berth::lease_status) const {
        return {};
    }
    berth::workspace_realization realize_workspace(berth::realize_request const&) const { return {}; }
};
struct bubblewrap_b : bubblewrap_a {
#ifdef BERTH_COMPILE_FAIL_CONTROL  // another name: must compile
    static constexpr std::string_view name = "bubblewrap-2";
#endif
};

using bad = berth::stack<berth::drivers<bubblewrap_a, bubblewrap_b>, berth::policies<berth::ephemeral>,
                         berth::memory_store>;
static_assert(bad::driver_count == 2);

int main() {}

// expect-error: constraints not satisfied
// expect-error: required for the satisfaction of 'environment_driver<D>' \[with D = missing_release\]
// expect-error: the required expression '[a-z_]+\.release\([^']*\)' is invalid
//
// A driver that opts in (driver_concept, kind, acquire) but has no `release` must be rejected at the
// constrained call, and GCC must name the concept and the missing `release`, not print a backtrace
// from deep inside the orchestrator.
#include <berth/concepts/environment_driver.hpp>

struct missing_release {
    using driver_concept = berth::driver_tag;
    static constexpr std::string_view name = "no-release";
    static constexpr berth::driver_kind family = berth::driver_kind::plugin;
    berth::lease_grant acquire(berth::acquire_request const&) const { return {}; }
#ifdef BERTH_COMPILE_FAIL_CONTROL  // the same type, complete: must compile
    berth::release_outcome release(berth::environment const&, berth::environment_lease const&,
                                   berth::lease_status) const {
        return {};
    }
#endif
};

template <berth::environment_driver D>
void use(D const&) {}

int main() { use(missing_release{}); }

// expect-error: In instantiation of 'struct berth::detail::realizes_if_its_family_does<ssh_without_realize>'
// expect-error: static assertion failed: berth::drivers<...>: Environment driver does not support workspace realization\.
// expect-error: A driver of family local, ssh or sandbox \(upstream realizes their workspaces: model/driver_family.hpp\) must model berth::driver_with_realize_workspace
//
// A driver of a family upstream realizes for (local, ssh, sandbox) without a realize hook: upstream
// raises `Environment driver "<d>" does not support workspace realization.` (wrapped as
// workspace_realization_failed) on every run; berth knows the family at compile time, so the
// stack refuses the driver there, naming it and upstream's message. The same type in the plugin
// family (which upstream does not realize for) compiles: see the control.
#include <berth/orchestrator/run_orchestrator.hpp>
#include <berth/policies/ephemeral.hpp>
#include <berth/stores/memory.hpp>

struct ssh_without_realize {
    using driver_concept = berth::driver_tag;
    static constexpr std::string_view name = "ssh-without-realize";
#ifdef BERTH_COMPILE_FAIL_CONTROL
    static constexpr berth::driver_kind family = berth::driver_kind::plugin;
#else
    static constexpr berth::driver_kind family = berth::driver_kind::ssh;
#endif
    berth::lease_grant acquire(berth::acquire_request const&) const { return {}; }
    berth::release_outcome release(berth::environment const&, berth::environment_lease const&,
                                   berth::lease_status) const {
        return {};
    }
    berth::command_result execute(berth::environment const&, berth::environment_lease const&,
                                  berth::command const&) const {
        return {};
    }
};

using my_stack = berth::stack<berth::drivers<ssh_without_realize>, berth::policies<berth::ephemeral>,
                              berth::memory_store>;

int main() {
    berth::memory_store store;
    berth::run_orchestrator<my_stack> orch{store, ssh_without_realize{}};
    (void)orch;
}

// expect-error: In instantiation of 'struct berth::driver_requirements<execute_not_const>'
// expect-error: static assertion failed: berth::driver_with_execute: the driver declares `execute`, but not as `berth::command_result execute\(berth::environment const&, berth::environment_lease const&, berth::command const&\) const`
// expect-error: In instantiation of 'struct berth::driver_requirements<execute_wrong_parameter>'
//
// Two near misses of execute — without const, and with a parameter of another type — in one
// stack: each is checked on its own, so both drivers are named. The good driver between them is
// not. (A near miss used to read as "cannot execute" until a command failed at run time.)
#include <berth/orchestrator/stack.hpp>
#include <berth/policies/ephemeral.hpp>
#include <berth/stores/memory.hpp>

#include <string>

template <class Self>
struct driver_base {
    using driver_concept = berth::driver_tag;
    static constexpr berth::driver_kind family = berth::driver_kind::plugin;
    berth::lease_grant acquire(berth::acquire_request const&) const { return {}; }
    berth::release_outcome release(berth::environment const&, berth::environment_lease const&,
                                   berth::lease_status) const {
        return {};
    }
};

struct execute_not_const : driver_base<execute_not_const> {
    static constexpr std::string_view name = "not-const";
#ifdef BERTH_COMPILE_FAIL_CONTROL
    berth::command_result execute(berth::environment const&, berth::environment_lease const&,
                                  berth::command const&) const {
        return {};
    }
#else
    berth::command_result execute(berth::environment const&, berth::environment_lease const&, berth::command const&) {
        return {};
    }
#endif
};

struct good_driver : driver_base<good_driver> {
    static constexpr std::string_view name = "good";
    berth::command_result execute(berth::environment const&, berth::environment_lease const&,
                                  berth::command const&) const {
        return {};
    }
};

struct execute_wrong_parameter : driver_base<execute_wrong_parameter> {
    static constexpr std::string_view name = "wrong-parameter";
#ifdef BERTH_COMPILE_FAIL_CONTROL
    berth::command_result execute(berth::environment const&, berth::environment_lease const&,
                                  berth::command const&) const {
        return {};
    }
#else
    berth::command_result execute(berth::environment const&, berth::environment_lease const&,
                                  std::string const& shell_line) const {
        return {.stdout_text = shell_line};
    }
#endif
};

using my_stack = berth::stack<berth::drivers<execute_not_const, good_driver, execute_wrong_parameter>,
                              berth::policies<berth::ephemeral>, berth::memory_store>;
static_assert(my_stack::driver_count == 3);

int main() {}

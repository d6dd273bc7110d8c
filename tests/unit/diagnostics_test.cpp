// Requirement-by-requirement diagnostics (concepts/diagnostics.hpp): every shipped driver and
// policy passes every check, and a near miss is told apart from an absent capability. The
// diagnostics themselves (the messages, the types they name) are compile-fail tests:
// tests/compile_fail/driver_near_miss_*.cpp, drivers_not_a_driver.cpp, policy_near_miss.cpp.
#include <berth/concepts/diagnostics.hpp>
#include <berth/drivers/local.hpp>
#include <berth/drivers/plugin.hpp>
#include <berth/policies/ephemeral.hpp>
#include <berth/policies/retain_on_failure.hpp>
#include <berth/policies/reuse_by_environment.hpp>
#include <berth/policies/reuse_by_execution_workspace.hpp>
#include <berth/testing/fake_driver.hpp>
#ifdef BERTH_TEST_SSH
#include <berth/drivers/ssh.hpp>
#endif

#include <catch2/catch.hpp>

namespace {

// Every shipped driver and policy conforms: no member of theirs reads as a near miss.
static_assert(berth::verified_driver<berth::local_driver> && berth::conforming_driver<berth::local_driver>);
static_assert(berth::verified_driver<berth::plugin_driver> && berth::conforming_driver<berth::plugin_driver>);
static_assert(berth::verified_driver<berth::testing::fake_driver<>>);
static_assert(berth::conforming_driver<berth::testing::fake_driver<berth::driver_kind::sandbox, "fake-2">>);
#ifdef BERTH_TEST_SSH
static_assert(berth::verified_driver<berth::ssh_driver> && berth::conforming_driver<berth::ssh_driver>);
#endif
static_assert(berth::verified_policy<berth::ephemeral> && berth::verified_policy<berth::retain_on_failure> &&
              berth::verified_policy<berth::reuse_by_environment> &&
              berth::verified_policy<berth::reuse_by_execution_workspace>);
static_assert(berth::conforming_policy<berth::reuse_by_environment> &&
              berth::conforming_policy<berth::reuse_by_execution_workspace>);

struct minimal {
    using driver_concept = berth::driver_tag;
    static constexpr std::string_view name = "minimal";
    static constexpr berth::driver_kind family = berth::driver_kind::plugin;
    berth::lease_grant acquire(berth::acquire_request const&) const { return {}; }
    berth::release_outcome release(berth::environment const&, berth::environment_lease const&,
                                   berth::lease_status) const {
        return {};
    }
};

// Near misses: each is still an environment_driver (so concept checks alone would accept it and
// read the capability as absent), but not a conforming one (so berth::stack refuses it).
struct probe_may_throw : minimal {
    berth::probe_result probe(berth::environment const&) const { return {}; }
};
struct execute_not_const : minimal {
    berth::command_result execute(berth::environment const&, berth::environment_lease const&, berth::command const&) {
        return {};
    }
};
struct execute_takes_a_string : minimal {
    berth::command_result execute(berth::environment const&, berth::environment_lease const&, std::string const&) const {
        return {};
    }
};
struct resume_returns_outcome : minimal {
    berth::release_outcome resume(berth::environment const&, berth::environment_lease const&) const { return {}; }
};
struct claims_name_not_static : minimal {
    bool claims_name(std::string_view) const noexcept { return true; }
};
struct realize_overloaded_wrongly : minimal {  // an overload set, called on a non-const driver
    berth::workspace_realization realize_workspace(berth::realize_request const&) { return {}; }
    berth::workspace_realization realize_workspace(berth::realize_request const&, int) { return {}; }
};

template <class D>
constexpr bool near_miss = berth::environment_driver<D> && !berth::conforming_driver<D>;

static_assert(near_miss<probe_may_throw> && !berth::driver_with_probe<probe_may_throw>);
static_assert(near_miss<execute_not_const> && near_miss<execute_takes_a_string>);
static_assert(near_miss<resume_returns_outcome> && near_miss<claims_name_not_static>);
static_assert(near_miss<realize_overloaded_wrongly>);

// Not near misses: members whose names merely start like a capability's, and the archetype.
struct unrelated_members : minimal {
    int probe_timeout_ms = 10;
    void execute_later() const {}
    static constexpr bool manages_execution_workspaces = false;
};
static_assert(berth::conforming_driver<unrelated_members> && berth::conforming_driver<minimal>);
static_assert(berth::conforming_driver<berth::archetypes::driver>);

// Policies: half a reuse hook set, and a reuse_scope of another type.
struct half_reuse : berth::archetypes::policy {
    bool matches(berth::acquire_request const&, berth::environment_lease const&) const { return true; }
};
struct scope_as_view : berth::archetypes::policy {
    std::string_view reuse_scope(berth::acquire_request const&) const { return "environment"; }
};
static_assert(berth::lease_policy<half_reuse> && !berth::conforming_policy<half_reuse>);
static_assert(berth::lease_policy<scope_as_view> && !berth::conforming_policy<scope_as_view>);

}  // namespace

TEST_CASE("near-miss capabilities are told apart from absent ones", "[diagnostics]") {
    // The checks above are compile-time; this case makes them part of the tagged run.
    CHECK(near_miss<probe_may_throw>);
    CHECK(near_miss<execute_not_const>);
    CHECK_FALSE(near_miss<minimal>);
    CHECK_FALSE(near_miss<unrelated_members>);
}

// The driver conformance kit (berth/testing/driver_conformance.hpp) on the local driver, the fake
// driver and the example's custom driver. The SSH driver runs it against a real sshd in
// ssh_driver_conformance_test.cpp.
#include <berth/drivers/local.hpp>
#include <berth/testing/driver_conformance.hpp>
#include <berth/testing/fake_driver.hpp>

#include "../../examples/custom_driver/slot_pool_driver.hpp"
#include "git_fixture.hpp"  // berth::test::temp_dir

#include <catch2/catch.hpp>

namespace {

berth::environment kit_environment(berth::driver_kind family, char const* name) {
    berth::environment e{};
    e.id = std::string("env-") + name;
    e.company_id = "company-kit";
    e.name = name;
    e.driver = family;
    return e;
}

/// The local driver, realizing into a temporary directory of its own.
struct local_harness {
    berth::test::temp_dir dir{"berth-driver-kit"};
    berth::local_driver driver() const { return berth::local_driver{}; }
    berth::environment environment() const { return kit_environment(berth::driver_kind::local, "local"); }
    std::string workspace_path() const { return dir.str(); }
};

/// The fake: it runs nothing (scripted results), and tracks the provider leases it holds.
struct fake_harness {
    berth::testing::fake_driver<berth::driver_kind::sandbox> d;
    static constexpr bool scripted_commands = true;
    auto const& driver() const { return d; }
    berth::environment environment() const { return kit_environment(berth::driver_kind::sandbox, "fake"); }
    std::set<std::string> leftovers() const { return d.shared_state()->live_provider_leases(); }
};

/// examples/custom_driver: the slots it holds must all be given back.
struct slot_pool_harness {
    slot_pool_driver d;
    slot_pool_driver const& driver() const { return d; }
    berth::environment environment() const { return kit_environment(berth::driver_kind::plugin, "slots"); }
    std::set<std::string> leftovers() const { return d.slots_held(); }
};

}  // namespace

BERTH_DRIVER_CONFORMANCE_TESTS(local_harness, "[local_driver]")
BERTH_DRIVER_CONFORMANCE_TESTS(fake_harness, "[fake_driver]")
BERTH_DRIVER_CONFORMANCE_TESTS(slot_pool_harness, "[custom_driver]")

// The kit must be able to fail: a driver that leaks what it acquired is caught by the cleanup
// rule. (A kit whose rules cannot fail would prove nothing about the drivers above.)
namespace {
struct leaky_driver : slot_pool_driver {
    berth::release_outcome release(berth::environment const&, berth::environment_lease const&,
                                   berth::lease_status) const {
        return {.cleanup_status = berth::cleanup_status::success, .failure_reason = {}};  // gives nothing back
    }
};
struct leaky_harness {
    leaky_driver d;
    leaky_driver const& driver() const { return d; }
    berth::environment environment() const { return kit_environment(berth::driver_kind::plugin, "leaky"); }
    std::set<std::string> leftovers() const { return d.slots_held(); }
};
}  // namespace

TEST_CASE("the driver kit's cleanup rule catches a driver that keeps what it acquired", "[driver_conformance]") {
    leaky_harness h;
    auto const before = h.leftovers();
    auto const env = h.environment();
    auto const grant = h.driver().acquire({.env = env, .company_id = env.company_id, .agent_id = std::nullopt});
    (void)h.driver().release(env, berth::testing::driver_conformance::detail::lease_from(env, grant, "lease-1"),
                             berth::lease_status::released);
    // What cleans_up_what_it_acquired<leaky_harness>() compares, without failing this test.
    CHECK(h.leftovers() != before);
    CHECK(h.leftovers().size() == 1);
}

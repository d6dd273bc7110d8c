// The driver conformance kit (berth/testing/driver_conformance.hpp) on berth::sandbox_driver: over
// the bubblewrap provider (real sandboxes, real commands) and over the fake provider (scripted).
#ifdef BERTH_TEST_SANDBOX

#include <berth/drivers/sandbox.hpp>
#include <berth/drivers/sandbox/bubblewrap.hpp>
#include <berth/testing/driver_conformance.hpp>
#include <berth/testing/fake_sandbox_provider.hpp>

#include "git_fixture.hpp"  // berth::test::temp_dir

#include <boost/json/parse.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

namespace {

berth::environment sandbox_environment(char const* config) {
    berth::environment e{};
    e.id = "env-sandbox-kit";
    e.company_id = "company-kit";
    e.name = "Sandbox";
    e.driver = berth::driver_kind::sandbox;
    e.config = boost::json::parse(config).as_object();
    return e;
}

/// Real sandboxes: the lease state directories under the harness's state root are what acquire
/// makes and release must remove; the workspace is a directory of the harness.
struct bubblewrap_sandbox_harness {
    berth::test::temp_dir dir{"berth-sandbox-kit"};
    berth::sandbox_driver<berth::bubblewrap> d{berth::bubblewrap({.state_root = (dir / "state").string()})};
    bubblewrap_sandbox_harness() { std::filesystem::create_directories(dir / "ws"); }
    auto const& driver() const { return d; }
    berth::environment environment() const { return sandbox_environment(R"({"provider": "bubblewrap"})"); }
    /// A provider the driver does not host: acquire is refused, the probe says so.
    berth::environment unusable_environment() const { return sandbox_environment(R"({"provider": "nosuch"})"); }
    std::string workspace_path() const { return (dir / "ws").string(); }
    std::vector<std::string> leftovers() const {
        std::vector<std::string> out;
        std::error_code ec;
        for (auto const& e : std::filesystem::directory_iterator(dir / "state", ec))
            out.push_back(e.path().filename().string());
        std::sort(out.begin(), out.end());
        return out;
    }
};

/// The fake provider runs nothing; its live sandboxes must all be gone after release.
struct fake_sandbox_harness {
    berth::testing::fake_sandbox_provider provider;  // first: the driver below holds a copy (sharing its state)
    berth::sandbox_driver<berth::testing::fake_sandbox_provider> d{provider};
    static constexpr bool scripted_commands = true;
    auto const& driver() const { return d; }
    berth::environment environment() const { return sandbox_environment(R"({"provider": "fake"})"); }
    std::set<std::string> leftovers() const { return provider.shared_state()->live(); }
};

}  // namespace

BERTH_DRIVER_CONFORMANCE_TESTS(bubblewrap_sandbox_harness, "[sandbox][sandbox_bubblewrap]")
BERTH_DRIVER_CONFORMANCE_TESTS(fake_sandbox_harness, "[sandbox][sandbox_driver]")

#endif

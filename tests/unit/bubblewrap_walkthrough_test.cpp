// The bubblewrap driver of docs/drivers/writing-a-driver.md §14 (examples/bubblewrap_driver/):
// the driver conformance kit on it, and a run through an orchestrator whose stack names it next to
// the local driver — a new member of the sandbox family with no line of the orchestrator changed.
// Real sandboxes: bwrap must be installed (cmake/bootstrap.sh installs it).
#include <berth/drivers/local.hpp>
#include <berth/orchestrator/run_orchestrator.hpp>
#include <berth/orchestrator/run_scope.hpp>
#include <berth/policies/ephemeral.hpp>
#include <berth/stores/memory.hpp>
#include <berth/testing/driver_conformance.hpp>

#include "../../examples/bubblewrap_driver/bubblewrap_driver.hpp"
#include "git_fixture.hpp"  // berth::test::temp_dir

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

std::vector<std::string> entries_of(std::filesystem::path const& dir) {
    std::vector<std::string> out;
    std::error_code ec;
    for (auto const& e : std::filesystem::directory_iterator(dir, ec)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
}

struct bubblewrap_harness {
    berth::test::temp_dir dir{"berth-bwrap-kit"};
    bubblewrap_driver d{dir / "leases"};
    bubblewrap_driver const& driver() const { return d; }
    berth::environment environment() const {
        berth::environment e{};
        e.id = "env-bwrap";
        e.company_id = "company-kit";
        e.name = "Sandbox";
        e.driver = berth::driver_kind::sandbox;
        return e;
    }
    /// The leases' directories: release must remove what acquire made.
    std::vector<std::string> leftovers() const { return entries_of(dir / "leases"); }
};

}  // namespace

BERTH_DRIVER_CONFORMANCE_TESTS(bubblewrap_harness, "[bubblewrap_walkthrough]")

TEST_CASE("the walkthrough's bubblewrap driver runs a command through the orchestrator, isolated",
          "[bubblewrap_walkthrough]") {
    using stack = berth::stack<berth::drivers<berth::local_driver, bubblewrap_driver>,
                               berth::policies<berth::ephemeral>, berth::memory_store>;
    berth::test::temp_dir dir{"berth-bwrap-run"};
    berth::memory_store store;
    berth::run_orchestrator<stack> orch{store, berth::local_driver{}, bubblewrap_driver{dir / "leases"}};
    auto const env = store.create_environment(
        {.company_id = "acme", .name = "Sandbox", .driver = berth::driver_kind::sandbox}, orch.clock().now());

    CHECK(orch.probe(env).ok);
    berth::run_scope run{orch, {.company_id = "acme", .environment_id = env.id, .agent_id = std::nullopt,
                                .heartbeat_run_id = "run-1"}};
    CHECK(run.lease().driver_name == std::optional<std::string>("bubblewrap"));
    auto const& realized = run.realize("/ignored");  // the sandbox's workspace, not a host path
    CHECK(realized.cwd == "/workspace");
    CHECK(realized.remote_cwd == std::optional<std::string>("/workspace"));

    auto const r = run.execute({.program = "sh", .args = {"-c", "pwd; test ! -e /root && echo isolated; echo data > out"}});
    CHECK(r.exit_code == 0);
    CHECK(r.stdout_text == "/workspace\nisolated\n");
    // The file the command wrote is in the lease's directory on the host, until release.
    auto const lease_dir = std::filesystem::path(*run.lease().provider_lease_id);
    CHECK(lease_dir.parent_path() == dir / "leases");
    std::ifstream written(lease_dir / "out");
    std::string line;
    CHECK(std::getline(written, line));
    CHECK(line == "data");

    auto const released = run.finish(berth::run_outcome::succeeded);
    CHECK(released.errors.empty());
    REQUIRE(released.released.size() == 1);
    CHECK(released.released[0].status == berth::lease_status::released);
    CHECK(released.released[0].cleanup_status == std::optional(berth::cleanup_status::success));
    CHECK_FALSE(std::filesystem::exists(lease_dir));
}

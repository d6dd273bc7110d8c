// berth-run --plugin WORKER: a real run through the demo CLI in the environment of an SDK-built
// plugin worker (tests/plugins/test-plugin.mjs, run with node), from acquire to the lease released.
#include <berth/stores/sqlite.hpp>

#include <catch2/catch.hpp>

#include <berth/process/spawn.hpp>

#include "git_fixture.hpp"
#include "plugin_fixture.hpp"

#include <boost/json/parse.hpp>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#if defined(BERTH_RUN_EXE) && defined(BERTH_TEST_SQLITE)

using namespace std::chrono_literals;

TEST_CASE("berth-run --plugin: the command runs through the plugin worker and the lease is released",
          "[berth_run][plugins]") {
    BERTH_REQUIRE_PLUGIN_SDK();
    berth::test::temp_dir dir("berth-run-plugin");
    auto const db = (dir / "runs.db").string();
    auto const worker = (std::filesystem::path(BERTH_TEST_PLUGIN_DIR) / "test-plugin.mjs").string();
    // berth-run runs a .mjs worker with `node` from PATH: give it the node the tests use.
    auto const node_dir = std::filesystem::path(BERTH_TEST_NODE).parent_path().string();
    auto const r = berth::process::run(
        {.program = BERTH_RUN_EXE,
         .args = {"--json", "--db", db, "--company", "plugin-co", "--run", "run-plugin-1", "--plugin", worker, "--",
                  "sh", "-c", "echo through-the-plugin; echo to-stderr >&2"},
         .env = {{"PATH", node_dir + ":/usr/local/bin:/usr/bin:/bin"}},
         .timeout = 120s},
        {.inherit_sanitized_environment = true});
    INFO("stdout: " << r.stdout_text << "\nstderr: " << r.stderr_text);
    CHECK(r.exit_code == 0);
    boost::system::error_code ec;
    auto const doc = boost::json::parse(r.stdout_text, ec);
    REQUIRE_FALSE(ec);
    CHECK(doc.at("exit_code") == 0);
    CHECK(doc.at("outcome") == "succeeded");
    CHECK(doc.at("command").at("stdout") == "through-the-plugin\n");  // what the worker ran and sent back
    CHECK(doc.at("command").at("stderr") == "to-stderr\n");

    auto store = berth::sqlite_store::open(db);
    auto const leases = store.list_run_leases("run-plugin-1", {});
    REQUIRE(leases.size() == 1);
    auto const& lease = leases.front();
    CHECK(lease.status == berth::lease_status::released);
    CHECK(lease.provider == "plugin:berth-run.test-plugin:default");
    REQUIRE(lease.provider_lease_id);
    CHECK(lease.provider_lease_id->rfind("lease-", 0) == 0);  // the worker's own lease id
    auto const events = store.list_activity({.company_id = "plugin-co", .run_id = "run-plugin-1"});
    REQUIRE_FALSE(events.empty());
    CHECK(events.back().action == "environment.lease_released");
}

#endif

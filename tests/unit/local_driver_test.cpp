// berth::local_driver: the concepts it models, and each operation against upstream §2.1
// (acquire metadata, release, realize, probe, execution target) and real processes (execute).
#include <catch2/catch.hpp>

#include <berth/drivers/local.hpp>
#include <berth/error.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <climits>
#include <unistd.h>

using namespace std::chrono_literals;
using berth::local_driver;

static_assert(berth::environment_driver<local_driver>);
static_assert(berth::driver_with_realize_workspace<local_driver>);
static_assert(berth::driver_with_execute<local_driver>);
static_assert(berth::driver_with_probe<local_driver>);
static_assert(berth::driver_with_execution_target<local_driver>);
static_assert(!berth::driver_with_resume<local_driver>);
static_assert(berth::driver_with_destroy<local_driver>);  // ends what a dead run left running
static_assert(local_driver::family == berth::driver_kind::local && local_driver::name == "local");
static_assert(std::is_default_constructible_v<local_driver>);  // allocates its shared workspace runtime

namespace {

berth::environment local_env() {
    berth::environment e{};
    e.id = "env-1";
    e.company_id = "company-1";
    e.name = "Local";
    e.driver = berth::driver_kind::local;
    return e;
}

berth::environment_lease lease_of(berth::environment const& e) {
    berth::environment_lease l{};
    l.id = "lease-1";
    l.company_id = e.company_id;
    l.environment_id = e.id;
    l.provider = "local";
    return l;
}

boost::json::object json(char const* text) { return boost::json::parse(text).as_object(); }

struct scoped_setenv {
    std::string name;
    scoped_setenv(std::string n, char const* value) : name(std::move(n)) { ::setenv(name.c_str(), value, 1); }
    ~scoped_setenv() { ::unsetenv(name.c_str()); }
};

}  // namespace

TEST_CASE("local acquire: provider local, no provider lease id, upstream metadata", "[local_driver]") {
    local_driver const driver;
    SECTION("with an agent and a workspace mode") {
        auto const grant = driver.acquire({.env = local_env(), .company_id = "company-1", .agent_id = "agent-7",
                                           .execution_workspace_mode = "isolated_workspace"});
        CHECK(grant.provider == "local");
        CHECK_FALSE(grant.provider_lease_id);
        CHECK_FALSE(grant.expires_at);
        INFO(boost::json::serialize(grant.metadata));
        CHECK(grant.metadata ==
              json(R"({"agentId":"agent-7","driver":"local","executionWorkspaceMode":"isolated_workspace"})"));
    }
    SECTION("without an agent: no agentId key; no mode: null") {
        auto const grant = driver.acquire({.env = local_env(), .company_id = "company-1", .agent_id = std::nullopt});
        INFO(boost::json::serialize(grant.metadata));
        CHECK(grant.metadata == json(R"({"driver":"local","executionWorkspaceMode":null})"));
        CHECK_FALSE(grant.metadata.contains("agentId"));
    }
}

TEST_CASE("local release has nothing to clean up", "[local_driver]") {
    local_driver const driver;
    auto const env = local_env();
    for (auto to : {berth::lease_status::released, berth::lease_status::failed, berth::lease_status::expired}) {
        auto const outcome = driver.release(env, lease_of(env), to);
        CHECK_FALSE(outcome.cleanup_status);
        CHECK_FALSE(outcome.failure_reason);
    }
}

TEST_CASE("local realize_workspace: cwd = local ?? remote ?? \"/\" with a realization record", "[local_driver]") {
    local_driver const driver;
    auto const env = local_env();
    auto const lease = lease_of(env);

    auto const both = driver.realize_workspace({.env = env,
                                                .lease = lease,
                                                .local_path = "/srv/work",
                                                .remote_path = "/remote/work",
                                                .mode = "project_primary"});
    CHECK(both.cwd == "/srv/work");
    REQUIRE(both.metadata.contains("workspaceRealization"));
    INFO(boost::json::serialize(both.metadata));
    CHECK(both.metadata.at("workspaceRealization").as_object() ==
          json(R"({"version":1,"driver":"local","transport":"local","mode":"project_primary","cwd":"/srv/work",
                   "local":{"path":"/srv/work"},"remote":{"path":"/remote/work"}})"));

    auto const remote_only = driver.realize_workspace({.env = env, .lease = lease, .remote_path = "/remote/work"});
    CHECK(remote_only.cwd == "/remote/work");
    CHECK(remote_only.metadata.at("workspaceRealization").at("cwd") == "/remote/work");
    CHECK(remote_only.metadata.at("workspaceRealization").at("local").at("path").is_null());
    CHECK(remote_only.metadata.at("workspaceRealization").at("mode").is_null());

    auto const neither = driver.realize_workspace({.env = env, .lease = lease});
    CHECK(neither.cwd == "/");
    CHECK_FALSE(neither.metadata.empty());
    CHECK(neither.metadata.at("workspaceRealization").at("cwd").is_null());
}

TEST_CASE("local probe: ok, the exact summary, hostname and cwd", "[local_driver]") {
    local_driver const driver;
    auto const env = local_env();
    static_assert(noexcept(driver.probe(env)));
    auto const r = driver.probe(env);
    CHECK(r.ok);
    CHECK(r.summary == "Local environment is available on this host.");
    char host[HOST_NAME_MAX + 1] = {};
    REQUIRE(::gethostname(host, sizeof host - 1) == 0);
    CHECK(r.details.at("hostname") == boost::json::value(host));
    CHECK(r.details.at("cwd") == boost::json::value(std::filesystem::current_path().string()));
    CHECK(r.details.size() == 2);
}

TEST_CASE("local execution_target: kind local with the environment and lease ids", "[local_driver]") {
    local_driver const driver;
    auto const env = local_env();
    auto const t = driver.execution_target(env, lease_of(env));
    CHECK(t.kind == "local");
    CHECK(t.environment_id == "env-1");
    CHECK(t.lease_id == "lease-1");
    CHECK_FALSE(t.transport);
    CHECK_FALSE(t.remote_cwd);
    CHECK(t.spec.empty());
}

TEST_CASE("local execute runs real processes in the given cwd", "[local_driver]") {
    local_driver const driver;
    auto const env = local_env();
    auto const lease = lease_of(env);

    auto const ok = driver.execute(env, lease, {.program = "sh", .args = {"-c", "pwd; echo oops >&2; exit 4"},
                                                .cwd = "/tmp"});
    CHECK(ok.exit_code == 4);
    CHECK(ok.stdout_text == std::filesystem::canonical("/tmp").string() + "\n");
    CHECK(ok.stderr_text == "oops\n");

    CHECK_THROWS_WITH(driver.execute(env, lease, {.program = "pwd", .cwd = "/definitely/not/here"}),
                      Catch::Contains("'/definitely/not/here'") && Catch::Contains("does not exist"));
    CHECK_THROWS_WITH(driver.execute(env, lease, {.program = "berth-missing-tool-123"}),
                      Catch::Contains("'berth-missing-tool-123'"));
}

TEST_CASE("local execute: the parent's environment minus secrets, plus the command's env", "[local_driver]") {
    scoped_setenv secret("BERTH_TEST_API_TOKEN", "leaked-if-seen");
    scoped_setenv key("BERTH_TEST_PRIVATE_KEY", "leaked-if-seen");
    scoped_setenv plain("BERTH_TEST_VISIBLE", "inherited");
    local_driver const driver;
    auto const env = local_env();

    std::string const tricky = "a b  'c' \"d\"\n$(touch /tmp/berth-injected) `id` ${HOME} \\ ;|&";
    auto const r = driver.execute(
        env, lease_of(env),
        {.program = "env", .env = {{"BERTH_TEST_TRICKY", tricky}, {"BERTH_TEST_VISIBLE", "overridden"}}});
    CHECK(r.exit_code == 0);
    CHECK(r.stdout_text.find("BERTH_TEST_API_TOKEN") == std::string::npos);
    CHECK(r.stdout_text.find("BERTH_TEST_PRIVATE_KEY") == std::string::npos);
    CHECK(r.stdout_text.find("leaked-if-seen") == std::string::npos);
    CHECK(r.stdout_text.find("BERTH_TEST_VISIBLE=overridden\n") != std::string::npos);
    CHECK(r.stdout_text.find("BERTH_TEST_TRICKY=" + tricky + "\n") != std::string::npos);
    CHECK(r.stdout_text.find("PATH=") != std::string::npos);  // the rest of the parent's environment

    auto const inherited = driver.execute(env, lease_of(env), {.program = "printenv", .args = {"BERTH_TEST_VISIBLE"}});
    CHECK(inherited.stdout_text == "inherited\n");
    CHECK_FALSE(std::filesystem::exists("/tmp/berth-injected"));
}

TEST_CASE("local execute honours the timeout and the driver's kill grace", "[local_driver]") {
    local_driver const driver{berth::local_driver_options{.kill_grace = 400ms}};
    auto const env = local_env();
    auto const r = driver.execute(env, lease_of(env), {.program = "sh", .args = {"-c", "trap '' TERM; sleep 30"},
                                                       .timeout = 200ms});
    CHECK(r.timed_out);
    CHECK(r.signal == SIGKILL);
    CHECK(r.duration >= 600ms);
    CHECK(r.duration < 3s);
}

TEST_CASE("one local driver serves many threads at once", "[local_driver]") {
    local_driver const driver;
    auto const env = local_env();
    auto const lease = lease_of(env);
    std::atomic<int> correct{0};
    std::vector<std::thread> pool;
    for (int t = 0; t < 8; ++t)
        pool.emplace_back([&, t] {
            for (int i = 0; i < 10; ++i) {
                try {
                    std::string const id = std::to_string(t * 100 + i);
                    auto const r = driver.execute(env, lease, {.program = "printenv", .args = {"BERTH_ID"},
                                                               .env = {{"BERTH_ID", id}}, .stdin_data = id});
                    auto const p = driver.probe(env);
                    if (r.exit_code == 0 && r.stdout_text == id + "\n" && p.ok) ++correct;
                } catch (...) {
                }
            }
        });
    for (auto& th : pool) th.join();
    CHECK(correct == 80);
}

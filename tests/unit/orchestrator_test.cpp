// berth::run_orchestrator and berth::run_scope through their public API, against the seed
// environment-run-orchestrator.ts: resolve (default local, not found, other company, inactive,
// unsupported driver), acquire (activity, wrapped errors, capacity, provider side undone), realize
// (local cwd and metadata, off-local provisioning with the seed's failure detail, target errors),
// execute (fenced), release (outcome → status per policy, per-lease activity, errors collected and
// never thrown), expiry and renewal, and the RAII scope. A real local_driver runs real processes;
// testing::fake_driver stands in for the off-local drivers (ssh, plugin).

#include <catch2/catch.hpp>

#include <berth/berth.hpp>
#include <berth/drivers/local.hpp>
#include <berth/stores/memory.hpp>
#include <berth/testing/fake_driver.hpp>
#include <berth/testing/manual_clock.hpp>

#include <boost/json/serialize.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace berth;
using namespace std::chrono_literals;

namespace {

using fake_ssh = testing::fake_driver<driver_kind::ssh>;
using fake_plugin = testing::fake_driver<driver_kind::plugin>;
using full_stack = stack<drivers<local_driver, fake_ssh, fake_plugin>, policies<ephemeral, retain_on_failure>,
                         memory_store, testing::manual_clock>;
using local_only_stack = stack<drivers<local_driver>, policies<ephemeral>, memory_store, testing::manual_clock>;

struct fixture {
    memory_store store;
    testing::manual_clock clock;
    fake_ssh ssh;
    fake_plugin plugin;
    std::shared_ptr<fake_ssh::state> ssh_state = ssh.shared_state();
    std::shared_ptr<fake_plugin::state> plugin_state = plugin.shared_state();
    run_orchestrator<full_stack> orch{store, clock, local_driver{}, ssh, plugin};

    environment make_env(driver_kind d, std::string company = "acme", json_object config = {},
                         environment_status status = environment_status::active) {
        return store.create_environment(new_environment{.company_id = std::move(company),
                                                        .name = std::string(to_string(d)) + "-box",
                                                        .driver = d,
                                                        .status = status,
                                                        .config = std::move(config)},
                                        clock.now());
    }

    /// A second active lease of `run` (local), written straight to the store: acquire_for_run
    /// refuses a run that already holds one, but release_for_run must still end every lease a
    /// run has (an older berth, or another orchestrator process, may have written more).
    environment_lease second_lease(std::string run) {
        auto const env = orch.resolve_environment({.company_id = "acme"});
        return store.acquire_lease(new_lease{.id = new_id(),
                                             .company_id = "acme",
                                             .environment_id = env.id,
                                             .issue_id = "issue-7",
                                             .heartbeat_run_id = std::move(run),
                                             .provider = "local"},
                                   clock.now(), std::nullopt);
    }

    acquisition acquire(std::string run, std::optional<std::string> env_id = std::nullopt,
                        nullable<std::string> agent = std::string("agent-1")) {
        return orch.acquire_for_run(acquire_for_run_request{.company_id = "acme",
                                                            .environment_id = std::move(env_id),
                                                            .agent_id = std::move(agent),
                                                            .heartbeat_run_id = std::move(run),
                                                            .issue_id = "issue-7"});
    }
};

template <class F>
environment_run_error run_error_of(F&& f) {
    try {
        f();
    } catch (environment_run_error const& e) {
        return e;
    }
    FAIL("expected an environment_run_error");
    throw std::logic_error("unreachable");
}

template <class F>
store_error store_error_of(F&& f) {
    try {
        f();
    } catch (store_error const& e) {
        return e;
    }
    FAIL("expected a store_error");
    throw std::logic_error("unreachable");
}

std::string cause_message(environment_run_error const& e) { return message_of(e.cause()); }

}  // namespace

// ---- resolve -----------------------------------------------------------------------------------

TEST_CASE("resolve without a selection creates the company's local environment once", "[orchestrator]") {
    fixture f;
    auto const a = f.orch.resolve_environment({.company_id = "acme"});
    auto const b = f.orch.resolve_environment({.company_id = "acme", .environment_id = std::string()});
    CHECK(a.id == b.id);
    CHECK(a.name == "Local");
    CHECK(a.description == std::optional<std::string>("Default execution environment for runs on this machine."));
    CHECK(a.driver == driver_kind::local);
    CHECK(a.status == environment_status::active);
    REQUIRE(a.metadata);
    CHECK(a.metadata->at("managedByBerth") == true);
    CHECK(a.metadata->at("defaultForCompany") == true);
    CHECK(f.store.list_environments("acme", {}).size() == 1);
    // Another company gets its own.
    CHECK(f.orch.resolve_environment({.company_id = "globex"}).id != a.id);
}

TEST_CASE("resolve: 8 concurrent first runs of a company share one local environment", "[orchestrator]") {
    fixture f;
    std::vector<std::string> ids(8);
    std::vector<std::thread> ts;
    for (std::size_t i = 0; i < ids.size(); ++i)
        ts.emplace_back([&, i] { ids[i] = f.orch.resolve_environment({.company_id = "acme"}).id; });
    for (auto& t : ts) t.join();
    for (auto const& id : ids) CHECK(id == ids[0]);
    CHECK(f.store.list_environments("acme", {}).size() == 1);
}

TEST_CASE("resolve: a selected environment, not found, another company's, inactive", "[orchestrator]") {
    fixture f;
    auto const ssh = f.make_env(driver_kind::ssh);
    CHECK(f.orch.resolve_environment({.company_id = "acme", .environment_id = ssh.id}).id == ssh.id);

    SECTION("an unknown id: environment_not_found with upstream's message") {
        auto const e = run_error_of([&] { (void)f.orch.resolve_environment({.company_id = "acme", .environment_id = "nope"}); });
        CHECK(e.code() == environment_error_code::environment_not_found);
        CHECK(std::string(e.what()) == "Environment \"nope\" not found.");
        CHECK(e.environment_id() == std::optional<std::string>("nope"));
    }
    SECTION("another company's environment is reported exactly like a missing one") {
        auto const theirs = f.make_env(driver_kind::ssh, "globex");
        auto const e = run_error_of(
            [&] { (void)f.orch.resolve_environment({.company_id = "acme", .environment_id = theirs.id}); });
        CHECK(e.code() == environment_error_code::environment_not_found);
        CHECK(std::string(e.what()) == "Environment \"" + theirs.id + "\" not found.");
    }
    SECTION("an archived environment: environment_inactive naming name and status") {
        auto const old = f.make_env(driver_kind::ssh, "acme", {}, environment_status::archived);
        auto const e =
            run_error_of([&] { (void)f.orch.resolve_environment({.company_id = "acme", .environment_id = old.id}); });
        CHECK(e.code() == environment_error_code::environment_inactive);
        CHECK(std::string(e.what()) == "Environment \"ssh-box\" is not active (status: archived).");
        CHECK(e.driver() == driver_kind::ssh);
    }
    SECTION("an archived default local environment is not resurrected") {
        auto const local = f.orch.resolve_environment({.company_id = "acme"});
        REQUIRE(f.store.update_environment(local.id, {.status = environment_status::archived}, f.clock.now()));
        auto const e = run_error_of([&] { (void)f.orch.resolve_environment({.company_id = "acme"}); });
        CHECK(e.code() == environment_error_code::environment_inactive);
        CHECK(std::string(e.what()) == "Environment \"Local\" is not active (status: archived).");
    }
}

TEST_CASE("a driver the stack does not contain: unsupported_environment before any lease is written",
          "[orchestrator]") {
    memory_store store;
    testing::manual_clock clock;
    run_orchestrator<local_only_stack> orch{store, clock, local_driver{}};
    auto const sandbox = store.create_environment(
        new_environment{.company_id = "acme", .name = "box", .driver = driver_kind::sandbox}, clock.now());
    auto const e = run_error_of([&] {
        (void)orch.acquire_for_run(
            {.company_id = "acme", .environment_id = sandbox.id, .agent_id = std::nullopt, .heartbeat_run_id = "r1"});
    });
    CHECK(e.code() == environment_error_code::unsupported_environment);
    CHECK_THAT(e.what(), Catch::Contains("\"sandbox\"") && Catch::Contains("drivers: local"));
    CHECK(store.list_leases(sandbox.id, {}).empty());
    CHECK(store.list_activity({}).empty());
}

// ---- acquire -----------------------------------------------------------------------------------

TEST_CASE("acquire_for_run: an active local lease and environment.lease_acquired with the seed's details",
          "[orchestrator]") {
    fixture f;
    auto const acq = f.orch.acquire_for_run({.company_id = "acme",
                                             .agent_id = std::string("agent-1"),
                                             .heartbeat_run_id = "run-1",
                                             .issue_id = "issue-7",
                                             .execution_workspace_id = "ew-1",
                                             .execution_workspace_mode = "isolated_workspace"});
    auto const& l = acq.lease;
    CHECK(l.status == lease_status::active);
    CHECK(l.epoch == 1);
    CHECK(l.lease_policy == lease_policy_kind::ephemeral);
    CHECK(l.provider == std::optional<std::string>("local"));
    CHECK(l.heartbeat_run_id == std::optional<std::string>("run-1"));
    CHECK(l.issue_id == std::optional<std::string>("issue-7"));
    CHECK(l.execution_workspace_id == std::optional<std::string>("ew-1"));
    CHECK(l.acquired_at == f.clock.now());
    REQUIRE(l.metadata);
    CHECK(l.metadata->at("agentId") == "agent-1");
    CHECK(l.metadata->at("driver") == "local");
    CHECK(l.metadata->at("executionWorkspaceMode") == "isolated_workspace");
    CHECK(acq.execution_workspace_id == std::optional<std::string>("ew-1"));

    auto const events = f.store.list_activity({.run_id = "run-1"});
    REQUIRE(events.size() == 1);
    auto const& ev = events[0];
    CHECK(ev.action == "environment.lease_acquired");
    CHECK(ev.actor_type == "agent");
    CHECK(ev.actor_id == "agent-1");
    CHECK(ev.agent_id == std::optional<std::string>("agent-1"));
    CHECK(ev.entity_type == "environment_lease");
    CHECK(ev.entity_id == l.id);
    CHECK(boost::json::serialize(ev.details) ==
          boost::json::serialize(json_object{{"environmentId", acq.env.id},
                                             {"driver", "local"},
                                             {"leasePolicy", "ephemeral"},
                                             {"provider", "local"},
                                             {"executionWorkspaceId", "ew-1"},
                                             {"issueId", "issue-7"}}));
}

TEST_CASE("acquire_for_run without an agent records the system as the actor", "[orchestrator]") {
    fixture f;
    auto const acq = f.acquire("run-probe", std::nullopt, std::nullopt);
    CHECK_FALSE(acq.lease.metadata->contains("agentId"));
    auto const events = f.store.list_activity({.run_id = "run-probe"});
    REQUIRE(events.size() == 1);
    CHECK(events[0].actor_type == "system");
    CHECK_FALSE(events[0].agent_id);
}

TEST_CASE("acquire_for_run failures are lease_acquire_failed wrapping the cause", "[orchestrator]") {
    fixture f;
    auto const ssh = f.make_env(driver_kind::ssh);

    SECTION("the driver throws: upstream's message, the cause kept, nothing stored") {
        f.ssh_state->fail_next("acquire", "host unreachable");
        auto const e = run_error_of([&] { (void)f.acquire("run-1", ssh.id); });
        CHECK(e.code() == environment_error_code::lease_acquire_failed);
        CHECK(std::string(e.what()) == "Failed to acquire lease for environment \"ssh-box\" (ssh): host unreachable");
        CHECK(cause_message(e) == "host unreachable");
        CHECK(e.environment_id() == std::optional<std::string>(ssh.id));
        CHECK(f.store.list_leases(ssh.id, {}).empty());
        CHECK(f.store.list_activity({}).empty());
    }
    SECTION("an empty run id is refused before the driver is called") {
        auto const e = run_error_of([&] { (void)f.acquire("", ssh.id); });
        CHECK(e.code() == environment_error_code::lease_acquire_failed);
        CHECK_THAT(e.what(), Catch::Contains("heartbeat_run_id must not be empty"));
        CHECK(f.ssh_state->calls().empty());
    }
    SECTION("a lease policy the stack lacks, named in the message") {
        auto const env = f.make_env(driver_kind::ssh, "acme", {{"leasePolicy", "reuse_by_environment"}});
        auto const e = run_error_of([&] { (void)f.acquire("run-1", env.id); });
        CHECK(e.code() == environment_error_code::lease_acquire_failed);
        CHECK_THAT(e.what(), Catch::Contains("\"reuse_by_environment\"") &&
                                 Catch::Contains("policies: ephemeral, retain_on_failure"));
    }
    SECTION("an unknown lease policy string names the value") {
        auto const env = f.make_env(driver_kind::ssh, "acme", {{"leasePolicy", "forever"}});
        auto const e = run_error_of([&] { (void)f.acquire("run-1", env.id); });
        CHECK(e.code() == environment_error_code::lease_acquire_failed);
        CHECK_THAT(e.what(), Catch::Contains("forever"));
    }
}

TEST_CASE("capacity: acquire beyond maxActiveLeases fails naming the limit and undoes the provider side",
          "[orchestrator]") {
    fixture f;
    auto const env = f.make_env(driver_kind::ssh, "acme", {{"maxActiveLeases", 2}});
    (void)f.acquire("run-1", env.id);
    (void)f.acquire("run-2", env.id);
    CHECK(f.ssh_state->live_provider_leases().size() == 2);
    auto const e = run_error_of([&] { (void)f.acquire("run-3", env.id); });
    CHECK(e.code() == environment_error_code::lease_acquire_failed);
    CHECK_THAT(e.what(), Catch::Contains("maxActiveLeases = 2"));
    // The third provider lease was released again: only the two stored leases hold resources.
    CHECK(f.ssh_state->live_provider_leases().size() == 2);
    CHECK(f.store.list_leases(env.id, {.status = lease_status::active}).size() == 2);
    // Ending one run frees a slot.
    (void)f.orch.release_for_run({.company_id = "acme", .agent_id = std::nullopt, .heartbeat_run_id = "run-1"});
    CHECK(f.acquire("run-3", env.id).lease.status == lease_status::active);
}

TEST_CASE("a policy TTL gives the lease an expiry, reap_expired_leases ends it through the driver",
          "[orchestrator]") {
    fixture f;
    auto const env = f.make_env(driver_kind::ssh, "acme", {{"leaseTtlSeconds", 60}});
    auto const acq = f.acquire("run-1", env.id);
    REQUIRE(acq.lease.expires_at);
    CHECK(*acq.lease.expires_at == f.clock.now() + 60s);

    f.clock.advance(59s);
    CHECK(f.orch.reap_expired_leases().released.empty());

    SECTION("renewal pushes the expiry out") {
        auto const renewed = f.orch.renew_lease(acq.lease);
        CHECK(*renewed.expires_at == f.clock.now() + 60s);
        CHECK(renewed.epoch == acq.lease.epoch);
        f.clock.advance(59s);
        CHECK(f.orch.reap_expired_leases().released.empty());
    }
    SECTION("past the expiry the lease is destroyed and expired, and its holder is fenced out") {
        f.clock.advance(2s);
        auto const reaped = f.orch.reap_expired_leases();
        CHECK(reaped.errors.empty());
        REQUIRE(reaped.released.size() == 1);
        auto const& l = reaped.released[0];
        CHECK(l.status == lease_status::expired);
        CHECK(l.failure_reason == std::optional<std::string>("lease_expired"));
        CHECK(l.cleanup_status == cleanup_status::success);
        CHECK(l.epoch == acq.lease.epoch + 1);
        CHECK(f.ssh_state->live_provider_leases().empty());
        CHECK(f.ssh_state->calls().back() == "destroy:" + acq.lease.id);
        auto const events = f.store.list_activity({.entity_id = acq.lease.id});
        REQUIRE(events.size() == 2);
        CHECK(events[1].action == "environment.lease_expired");
        // The paused holder comes back: execute and renew are refused, nothing changes.
        auto const se = store_error_of([&] { (void)f.orch.execute(env, acq.lease, {.program = "true"}); });
        CHECK(se.code() == store_errc::stale_epoch);
        CHECK(store_error_of([&] { (void)f.orch.renew_lease(acq.lease); }).code() == store_errc::stale_epoch);
        CHECK(f.store.get_lease(acq.lease.id)->status == lease_status::expired);
        // release_for_run finds nothing active to end.
        CHECK(f.orch.release_for_run({.company_id = "acme", .agent_id = std::nullopt, .heartbeat_run_id = "run-1"}).released.empty());
    }
    SECTION("a bad TTL names the value") {
        auto const bad = f.make_env(driver_kind::ssh, "acme", {{"leaseTtlSeconds", "soon"}});
        auto const e = run_error_of([&] { (void)f.acquire("run-2", bad.id); });
        CHECK(e.code() == environment_error_code::lease_acquire_failed);
        CHECK_THAT(e.what(), Catch::Contains("leaseTtlSeconds") && Catch::Contains("soon"));
    }
}

// ---- realize -----------------------------------------------------------------------------------

TEST_CASE("realize_for_run on local: the workspace cwd, the realization on the lease, a local target, "
          "no provisioning on local",
          "[orchestrator]") {
    fixture f;
    auto const acq = f.acquire("run-1");
    auto const r = f.orch.realize_for_run({.env = acq.env,
                                           .lease = acq.lease,
                                           .workspace_cwd = "/srv/work",
                                           .provision_command = "touch /should-not-run"});
    CHECK(r.cwd == "/srv/work");
    CHECK(r.workspace_realization.at("cwd") == "/srv/work");
    CHECK(r.workspace_realization.at("transport") == "local");
    REQUIRE(r.lease.metadata);
    CHECK(r.lease.metadata->at("workspaceRealization") == boost::json::value(r.workspace_realization));
    CHECK(r.lease.metadata->at("driver") == "local");  // merged, not replaced
    auto const stored = f.store.get_lease(acq.lease.id);
    CHECK(stored->metadata->contains("workspaceRealization"));
    CHECK(stored->epoch == acq.lease.epoch);  // metadata is not a transition
    REQUIRE(r.target);
    CHECK(r.target->kind == "local");
    CHECK(r.target->lease_id == acq.lease.id);
    CHECK_FALSE(std::filesystem::exists("/should-not-run"));
}

TEST_CASE("realize_for_run off-local provisions with bash -lc, SHELL=/bin/bash and 300 s", "[orchestrator]") {
    fixture f;
    auto const env = f.make_env(driver_kind::ssh);
    auto const acq = f.acquire("run-1", env.id);
    f.ssh_state->set_realized_cwd("/home/agent/ws");
    auto const r = f.orch.realize_for_run(
        {.env = acq.env, .lease = acq.lease, .workspace_cwd = "/local/ws", .provision_command = "make deps"});
    CHECK(r.cwd == "/home/agent/ws");
    auto const ran = f.ssh_state->executed();
    REQUIRE(ran.size() == 1);
    CHECK(ran[0].program == "bash");
    CHECK(ran[0].args == std::vector<std::string>{"-lc", "make deps"});
    CHECK(ran[0].cwd == std::optional<std::string>("/home/agent/ws"));
    CHECK(ran[0].env == std::map<std::string, std::string>{{"SHELL", "/bin/bash"}});
    CHECK(ran[0].timeout == std::chrono::milliseconds(300000));
    REQUIRE(r.target);
    CHECK(r.target->kind == "fake");

    SECTION("a blank provision command runs nothing") {
        auto const acq2 = f.acquire("run-2", env.id);
        (void)f.orch.realize_for_run(
            {.env = acq2.env, .lease = acq2.lease, .workspace_cwd = "/w", .provision_command = "  \n "});
        CHECK(f.ssh_state->executed().size() == 1);
    }
}

TEST_CASE("provision failures: workspace_realization_failed with the seed's detail", "[orchestrator]") {
    fixture f;
    auto const env = f.make_env(driver_kind::ssh);
    auto const acq = f.acquire("run-1", env.id);
    auto provision = [&] {
        (void)f.orch.realize_for_run(
            {.env = acq.env, .lease = acq.lease, .workspace_cwd = "/w", .provision_command = "./setup"});
    };
    std::string const prefix = "Failed to provision workspace for environment \"ssh-box\" (ssh): ";

    SECTION("exit code with the last lines of stderr, the last one last (issue 20: not the first line)") {
        f.ssh_state->set_execute_result({.exit_code = 3, .stdout_text = "out\n", .stderr_text = "\n  \n  no space left  \nmore\n"});
        auto const e = run_error_of(provision);
        CHECK(e.code() == environment_error_code::workspace_realization_failed);
        CHECK_THAT(std::string(e.what()), Catch::Matchers::StartsWith(prefix + "exit code 3: ") &&
                                              Catch::Matchers::EndsWith("no space left\nmore"));
        CHECK_THAT(std::string(e.what()), !Catch::Matchers::Contains("out"));
    }
    SECTION("stdout when stderr is empty") {
        f.ssh_state->set_execute_result({.exit_code = 1, .stdout_text = "\nmissing tool\n"});
        CHECK(std::string(run_error_of(provision).what()) == prefix + "exit code 1: missing tool");
    }
    SECTION("killed by a signal, no output") {
        f.ssh_state->set_execute_result({.exit_code = std::nullopt, .signal = 9});
        CHECK(std::string(run_error_of(provision).what()) == prefix + "exit code null (signal SIGKILL)");
    }
    SECTION("timed out") {
        f.ssh_state->set_execute_result({.exit_code = std::nullopt, .timed_out = true, .stderr_text = "x"});
        CHECK(std::string(run_error_of(provision).what()) == prefix + "provision command timed out");
    }
    SECTION("the driver's execute throws") {
        f.ssh_state->fail_next("execute", "channel closed");
        CHECK(std::string(run_error_of(provision).what()) == prefix + "channel closed");
    }
}

TEST_CASE("realize and target errors carry their codes, plugin drivers that realize are realized", "[orchestrator]") {
    fixture f;
    SECTION("realize_workspace throws: workspace_realization_failed") {
        auto const env = f.make_env(driver_kind::ssh);
        auto const acq = f.acquire("run-1", env.id);
        f.ssh_state->fail_next("realize_workspace", "mkdir: permission denied");
        auto const e = run_error_of(
            [&] { (void)f.orch.realize_for_run({.env = acq.env, .lease = acq.lease, .workspace_cwd = "/w"}); });
        CHECK(e.code() == environment_error_code::workspace_realization_failed);
        CHECK(std::string(e.what()) ==
              "Failed to realize workspace for environment \"ssh-box\" (ssh): mkdir: permission denied");
    }
    SECTION("execution_target throws: transport_resolution_failed") {
        auto const env = f.make_env(driver_kind::ssh);
        auto const acq = f.acquire("run-1", env.id);
        f.ssh_state->fail_next("execution_target", "no adapter spec");
        auto const e = run_error_of(
            [&] { (void)f.orch.realize_for_run({.env = acq.env, .lease = acq.lease, .workspace_cwd = "/w"}); });
        CHECK(e.code() == environment_error_code::transport_resolution_failed);
        CHECK(std::string(e.what()) == "Failed to resolve execution target for \"ssh-box\": no adapter spec");
    }
    SECTION("plugin: capabilities decide, not the family — a plugin driver that realizes is realized") {
        auto const env = f.make_env(driver_kind::plugin);
        auto const acq = f.acquire("run-1", env.id);
        auto const r = f.orch.realize_for_run({.env = acq.env, .lease = acq.lease, .workspace_cwd = "/w"});
        CHECK(r.cwd == "/w");
        CHECK(r.workspace_realization.at("transport") == "fake");
        auto const calls = f.plugin_state->calls();
        CHECK(std::count(calls.begin(), calls.end(), "realize_workspace:" + acq.lease.id) == 1);
    }
}

// ---- execute -----------------------------------------------------------------------------------

TEST_CASE("execute runs in the leased environment only while the lease is held", "[orchestrator]") {
    fixture f;
    auto const acq = f.acquire("run-1");
    auto const tmp = std::filesystem::temp_directory_path().string();
    auto const r = f.orch.execute(acq.env, acq.lease, {.program = "pwd", .cwd = tmp});
    CHECK(r.exit_code == 0);
    CHECK(r.stdout_text == std::filesystem::canonical(tmp).string() + "\n");

    (void)f.orch.release_for_run({.company_id = "acme", .agent_id = std::nullopt, .heartbeat_run_id = "run-1"});
    auto const e = store_error_of([&] { (void)f.orch.execute(acq.env, acq.lease, {.program = "true"}); });
    CHECK(e.code() == store_errc::stale_epoch);
    CHECK_THAT(e.what(), Catch::Contains(acq.lease.id) && Catch::Contains("released"));
}

// ---- release -----------------------------------------------------------------------------------

TEST_CASE("release_for_run maps the run's outcome to the lease status by policy", "[orchestrator]") {
    struct row {
        run_outcome outcome;
        lease_policy_kind policy;
        lease_status status;
        bool released_at;
    };
    auto const [outcome, policy, status, has_released_at] = GENERATE(
        row{run_outcome::succeeded, lease_policy_kind::ephemeral, lease_status::released, true},
        row{run_outcome::cancelled, lease_policy_kind::ephemeral, lease_status::expired, true},
        row{run_outcome::failed, lease_policy_kind::ephemeral, lease_status::failed, true},
        row{run_outcome::timed_out, lease_policy_kind::ephemeral, lease_status::failed, true},
        row{run_outcome::succeeded, lease_policy_kind::retain_on_failure, lease_status::released, true},
        row{run_outcome::cancelled, lease_policy_kind::retain_on_failure, lease_status::expired, true},
        row{run_outcome::failed, lease_policy_kind::retain_on_failure, lease_status::retained, false},
        row{run_outcome::timed_out, lease_policy_kind::retain_on_failure, lease_status::retained, false});
    CAPTURE(outcome, policy);
    fixture f;
    auto const env = f.make_env(driver_kind::ssh, "acme", {{"leasePolicy", to_string(policy)}});
    auto const acq = f.acquire("run-1", env.id);
    CHECK(acq.lease.lease_policy == policy);
    f.clock.advance(5s);
    auto const res = f.orch.release_for_run(
        {.company_id = "acme", .agent_id = std::string("agent-1"), .heartbeat_run_id = "run-1", .outcome = outcome});
    CHECK(res.errors.empty());
    REQUIRE(res.released.size() == 1);
    auto const& l = res.released[0];
    CHECK(l.status == status);
    CHECK(l.epoch == 2);
    CHECK(l.last_used_at == f.clock.now());
    CHECK(l.released_at.has_value() == has_released_at);
    CHECK(l.cleanup_status == cleanup_status::success);  // the fake reports a clean release
    CHECK(f.ssh_state->calls().back() == "release:" + acq.lease.id + ":" + to_string(status));
    if (outcome == run_outcome::succeeded) CHECK_FALSE(l.failure_reason);
    else CHECK(l.failure_reason == std::optional<std::string>(std::string("run_") + to_string(outcome)));

    auto const events = f.store.list_activity({.run_id = "run-1"});
    REQUIRE(events.size() == 2);
    CHECK(events[1].action == "environment.lease_released");
    CHECK(events[1].details.at("status") == to_string(status));
    CHECK(events[1].details.at("cleanupStatus") == "success");
    CHECK(events[1].details.at("leasePolicy") == to_string(policy));
    CHECK(events[1].details.at("driver") == "ssh");
    CHECK(events[1].details.at("issueId") == "issue-7");
}

TEST_CASE("release_for_run ends only that run's active leases, each with its own event", "[orchestrator]") {
    fixture f;
    auto const ssh = f.make_env(driver_kind::ssh);
    auto const a = f.acquire("run-1", ssh.id);
    auto const b = f.second_lease("run-1");
    auto const other = f.acquire("run-2", ssh.id);
    auto const res = f.orch.release_for_run(
        {.company_id = "acme", .agent_id = std::nullopt, .heartbeat_run_id = "run-1", .failure_reason = "operator_stopped"});
    CHECK(res.errors.empty());
    CHECK(res.released.size() == 2);
    CHECK(f.store.get_lease(a.lease.id)->status == lease_status::released);
    CHECK(f.store.get_lease(b.id)->failure_reason == std::optional<std::string>("operator_stopped"));
    CHECK(f.store.get_lease(other.lease.id)->status == lease_status::active);
    auto const released_events = [&] {
        std::size_t n = 0;
        for (auto const& e : f.store.list_activity({.run_id = "run-1"}))
            n += e.action == "environment.lease_released" && e.details.at("failureReason") == "operator_stopped";
        return n;
    }();
    CHECK(released_events == 2);
    // A second release of the same run is a no-op.
    CHECK(f.orch.release_for_run({.company_id = "acme", .agent_id = std::nullopt, .heartbeat_run_id = "run-1"}).released.empty());
}

TEST_CASE("release_for_run never throws: a failing driver release is collected and the lease still ends",
          "[orchestrator]") {
    fixture f;
    auto const ssh = f.make_env(driver_kind::ssh);
    auto const a = f.acquire("run-1", ssh.id);
    auto const b = f.second_lease("run-1");
    f.ssh_state->fail_next("release", "remote host gone");
    static_assert(noexcept(f.orch.release_for_run(std::declval<release_for_run_request const&>())));
    auto const res =
        f.orch.release_for_run({.company_id = "acme", .agent_id = std::nullopt, .heartbeat_run_id = "run-1", .outcome = run_outcome::failed});
    REQUIRE(res.errors.size() == 1);
    CHECK(res.errors[0].lease_id == a.lease.id);
    CHECK(res.errors[0].code == environment_error_code::lease_cleanup_failed);
    CHECK(res.errors[0].message == "remote host gone");
    CHECK(res.released.size() == 2);
    auto const stored = f.store.get_lease(a.lease.id);
    CHECK(stored->status == lease_status::failed);
    CHECK(stored->cleanup_status == cleanup_status::failed);
    CHECK(f.store.get_lease(b.id)->status == lease_status::failed);
}

TEST_CASE("a lease is released by the driver recorded at acquire, even if the environment changes driver",
          "[orchestrator]") {
    fixture f;
    auto const env = f.make_env(driver_kind::ssh);
    auto const acq = f.acquire("run-1", env.id);
    REQUIRE(f.store.update_environment(env.id, {.driver = driver_kind::plugin}, f.clock.now()));
    auto const res = f.orch.release_for_run({.company_id = "acme", .agent_id = std::nullopt, .heartbeat_run_id = "run-1"});
    CHECK(res.errors.empty());
    CHECK(f.ssh_state->live_provider_leases().empty());
    CHECK(f.plugin_state->calls().empty());
    (void)acq;
}

// ---- run_scope ---------------------------------------------------------------------------------

TEST_CASE("run_scope: acquire, realize, execute in the realized cwd, finish by outcome", "[orchestrator][run_scope]") {
    fixture f;
    auto const tmp = std::filesystem::canonical(std::filesystem::temp_directory_path()).string();
    release_result res;
    {
        run_scope run{f.orch, {.company_id = "acme", .agent_id = std::nullopt, .heartbeat_run_id = "run-1"}};
        CHECK(run.lease().status == lease_status::active);
        run.realize(tmp);
        CHECK(run.lease().metadata->contains("workspaceRealization"));
        auto const r = run.execute({.program = "pwd"});
        CHECK(r.stdout_text == tmp + "\n");
        res = run.finish(run_outcome::succeeded);
        CHECK(run.finished());
        CHECK(run.finish(run_outcome::failed).released.empty());  // idempotent
    }
    REQUIRE(res.released.size() == 1);
    CHECK(res.released[0].status == lease_status::released);
    CHECK(f.store.list_activity({.run_id = "run-1"}).size() == 2);  // the destructor released nothing more
}

TEST_CASE("run_scope releases as failed when unwound by an exception, as expired when abandoned",
          "[orchestrator][run_scope]") {
    fixture f;
    std::string unwound_id;
    try {
        run_scope run{f.orch, {.company_id = "acme", .agent_id = std::nullopt, .heartbeat_run_id = "run-1"}};
        unwound_id = run.lease().id;
        throw std::runtime_error("adapter crashed");
    } catch (std::runtime_error const&) {
    }
    auto const unwound = f.store.get_lease(unwound_id);
    CHECK(unwound->status == lease_status::failed);
    CHECK(unwound->failure_reason == std::optional<std::string>("run_scope_unwound"));

    std::string abandoned_id;
    {
        run_scope run{f.orch, {.company_id = "acme", .agent_id = std::nullopt, .heartbeat_run_id = "run-2"}};
        abandoned_id = run.lease().id;
    }
    auto const abandoned = f.store.get_lease(abandoned_id);
    CHECK(abandoned->status == lease_status::expired);
    CHECK(abandoned->failure_reason == std::optional<std::string>("run_scope_abandoned"));

    SECTION("a scope whose acquire throws holds nothing") {
        auto const env = f.make_env(driver_kind::ssh);
        f.ssh_state->fail_next("acquire", "no capacity");
        CHECK_THROWS_AS((run_scope{f.orch, {.company_id = "acme",
                                            .environment_id = env.id,
                                            .agent_id = std::nullopt,
                                            .heartbeat_run_id = "run-3"}}),
                        environment_run_error);
        CHECK(f.store.list_leases(env.id, {}).empty());
    }
}

TEST_CASE("many runs at once through one orchestrator: every lease acquired and released once", "[orchestrator]") {
    fixture f;
    auto const env = f.make_env(driver_kind::ssh, "acme", {{"maxActiveLeases", 3}});
    // Catch2's assertions are not thread-safe: the threads count, the test thread asserts.
    std::atomic<int> acquired{0}, refused{0}, over_capacity{0}, wrong_code{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 8; ++t)
        ts.emplace_back([&, t] {
            for (int i = 0; i < 25; ++i) {
                auto const run = "run-" + std::to_string(t) + "-" + std::to_string(i);
                try {
                    run_scope scope{f.orch, {.company_id = "acme",
                                             .environment_id = env.id,
                                             .agent_id = std::nullopt,
                                             .heartbeat_run_id = run}};
                    ++acquired;
                    if (f.store.list_leases(env.id, {.status = lease_status::active}).size() > 3) ++over_capacity;
                    (void)scope.finish(run_outcome::succeeded);
                } catch (environment_run_error const& e) {
                    if (e.code() != environment_error_code::lease_acquire_failed) ++wrong_code;
                    ++refused;
                }
            }
        });
    for (auto& t : ts) t.join();
    CHECK(acquired + refused == 200);
    CHECK(acquired > 0);
    CHECK(over_capacity == 0);
    CHECK(wrong_code == 0);
    CHECK(f.store.list_leases(env.id, {.status = lease_status::active}).empty());
    CHECK(f.store.list_leases(env.id, {.limit = no_limit}).size() == static_cast<std::size_t>(acquired.load()));
    CHECK(f.ssh_state->live_provider_leases().empty());
}

TEST_CASE("manual_clock: copies share one time, so a test steers the orchestrator's copy", "[manual_clock]") {
    testing::manual_clock clock;
    CHECK(clock.now() == timestamp::from_micros(1767225600000000));
    auto const copy = clock;
    clock.advance(90s);
    CHECK(copy.now() == timestamp::from_micros(1767225600000000) + 90s);
    copy.set(timestamp::from_micros(42));
    CHECK(clock.now() == timestamp::from_micros(42));

    memory_store store;
    run_orchestrator<local_only_stack> orch{store, clock, local_driver{}};
    clock.advance(1s);
    CHECK(orch.clock().now() == clock.now());
}

// The orchestrator needs nothing beyond the concepts: instantiated whole over the archetypes (the
// smallest types that model them), every member function compiles.
using archetype_stack = stack<drivers<archetypes::driver>, policies<archetypes::policy>,
                              archetypes::persistence_backend, archetypes::clock>;
template class berth::run_orchestrator<archetype_stack>;
template class berth::run_scope<berth::run_orchestrator<archetype_stack>>;

namespace {
/// A store that has lost some environment rows (as a database whose environment was deleted
/// without cascading, upstream #11347) — everything else is the memory store.
struct forgetful_store : memory_store {
    std::set<std::string> forgotten;
    std::optional<environment> get_environment(std::string_view id) const {
        if (forgotten.contains(std::string(id))) return std::nullopt;
        return memory_store::get_environment(id);
    }
};
static_assert(persistence_backend<forgetful_store>);
}  // namespace

TEST_CASE("a lease whose environment row is gone still ends, with cleanup failed and an error", "[orchestrator]") {
    forgetful_store store;
    testing::manual_clock clock;
    fake_ssh ssh;
    run_orchestrator<stack<drivers<local_driver, fake_ssh>, policies<ephemeral>, forgetful_store, testing::manual_clock>>
        orch{store, clock, local_driver{}, ssh};
    auto const env = store.create_environment(
        new_environment{.company_id = "acme", .name = "gone", .driver = driver_kind::ssh}, clock.now());
    auto const acq = orch.acquire_for_run(
        {.company_id = "acme", .environment_id = env.id, .agent_id = std::nullopt, .heartbeat_run_id = "run-1"});
    store.forgotten.insert(env.id);
    auto const res = orch.release_for_run({.company_id = "acme", .agent_id = std::nullopt, .heartbeat_run_id = "run-1"});
    REQUIRE(res.errors.size() == 1);
    CHECK(res.errors[0].code == environment_error_code::lease_cleanup_failed);
    CHECK_THAT(res.errors[0].message, Catch::Contains("no longer exists"));
    REQUIRE(res.released.size() == 1);
    CHECK(res.released[0].status == lease_status::released);
    CHECK(res.released[0].cleanup_status == cleanup_status::failed);
    CHECK(store.get_lease(acq.lease.id)->status == lease_status::released);
}

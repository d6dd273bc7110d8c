// Reusable sandboxes end to end, through the public orchestrator API (issue 17, issue 16's "policies
// own reuse"): the shipped reuse policies' hooks (find_reusable / matches / stamp / lease-aware
// status_for) over the sandbox driver, with the fake provider for every branch and with real
// bubblewrap for "a reused sandbox keeps the previous run's file; another agent never gets it".
#include <catch2/catch.hpp>

#ifdef BERTH_TEST_SANDBOX

#include <berth/drivers/sandbox.hpp>
#include <berth/orchestrator/run_orchestrator.hpp>
#include <berth/policies/ephemeral.hpp>
#include <berth/recovery/recover.hpp>
#include <berth/stores/memory.hpp>
#ifdef BERTH_TEST_SQLITE
#include <berth/stores/sqlite.hpp>
#endif
#ifdef BERTH_TEST_POSTGRES
#include <berth/stores/postgres.hpp>

#include "postgres_fixture.hpp"
#endif
#include <berth/testing/fake_sandbox_provider.hpp>
#include <berth/testing/manual_clock.hpp>

#include <algorithm>
#include <filesystem>
#include <string>
#include <type_traits>
#include <vector>

#include <unistd.h>  // mkdtemp

using namespace berth;
namespace fs = std::filesystem;

namespace {

using testing::fake_sandbox_provider;
template <class Store>
using fake_stack = stack<drivers<sandbox_driver<fake_sandbox_provider>>,
                         policies<ephemeral, reuse_by_environment, reuse_by_execution_workspace>, Store,
                         testing::manual_clock>;

/// Where a store's rows live for one test: nothing for memory and SQLite (":memory:"), a schema
/// of its own on the tests' PostgreSQL server, dropped after the store is gone.
template <class Store>
struct store_place {};
#ifdef BERTH_TEST_POSTGRES
template <>
struct store_place<postgres_store> {
    test::pg::scratch_schema schema;
};
#endif

template <class Store>
Store make_store([[maybe_unused]] store_place<Store>& place) {
    if constexpr (std::is_same_v<Store, memory_store>) return Store{};
#ifdef BERTH_TEST_POSTGRES
    else if constexpr (std::is_same_v<Store, postgres_store>) return Store::open(place.schema.conninfo());
#endif
    else return Store::open(":memory:");
}

bool called(std::vector<std::string> const& calls, std::string const& call) {
    return std::find(calls.begin(), calls.end(), call) != calls.end();
}
long count_prefix(std::vector<std::string> const& calls, std::string const& prefix) {
    return std::count_if(calls.begin(), calls.end(), [&](auto const& c) { return c.rfind(prefix, 0) == 0; });
}

template <class Store>
struct basic_fixture {
    store_place<Store> place;
    Store store = make_store<Store>(place);
    testing::manual_clock clock;
    fake_sandbox_provider fake;
    std::shared_ptr<fake_sandbox_provider::state> state = fake.shared_state();
    run_orchestrator<fake_stack<Store>> orch{store, clock, sandbox_driver<fake_sandbox_provider>{fake}};
    environment env = make_env({{"provider", "fake"}, {"reuseLease", true}, {"leasePolicy", "reuse_by_environment"}});
    int runs = 0;

    environment make_env(json_object config) {
        return store.create_environment(new_environment{.company_id = "acme",
                                                        .name = "sandbox-" + std::to_string(++runs),
                                                        .driver = driver_kind::sandbox,
                                                        .config = std::move(config)},
                                        clock.now());
    }
    void set_config(json_object config) {
        REQUIRE(store.update_environment(env.id, {.config = std::move(config)}, clock.now()));
    }
    /// acquire_for_run of a new run of `agent` in execution workspace `ew`.
    acquisition acquire(nullable<std::string> agent, std::optional<std::string> ew = "ew-1",
                        std::optional<std::string> issue = "issue-1") {
        clock.advance(std::chrono::seconds(1));  // newest first is by last_used_at
        return orch.acquire_for_run({.company_id = "acme",
                                     .environment_id = env.id,
                                     .agent_id = std::move(agent),
                                     .heartbeat_run_id = "run-" + std::to_string(++runs),
                                     .issue_id = std::move(issue),
                                     .execution_workspace_id = std::move(ew)});
    }
    environment_lease end(acquisition const& a, run_outcome outcome = run_outcome::succeeded) {
        auto const r = orch.release_for_run({.company_id = "acme",
                                             .agent_id = nullable<std::string>(std::nullopt),
                                             .heartbeat_run_id = *a.lease.heartbeat_run_id,
                                             .outcome = outcome});
        REQUIRE(r.errors.empty());
        REQUIRE(r.released.size() == 1);
        return r.released[0];
    }
    environment_lease lease(std::string const& id) { return *store.get_lease(id); }
};
using fixture = basic_fixture<memory_store>;

nullable<std::string> agent(char const* a) { return nullable<std::string>(std::string(a)); }

}  // namespace

TEST_CASE("sandbox reuse through the orchestrator: a successful run keeps its sandbox, the next run of the same "
          "agent and workspace resumes it",
          "[sandbox][sandbox-reuse][orchestrator]") {
    fixture f;
    auto const first = f.acquire(agent("agent-a"));
    CHECK(first.lease.policy_name == "reuse_by_environment");
    REQUIRE(first.lease.metadata->contains(reusable_sandbox_lease_key));
    CHECK(first.lease.reuse_scope == "execution_workspace:ew-1/agent:agent-a");
    auto const id = *first.lease.provider_lease_id;

    // Release keeps it: the lease is retained (resumable, released_at null), nothing is cleaned up.
    auto const kept = f.end(first);
    CHECK(kept.status == lease_status::retained);
    CHECK_FALSE(kept.released_at);
    CHECK_FALSE(kept.failure_reason);
    CHECK_FALSE(kept.cleanup_status);
    CHECK(f.state->live() == std::set<std::string>{id});

    auto const second = f.acquire(agent("agent-a"));
    CHECK(called(f.state->calls(), "resume:" + id));
    CHECK(count_prefix(f.state->calls(), "acquire:") == 1);
    CHECK(second.lease.id != first.lease.id);
    CHECK(second.lease.provider_lease_id == id);
    CHECK(second.lease.status == lease_status::active);
    // The kept lease handed its sandbox over: it ends released, naming its successor.
    CHECK(f.lease(first.lease.id).status == lease_status::released);
    auto const acquired = f.store.list_activity({.entity_id = second.lease.id});
    REQUIRE(acquired.size() == 1);
    CHECK(acquired[0].details.at("resumedLeaseId") == first.lease.id.c_str());

    // Another agent in the same workspace never gets it: a sandbox of its own; agent-a's is kept.
    CHECK(f.end(second).status == lease_status::retained);
    auto const other = f.acquire(agent("agent-b"));
    CHECK(other.lease.provider_lease_id != id);
    CHECK(count_prefix(f.state->calls(), "resume:") == 1);
    CHECK(f.lease(second.lease.id).status == lease_status::retained);
    // Nor does the same agent in another execution workspace.
    auto const elsewhere = f.acquire(agent("agent-a"), "ew-2");
    CHECK(elsewhere.lease.provider_lease_id != id);
    CHECK(elsewhere.lease.provider_lease_id != other.lease.provider_lease_id);
    CHECK(count_prefix(f.state->calls(), "resume:") == 1);
    CHECK(f.state->live().size() == 3);
}

#ifdef BERTH_TEST_SQLITE
TEST_CASE("sandbox reuse through the orchestrator on SQLite: kept, resumed, destroyed, retried",
          "[sandbox][sandbox-reuse][orchestrator][sqlite_store]") {
    basic_fixture<sqlite_store> f;
    auto const first = f.acquire(agent("agent-a"));
    auto const kept = f.end(first);
    CHECK(kept.status == lease_status::retained);
    CHECK_FALSE(kept.released_at);
    auto const second = f.acquire(agent("agent-a"));
    CHECK(second.lease.provider_lease_id == kept.provider_lease_id);
    CHECK(f.lease(kept.id).status == lease_status::released);
    auto const kept2 = f.end(second);
    REQUIRE(kept2.status == lease_status::retained);

    f.state->fail_next("destroy", "provider unreachable");
    auto const r = f.orch.destroy_reusable_leases({.company_id = "acme", .execution_workspace_id = "ew-1"});
    REQUIRE(r.errors.size() == 1);
    CHECK(f.lease(kept2.id).status == lease_status::pending_cleanup);
    CHECK(f.lease(kept2.id).cleanup_status == cleanup_status::failed);
    auto const report = recover(f.orch);
    CHECK(report.cleanup_retried == 1);
    CHECK(f.lease(kept2.id).status == lease_status::expired);
    CHECK(f.lease(kept2.id).failure_reason == "reusable_lease_destroyed");
    CHECK(f.state->live().empty());
}
#endif

#ifdef BERTH_TEST_POSTGRES
// The reuse flow where several orchestrator hosts share one database: the scope's uniqueness is
// the database's partial unique index (environment_leases_reuse_scope_active_idx), the hand-over
// of a kept lease to its successor and the destroy retried by recovery are PostgreSQL writes.
TEST_CASE("sandbox reuse through the orchestrator on PostgreSQL: kept, resumed, one per scope, destroyed, retried",
          "[sandbox][sandbox-reuse][orchestrator][postgres_store]") {
    basic_fixture<postgres_store> f;
    auto const first = f.acquire(agent("agent-a"));
    CHECK(first.lease.reuse_scope == "execution_workspace:ew-1/agent:agent-a");
    auto const kept = f.end(first);
    CHECK(kept.status == lease_status::retained);
    CHECK_FALSE(kept.released_at);

    // Resumed by the next run of the same agent and workspace; the kept lease ends released.
    auto const second = f.acquire(agent("agent-a"));
    CHECK(second.lease.provider_lease_id == kept.provider_lease_id);
    CHECK(f.lease(kept.id).status == lease_status::released);
    auto const acquired = f.store.list_activity({.entity_id = second.lease.id});
    REQUIRE(acquired.size() == 1);
    CHECK(acquired[0].details.at("resumedLeaseId") == kept.id.c_str());

    // A concurrent run in the same scope is refused by the database, and its new sandbox undone.
    CHECK_THROWS_AS(f.acquire(agent("agent-a")), environment_run_error);
    CHECK(f.state->live() == std::set<std::string>{*kept.provider_lease_id});
    CHECK(f.store.list_leases(f.env.id, lease_filter{.status = lease_status::active}).size() == 1);

    auto const kept2 = f.end(second);
    REQUIRE(kept2.status == lease_status::retained);
    f.state->fail_next("destroy", "provider unreachable");
    auto const r = f.orch.destroy_reusable_leases({.company_id = "acme", .execution_workspace_id = "ew-1"});
    REQUIRE(r.errors.size() == 1);
    CHECK(f.lease(kept2.id).status == lease_status::pending_cleanup);
    CHECK(f.lease(kept2.id).cleanup_status == cleanup_status::failed);
    auto const report = recover(f.orch);
    CHECK(report.cleanup_retried == 1);
    CHECK(f.lease(kept2.id).status == lease_status::expired);
    CHECK(f.lease(kept2.id).failure_reason == "reusable_lease_destroyed");
    CHECK(f.state->live().empty());
}
#endif

TEST_CASE("sandbox reuse through the orchestrator: the gate (reuseLease, agent, execution workspace, policy)",
          "[sandbox][sandbox-reuse][orchestrator]") {
    fixture f;
    auto check_not_reused = [&](acquisition const& a) {
        CHECK_FALSE(a.lease.metadata->contains(reusable_sandbox_lease_key));
        auto const ended = f.end(a);
        CHECK(ended.status == lease_status::released);  // ended as ephemeral: the sandbox is gone
        CHECK(ended.cleanup_status == cleanup_status::success);
        CHECK(f.state->live().count(*a.lease.provider_lease_id) == 0);
    };
    SECTION("no agent") { check_not_reused(f.acquire(nullable<std::string>(std::nullopt))); }
    SECTION("no execution workspace") { check_not_reused(f.acquire(agent("agent-a"), std::nullopt)); }
    SECTION("reuseLease false") {
        f.set_config({{"provider", "fake"}, {"reuseLease", false}, {"leasePolicy", "reuse_by_environment"}});
        check_not_reused(f.acquire(agent("agent-a")));
    }
    SECTION("an ephemeral environment") {
        f.set_config({{"provider", "fake"}, {"reuseLease", true}, {"leasePolicy", "ephemeral"}});
        check_not_reused(f.acquire(agent("agent-a")));
    }
    // ... and a run that does not pass the gate never resumes a kept sandbox either.
    SECTION("a kept sandbox is not resumed by a run without an agent") {
        auto const kept = f.end(f.acquire(agent("agent-a")));
        REQUIRE(kept.status == lease_status::retained);
        check_not_reused(f.acquire(nullable<std::string>(std::nullopt)));
        CHECK(f.lease(kept.id).status == lease_status::retained);
        CHECK(f.state->live() == std::set<std::string>{*kept.provider_lease_id});
        CHECK(count_prefix(f.state->calls(), "resume:") == 0);
    }
}

TEST_CASE("sandbox reuse through the orchestrator: a fingerprint mismatch destroys the kept sandbox",
          "[sandbox][sandbox-reuse][orchestrator]") {
    fixture f;
    auto const kept = f.end(f.acquire(agent("agent-a")));
    REQUIRE(kept.status == lease_status::retained);
    auto const id = *kept.provider_lease_id;
    f.set_config({{"provider", "fake"}, {"reuseLease", true}, {"leasePolicy", "reuse_by_environment"}, {"image", "alpine"}});

    SECTION("destroy succeeds: expired, cleanup success") {
        auto const next = f.acquire(agent("agent-a"));
        CHECK(called(f.state->calls(), "destroy:" + id));
        CHECK(count_prefix(f.state->calls(), "resume:") == 0);
        CHECK(next.lease.provider_lease_id != id);
        auto const old = f.lease(kept.id);
        CHECK(old.status == lease_status::expired);
        CHECK(old.cleanup_status == cleanup_status::success);
        CHECK(old.failure_reason == "lease_fingerprint_mismatch");
        CHECK(f.state->live() == std::set<std::string>{*next.lease.provider_lease_id});
    }
    SECTION("destroy fails: pending_cleanup, cleanup failed, and recover() retries it") {
        f.state->fail_next("destroy", "provider unreachable");
        auto const next = f.acquire(agent("agent-a"));
        CHECK(next.lease.provider_lease_id != id);  // the run goes on with a new sandbox
        auto const old = f.lease(kept.id);
        CHECK(old.status == lease_status::pending_cleanup);
        CHECK(old.cleanup_status == cleanup_status::failed);
        CHECK(old.failure_reason == "lease_fingerprint_mismatch");
        CHECK(f.state->live().count(id) == 1);

        auto const report = recover(f.orch);
        CHECK(report.cleanup_retried == 1);
        auto const retried = f.lease(kept.id);
        CHECK(retried.status == lease_status::expired);
        CHECK(retried.cleanup_status == cleanup_status::success);
        CHECK(f.state->live().count(id) == 0);
    }
}

TEST_CASE("sandbox reuse through the orchestrator: a failed resume destroys the kept sandbox and acquires anew",
          "[sandbox][sandbox-reuse][orchestrator]") {
    fixture f;
    auto const kept = f.end(f.acquire(agent("agent-a")));
    auto const id = *kept.provider_lease_id;
    SECTION("resume throws") { f.state->fail_next("resume", "sandbox vanished"); }
    SECTION("resume returns no provider lease id") { f.state->resume_without_id_next(); }
    auto const next = f.acquire(agent("agent-a"));
    CHECK(called(f.state->calls(), "resume:" + id));
    CHECK(called(f.state->calls(), "destroy:" + id));
    CHECK(next.lease.provider_lease_id != id);
    CHECK(count_prefix(f.state->calls(), "acquire:") == 2);
    auto const old = f.lease(kept.id);
    CHECK(old.status == lease_status::expired);
    CHECK(old.cleanup_status == cleanup_status::success);
    CHECK(old.failure_reason == "resume_failed");
    CHECK(f.state->live() == std::set<std::string>{*next.lease.provider_lease_id});
}

TEST_CASE("sandbox reuse through the orchestrator: a cancelled or failed run's sandbox is destroyed at release",
          "[sandbox][sandbox-reuse][orchestrator]") {
    fixture f;
    auto const a = f.acquire(agent("agent-a"));
    SECTION("cancelled: expired, lease_expired") {
        auto const ended = f.end(a, run_outcome::cancelled);
        CHECK(ended.status == lease_status::expired);
        CHECK(ended.failure_reason == "lease_expired");
        CHECK(ended.cleanup_status == cleanup_status::success);
    }
    SECTION("failed: failed, adapter_or_run_failure") {
        auto const ended = f.end(a, run_outcome::failed);
        CHECK(ended.status == lease_status::failed);
        CHECK(ended.failure_reason == "adapter_or_run_failure");
    }
    CHECK(called(f.state->calls(), "destroy:" + *a.lease.provider_lease_id));
    CHECK(f.state->live().empty());
    // Nothing is left to resume: the next run gets a new sandbox.
    auto const next = f.acquire(agent("agent-a"));
    CHECK(next.lease.provider_lease_id != a.lease.provider_lease_id);
    CHECK(count_prefix(f.state->calls(), "resume:") == 0);
}

TEST_CASE("sandbox reuse through the orchestrator: one active lease per scope, the refused run leaks nothing",
          "[sandbox][sandbox-reuse][orchestrator]") {
    fixture f;
    auto const kept = f.end(f.acquire(agent("agent-a")));
    auto const running = f.acquire(agent("agent-a"));  // resumes the kept sandbox
    REQUIRE(running.lease.provider_lease_id == kept.provider_lease_id);
    // A second concurrent run of the same agent and workspace: nothing to resume (the active lease
    // is another run's), and the store refuses a second lease in the scope; its new sandbox is undone.
    CHECK_THROWS_AS(f.acquire(agent("agent-a")), environment_run_error);
    CHECK(f.state->live() == std::set<std::string>{*kept.provider_lease_id});
    // The kept lease handed its sandbox over (released): never resumed nor destroyed again.
    CHECK(count_prefix(f.state->calls(), "resume:") == 1);
    CHECK_FALSE(called(f.state->calls(), "destroy:" + *kept.provider_lease_id));
    // Another agent runs beside it.
    auto const b = f.acquire(agent("agent-b"));
    CHECK(b.lease.status == lease_status::active);
    CHECK(f.state->live().size() == 2);
}

TEST_CASE("sandbox reuse through the orchestrator: reuse_by_execution_workspace shares a workspace's sandbox "
          "between agents",
          "[sandbox][sandbox-reuse][orchestrator]") {
    fixture f;
    f.set_config({{"provider", "fake"}, {"reuseLease", true}, {"leasePolicy", "reuse_by_execution_workspace"}});
    auto const kept = f.end(f.acquire(agent("agent-a")));
    REQUIRE(kept.status == lease_status::retained);
    CHECK(kept.reuse_scope == "execution_workspace:ew-1");
    auto const b = f.acquire(agent("agent-b"));
    CHECK(b.lease.provider_lease_id == kept.provider_lease_id);
    // stamp: the resumed lease speaks for the agent that holds it now.
    CHECK(b.lease.metadata->at("agentId") == "agent-b");
    CHECK(b.lease.metadata->at(reusable_sandbox_lease_key).at("agentId") == "agent-b");
    CHECK(f.end(b).status == lease_status::retained);
    // Another workspace: another sandbox.
    auto const c = f.acquire(agent("agent-a"), "ew-2");
    CHECK(c.lease.provider_lease_id != kept.provider_lease_id);
}

TEST_CASE("destroy_reusable_leases: a closed workspace's or terminal issue's kept sandboxes are destroyed",
          "[sandbox][sandbox-reuse][orchestrator]") {
    fixture f;
    auto const a1 = f.end(f.acquire(agent("agent-a"), "ew-1", "issue-1"));
    auto const a2 = f.end(f.acquire(agent("agent-a"), "ew-2", "issue-2"));
    auto const b1 = f.end(f.acquire(agent("agent-b"), "ew-1", "issue-1"));
    auto const live = f.acquire(agent("agent-c"), "ew-1", "issue-1");  // a run in progress
    REQUIRE(f.state->live().size() == 4);

    // Neither an issue nor a workspace: nothing (upstream needs at least one scope).
    CHECK(f.orch.destroy_reusable_leases({.company_id = "acme"}).released.empty());
    // Another company's request touches nothing of acme's.
    CHECK(f.orch.destroy_reusable_leases({.company_id = "other", .execution_workspace_id = "ew-1"}).released.empty());

    auto const closed = f.orch.destroy_reusable_leases(
        {.company_id = "acme", .execution_workspace_id = "ew-1", .reason = "execution_workspace_closed"});
    CHECK(closed.errors.empty());
    REQUIRE(closed.released.size() == 2);
    for (auto const& id : {a1.id, b1.id}) {
        auto const l = f.lease(id);
        CHECK(l.status == lease_status::expired);
        CHECK(l.cleanup_status == cleanup_status::success);
        CHECK(l.failure_reason == "execution_workspace_closed");
        CHECK(f.state->live().count(*l.provider_lease_id) == 0);
    }
    CHECK(f.lease(a2.id).status == lease_status::retained);
    CHECK(f.lease(live.lease.id).status == lease_status::active);  // left to its run

    SECTION("by issue") {
        auto const r = f.orch.destroy_reusable_leases({.company_id = "acme", .issue_id = "issue-2",
                                                       .reason = "issue_terminal_done"});
        REQUIRE(r.released.size() == 1);
        CHECK(r.released[0].id == a2.id);
        CHECK(f.lease(a2.id).failure_reason == "issue_terminal_done");
        CHECK(f.state->live() == std::set<std::string>{*live.lease.provider_lease_id});
    }
    SECTION("a failed destroy leaves pending_cleanup, destroyed by the next call") {
        f.state->fail_next("destroy", "provider unreachable");
        auto const r = f.orch.destroy_reusable_leases({.company_id = "acme", .issue_id = "issue-2"});
        REQUIRE(r.errors.size() == 1);
        auto const pending = f.lease(a2.id);
        CHECK(pending.status == lease_status::pending_cleanup);
        CHECK(pending.cleanup_status == cleanup_status::failed);
        CHECK(pending.failure_reason == "reusable_lease_destroyed");
        auto const again = f.orch.destroy_reusable_leases({.company_id = "acme", .issue_id = "issue-2"});
        CHECK(again.errors.empty());
        CHECK(f.lease(a2.id).status == lease_status::expired);
        CHECK(f.state->live().count(*a2.provider_lease_id) == 0);
    }
}

// ---- real bubblewrap -----------------------------------------------------------------------------

namespace {

using bwrap_stack = stack<drivers<sandbox_driver<bubblewrap>>, policies<ephemeral, reuse_by_environment>, memory_store,
                          testing::manual_clock>;

struct bwrap_fixture {
    fs::path root = make_root();
    memory_store store;
    testing::manual_clock clock;
    bubblewrap bw{{.state_root = (root / "state").string()}};
    run_orchestrator<bwrap_stack> orch{store, clock, sandbox_driver<bubblewrap>{bw}};
    environment env = store.create_environment(
        new_environment{.company_id = "acme",
                        .name = "bwrap",
                        .driver = driver_kind::sandbox,
                        .config = {{"provider", "bubblewrap"}, {"reuseLease", true}, {"leasePolicy", "reuse_by_environment"}}},
        clock.now());
    int runs = 0;

    bwrap_fixture() { fs::create_directories(root / "ws"); }
    ~bwrap_fixture() {
        std::error_code ec;
        fs::remove_all(root, ec);
    }
    bwrap_fixture(bwrap_fixture const&) = delete;
    bwrap_fixture& operator=(bwrap_fixture const&) = delete;
    static fs::path make_root() {
        std::string tmpl = (fs::temp_directory_path() / "berth-reuse-test-XXXXXX").string();
        if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        return tmpl;
    }

    /// One run of `who` in execution workspace ew-1: acquire, realize, run `script`, release.
    std::pair<environment_lease, command_result> run(char const* who, std::string const& script) {
        clock.advance(std::chrono::seconds(1));
        auto const run_id = "run-" + std::to_string(++runs);
        auto a = orch.acquire_for_run({.company_id = "acme",
                                       .environment_id = env.id,
                                       .agent_id = agent(who),
                                       .heartbeat_run_id = run_id,
                                       .execution_workspace_id = "ew-1"});
        auto const r = orch.realize_for_run({.env = a.env, .lease = a.lease, .workspace_cwd = (root / "ws").string()});
        auto const out = orch.execute(a.env, r.lease, {.program = "sh", .args = {"-c", script}, .cwd = r.cwd,
                                                        .timeout = std::chrono::seconds(30)});
        auto const rel = orch.release_for_run({.company_id = "acme",
                                               .agent_id = nullable<std::string>(std::nullopt),
                                               .heartbeat_run_id = run_id});
        REQUIRE(rel.errors.empty());
        REQUIRE(rel.released.size() == 1);
        return {rel.released[0], out};
    }
};

}  // namespace

TEST_CASE("bubblewrap reuse through the orchestrator: the same agent and workspace find their file, another agent "
          "never does",
          "[sandbox][sandbox-reuse][bubblewrap][orchestrator]") {
    bwrap_fixture f;
    auto const [first, wrote] = f.run("agent-a", "echo remembered > ~/note && echo scratch > /tmp/t");
    REQUIRE(wrote.exit_code == 0);
    CHECK(first.status == lease_status::retained);
    CHECK(fs::exists(f.bw.lease_directory(first.provider_lease_id)));

    auto const [second, read] = f.run("agent-a", "cat ~/note /tmp/t");
    CHECK(second.provider_lease_id == first.provider_lease_id);
    CHECK(read.exit_code == 0);
    CHECK(read.stdout_text == "remembered\nscratch\n");

    auto const [other, peek] = f.run("agent-b", "cat ~/note /tmp/t");
    CHECK(other.provider_lease_id != first.provider_lease_id);
    CHECK(peek.exit_code != 0);
    CHECK(peek.stdout_text.empty());

    // The workspace is closed: both kept sandboxes go, with their state.
    auto const closed = f.orch.destroy_reusable_leases(
        {.company_id = "acme", .execution_workspace_id = "ew-1", .reason = "execution_workspace_closed"});
    CHECK(closed.errors.empty());
    CHECK(closed.released.size() == 2);
    CHECK(fs::is_empty(f.root / "state"));
}

#endif  // BERTH_TEST_SANDBOX

// Lease holders, renewal and recover() (issue 15), over the memory store and the SQLite store,
// with real dead processes as holders: a holder is dead when its pid no longer runs the process
// that acquired the lease; a lease is reaped when its TTL passed; a failed cleanup leaves the lease
// pending_cleanup until a later recovery's cleanup succeeds; a run whose lease was taken learns it.
#include <catch2/catch.hpp>

#include "git_fixture.hpp"

#include <berth/berth.hpp>
#include <berth/drivers/local.hpp>
#include <berth/process/proc.hpp>
#include <berth/recovery/recover.hpp>
#include <berth/stores/memory.hpp>
#include <berth/testing/fake_driver.hpp>
#include <berth/testing/manual_clock.hpp>
#ifdef BERTH_TEST_SQLITE
#include <berth/stores/sqlite.hpp>
#endif

#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include <sys/wait.h>
#include <unistd.h>

using namespace berth;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

using fake_ssh = testing::fake_driver<driver_kind::ssh>;

/// A holder that existed and is gone: a child process, its start time read while it ran, reaped.
lease_holder dead_holder() {
    pid_t const pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::pause();
        ::_exit(0);
    }
    auto const start = process::pid_start_time(pid);
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    REQUIRE(start);
    return lease_holder{process::host_identity(), pid, *start};
}

template <class Store>
struct recovery_fixture {
    using stack_t = stack<drivers<local_driver, fake_ssh>, policies<ephemeral>, Store, testing::manual_clock>;
    Store& store;
    testing::manual_clock clock{};
    fake_ssh ssh{};
    std::shared_ptr<fake_ssh::state> ssh_state = ssh.shared_state();
    run_orchestrator<stack_t> orch{store, clock, local_driver{}, ssh};
    environment ssh_env = store.create_environment(
        new_environment{.company_id = "acme", .name = "ssh-box", .driver = driver_kind::ssh}, clock.now());

    /// An active lease of `run` as some holder wrote it (another process, another host).
    environment_lease lease_of(std::string const& run, std::optional<lease_holder> holder,
                               std::optional<timestamp> expires_at, bool on_ssh = false) {
        std::string env_id = on_ssh ? ssh_env.id : orch.resolve_environment({.company_id = "acme"}).id;
        new_lease nl{.id = new_id(),
                     .company_id = "acme",
                     .environment_id = env_id,
                     .heartbeat_run_id = run,
                     .provider = on_ssh ? "fake" : "local",
                     .expires_at = expires_at};
        if (holder) set_holder(nl, *holder);
        return store.acquire_lease(nl, clock.now(), std::nullopt);
    }
};

template <class Store>
void check_recovery(Store& store) {
    recovery_fixture<Store> f{store};

    auto const dead = f.lease_of("run-dead", dead_holder(), f.clock.now() + 1h);
    auto const live = f.lease_of("run-live", this_process_holder(), f.clock.now() + 1h);
    auto const far = f.lease_of("run-far", lease_holder{"other-machine:other-boot", 1, 1}, f.clock.now() + 1h);
    auto const stale = f.lease_of("run-stale", lease_holder{"other-machine:other-boot", 2, 2}, f.clock.now() - 1s);
    auto const nobody = f.lease_of("run-nobody", std::nullopt, std::nullopt);

    auto const report = recover(f.orch);
    CHECK(report.errors.empty());
    CHECK(report.holder_lost == 1);
    CHECK(report.expired == 1);
    CHECK(report.left_alive == 1);  // the live holder's; the far and holderless ones are not even read
    auto const d = *store.get_lease(dead.id);
    CHECK(d.status == lease_status::expired);
    CHECK(d.failure_reason == std::optional<std::string>("holder_lost"));
    CHECK(d.cleanup_status == cleanup_status::success);
    CHECK(d.epoch == dead.epoch + 1);
    auto const s = *store.get_lease(stale.id);
    CHECK(s.status == lease_status::expired);
    CHECK(s.failure_reason == std::optional<std::string>("lease_expired"));
    CHECK(store.get_lease(live.id)->status == lease_status::active);
    CHECK(store.get_lease(far.id)->status == lease_status::active);
    CHECK(store.get_lease(nobody.id)->status == lease_status::active);
    auto const events = store.list_activity({.entity_id = dead.id});
    REQUIRE(events.size() == 1);
    CHECK(events[0].action == "environment.lease_expired");
    CHECK(events[0].details.at("failureReason") == "holder_lost");

    // A second recovery finds nothing more to do.
    auto const again = recover(f.orch);
    CHECK(again.ended.empty());
    CHECK(again.errors.empty());

    SECTION("a failed cleanup is pending_cleanup, retried by the next recovery until it succeeds") {
        auto const remote = f.lease_of("run-remote", dead_holder(), f.clock.now() + 1h, true);
        f.ssh_state->fail_next("destroy", "host unreachable");
        auto const first = recover(f.orch);
        REQUIRE(first.errors.size() == 1);
        CHECK(first.errors[0].message == "host unreachable");
        auto const p = *store.get_lease(remote.id);
        CHECK(p.status == lease_status::pending_cleanup);
        CHECK(p.cleanup_status == cleanup_status::failed);
        CHECK(p.failure_reason == std::optional<std::string>("holder_lost"));

        f.ssh_state->fail_next("destroy", "still unreachable");
        auto const second = recover(f.orch);
        CHECK(second.errors.size() == 1);
        CHECK(second.cleanup_retried == 1);
        CHECK(store.get_lease(remote.id)->status == lease_status::pending_cleanup);
        CHECK(store.get_lease(remote.id)->epoch == p.epoch);  // unchanged until it succeeds

        auto const third = recover(f.orch);
        CHECK(third.errors.empty());
        auto const done = *store.get_lease(remote.id);
        CHECK(done.status == lease_status::expired);
        CHECK(done.cleanup_status == cleanup_status::success);
        CHECK(done.failure_reason == std::optional<std::string>("holder_lost"));
        CHECK(f.ssh_state->live_provider_leases().empty());
    }
}

}  // namespace

TEST_CASE("acquire records this process as the lease's holder", "[crash][holder]") {
    memory_store store;
    testing::manual_clock clock;
    run_orchestrator<stack<drivers<local_driver>, policies<ephemeral>, memory_store, testing::manual_clock>> orch{
        store, clock, local_driver{}};
    auto const acq =
        orch.acquire_for_run({.company_id = "acme", .agent_id = std::nullopt, .heartbeat_run_id = "run-1"});
    CHECK(acq.lease.holder_host == process::host_identity());
    CHECK(acq.lease.holder_pid == static_cast<std::int64_t>(::getpid()));
    CHECK(acq.lease.holder_start_time == process::pid_start_time(::getpid()));
    CHECK(liveness_of_holder(acq.lease) == holder_liveness::alive);
    // The default TTL: a dead holder on another host strands the lease for minutes, not forever.
    REQUIRE(acq.lease.expires_at);
    CHECK(*acq.lease.expires_at == clock.now() + 600s);

    SECTION("a run id that holds an active lease is refused, naming that lease") {
        try {
            (void)orch.acquire_for_run({.company_id = "acme", .agent_id = std::nullopt, .heartbeat_run_id = "run-1"});
            FAIL("acquired a second lease for run-1");
        } catch (environment_run_error const& e) {
            CHECK(e.code() == environment_error_code::lease_acquire_failed);
            CHECK_THAT(e.what(), Catch::Contains("run \"run-1\" already holds active lease " + acq.lease.id));
        }
        CHECK(store.get_lease(acq.lease.id)->status == lease_status::active);  // untouched
        (void)orch.release_for_run({.company_id = "acme", .agent_id = std::nullopt, .heartbeat_run_id = "run-1"});
        CHECK(orch.acquire_for_run({.company_id = "acme", .agent_id = std::nullopt, .heartbeat_run_id = "run-1"})
                  .lease.status == lease_status::active);
    }
    SECTION("a reused pid is not the holder") {
        auto other = acq.lease;
        other.holder_start_time = *acq.lease.holder_start_time + 1;
        CHECK(liveness_of_holder(other) == holder_liveness::dead);
        other.holder_host = "another-machine:boot";
        CHECK(liveness_of_holder(other) == holder_liveness::unknown);
        auto const dot = process::host_identity().rfind(':');
        other.holder_host = process::host_identity().substr(0, dot) + ":an-earlier-boot";
        CHECK(liveness_of_holder(other) == holder_liveness::dead);
    }
}

TEST_CASE("recover ends the leases of dead holders and expired leases, and only those (memory store)",
          "[crash][recover]") {
    memory_store store;
    check_recovery(store);
}

#ifdef BERTH_TEST_SQLITE
TEST_CASE("recover ends the leases of dead holders and expired leases, and only those (SQLite store)",
          "[crash][recover]") {
    test::temp_dir dir("berth-recover");
    auto store = sqlite_store::open((dir / "berth.db").string());
    check_recovery(store);
}
#endif

TEST_CASE("a run whose lease is reaped while it works learns it: renewal stops, finish reports it",
          "[crash][renewal]") {
    memory_store store;
    auto const env = store.ensure_local_environment("acme", system_clock{}.now());
    (void)store.update_environment(env.id, {.config = json_object{{"leaseTtlSeconds", 1}}}, system_clock{}.now());
    using stack_t = stack<drivers<local_driver>, policies<ephemeral>, memory_store>;
    run_orchestrator<stack_t> orch{store, local_driver{}};
    std::atomic<bool> told{false};
    run_scope run{orch, {.company_id = "acme", .agent_id = std::nullopt, .heartbeat_run_id = "run-1"},
                  [&](std::string const&) { told = true; }};
    auto const first_expiry = *run.lease().expires_at;

    SECTION("renewed while it lives: a 1 s lease outlives 1.5 s, and no sweep reaps it") {
        std::this_thread::sleep_for(1500ms);
        CHECK(orch.reap_expired_leases().released.empty());
        auto const now = *store.get_lease(run.lease().id);
        CHECK(now.status == lease_status::active);
        CHECK(*now.expires_at > first_expiry);
        CHECK(now.epoch == run.lease().epoch);
        auto const r = run.finish(run_outcome::succeeded);
        CHECK(r.errors.empty());
        CHECK_FALSE(told);
    }
    SECTION("reaped under it (the renewal/expiry race): on_lost, execute fenced, finish is an error") {
        // Another process ends the lease first (as a recovery that judged it expired would).
        auto const held = *store.get_lease(run.lease().id);
        (void)store.transition_lease({.id = held.id,
                                      .expected_epoch = held.epoch,
                                      .to = lease_status::expired,
                                      .failure_reason = "lease_expired"},
                                     system_clock{}.now(), std::nullopt);
        auto const deadline = std::chrono::steady_clock::now() + 3s;
        while (!told && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
        CHECK(told);
        CHECK(run.lost());
        try {
            (void)run.execute({.program = "true"});
            FAIL("executed without the lease");
        } catch (store_error const& e) {
            CHECK(e.code() == store_errc::stale_epoch);
        }
        auto const r = run.finish(run_outcome::succeeded);
        CHECK(r.released.empty());
        REQUIRE(r.errors.size() == 1);
        CHECK(r.errors[0].code == environment_error_code::lease_release_failed);
        CHECK_THAT(r.errors[0].message, Catch::Contains("was lost while its run held it"));
        CHECK(store.get_lease(held.id)->status == lease_status::expired);
    }
}

TEST_CASE("recover removes the worktree of a dead run that was to remove it, and keeps a kept one",
          "[crash][recover][workspace_lock]") {
    test::temp_dir dir("berth-recover");
    auto const repo = dir / "repo";
    test::make_repo(repo);
    memory_store store;
    using stack_t = stack<drivers<local_driver>, policies<ephemeral>, memory_store>;
    run_orchestrator<stack_t> orch{store, local_driver{}};
    auto request = [&](std::string issue, bool remove) {
        return realize_workspace_request{
            .base = {.base_cwd = repo.string(), .project_id = "proj-1"},
            .strategy = {.type = workspace_strategy_type::git_worktree},
            .issue = workspace_issue{.id = issue, .identifier = issue, .title = "t"},
            .agent = {.id = std::nullopt, .name = "test", .company_id = "acme"},
            .remove_when_run_ends = remove};
    };
    // Two runs that "died": their scopes never finished (leases rewritten to a dead holder below),
    // their worktrees still there; the first was to be removed at its end, the second kept.
    std::string removed_path, kept_path;
    for (auto const& [run_id, remove] : {std::pair{std::string("run-a"), true}, std::pair{std::string("run-b"), false}}) {
        auto const acq = orch.acquire_for_run({.company_id = "acme", .agent_id = std::nullopt, .heartbeat_run_id = run_id});
        auto r = orch.realize_for_run({.env = acq.env,
                                       .lease = acq.lease,
                                       .workspace_cwd = repo.string(),
                                       .workspace = request(run_id == "run-a" ? "ENG-A" : "ENG-B", remove)});
        test::write_file(fs::path(r.cwd) / "work.txt", "work of " + run_id + "\n");
        (remove ? removed_path : kept_path) = r.cwd;
        // The holder dies: the lease is re-acquired in the store as the dead process held it.
        (void)store.transition_lease({.id = acq.lease.id, .expected_epoch = acq.lease.epoch, .to = lease_status::released},
                                     system_clock{}.now(), std::nullopt);
        new_lease nl{.id = new_id(), .company_id = "acme", .environment_id = acq.env.id, .heartbeat_run_id = run_id,
                     .provider = "local"};
        set_holder(nl, dead_holder());
        (void)store.acquire_lease(nl, system_clock{}.now(), std::nullopt);
    }
    auto const report = recover(orch);
    CHECK(report.errors.empty());
    CHECK(report.holder_lost == 2);
    CHECK_FALSE(fs::exists(removed_path));
    CHECK(test::git(repo, {"branch", "--list", "ENG-A-t"}).empty());
    REQUIRE(report.workspaces_cleaned.size() == 1);
    CHECK(report.workspaces_cleaned[0] == removed_path);
    CHECK(fs::exists(fs::path(kept_path) / "work.txt"));  // --keep: intact
}

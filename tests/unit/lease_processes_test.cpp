// What a lease leaves running on this host is found by its BERTH_LEASE_ID and ended: the
// sweeper (berth/process/lease_processes.hpp) and the local driver's release and destroy.

#include <catch2/catch.hpp>

#include <berth/drivers/local.hpp>
#include <berth/model/ids.hpp>
#include <berth/process/child.hpp>
#include <berth/process/lease_processes.hpp>
#include <berth/process/proc.hpp>
#include <berth/process/spawn.hpp>

#include <chrono>
#include <string>
#include <thread>

#include <unistd.h>

using namespace berth;
using namespace std::chrono_literals;

namespace {

bool runs(pid_t pid) { return process::pid_start_time(pid).has_value(); }  // a zombie runs nothing

bool ends_within(pid_t pid, std::chrono::milliseconds limit) {
    auto const end = std::chrono::steady_clock::now() + limit;
    while (runs(pid)) {
        if (std::chrono::steady_clock::now() > end) return false;
        std::this_thread::sleep_for(10ms);
    }
    return true;
}

/// A process carrying BERTH_LEASE_ID=`lease_id` that left its parent's session and process group
/// (what PR_SET_PDEATHSIG and a process-group kill do not reach). Returns its pid.
pid_t detached_process_of(std::string const& lease_id) {
    auto const r = process::run({.program = "/bin/sh",
                                 .args = {"-c", "setsid sleep 60 </dev/null >/dev/null 2>&1 & echo $!"},
                                 .env = {{std::string(process::lease_variable), lease_id}},
                                 .timeout = 20s},
                                {.inherit_sanitized_environment = true});
    REQUIRE(r.exit_code == 0);
    auto const pid = static_cast<pid_t>(std::stol(r.stdout_text));
    REQUIRE(runs(pid));
    return pid;
}

/// A holder that started and is gone: a real process's pid and start time.
process::lease_starter dead_starter() {
    auto c = process::child::start({.program = "/bin/sleep", .args = {"0.05"}});
    auto const start = process::pid_start_time(c.pid());
    auto const pid = c.pid();
    (void)c.wait();
    REQUIRE(start);
    return {.at = process::lease_starter::where::here, .pid = pid, .start_time = *start};
}

process::lease_starter this_process() {
    auto const pid = static_cast<std::int64_t>(::getpid());
    return {.at = process::lease_starter::where::here, .pid = pid, .start_time = *process::pid_start_time(pid)};
}

}  // namespace

TEST_CASE("the sweeper ends a lease's detached processes, and only that lease's", "[lease_processes]") {
    auto const x = "lease-" + new_id(), y = "lease-" + new_id();
    auto const a = detached_process_of(x), a2 = detached_process_of(x), b = detached_process_of(y);
    process::lease_process_sweeper sweeper;
    CHECK(sweeper.end_processes_of(x, {}));
    CHECK(ends_within(a, 5s));
    CHECK(ends_within(a2, 5s));
    CHECK(runs(b));  // another lease's process is left alone
    CHECK(sweeper.end_processes_of(y, {}));
    CHECK(ends_within(b, 5s));
    CHECK(sweeper.end_processes_of("lease-" + new_id(), {}));  // a lease with none: nothing to do
}

TEST_CASE("the sweeper reuses its pass only for a starter that was gone before it", "[lease_processes]") {
    auto const gone = dead_starter();
    process::lease_process_sweeper sweeper;
    auto const x = "lease-" + new_id();
    auto const a = detached_process_of(x);
    CHECK(sweeper.end_processes_of(x, gone));
    CHECK(ends_within(a, 5s));
    CHECK(sweeper.passes() == 1);

    // Recovery of many leases whose holders died before the pass: one pass for all of them.
    for (int i = 0; i < 20; ++i) CHECK(sweeper.end_processes_of("lease-" + new_id(), gone));
    CHECK(sweeper.passes() == 1);
    CHECK(sweeper.end_processes_of("lease-" + new_id(), {.at = process::lease_starter::where::elsewhere}));
    CHECK(sweeper.passes() == 1);

    // A live starter may have started processes since the pass: a new pass finds them.
    auto const z = "lease-" + new_id();
    auto const c = detached_process_of(z);
    CHECK(sweeper.end_processes_of(z, this_process()));
    CHECK(sweeper.passes() == 2);
    CHECK(ends_within(c, 5s));

    // So may a starter nobody knows.
    auto const u = "lease-" + new_id();
    auto const d = detached_process_of(u);
    CHECK(sweeper.end_processes_of(u, {}));
    CHECK(sweeper.passes() == 3);
    CHECK(ends_within(d, 5s));
}

namespace {
berth::environment local_env() {
    berth::environment e{};
    e.id = "env-1";
    e.company_id = "company-1";
    e.name = "Local";
    e.driver = berth::driver_kind::local;
    return e;
}
berth::environment_lease fresh_lease() {
    berth::environment_lease l{};
    l.id = "lease-" + new_id();
    l.company_id = "company-1";
    l.environment_id = "env-1";
    l.provider = "local";
    return l;
}
}  // namespace

TEST_CASE("local execute: every command carries its lease id, which cmd.env cannot change", "[lease_processes][local_driver]") {
    local_driver const driver;
    auto const lease = fresh_lease();
    auto const r = driver.execute(local_env(), lease, {.program = "printenv", .args = {"BERTH_LEASE_ID"}});
    CHECK(r.stdout_text == lease.id + "\n");
    auto const hidden = driver.execute(local_env(), lease,
                                       {.program = "printenv", .args = {"BERTH_LEASE_ID"}, .env = {{"BERTH_LEASE_ID", "x"}}});
    CHECK(hidden.stdout_text == lease.id + "\n");
}

TEST_CASE("local release keeps a finished run's background processes, and ends an interrupted run's",
          "[lease_processes][local_driver]") {
    local_driver const driver;
    auto const env = local_env();
    auto const lease = fresh_lease();
    auto const started = driver.execute(
        env, lease, {.program = "/bin/sh", .args = {"-c", "setsid sleep 60 </dev/null >/dev/null 2>&1 & echo $!"}});
    REQUIRE(started.exit_code == 0);
    auto const pid = static_cast<pid_t>(std::stol(started.stdout_text));
    REQUIRE(runs(pid));

    auto const ok = driver.release(env, lease, lease_status::released);
    CHECK_FALSE(ok.cleanup_status);
    CHECK(runs(pid));  // a run that ended well: what it left in the background is its own (upstream)

    SECTION("expired (cancelled) or failed: ended") {
        auto const to = GENERATE(lease_status::expired, lease_status::failed);
        auto const out = driver.release(env, lease, to);
        CHECK_FALSE(out.cleanup_status);  // nothing left: the outcome local leases always had
        CHECK(ends_within(pid, 5s));
    }
    SECTION("destroy (recovery of a dead holder's lease): ended, cleanup success") {
        auto const out = driver.destroy(env, lease);
        REQUIRE(out.cleanup_status);
        CHECK(*out.cleanup_status == cleanup_status::success);
        CHECK(ends_within(pid, 5s));
    }
}

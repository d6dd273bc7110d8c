// Issue 15's two data-loss scenarios, with real git and real processes:
//  1. a run killed while `git worktree add` ran left a half-made worktree (and a git still working
//     in it); the next run of the same issue reused it as complete and the orphan then removed it.
//  2. two runs of the same issue at once: the first to finish removed the worktree under the other.
// Plus the process layer's half of it: the processes berth starts die with the thread that runs them.
#include <catch2/catch.hpp>

#include "git_fixture.hpp"

#include <berth/process/proc.hpp>
#include <berth/stores/memory.hpp>
#include <berth/workspace.hpp>

#include <csignal>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <sys/wait.h>
#include <unistd.h>

using namespace berth;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

workspace_runtime crash_runtime(std::chrono::milliseconds lock_wait = 300ms) {
    return workspace_runtime(workspace_runtime_options{.git = {.environment = test::git_test_env()},
                                                       .shell = "/bin/sh",
                                                       .command_environment = test::git_test_env(),
                                                       .lock_wait = lock_wait});
}

realize_workspace_request issue_request(fs::path const& repo, std::string identifier = "ENG-15") {
    return {.base = {.base_cwd = repo.string(), .project_id = "proj-1"},
            .strategy = {.type = workspace_strategy_type::git_worktree},
            .issue = workspace_issue{.id = "issue-15", .identifier = identifier, .title = "crash"},
            .agent = {.id = "agent-1", .name = "coder", .company_id = "company-1"}};
}

bool wait_until_dead(pid_t pid, std::chrono::milliseconds within) {
    auto const end = std::chrono::steady_clock::now() + within;
    while (std::chrono::steady_clock::now() < end) {
        if (!process::pid_start_time(pid)) return true;
        std::this_thread::sleep_for(10ms);
    }
    return !process::pid_start_time(pid);
}

}  // namespace

TEST_CASE("data loss 2: a second run of the same issue waits for the first, then fails naming it",
          "[crash][workspace_lock]") {
    test::temp_dir dir("berth-crash");
    auto const repo = dir / "repo";
    test::make_repo(repo);
    auto const rt = crash_runtime();
    memory_store store;
    workspace_manager wm{store, rt};

    auto first = wm.realize(issue_request(repo), {.company_id = "company-1", .heartbeat_run_id = "run-1"});
    REQUIRE(first.realized.lock);
    test::write_file(fs::path(first.realized.cwd) / "work.txt", "the first run's work\n");

    // The second run of the same issue cannot have the worktree while the first holds it.
    auto const t0 = std::chrono::steady_clock::now();
    CHECK_THROWS_WITH(wm.realize(issue_request(repo), {.company_id = "company-1", .heartbeat_run_id = "run-2"}),
                      Catch::Contains("is in use by another run (pid " + std::to_string(::getpid())) &&
                          Catch::Contains(first.realized.cwd) && Catch::Contains("waited 300 ms"));
    CHECK(std::chrono::steady_clock::now() - t0 >= 300ms);

    // Another process sees the lock too (flock(1) from util-linux, a process of its own).
    auto const lock_file = first.realized.lock->path();
    auto const probe = process::run({.program = "flock", .args = {"-n", lock_file, "true"}},
                                    {.inherit_sanitized_environment = true});
    CHECK(probe.exit_code == 1);

    // A cleanup that does not hold the lock (another run's, a recovery) leaves the worktree alone.
    auto const foreign = wm.cleanup(first.record.id, {.heartbeat_run_id = "run-2"});
    CHECK_FALSE(foreign.result.cleaned);
    REQUIRE(foreign.result.warnings.size() == 1);
    CHECK_THAT(foreign.result.warnings[0], Catch::Contains("another live run holds it (pid"));
    CHECK(fs::exists(fs::path(first.realized.cwd) / "work.txt"));
    CHECK(test::git(repo, {"branch", "--list", "ENG-15-crash"}).find("ENG-15-crash") != std::string::npos);

    // The holder's own cleanup removes it, and once the holder lets go the next run gets a fresh one.
    auto const done = wm.cleanup(first.record.id, {.heartbeat_run_id = "run-1", .held_lock = first.realized.lock});
    CHECK(done.result.cleaned);
    CHECK(done.result.warnings.empty());
    first.realized.lock.reset();
    auto const second = wm.realize(issue_request(repo), {.company_id = "company-1", .heartbeat_run_id = "run-2"});
    CHECK(second.realized.created);
    CHECK_FALSE(fs::exists(fs::path(second.realized.cwd) / "work.txt"));
}

TEST_CASE("data loss 2: a run waiting for the worktree gets it when the holder lets go in time",
          "[crash][workspace_lock]") {
    test::temp_dir dir("berth-crash");
    auto const repo = dir / "repo";
    test::make_repo(repo);
    auto const rt = crash_runtime(10s);
    auto first = rt.realize(issue_request(repo));
    std::thread holder([&] {
        std::this_thread::sleep_for(200ms);
        first.lock.reset();
    });
    auto const t0 = std::chrono::steady_clock::now();
    auto const second = rt.realize(issue_request(repo));
    holder.join();
    CHECK(std::chrono::steady_clock::now() - t0 >= 150ms);
    CHECK_FALSE(second.created);  // the first run kept its worktree (no cleanup): reused, complete
}

TEST_CASE("data loss 1: a worktree whose creation did not finish is made again, its orphaned git killed",
          "[crash][workspace_lock]") {
    test::temp_dir dir("berth-crash");
    auto const repo = dir / "repo";
    test::make_repo(repo);
    auto const rt = crash_runtime();
    auto const head = test::git(repo, {"rev-parse", "HEAD"});

    // What a run killed during `git worktree add -b` leaves: the branch, a worktree git has not
    // finished (its admin dir still `locked: initializing`), berth's creation marker, and the
    // orphaned git still working in it (here a long sleep named "git").
    auto const worktree = repo / ".berth/worktrees/ENG-15-crash";
    fs::create_directories(worktree.parent_path());
    test::git(repo, {"worktree", "add", "-q", "-b", "ENG-15-crash", worktree.string(), "HEAD"});
    auto const admin = test::git(repo, {"rev-parse", "--path-format=absolute", "--git-common-dir"});
    std::ofstream(fs::path(admin) / "worktrees/ENG-15-crash/locked") << "initializing";
    fs::remove(worktree / "README.md");  // checkout cut short
    test::write_file(worktree / "half.txt", "half-made\n");
    auto const lock_file = workspace_lock::path_for(admin, worktree.string());
    fs::create_directories(lock_file.parent_path());
    std::ofstream(fs::path(lock_file).replace_extension(".creating"))
        << "branch=ENG-15-crash\nbranchCreated=1\nbaseSha=" << head << "\n";
    auto const fake_git = dir / "bin/git";
    fs::create_directories(fake_git.parent_path());
    fs::copy_file("/bin/sleep", fake_git);
    pid_t const orphan = ::fork();
    REQUIRE(orphan >= 0);
    if (orphan == 0) {
        ::setpgid(0, 0);
        if (::chdir(worktree.c_str()) != 0) ::_exit(1);
        ::execl(fake_git.c_str(), "git", "30", static_cast<char*>(nullptr));
        ::_exit(127);
    }
    std::this_thread::sleep_for(50ms);  // exec'd: its comm is "git", its cwd the worktree

    auto const ws = rt.realize(issue_request(repo));
    CHECK(ws.created);  // made again, never "(reused)"
    CHECK(ws.branch_created);
    CHECK(fs::exists(worktree / "README.md"));
    CHECK_FALSE(fs::exists(worktree / "half.txt"));
    CHECK_FALSE(fs::exists(fs::path(lock_file).replace_extension(".creating")));
    REQUIRE_FALSE(ws.warnings.empty());
    CHECK_THAT(ws.warnings[0], Catch::Contains("Discarded the unfinished worktree") &&
                                   Catch::Contains("creation marker"));
    int status = 0;
    CHECK(::waitpid(orphan, &status, 0) == orphan);  // killed, so that it cannot remove the new one
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL);
    CHECK_FALSE(fs::exists(fs::path(admin) / "worktrees/ENG-15-crash/locked"));
}

TEST_CASE("data loss 1: git's own 'locked: initializing' is enough to refuse reuse", "[crash][workspace_lock]") {
    test::temp_dir dir("berth-crash");
    auto const repo = dir / "repo";
    test::make_repo(repo);
    auto const rt = crash_runtime();
    auto const worktree = repo / ".berth/worktrees/ENG-15-crash";
    fs::create_directories(worktree.parent_path());
    test::git(repo, {"worktree", "add", "-q", "-b", "ENG-15-crash", worktree.string(), "HEAD"});
    auto const admin = test::git(repo, {"rev-parse", "--path-format=absolute", "--git-common-dir"});
    std::ofstream(fs::path(admin) / "worktrees/ENG-15-crash/locked") << "initializing";
    auto const ws = rt.realize(issue_request(repo));
    CHECK(ws.created);
    CHECK_FALSE(ws.branch_created);  // no marker: the branch is not known to be berth's, so it is kept and attached
    REQUIRE_FALSE(ws.warnings.empty());
    CHECK_THAT(ws.warnings[0], Catch::Contains("locked: initializing"));
}

TEST_CASE("the processes berth runs die with the thread that waits for them (PR_SET_PDEATHSIG)",
          "[crash][process]") {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    pid_t const runner = ::fork();
    REQUIRE(runner >= 0);
    if (runner == 0) {
        ::close(fds[0]);
        // A berth process running a long command; it reports the command's pid, then waits.
        (void)process::run({.program = "/bin/sh",
                            .args = {"-c", "echo $$; exec sleep 30"},
                            .timeout = 60s,
                            .on_output = [&](output_stream, std::string_view chunk) {
                                (void)!::write(fds[1], chunk.data(), chunk.size());
                            }});
        ::_exit(0);
    }
    ::close(fds[1]);
    char buf[32] = {};
    auto const n = ::read(fds[0], buf, sizeof buf - 1);
    ::close(fds[0]);
    REQUIRE(n > 0);
    pid_t const command = static_cast<pid_t>(std::stol(std::string(buf, static_cast<std::size_t>(n))));
    REQUIRE(process::pid_start_time(command));
    ::kill(runner, SIGKILL);  // berth dies without a chance to clean up
    int status = 0;
    REQUIRE(::waitpid(runner, &status, 0) == runner);
    CHECK(wait_until_dead(command, 2s));  // the kernel killed its command; no orphan keeps running
}

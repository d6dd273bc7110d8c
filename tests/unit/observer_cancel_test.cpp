// The orchestrator's progress reports (an observer in the stack) and cancellation of its long
// steps (std::stop_token): events arrive in the order of the run, with the commands' output as it
// comes; a cancelled command or provisioning ends its processes, and the lease is released.
#include <catch2/catch.hpp>

#include <berth/berth.hpp>
#include <berth/drivers/local.hpp>
#include <berth/stores/memory.hpp>

#include "git_fixture.hpp"
#include "recording_observer.hpp"

#include <chrono>
#include <csignal>
#include <fstream>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

using berth::test::recording_observer;

using observed_stack = berth::stack<berth::drivers<berth::local_driver>, berth::policies<berth::ephemeral>,
                                    berth::memory_store, berth::system_clock, recording_observer>;
using plain_stack = berth::stack<berth::drivers<berth::local_driver>, berth::policies<berth::ephemeral>,
                                 berth::memory_store>;
static_assert(std::is_same_v<plain_stack::observer_type, berth::no_observer>);

/// Events without the output lines (their chunking is the pipe's), and the output joined per step.
std::vector<std::string> steps_of(std::vector<std::string> const& lines) {
    std::vector<std::string> out;
    for (auto const& l : lines)
        if (!l.starts_with("output ")) out.push_back(l.substr(0, l.find(' ', l.find(' ') + 1)));
    return out;
}
std::string output_of(std::vector<std::string> const& lines, std::string const& step) {
    std::string out;
    for (auto const& l : lines)
        if (l.starts_with("output " + step + " ")) out += l.substr(std::string("output " + step + " ").size());
    return out;
}

bool process_gone(int pid) {
    if (::kill(pid, 0) != 0) return true;
    // A zombie waiting for init counts as gone: it runs nothing.
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(stat, line);
    auto const close = line.rfind(')');
    return close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'Z';
}

std::vector<int> pids_in(std::filesystem::path const& file) {
    std::vector<int> pids;
    std::ifstream in(file);
    for (int p = 0; in >> p;) pids.push_back(p);
    return pids;
}

bool eventually_gone(std::vector<int> const& pids) {
    for (auto deadline = std::chrono::steady_clock::now() + 5s; std::chrono::steady_clock::now() < deadline;) {
        bool all = true;
        for (int p : pids) all = all && process_gone(p);
        if (all) return true;
        std::this_thread::sleep_for(20ms);
    }
    return false;
}

}  // namespace

TEST_CASE("observer: a full local run in a worktree reports each step in order, with live output",
          "[observer]") {
    berth::test::temp_dir dir("berth-observer");
    auto const repo = dir / "repo";
    berth::test::make_repo(repo, 1);
    berth::memory_store store;
    recording_observer obs;
    berth::run_orchestrator<observed_stack> orch{store, berth::system_clock{}, obs, berth::local_driver{}};

    {
        berth::run_scope run{orch, {.company_id = "acme", .agent_id = std::nullopt, .heartbeat_run_id = "run-1",
                                    .issue_id = "OBS-1"}};
        auto const& real = run.realize(berth::realize_workspace_request{
            .base = {.base_cwd = repo.string(), .project_id = "p1"},
            .strategy = {.type = berth::workspace_strategy_type::git_worktree,
                         .provision_command = "echo provisioning; echo warn >&2"},
            .issue = berth::workspace_issue{.id = "OBS-1", .identifier = "OBS-1", .title = std::nullopt},
            .agent = {.id = std::nullopt, .name = "test", .company_id = "acme"}});
        REQUIRE(real.workspace);
        auto const r = run.execute({.program = "sh", .args = {"-c", "echo hello; echo oops >&2"}});
        CHECK(r.exit_code == 0);
        CHECK(r.stdout_text == "hello\n");  // the observer sees the output; the caller still gets it
        (void)run.finish(berth::run_outcome::succeeded);
    }

    auto const lines = obs.events->lines;
    CHECK(steps_of(lines) == std::vector<std::string>{"started acquire", "ended acquire", "started worktree",
                                                      "ended worktree", "started realize", "ended realize",
                                                      "started execute", "ended execute", "started release",
                                                      "ended release"} );
    CHECK(output_of(lines, "provision").find("provisioning\n") != std::string::npos);
    CHECK(output_of(lines, "provision").find("warn\n") != std::string::npos);
    CHECK(output_of(lines, "execute").find("hello\n") != std::string::npos);
    CHECK(output_of(lines, "execute").find("oops\n") != std::string::npos);
    for (auto const& l : lines)
        if (l.starts_with("ended ")) CHECK_THAT(l, Catch::Contains(" ok "));
    bool saw_exit = false;
    for (auto const& l : lines) saw_exit = saw_exit || l == "ended execute ok exit 0";
    CHECK(saw_exit);
}

TEST_CASE("observer: a failing step ends failed with its error", "[observer]") {
    berth::memory_store store;
    recording_observer obs;
    berth::run_orchestrator<observed_stack> orch{store, berth::system_clock{}, obs, berth::local_driver{}};
    berth::run_scope run{orch, {.company_id = "acme", .agent_id = std::nullopt, .heartbeat_run_id = "run-2"}};
    CHECK_THROWS(run.realize(berth::realize_workspace_request{
        .base = {.base_cwd = "/nonexistent/berth-observer", .project_id = "p1"},
        .strategy = {.type = berth::workspace_strategy_type::git_worktree},
        .issue = berth::workspace_issue{.id = "X-1", .identifier = "X-1", .title = std::nullopt},
        .agent = {.id = std::nullopt, .name = "test", .company_id = "acme"}}));
    auto const lines = obs.events->lines;
    REQUIRE(lines.size() >= 4);
    CHECK_THAT(lines[2], Catch::StartsWith("started worktree "));
    CHECK_THAT(lines[3], Catch::StartsWith("ended worktree failed "));
}

TEST_CASE("cancellation: a command whose stop is requested ends with its processes, the lease released",
          "[cancel]") {
    berth::test::temp_dir dir("berth-cancel-exec");
    auto const pidfile = dir / "pids";
    berth::memory_store store;
    berth::run_orchestrator<plain_stack> orch{store, berth::local_driver{}};
    std::stop_source stop;
    berth::command_result r;
    {
        berth::run_scope run{orch, {.company_id = "acme", .agent_id = std::nullopt, .heartbeat_run_id = "run-c1"}};
        run.realize(dir.str());
        std::jthread canceller([&] {
            for (int i = 0; i < 500 && pids_in(pidfile).size() < 2; ++i) std::this_thread::sleep_for(10ms);
            stop.request_stop();
        });
        auto const started = std::chrono::steady_clock::now();
        r = run.execute({.program = "sh",
                         .args = {"-c", "echo $$ > '" + pidfile.string() + "'; sleep 30 & echo $! >> '" +
                                            pidfile.string() + "'; wait"},
                         .timeout = 60s,
                         .stop = stop.get_token()});
        CHECK(std::chrono::steady_clock::now() - started < 20s);
        (void)run.finish(berth::run_outcome::cancelled);
    }
    CHECK(r.cancelled);
    CHECK_FALSE(r.timed_out);
    CHECK(r.signal == SIGTERM);
    auto const pids = pids_in(pidfile);
    REQUIRE(pids.size() == 2);
    CHECK(eventually_gone(pids));  // the shell and its background sleep: the whole group
    auto const leases = store.list_run_leases("run-c1", {});
    REQUIRE(leases.size() == 1);
    CHECK(leases[0].status == berth::lease_status::expired);  // ephemeral, cancelled: upstream's `expired`
    CHECK(leases[0].failure_reason == "run_cancelled");
    CHECK(store.list_run_leases("run-c1", {.status = berth::lease_status::active}).empty());
}

TEST_CASE("cancellation: a stop requested before the command starts ends it at once", "[cancel]") {
    berth::memory_store store;
    berth::run_orchestrator<plain_stack> orch{store, berth::local_driver{}};
    berth::run_scope run{orch, {.company_id = "acme", .agent_id = std::nullopt, .heartbeat_run_id = "run-c2"}};
    std::stop_source stop;
    stop.request_stop();
    auto const started = std::chrono::steady_clock::now();
    auto const r = run.execute({.program = "sleep", .args = {"30"}, .stop = stop.get_token()});
    CHECK(r.cancelled);
    CHECK(std::chrono::steady_clock::now() - started < 10s);
    (void)run.finish(berth::run_outcome::cancelled);
}

TEST_CASE("cancellation: provisioning a worktree ends its command, realize fails and the lease is released",
          "[cancel]") {
    berth::test::temp_dir dir("berth-cancel-prov");
    auto const repo = dir / "repo";
    berth::test::make_repo(repo, 1);
    auto const pidfile = dir / "pids";
    berth::memory_store store;
    recording_observer obs;
    berth::run_orchestrator<observed_stack> orch{store, berth::system_clock{}, obs, berth::local_driver{}};
    std::stop_source stop;
    std::jthread canceller([&] {
        for (int i = 0; i < 1000 && pids_in(pidfile).size() < 2; ++i) std::this_thread::sleep_for(10ms);
        stop.request_stop();
    });
    std::string message;
    try {
        berth::run_scope run{orch, {.company_id = "acme", .agent_id = std::nullopt, .heartbeat_run_id = "run-c3",
                                    .issue_id = "CAN-1"}};
        (void)run.realize(berth::realize_workspace_request{
            .base = {.base_cwd = repo.string(), .project_id = "p1"},
            .strategy = {.type = berth::workspace_strategy_type::git_worktree,
                         .provision_command = "echo $$ > '" + pidfile.string() + "'; sleep 30 & echo $! >> '" +
                                              pidfile.string() + "'; wait"},
            .issue = berth::workspace_issue{.id = "CAN-1", .identifier = "CAN-1", .title = std::nullopt},
            .agent = {.id = std::nullopt, .name = "test", .company_id = "acme"},
            .stop = stop.get_token()});
    } catch (berth::environment_run_error const& e) {
        CHECK(e.code() == berth::environment_error_code::workspace_realization_failed);
        message = e.what();
    }
    CHECK_THAT(message, Catch::Contains("cancelled"));
    auto const pids = pids_in(pidfile);
    REQUIRE(pids.size() == 2);
    CHECK(eventually_gone(pids));
    auto const leases = store.list_run_leases("run-c3", {});
    REQUIRE(leases.size() == 1);
    CHECK(leases[0].status != berth::lease_status::active);  // run_scope unwound: released by policy
    auto const ops = store.list_operations({.heartbeat_run_id = "run-c3"});
    bool provision_failed = false;
    for (auto const& op : ops)
        provision_failed = provision_failed || (op.phase == berth::workspace_operation_phase::workspace_provision &&
                                                op.status == berth::workspace_operation_status::failed);
    CHECK(provision_failed);
    bool step_failed = false;
    for (auto const& l : obs.events->lines) step_failed = step_failed || l.starts_with("ended worktree failed ");
    CHECK(step_failed);
}

TEST_CASE("cancellation: git worktree add is ended, and what it made is discarded, never reused as complete",
          "[cancel]") {
    berth::test::temp_dir dir("berth-cancel-git");
    auto const repo = dir / "repo";
    berth::test::make_repo(repo, 1);
    // A real hook that git runs at the end of `worktree add`, after its checkout: by then git's own
    // "initializing" lock is gone, so only berth's creation marker says the worktree is unfinished.
    auto const pidfile = dir / "hook.pid";
    auto const hook = repo / ".git" / "hooks" / "post-checkout";
    berth::test::write_file(hook, "#!/bin/sh\necho $$ > '" + pidfile.string() + "'\nexec sleep 30\n");
    std::filesystem::permissions(hook, std::filesystem::perms::owner_all);
    berth::memory_store store;
    recording_observer obs;
    berth::run_orchestrator<observed_stack> orch{store, berth::system_clock{}, obs, berth::local_driver{}};
    auto request = [&](std::stop_token stop) {
        return berth::realize_workspace_request{
            .base = {.base_cwd = repo.string(), .project_id = "p1"},
            .strategy = {.type = berth::workspace_strategy_type::git_worktree},
            .issue = berth::workspace_issue{.id = "CAN-2", .identifier = "CAN-2", .title = std::nullopt},
            .agent = {.id = std::nullopt, .name = "test", .company_id = "acme"},
            .stop = std::move(stop)};
    };
    std::stop_source stop;
    std::chrono::steady_clock::time_point requested{};
    std::jthread canceller([&] {
        for (int i = 0; i < 1500 && pids_in(pidfile).empty(); ++i) std::this_thread::sleep_for(10ms);
        requested = std::chrono::steady_clock::now();
        stop.request_stop();
    });
    std::string message;
    std::chrono::steady_clock::time_point ended{};
    try {
        berth::run_scope run{orch, {.company_id = "acme", .agent_id = std::nullopt, .heartbeat_run_id = "run-g1",
                                    .issue_id = "CAN-2"}};
        (void)run.realize(request(stop.get_token()));
    } catch (berth::environment_run_error const& e) {
        ended = std::chrono::steady_clock::now();
        CHECK(e.code() == berth::environment_error_code::workspace_realization_failed);
        message = e.what();
    }
    canceller.join();
    CHECK_THAT(message, Catch::Contains("git worktree add") && Catch::Contains("cancelled"));
    CHECK(ended - requested < 5s);  // not the hook's 30 s
    auto const pids = pids_in(pidfile);
    REQUIRE(pids.size() == 1);
    CHECK(eventually_gone(pids));  // the hook, in git's process group

    // Nothing half-made is left: no directory, no worktree entry, no branch.
    auto const worktrees = berth::test::git(repo, {"worktree", "list", "--porcelain"});
    CHECK(worktrees.find(".berth/worktrees") == std::string::npos);
    CHECK(berth::test::git(repo, {"branch", "--list", "CAN-2*"}).empty());
    std::error_code ec;
    CHECK(std::filesystem::is_empty(repo / ".berth" / "worktrees", ec));
    auto const leases = store.list_run_leases("run-g1", {});
    REQUIRE(leases.size() == 1);
    CHECK(leases[0].status != berth::lease_status::active);

    // The next run creates the worktree anew (it is not taken for a complete one and reused).
    std::filesystem::remove(hook);
    berth::run_scope again{orch, {.company_id = "acme", .agent_id = std::nullopt, .heartbeat_run_id = "run-g2",
                                  .issue_id = "CAN-2"}};
    auto const& realized = again.realize(request({}));
    REQUIRE(realized.workspace);
    CHECK(realized.workspace->created);
    CHECK(std::filesystem::exists(std::filesystem::path(realized.workspace->cwd) / "README.md"));
}

TEST_CASE("provisioning failures report the last lines of the output, not the first", "[observer][provision]") {
    std::string noise;
    for (int i = 1; i <= 60; ++i) noise += "profile noise line " + std::to_string(i) + "\n";
    berth::command_result const r{.exit_code = 3, .stderr_text = noise + "error: the real cause\n"};
    auto const detail = berth::detail::provision_failure_detail(r);
    CHECK_THAT(detail, Catch::StartsWith("exit code 3: "));
    CHECK_THAT(detail, Catch::EndsWith("error: the real cause"));
    CHECK_THAT(detail, !Catch::Contains("profile noise line 1\n"));
    CHECK(berth::last_lines("a\n\nb\n  \nc\n", 2) == "b\nc");
    CHECK(berth::last_lines("", 5).empty());
    CHECK(berth::detail::provision_failure_detail({.cancelled = true}) == "provision command cancelled");

    berth::test::temp_dir dir("berth-provision-tail");
    auto const repo = dir / "repo";
    berth::test::make_repo(repo, 1);
    berth::workspace_runtime rt;
    CHECK_THROWS_WITH(rt.realize({.base = {.base_cwd = repo.string(), .project_id = "p1"},
                                  .strategy = {.type = berth::workspace_strategy_type::git_worktree,
                                               .provision_command = "for i in $(seq 1 60); do echo noise $i >&2; "
                                                                    "done; echo the real cause >&2; exit 3"},
                                  .issue = berth::workspace_issue{.id = "T-1", .identifier = "T-1", .title = {}},
                                  .agent = {.id = std::nullopt, .name = "t", .company_id = "c"}}),
                      Catch::EndsWith("noise 60\nthe real cause") && !Catch::Contains("noise 1\n"));
}

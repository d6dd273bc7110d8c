// The fault matrix of issue 15, with the real berth-run: kill -9, SIGTERM and SIGINT of berth-run
// at each step of a run (acquire, worktree creation, service start, execute, release) for local,
// --worktree, --services and --ssh runs; each followed by the next berth-run on the same store,
// after which: no active lease, no process of the interrupted run, no leftover worktree or
// branch, no service row `running` without its process, and a kept worktree intact. Every case
// runs in a directory of its own (parallel-safe); each takes about a second.
#if defined(BERTH_TEST_SQLITE) && defined(BERTH_RUN_EXE)

#include <catch2/catch.hpp>

#include "git_fixture.hpp"
#ifdef BERTH_TEST_SSH
#include "sshd_fixture.hpp"
#endif

#include <berth/concepts/clock.hpp>
#include <berth/model/ids.hpp>
#include <berth/process/child.hpp>
#include <berth/process/proc.hpp>
#include <berth/stores/sqlite.hpp>

#include <sqlite3.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

using namespace berth;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

std::string slurp(fs::path const& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

/// Pids of this user's processes whose environment carries `token` (the interrupted run's
/// command and services inherit berth-run's environment).
std::vector<pid_t> processes_with(std::string const& token) {
    std::vector<pid_t> out;
    std::error_code ec;
    for (fs::directory_iterator it("/proc", ec), end; !ec && it != end; it.increment(ec)) {
        auto const name = it->path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        auto const env = process::detail::read_small_file((it->path() / "environ").c_str());
        if (!env || env->find(token) == std::string::npos) continue;
        auto const stat = process::detail::read_small_file((it->path() / "stat").c_str());
        if (stat && stat->find(") Z") != std::string::npos) continue;  // a zombie runs nothing
        out.push_back(static_cast<pid_t>(std::stol(name)));
    }
    return out;
}

bool wait_for(std::function<bool()> const& ok, std::chrono::milliseconds within) {
    auto const end = std::chrono::steady_clock::now() + within;
    while (std::chrono::steady_clock::now() < end) {
        if (ok()) return true;
        std::this_thread::sleep_for(10ms);
    }
    return ok();
}

enum class mode { local, worktree, services, ssh };

struct matrix_case {
    test::temp_dir dir{"berth-fault"};
    fs::path repo = dir / "repo";
    fs::path db = dir / "berth.db";
    fs::path bin = dir / "bin";
    std::string token = "BERTH_FAULT_MARK=" + new_id();
    std::vector<std::string> extra;  // --ssh ... arguments

    matrix_case() {
        test::make_repo(repo);
        // A git that stalls after `worktree add` (as on a large repository), exec'ing so that it
        // stays berth's direct child; it says so through a file.
        fs::create_directories(bin);
        std::ofstream(bin / "git") << "#!/bin/sh\nif [ \"$1\" = worktree ] && [ \"$2\" = add ] && [ -n \"$STALL_GIT\" ]; "
                                      "then /usr/bin/git \"$@\"; touch \"$STALL_GIT\"; exec sleep 30; fi\n"
                                      "exec /usr/bin/git \"$@\"\n";
        fs::permissions(bin / "git", fs::perms::owner_all);
        std::ofstream(dir / "services.json")
            << R"({"workspaceRuntime": {"services": [{"name": "ticker", "command": "while true; do sleep 1; done",)"
               R"( "lifecycle": "ephemeral"}]}})";
    }

    std::vector<std::string> args(mode m, bool keep, std::string const& issue) const {
        std::vector<std::string> a{"--db", db.string(), "--cwd", repo.string(), "--timeout", "60"};
        if (m == mode::worktree || m == mode::services) a.insert(a.end(), {"--worktree", "--issue", issue});
        if (m == mode::services) a.insert(a.end(), {"--services", (dir / "services.json").string()});
        if (keep) a.push_back("--keep");
        a.insert(a.end(), extra.begin(), extra.end());
        return a;
    }

    /// berth-run in the background, its stderr in a file.
    process::child start(std::vector<std::string> a, std::vector<std::string> const& command,
                         std::map<std::string, std::string> env) const {
        a.push_back("--");
        a.insert(a.end(), command.begin(), command.end());
        std::vector<std::string> sh{"-c", "exec \"$0\" \"$@\" 2>\"$BERTH_FAULT_LOG\"", BERTH_RUN_EXE};
        sh.insert(sh.end(), a.begin(), a.end());
        auto const eq = token.find('=');
        env[token.substr(0, eq)] = token.substr(eq + 1);
        env["BERTH_FAULT_LOG"] = (dir / "first.log").string();
        env["PATH"] = bin.string() + ":" + std::string(std::getenv("PATH") ? std::getenv("PATH") : "/usr/bin:/bin");
        env["HOME"] = dir.str();
        env["GIT_CONFIG_NOSYSTEM"] = "1";
        env["GIT_CONFIG_GLOBAL"] = "/dev/null";
        return process::child::start({.program = "/bin/sh", .args = sh, .cwd = dir.str(), .env = env},
                                     {.inherit_sanitized_environment = true});
    }

    /// The next berth-run on the same store, to the end.
    command_result next_run(mode m) const {
        auto a = args(m == mode::ssh ? mode::ssh : mode::local, false, "");
        a.insert(a.end(), {"--", "true"});
        return process::run({.program = BERTH_RUN_EXE, .args = a, .cwd = dir.str(), .timeout = 60s},
                            {.inherit_sanitized_environment = true,
                             .base_environment = {{"PATH", std::string(std::getenv("PATH"))}}});
    }
};

/// One interruption and its aftermath. `at`: acquire, worktree, services, execute, release.
void interrupt_and_recover(mode m, int sig, std::string const& at, bool keep = false) {
    matrix_case c;
#ifdef BERTH_TEST_SSH
    if (m == mode::ssh) {
        auto& server = test::ssh::shared_sshd();
        auto const known = (c.dir / "known_hosts").string();
        test::ssh::write_file(known, server.known_hosts());
        auto const remote = server.dir() / ("fault-" + new_id());
        fs::create_directories(remote);
        c.extra = {"--ssh", server.user() + "@127.0.0.1:" + std::to_string(server.port()) + ":" + remote.string(),
                   "--identity", server.user_key_path(), "--known-hosts", known};
    }
#endif
    std::string const issue = "FAULT-1";
    std::map<std::string, std::string> env;
    auto const stalled = c.dir / "git-stalled";
    auto args = c.args(m, keep, issue);
    if (at == "worktree") env["STALL_GIT"] = stalled.string();
    else if (at == "provisioning")
        // Provisioning too leaves a daemon; it exports the marker (provision commands get no BERTH_*
        // variable from berth-run's environment, only the workspace's and the lease id).
        args.insert(args.end(), {"--provision", "export " + c.token + "; setsid sleep 30 </dev/null >/dev/null 2>&1 & touch " +
                                                    stalled.string() + "; exec sleep 30"});
    else if (at != "execute") env["BERTH_RUN_FAULT_PAUSE"] = at;
    // The command: one that works on when interrupted during execute, else one that is quick (the
    // release step comes after it).
    // It exports the token itself: an --ssh run's command gets sshd's environment, not berth-run's,
    // and must be found (it runs on this host) like a local one.
    // During execute it also leaves a process outside its session and process group (a daemon),
    // which neither PR_SET_PDEATHSIG nor the group kill reaches: its BERTH_LEASE_ID does.
    std::vector<std::string> const command =
        at == "execute" ? std::vector<std::string>{"sh", "-c",
                                                   "export " + c.token +
                                                       "; setsid sleep 30 </dev/null >/dev/null 2>&1 & "
                                                       "echo started; exec sleep 30"}
                        : std::vector<std::string>{"sh", "-c", "echo work > work.txt"};
    auto run = c.start(args, command, env);
    auto const log = c.dir / "first.log";

    bool const reached = wait_for(
        [&] {
            if (at == "worktree" || at == "provisioning") return fs::exists(stalled);
            if (at == "execute") return slurp(log).find("[berth] execute  sh") != std::string::npos;
            return slurp(log).find("paused   at " + at) != std::string::npos;
        },
        20s);
    INFO("first run's stderr:\n" << slurp(log));
    REQUIRE(reached);
    if (at == "execute") std::this_thread::sleep_for(100ms);  // the command runs
    ::kill(run.pid(), sig);
    int const status = run.wait();
    INFO("first run's stderr:\n" << slurp(log));
    if (sig == SIGKILL) {
        CHECK((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL));
    } else {
        REQUIRE(WIFEXITED(status));
        CHECK(WEXITSTATUS(status) == 128 + sig);  // berth-run ended the run itself, and says why
    }

    auto const next = c.next_run(m);
    INFO("next run's stderr:\n" << next.stderr_text);
    CHECK(next.exit_code == 0);

    // Nothing of the interrupted run runs on: its command died with it or was stopped, its
    // services were stopped by it or by the next run's recovery.
    CHECK(wait_for([&] { return processes_with(c.token).empty(); }, 5s));
    // Nor anything that does not carry the token: a runtime service gets a clean environment, and
    // works in the run's worktree (once, each SIGKILL case left its service running in a removed one).
    auto const working_here = [&] { return process::processes_working_in(c.dir.path()).empty(); };
    CHECK(wait_for(working_here, 5s));

    auto store = sqlite_store::open(c.db.string());
    auto const far_future = system_clock{}.now() + std::chrono::hours(24 * 365);
    auto const recoverable = store.list_recoverable_leases(process::host_identity(), far_future);
    for (auto const& l : recoverable) {
        INFO("lease " << l.id << " of run " << l.heartbeat_run_id.value_or("-"));
        CHECK(l.status != lease_status::active);  // no lease left active (every holder is gone)
    }
    CHECK(store.list_runtime_services({.statuses = {runtime_service_status::running, runtime_service_status::starting}})
              .empty());
    auto const worktrees = test::git(c.repo, {"worktree", "list", "--porcelain"});
    auto const branches = test::git(c.repo, {"branch", "--list"});
    if (keep) {
        // Kept: the worktree and its branch stay, with the work in them.
        std::string kept;
        std::istringstream lines(worktrees);
        for (std::string line; std::getline(lines, line);)
            if (line.starts_with("worktree ") && line.find(".berth/worktrees/") != std::string::npos) kept = line.substr(9);
        REQUIRE_FALSE(kept.empty());
        CHECK(fs::exists(fs::path(kept) / "README.md"));
        CHECK(branches.find(issue) != std::string::npos);
    } else {
        CHECK(worktrees.find(".berth/worktrees") == std::string::npos);
        CHECK(branches == "* main");
    }
}

std::vector<std::string> steps_of(mode m) {
    switch (m) {
        case mode::local: return {"acquire", "execute", "release"};
        case mode::worktree: return {"acquire", "worktree", "provisioning", "execute", "release"};
        case mode::services: return {"worktree", "services", "execute", "release"};
        case mode::ssh: return {"acquire", "provisioning", "execute", "release"};
    }
    return {};
}

void run_matrix(mode m) {
    for (auto const& at : steps_of(m))
        for (int sig : {SIGKILL, SIGTERM, SIGINT}) {
            DYNAMIC_SECTION(at << " / signal " << sig) { interrupt_and_recover(m, sig, at); }
        }
}

}  // namespace

TEST_CASE("fault matrix: local runs", "[crash][fault_matrix]") { run_matrix(mode::local); }
TEST_CASE("fault matrix: --worktree runs", "[crash][fault_matrix]") { run_matrix(mode::worktree); }
TEST_CASE("fault matrix: --worktree --services runs", "[crash][fault_matrix]") { run_matrix(mode::services); }
#ifdef BERTH_TEST_SSH
TEST_CASE("fault matrix: --ssh runs", "[crash][fault_matrix]") { run_matrix(mode::ssh); }
#endif
TEST_CASE("fault matrix: a kept worktree survives kill -9 and recovery intact", "[crash][fault_matrix]") {
    for (int sig : {SIGKILL, SIGTERM}) {
        DYNAMIC_SECTION("signal " << sig) { interrupt_and_recover(mode::worktree, sig, "release", true); }
    }
}


#ifdef BERTH_TEST_SERVICES
TEST_CASE("fault matrix: SIGINT during a readiness wait ends the run at once, the service stopped, its row too",
          "[crash][fault_matrix]") {
    matrix_case c;
    // A service that never becomes ready (HTTP 500) within its 60 s.
    std::ofstream(c.dir / "services.json")
        << R"({"workspaceRuntime": {"services": [{"name": "web", "command": ")" << BERTH_TEST_HTTP_SERVER
        << R"( --health-status 500", "lifecycle": "ephemeral", "port": {"type": "auto"}, "readiness": {"type": "http",)"
           R"( "urlTemplate": "http://127.0.0.1:{{port}}/health", "timeoutSec": 60, "intervalMs": 500}}]}})";
    auto run = c.start(c.args(mode::services, false, "FAULT-R"), {"true"}, {});
    auto const log = c.dir / "first.log";
    bool const waiting = wait_for(
        [&] { return slurp(log).find("waiting for service web: GET http://127.0.0.1:") != std::string::npos; }, 20s);
    INFO("berth-run's stderr:\n" << slurp(log));
    REQUIRE(waiting);
    std::this_thread::sleep_for(300ms);
    auto const interrupted = std::chrono::steady_clock::now();
    ::kill(run.pid(), SIGINT);
    int const status = run.wait();
    auto const took = std::chrono::steady_clock::now() - interrupted;
    INFO("berth-run's stderr:\n" << slurp(log));
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 128 + SIGINT);
    CHECK(took < 10s);  // not the wait's 60 s
    CHECK(slurp(log).find("cancelled while waiting for readiness of http://127.0.0.1:") != std::string::npos);

    auto store = sqlite_store::open(c.db.string());
    auto const rows = store.list_runtime_services({});
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].status == runtime_service_status::stopped);
    REQUIRE(rows[0].provider_ref);
    auto const pid = static_cast<pid_t>(std::stol(*rows[0].provider_ref));
    CHECK(wait_for([&] { return ::kill(pid, 0) != 0; }, 5s));
    auto const far_future = system_clock{}.now() + std::chrono::hours(24 * 365);
    for (auto const& l : store.list_recoverable_leases(process::host_identity(), far_future))
        CHECK(l.status != lease_status::active);
    CHECK(test::git(c.repo, {"worktree", "list", "--porcelain"}).find(".berth/worktrees") == std::string::npos);
}
#endif


TEST_CASE("berth-run --db on another program's SQLite file: schema_mismatch, the file unchanged", "[crash][foreign_db]") {
    test::temp_dir dir("berth-foreign");
    auto const app = dir / "app.db";
    sqlite3* h = nullptr;
    REQUIRE(sqlite3_open(app.c_str(), &h) == SQLITE_OK);
    REQUIRE(sqlite3_exec(h, "CREATE TABLE users(id INTEGER PRIMARY KEY); INSERT INTO users VALUES (1);", nullptr,
                         nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(h);
    auto const before = slurp(app);
    auto const r = process::run({.program = BERTH_RUN_EXE, .args = {"--db", app.string(), "--", "true"}, .cwd = dir.str()},
                                {.inherit_sanitized_environment = true});
    CHECK(r.exit_code == 125);
    CHECK(r.stderr_text.find("is not a berth database") != std::string::npos);
    CHECK(slurp(app) == before);
    CHECK_FALSE(fs::exists(dir / "app.db-wal"));
}

namespace {
/// berth-run with its stdout on a pipe whose read end the caller holds; returns the pid.
pid_t spawn_with_stdout(std::vector<std::string> args, int stdout_fd) {
    std::vector<char*> argv;
    std::string exe = BERTH_RUN_EXE;
    argv.push_back(exe.data());
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, stdout_fd, STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    pid_t pid = -1;
    int const rc = posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    REQUIRE(rc == 0);
    return pid;
}

std::optional<lease_status> only_lease_status(std::string const& db) {
    auto store = sqlite_store::open(db);
    auto const env = store.ensure_local_environment("demo-company", system_clock{}.now());
    auto const leases = store.list_leases(env.id, {});
    if (leases.size() != 1) return std::nullopt;
    return leases[0].status;
}
}  // namespace

TEST_CASE("berth-run --timeout holds while nobody reads its stdout", "[crash][berth_run_signals]") {
    test::temp_dir dir("berth-stall");
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    auto const db = (dir / "berth.db").string();
    auto const t0 = std::chrono::steady_clock::now();
    pid_t const pid = spawn_with_stdout({"--db", db, "--timeout", "1", "--", "yes"}, fds[1]);
    ::close(fds[1]);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);  // nobody ever reads fds[0]
    auto const took = std::chrono::steady_clock::now() - t0;
    ::close(fds[0]);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 124);
    CHECK(took < 8s);  // the deadline (1 s) and the kill grace, not the reader's whim
    CHECK(only_lease_status(db) == lease_status::failed);  // timed_out -> failed, never left active
}

TEST_CASE("berth-run -- yes | head -c 5: SIGPIPE ends the run cancelled, exit 141", "[crash][berth_run_signals]") {
    test::temp_dir dir("berth-sigpipe");
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    auto const db = (dir / "berth.db").string();
    pid_t const pid = spawn_with_stdout({"--db", db, "--", "yes"}, fds[1]);
    ::close(fds[1]);
    char buf[5];
    REQUIRE(::read(fds[0], buf, sizeof buf) > 0);
    ::close(fds[0]);  // `head` is done
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 128 + SIGPIPE);
    CHECK(only_lease_status(db) == lease_status::expired);  // cancelled -> expired
}

TEST_CASE("disk full at release: berth-run exits non-zero, and the next run recovers the lease once space is free",
          "[crash][disk_full]") {
    if (::geteuid() != 0) {
        WARN("skipped: mounting a small tmpfs needs root (the project's machines have it)");
        return;
    }
    test::temp_dir dir("berth-diskfull");
    auto const mnt = dir / "mnt";
    fs::create_directories(mnt);
    auto const mounted = process::run({.program = "mount", .args = {"-t", "tmpfs", "-o", "size=3m", "tmpfs", mnt.string()}},
                                      {.inherit_sanitized_environment = true});
    REQUIRE(mounted.exit_code == 0);
    struct unmount {
        fs::path p;
        ~unmount() { (void)process::run({.program = "umount", .args = {"-l", p.string()}}, {.inherit_sanitized_environment = true}); }
    } guard{mnt};
    auto const db = (mnt / "berth.db").string();
    auto berth_run = [&](std::vector<std::string> command) {
        std::vector<std::string> a{"--db", db, "--cwd", dir.str(), "--"};
        a.insert(a.end(), command.begin(), command.end());
        return process::run({.program = BERTH_RUN_EXE, .args = a, .cwd = dir.str(), .timeout = 60s},
                            {.inherit_sanitized_environment = true});
    };
    REQUIRE(berth_run({"true"}).exit_code == 0);  // the store exists, with room to spare
    // The command fills the disk: the lease cannot be released (SQLITE_FULL).
    auto const full = berth_run({"sh", "-c", "head -c 8M /dev/zero > " + (mnt / "fill").string() + "; exit 0"});
    INFO(full.stderr_text);
    CHECK(full.exit_code != 0);
    CHECK(full.stderr_text.find("lost or could not be released") != std::string::npos);
    fs::remove(mnt / "fill");
    auto const next = berth_run({"true"});
    INFO(next.stderr_text);
    CHECK(next.exit_code == 0);
    CHECK(next.stderr_text.find("1 lease(s) of dead holders") != std::string::npos);
    auto store = sqlite_store::open(db);
    for (auto const& l : store.list_recoverable_leases(process::host_identity(), system_clock{}.now() + std::chrono::hours(24)))
        CHECK(l.status != lease_status::active);
}

#endif

// berth::process: run() over real processes (exit codes, signals, capture, truncation, streaming,
// stdin, deadlines and process groups, errors, environment, argv, descriptors, threads) and the
// secret list of environment.hpp.
#include <catch2/catch.hpp>

#include <berth/error.hpp>
#include <berth/process/environment.hpp>
#include <berth/process/spawn.hpp>

#include "proc_stat.hpp"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

using namespace std::chrono_literals;
using berth::command;
using berth::command_result;
using berth::output_stream;
using berth::process::run;
using berth::process::run_options;
using berth::test::zombie_children;

namespace {

/// The base environment most tests use: enough for PATH lookups, nothing else.
run_options with_path() { return run_options{.base_environment = {{"PATH", "/usr/bin:/bin"}}}; }

command sh(std::string script, std::vector<std::string> extra = {}) {
    command c{.program = "/bin/sh", .args = {"-c", std::move(script), "sh"}};
    for (auto& a : extra) c.args.push_back(std::move(a));
    return c;
}

std::size_t open_fd_count() {
    std::size_t n = 0;
    for ([[maybe_unused]] auto const& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
    return n;  // includes the directory iterator's own descriptor, the same on both sides
}

/// Processes of group `pgid` that are still running (zombies waiting for init do not count).
int live_members_of_group(pid_t pgid) {
    int n = 0;
    berth::test::for_each_process([&](berth::test::proc_stat const& s) {
        n += s.pgrp == pgid && s.state != 'Z' && s.state != 'X';
    });
    return n;
}

/// kill(-pgid, 0) == ESRCH, or only zombies left (their reaping is their parent's business),
/// waiting up to two seconds for the kernel to finish the exits.
bool group_is_gone(pid_t pgid) {
    for (int i = 0; i < 200; ++i) {
        errno = 0;
        if (::kill(-pgid, 0) == -1 && errno == ESRCH) return true;
        if (live_members_of_group(pgid) == 0) return true;
        std::this_thread::sleep_for(10ms);
    }
    return false;
}

/// Sets an environment variable for the scope of a test.
struct scoped_setenv {
    std::string name;
    scoped_setenv(std::string n, char const* value) : name(std::move(n)) { ::setenv(name.c_str(), value, 1); }
    ~scoped_setenv() { ::unsetenv(name.c_str()); }
};

std::filesystem::path make_temp_dir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "berth-process-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    return tmpl;
}

void write_file(std::filesystem::path const& p, std::string const& content, mode_t mode) {
    std::ofstream(p) << content;
    REQUIRE(::chmod(p.c_str(), mode) == 0);
}

}  // namespace

TEST_CASE("run reports exit codes", "[process]") {
    auto const zero = run({.program = "/bin/true"});
    CHECK(zero.exit_code == 0);
    CHECK_FALSE(zero.signal);
    CHECK_FALSE(zero.timed_out);

    CHECK(run({.program = "false"}, with_path()).exit_code == 1);  // found through PATH
    auto const three = run(sh("exit 3"));
    CHECK(three.exit_code == 3);
    CHECK_FALSE(three.signal);
    CHECK(run(sh("exit 255")).exit_code == 255);
}

TEST_CASE("run reports the terminating signal", "[process]") {
    auto const term = run(sh("kill -TERM $$"));
    CHECK_FALSE(term.exit_code);
    CHECK(term.signal == SIGTERM);
    CHECK_FALSE(term.timed_out);
    CHECK(run(sh("kill -KILL $$")).signal == SIGKILL);
    CHECK(run(sh("kill -SEGV $$")).signal == SIGSEGV);
}

TEST_CASE("run captures stdout and stderr separately", "[process]") {
    auto const r = run(sh("printf 'to out\\n'; printf 'to err' >&2; printf 'more out'"));
    CHECK(r.exit_code == 0);
    CHECK(r.stdout_text == "to out\nmore out");
    CHECK(r.stderr_text == "to err");
    CHECK_FALSE(r.stdout_truncated);
    CHECK_FALSE(r.stderr_truncated);
}

TEST_CASE("run keeps the first max_output_bytes, flags the rest and keeps draining", "[process]") {
    SECTION("over the limit") {
        auto c = sh("printf 0123456789abcdef; printf EFGHIJKL >&2");
        c.max_output_bytes = 10;
        auto const r = run(c);
        CHECK(r.stdout_text == "0123456789");
        CHECK(r.stdout_truncated);
        CHECK(r.stderr_text == "EFGHIJKL");
        CHECK_FALSE(r.stderr_truncated);
    }
    SECTION("exactly the limit is not truncated") {
        auto c = sh("printf 0123456789");
        c.max_output_bytes = 10;
        auto const r = run(c);
        CHECK(r.stdout_text == "0123456789");
        CHECK_FALSE(r.stdout_truncated);
    }
    SECTION("a child writing far more than the limit and than a pipe holds is not blocked") {
        // 16 MiB: 256 times a pipe's capacity. Without draining, head would block forever.
        auto c = command{.program = "/usr/bin/head", .args = {"-c", "16777216", "/dev/zero"}};
        c.max_output_bytes = 100;
        c.timeout = 20s;
        auto const r = run(c);
        CHECK(r.exit_code == 0);
        CHECK_FALSE(r.timed_out);
        CHECK(r.stdout_text == std::string(100, '\0'));
        CHECK(r.stdout_truncated);
    }
}

TEST_CASE("run streams each chunk to on_output, in order, as it arrives", "[process]") {
    struct chunk {
        output_stream stream;
        std::string text;
        std::chrono::steady_clock::time_point at;
    };
    std::vector<chunk> chunks;
    auto c = sh("printf 'one\\n'; sleep 0.3; printf 'two\\n'; printf 'err\\n' >&2; printf 'three'");
    c.max_output_bytes = 6;  // streaming is not limited by the capture limit
    c.on_output = [&](output_stream s, std::string_view text) {
        chunks.push_back({s, std::string(text), std::chrono::steady_clock::now()});
    };
    auto const r = run(c);
    auto const ended = std::chrono::steady_clock::now();

    REQUIRE_FALSE(chunks.empty());
    std::string out, err;
    for (auto const& ch : chunks) (ch.stream == output_stream::stdout_stream ? out : err) += ch.text;
    CHECK(out == "one\ntwo\nthree");
    CHECK(err == "err\n");
    CHECK(r.stdout_text == "one\ntw");
    CHECK(r.stdout_truncated);
    // The first chunk came before the sleep ended: streamed, not delivered at exit. (Only a lower
    // bound: how soon after the spawn it came depends on the machine's load.)
    CHECK(chunks.front().stream == output_stream::stdout_stream);
    CHECK(chunks.front().text == "one\n");
    CHECK(ended - chunks.front().at >= 250ms);
}

TEST_CASE("run writes stdin through a pipe while reading output", "[process]") {
    std::string input(1 << 20, '\0');
    std::mt19937 rng(42);
    for (auto& ch : input) ch = static_cast<char>(rng() & 0xff);  // binary, NULs included

    SECTION("1 MiB round trip through cat") {
        auto c = command{.program = "/bin/cat", .stdin_data = input, .max_output_bytes = 2 << 20};
        auto const r = run(c);
        CHECK(r.exit_code == 0);
        CHECK(r.stdout_text.size() == input.size());
        CHECK(r.stdout_text == input);
    }
    SECTION("large input and large output on both streams at once do not deadlock") {
        // tee copies stdin to stdout and to stderr as it reads: all three pipes are full at times.
        auto c = command{.program = "/usr/bin/tee", .args = {"/dev/stderr"}, .stdin_data = input,
                         .timeout = 30s, .max_output_bytes = 2 << 20};
        auto const r = run(c);
        CHECK(r.exit_code == 0);
        CHECK_FALSE(r.timed_out);
        CHECK(r.stdout_text == input);
        CHECK(r.stderr_text == input);
    }
    SECTION("an empty stdin is an immediate EOF") {
        auto const r = run({.program = "/bin/cat", .stdin_data = std::string(), .timeout = 5s});
        CHECK(r.exit_code == 0);
        CHECK(r.stdout_text.empty());
        CHECK_FALSE(r.timed_out);
    }
    SECTION("no stdin_data is /dev/null, never the parent's stdin") {
        auto const r = run({.program = "/bin/sh", .args = {"-c", "cat; ls -l /proc/$$/fd/0"}, .timeout = 5s});
        CHECK(r.exit_code == 0);
        CHECK_FALSE(r.timed_out);
        CHECK(r.stdout_text.find("-> /dev/null") != std::string::npos);
    }
}

TEST_CASE("a child that closes stdin early does not kill the parent with SIGPIPE", "[process]") {
    // Make sure SIGPIPE would kill this test process if it reached it.
    struct sigaction dfl {}, old {};
    dfl.sa_handler = SIG_DFL;
    REQUIRE(::sigaction(SIGPIPE, &dfl, &old) == 0);

    std::string const input(8 << 20, 'x');  // far more than a pipe holds
    auto const head = run({.program = "/usr/bin/head", .args = {"-c", "3"}, .stdin_data = input, .timeout = 10s});
    CHECK(head.exit_code == 0);
    CHECK(head.stdout_text == "xxx");
    CHECK_FALSE(head.timed_out);
    auto const quits = run({.program = "/bin/true", .stdin_data = input, .timeout = 10s});
    CHECK(quits.exit_code == 0);

    sigset_t pending;
    sigemptyset(&pending);
    ::sigpending(&pending);
    CHECK_FALSE(sigismember(&pending, SIGPIPE));  // consumed, not left for later
    ::sigaction(SIGPIPE, &old, nullptr);
}

TEST_CASE("the deadline kills the whole process group, grandchildren included", "[process]") {
    // The background sleep is a grandchild that also holds stdout open.
    auto c = sh("echo $$; sleep 100 & sleep 100");
    c.timeout = 300ms;
    auto const r = run(c, run_options{.kill_grace = 5s});
    CHECK(r.timed_out);
    CHECK(r.signal == SIGTERM);
    CHECK_FALSE(r.exit_code);
    CHECK(r.duration >= 300ms);
    CHECK(r.duration < 3s);  // SIGTERM was enough: no wait for the grace
    pid_t const pgid = std::stoi(r.stdout_text);
    REQUIRE(pgid > 1);
    CHECK(group_is_gone(pgid));
    CHECK(zombie_children() == 0);
}

TEST_CASE("a child that ignores SIGTERM gets SIGKILL after the grace", "[process]") {
    // `trap "" TERM` is inherited by the background and the exec'd sleep: the whole group ignores it.
    auto c = sh("trap '' TERM; echo $$; sleep 100 & exec sleep 100");
    c.timeout = 300ms;
    auto const r = run(c, run_options{.kill_grace = 700ms});
    CHECK(r.timed_out);
    CHECK(r.signal == SIGKILL);
    CHECK(r.duration >= 1000ms);  // timeout + grace
    CHECK(r.duration < 4s);
    pid_t const pgid = std::stoi(r.stdout_text);
    CHECK(group_is_gone(pgid));
}

TEST_CASE("a process outside the group holding the pipes cannot hang run", "[process]") {
    // setsid moves the grandchild out of the group: it survives the kills and keeps stdout open.
    // run() gives up on the pipe one grace after SIGKILL. The grandchild is cleaned up here.
    auto c = sh("setsid sh -c 'echo $$; exec sleep 100' & wait");
    c.timeout = 300ms;
    auto const r = run(c, run_options{.kill_grace = 300ms});
    CHECK(r.timed_out);
    CHECK(r.duration < 3s);
    REQUIRE_FALSE(r.stdout_text.empty());
    pid_t const escaped = std::stoi(r.stdout_text);
    CHECK(::kill(escaped, SIGKILL) == 0);  // it was alive: run() did not wait for it
}

TEST_CASE("run waits for both the exit and the end of the output", "[process]") {
    SECTION("a child that closes its output early is still waited for") {
        auto c = sh("exec >&- 2>&-; sleep 0.3; exit 7");
        c.timeout = 10s;
        auto const r = run(c);
        CHECK(r.exit_code == 7);
        CHECK_FALSE(r.timed_out);
        CHECK(r.duration >= 300ms);
    }
    SECTION("a background process holding stdout is waited for until it closes it") {
        auto c = sh("(sleep 0.3; echo late) & echo early");
        c.timeout = 10s;
        auto const r = run(c);
        CHECK(r.exit_code == 0);
        CHECK(r.stdout_text == "early\nlate\n");
        CHECK_FALSE(r.timed_out);
        CHECK(r.duration >= 300ms);
    }
}

TEST_CASE("without a pidfd (old kernels, strict seccomp) run polls for the exit and behaves the same", "[process]") {
    using berth::process::detail::exit_watch;
    using berth::process::detail::run_with;
    auto const before = open_fd_count();

    auto const exit7 = run_with(sh("printf out; printf err >&2; exit 7"), {}, exit_watch::polling);
    CHECK(exit7.exit_code == 7);
    CHECK(exit7.stdout_text == "out");
    CHECK(exit7.stderr_text == "err");

    auto closed = sh("exec >&- 2>&-; sleep 0.2; exit 3");
    closed.timeout = 10s;
    auto const waited = run_with(closed, {}, exit_watch::polling);
    CHECK(waited.exit_code == 3);
    CHECK(waited.duration >= 200ms);

    auto background = sh("(sleep 0.2; echo late) & echo early");
    background.timeout = 10s;
    CHECK(run_with(background, {}, exit_watch::polling).stdout_text == "early\nlate\n");

    auto stubborn = sh("trap '' TERM; echo $$; sleep 100 & exec sleep 100");
    stubborn.timeout = 200ms;
    auto const killed = run_with(stubborn, run_options{.kill_grace = 300ms}, exit_watch::polling);
    CHECK(killed.timed_out);
    CHECK(killed.signal == SIGKILL);
    CHECK(killed.duration < 3s);
    CHECK(group_is_gone(std::stoi(killed.stdout_text)));

    CHECK(open_fd_count() == before);
    CHECK(zombie_children() == 0);
}

TEST_CASE("run without a deadline, or with a huge one, runs to completion", "[process]") {
    auto c = sh("sleep 0.1; echo done");
    c.timeout = 0ms;
    auto const none = run(c);
    CHECK(none.stdout_text == "done\n");
    CHECK_FALSE(none.timed_out);
    c.timeout = std::chrono::milliseconds::max();  // must not overflow into the past
    auto const huge = run(c);
    CHECK(huge.stdout_text == "done\n");
    CHECK_FALSE(huge.timed_out);
    CHECK(huge.duration >= 100ms);
}

TEST_CASE("a missing or non-executable program is an immediate error naming it", "[process]") {
    auto const started = std::chrono::steady_clock::now();
    CHECK_THROWS_WITH(run({.program = "berth-no-such-program-4711"}, with_path()),
                      Catch::Contains("'berth-no-such-program-4711'") && Catch::Contains("not found in PATH") &&
                          Catch::Contains("/usr/bin:/bin"));
    CHECK_THROWS_WITH(run({.program = "/nonexistent/dir/prog"}),
                      Catch::Contains("'/nonexistent/dir/prog'") && Catch::Contains("no such file"));
    CHECK_THROWS_WITH(run({.program = "/tmp"}), Catch::Contains("'/tmp'") && Catch::Contains("not a regular file"));
    CHECK_THROWS_AS(run({.program = ""}), berth::process_error);
    CHECK(std::chrono::steady_clock::now() - started < 1s);

    auto const dir = make_temp_dir();
    write_file(dir / "not-exec", "#!/bin/sh\necho hi\n", 0644);
    CHECK_THROWS_WITH(run({.program = (dir / "not-exec").string()}), Catch::Contains("not executable"));
    // Found in PATH but not executable: named, with the path found.
    CHECK_THROWS_WITH(run({.program = "not-exec"}, run_options{.base_environment = {{"PATH", dir.string()}}}),
                      Catch::Contains("'not-exec'") && Catch::Contains("not executable"));
    std::filesystem::remove_all(dir);
}

TEST_CASE("PATH is the child's, and relative programs resolve against the child's cwd", "[process]") {
    auto const dir = make_temp_dir();
    std::filesystem::create_directory(dir / "bin");
    write_file(dir / "bin" / "berth-hello", "#!/bin/sh\necho \"hello from $0\"\n", 0755);

    // Only the child's PATH counts: the command's env overrides the base.
    auto const r = run({.program = "berth-hello", .env = {{"PATH", (dir / "bin").string()}}}, with_path());
    CHECK(r.exit_code == 0);
    CHECK(r.stdout_text == "hello from " + (dir / "bin" / "berth-hello").string() + "\n");
    CHECK_THROWS_WITH(run({.program = "berth-hello"}, with_path()), Catch::Contains("not found in PATH"));

    auto const rel = run({.program = "./bin/berth-hello", .cwd = dir.string()});
    CHECK(rel.exit_code == 0);
    CHECK(rel.stdout_text == "hello from ./bin/berth-hello\n");
    std::filesystem::remove_all(dir);
}

TEST_CASE("the working directory is used, and a missing one is an error naming it", "[process]") {
    auto const dir = make_temp_dir();
    auto const r = run({.program = "/bin/pwd", .cwd = dir.string()});
    CHECK(r.stdout_text == std::filesystem::canonical(dir).string() + "\n");

    CHECK_THROWS_WITH(run({.program = "/bin/pwd", .cwd = (dir / "missing").string()}),
                      Catch::Contains("'" + (dir / "missing").string() + "'") && Catch::Contains("does not exist"));
    write_file(dir / "file", "", 0644);
    CHECK_THROWS_WITH(run({.program = "/bin/pwd", .cwd = (dir / "file").string()}),
                      Catch::Contains("is not a directory"));
    std::filesystem::remove_all(dir);
}

TEST_CASE("the child's environment is exactly the base plus the command's env", "[process]") {
    scoped_setenv inherited("BERTH_TEST_NOT_PASSED", "parent-only");
    auto const only = run({.program = "/usr/bin/env", .env = {{"A", "1"}, {"B", "two words"}}});
    CHECK(only.stdout_text == "A=1\nB=two words\n");  // nothing implicit from the parent

    auto const merged = run({.program = "/usr/bin/env", .env = {{"B", "override"}, {"C", "3"}}},
                            run_options{.base_environment = {{"A", "base"}, {"B", "base"}}});
    CHECK(merged.stdout_text == "A=base\nB=override\nC=3\n");

    CHECK_THROWS_WITH(run({.program = "/usr/bin/env", .env = {{"BAD=NAME", "x"}}}),
                      Catch::Contains("invalid environment variable name 'BAD=NAME'"));
    CHECK_THROWS_AS(run({.program = "/usr/bin/env", .env = {{"", "x"}}}), berth::process_error);
    CHECK_THROWS_AS(run({.program = "/usr/bin/env", .env = {{"NUL", std::string("a\0b", 3)}}}), berth::process_error);
}

TEST_CASE("sanitized_environment drops secrets and keeps the rest", "[process]") {
    scoped_setenv secret("BERTH_TEST_API_TOKEN", "s3cr3t-value");
    scoped_setenv lower("berth_test_lower_password", "s3cr3t-value");
    scoped_setenv aws("AWS_BERTH_TEST", "s3cr3t-value");
    scoped_setenv plain("BERTH_TEST_PLAIN", "visible");

    auto const env = berth::process::sanitized_environment();
    CHECK(env.count("BERTH_TEST_API_TOKEN") == 0);
    CHECK(env.count("berth_test_lower_password") == 0);
    CHECK(env.count("AWS_BERTH_TEST") == 0);
    REQUIRE(env.count("BERTH_TEST_PLAIN") == 1);
    CHECK(env.at("BERTH_TEST_PLAIN") == "visible");
    CHECK(env.count("PATH") == 1);

    std::string const tricky = "spaces  and 'single' \"double\"\nnew line $(echo injected) `id` $HOME ; | & *";
    SECTION("passed as a map") {
        auto const r = run({.program = "/usr/bin/env", .env = {{"BERTH_TEST_TRICKY", tricky}}},
                           run_options{.base_environment = env});
        CHECK(r.stdout_text.find("s3cr3t-value") == std::string::npos);
        CHECK(r.stdout_text.find("BERTH_TEST_PLAIN=visible\n") != std::string::npos);
        auto const value = run({.program = "printenv", .args = {"BERTH_TEST_TRICKY"},
                                .env = {{"BERTH_TEST_TRICKY", tricky}}},
                               run_options{.base_environment = env});
        CHECK(value.stdout_text == tricky + "\n");
    }
    SECTION("inherited by run: exactly the variables of sanitized_environment()") {
        auto const r =
            run({.program = "/usr/bin/env", .args = {"-0"}}, run_options{.inherit_sanitized_environment = true});
        berth::process::environment_map seen;
        std::string_view rest(r.stdout_text);
        while (!rest.empty()) {
            auto const end = rest.find('\0');
            auto const entry = rest.substr(0, end);
            auto const eq = entry.find('=');
            seen.emplace(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
            rest.remove_prefix(end == std::string_view::npos ? rest.size() : end + 1);
        }
        CHECK(seen == env);
    }
    SECTION("inherited, then the base map, then the command's env, each overriding the one before") {
        auto const r = run({.program = "printenv",  // found through the inherited PATH
                            .args = {"BERTH_TEST_PLAIN", "BERTH_TEST_B", "BERTH_TEST_C", "BERTH_TEST_TRICKY"},
                            .env = {{"BERTH_TEST_C", "from command"}, {"BERTH_TEST_TRICKY", tricky}}},
                           run_options{.inherit_sanitized_environment = true,
                                       .base_environment = {{"BERTH_TEST_PLAIN", "from base"},
                                                            {"BERTH_TEST_B", "from base"},
                                                            {"BERTH_TEST_C", "from base"}}});
        CHECK(r.exit_code == 0);
        CHECK(r.stdout_text == "from base\nfrom base\nfrom command\n" + tricky + "\n");
        auto const all = run({.program = "/usr/bin/env"},
                             run_options{.inherit_sanitized_environment = true,
                                         .base_environment = {{"BERTH_TEST_PLAIN", "from base"}}});
        CHECK(all.stdout_text.find("s3cr3t-value") == std::string::npos);
        CHECK(all.stdout_text.find("BERTH_TEST_PLAIN=visible") == std::string::npos);  // replaced, not doubled
        CHECK(all.stdout_text.find("BERTH_TEST_PLAIN=from base\n") != std::string::npos);
    }
}

TEST_CASE("is_secret_env_name follows the documented list", "[process]") {
    using berth::process::is_secret_env_name;
    for (char const* name : {"GITHUB_TOKEN", "github_token", "MY_SECRET_THING", "PGPASSWORD", "SMTP_PASSWD",
                             "GPG_PASSPHRASE", "OPENAI_API_KEY", "STRIPE_APIKEY", "DEPLOY_PRIVATE_KEY",
                             "GOOGLE_APPLICATION_CREDENTIALS", "MINIO_ACCESS_KEY", "AWS_REGION", "aws_profile",
                             "SSH_AUTH_SOCK", "DATABASE_URL", "npm_config__auth", "NPM_CONFIG_TAILSCALE_AUTH",
                             "npm_config_authenticated_private"})
        CHECK(is_secret_env_name(name));
    for (char const* name : {"PATH", "HOME", "USER", "LANG", "TERM", "SHELL", "PWD", "TOKE", "NPM_CONFIG_CACHE",
                             "SSH_AUTH_SOCKS", "MY_DATABASE_URL", "LAWS_OF_PHYSICS", "", "KEY", "API"})
        CHECK_FALSE(is_secret_env_name(name));
}

TEST_CASE("arguments reach the child byte for byte, shell metacharacters included", "[process]") {
    std::vector<std::string> const args{"a b",    "'single'", "\"double\"", "$(echo injected)", "`id`",
                                        "; rm -rf /", "*",   "$HOME",     "line\nbreak",      "",
                                        "--",     "-n",      "\\back\\slash", "tab\there",     "ünïcødé"};
    command c{.program = "/usr/bin/printf", .args = {"[%s]"}};
    std::string expected;
    for (auto const& a : args) {
        c.args.push_back(a);
        expected += "[" + a + "]";
    }
    auto const r = run(c);
    CHECK(r.exit_code == 0);
    CHECK(r.stdout_text == expected);
}

TEST_CASE("run leaks no descriptors and leaves no zombies", "[process]") {
    auto const before = open_fd_count();
    for (int i = 0; i < 60; ++i) {
        CHECK(run(sh("echo $1", {std::to_string(i)})).stdout_text == std::to_string(i) + "\n");
        CHECK(run({.program = "/bin/cat", .stdin_data = "abc"}).stdout_text == "abc");
        CHECK_THROWS_AS(run({.program = "/no/such/program"}), berth::process_error);
        CHECK_THROWS_AS(run({.program = "/bin/true", .cwd = "/no/such/dir"}), berth::process_error);
    }
    auto c = sh("sleep 100");
    c.timeout = 20ms;
    for (int i = 0; i < 5; ++i) CHECK(run(c).timed_out);
    CHECK(open_fd_count() == before);
    CHECK(zombie_children() == 0);
}

TEST_CASE("an exception from on_output kills and reaps the child", "[process]") {
    auto const before = open_fd_count();
    pid_t pgid = 0;
    auto c = sh("echo $$; exec sleep 100");
    c.on_output = [&](output_stream, std::string_view text) {
        pgid = std::stoi(std::string(text));
        throw std::runtime_error("consumer gave up");
    };
    auto const started = std::chrono::steady_clock::now();
    CHECK_THROWS_WITH(run(c), "consumer gave up");
    CHECK(std::chrono::steady_clock::now() - started < 2s);
    REQUIRE(pgid > 1);
    CHECK(group_is_gone(pgid));
    CHECK(zombie_children() == 0);
    CHECK(open_fd_count() == before);
}

TEST_CASE("run is safe from many threads at once", "[process]") {
    auto const before = open_fd_count();
    constexpr int threads = 8;
    constexpr int per_thread = 15;
    std::atomic<int> correct{0};
    std::atomic<int> failed{0};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
            for (int i = 0; i < per_thread; ++i) {
                try {
                    std::string const id = std::to_string(t) + "-" + std::to_string(i);
                    std::string const input(100'000 + t * 1000 + i, static_cast<char>('a' + t));
                    auto const echo = run(sh("printf %s \"$1\"; printf %s \"$1\" >&2", {id}));
                    auto const cat = run({.program = "/bin/cat", .stdin_data = input});
                    bool const ok = echo.exit_code == 0 && echo.stdout_text == id && echo.stderr_text == id &&
                                    cat.exit_code == 0 && cat.stdout_text == input;
                    (ok ? correct : failed)++;
                } catch (...) {
                    failed++;
                }
            }
        });
    for (auto& th : pool) th.join();
    CHECK(failed == 0);
    CHECK(correct == threads * per_thread);
    CHECK(open_fd_count() == before);
    CHECK(zombie_children() == 0);
}

TEST_CASE("the child starts with default signal dispositions and an empty mask", "[process]") {
    // Ignore SIGINT and SIGPIPE and block SIGUSR1 here; none of it may reach the child.
    struct sigaction ign {}, old_int {}, old_pipe {};
    ign.sa_handler = SIG_IGN;
    REQUIRE(::sigaction(SIGINT, &ign, &old_int) == 0);
    REQUIRE(::sigaction(SIGPIPE, &ign, &old_pipe) == 0);
    sigset_t usr1, old_mask;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    ::pthread_sigmask(SIG_BLOCK, &usr1, &old_mask);

    // The exec'd grep reads its own masks as the kernel gave them at exec.
    auto const r = run({.program = "/bin/grep", .args = {"-E", "^(SigBlk|SigIgn):", "/proc/self/status"}});
    ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
    ::sigaction(SIGINT, &old_int, nullptr);
    ::sigaction(SIGPIPE, &old_pipe, nullptr);

    auto mask_of = [&](std::string const& field) {
        auto const at = r.stdout_text.find(field + ":\t");
        REQUIRE(at != std::string::npos);
        return std::stoull(r.stdout_text.substr(at + field.size() + 2, 16), nullptr, 16);
    };
    auto bit = [](int sig) { return 1ULL << (sig - 1); };
    CHECK(mask_of("SigBlk") == 0);
    auto const ignored = mask_of("SigIgn");
    CHECK((ignored & bit(SIGINT)) == 0);
    CHECK((ignored & bit(SIGPIPE)) == 0);
    // (glibc's posix_spawn leaves its two internal signals, 32 and 33, ignored: not ours to change.)
    CHECK((ignored & ~(bit(32) | bit(33))) == 0);
}

TEST_CASE("duration covers the child's run", "[process]") {
    auto const r = run(sh("sleep 0.2"));
    CHECK(r.duration >= 200ms);
    CHECK(r.duration < 2s);
}

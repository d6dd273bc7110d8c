// berth::ssh_driver against a real OpenSSH sshd (tests/support/sshd_fixture.hpp): config rules and
// messages (upstream §1.8), acquire/release/realize/target/probe (§2.2), execute (argv, env over the
// channel, stdin, deadline, signals, bounded and streamed output), the session pool, workspace
// sync, faults (unreachable, wrong key, changed host key, server killed mid-command) and the
// orchestrator's lifecycle through the driver.
#ifdef BERTH_TEST_SSH
// The stores first: their unqualified quoted() calls are ambiguous with std::quoted (found by ADL)
// once <filesystem> (→ <iomanip>) is included before them — see the report on issue 6.
#include <berth/stores/memory.hpp>
#ifdef BERTH_TEST_SQLITE
#include <berth/stores/sqlite.hpp>
#endif

#include <catch2/catch.hpp>

#include <berth/berth.hpp>
#include <berth/drivers/local.hpp>
#include <berth/drivers/ssh.hpp>
#include <berth/recovery/recover.hpp>
#include <berth/testing/manual_clock.hpp>

#include "sshd_fixture.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <stop_token>
#include <thread>
#include <vector>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace std::chrono_literals;
using berth::ssh_driver;
using berth::ssh_errc;
using berth::test::ssh::shared_sshd;
using berth::test::ssh::sshd_fixture;

static_assert(berth::environment_driver<ssh_driver>);
static_assert(berth::driver_with_realize_workspace<ssh_driver>);
static_assert(berth::driver_with_execute<ssh_driver>);
static_assert(berth::driver_with_probe<ssh_driver>);
static_assert(berth::driver_with_execution_target<ssh_driver>);
static_assert(ssh_driver::family == berth::driver_kind::ssh && ssh_driver::name == "ssh");

namespace {

boost::json::object json(char const* text) { return boost::json::parse(text).as_object(); }

/// A fresh remote workspace path under the fixture's directory (the "remote" host is this one).
std::string workspace_path(sshd_fixture const& server, std::string const& name) {
    static std::atomic<int> n{0};
    return (server.dir() / ("ws-" + name + "-" + std::to_string(++n))).string();
}

berth::environment ssh_env(boost::json::object config) {
    berth::environment e{};
    e.id = "env-ssh";
    e.company_id = "company-1";
    e.name = "Build host";
    e.driver = berth::driver_kind::ssh;
    e.config = std::move(config);
    return e;
}

berth::ssh_driver_options options_for(sshd_fixture const& server) {
    berth::ssh_driver_options o;
    o.identity = berth::ssh_identity{.private_key_file = server.user_key_path()};
    o.connect_timeout = 5s;
    o.kill_grace = 500ms;
    return o;
}

/// A lease as the orchestrator would hand it back after acquire.
berth::environment_lease lease_from(berth::lease_grant const& g) {
    berth::environment_lease l{};
    // A unique id, as a real lease has: release ends the processes of its id on the (shared) host,
    // and the suite's processes run at once (ctest -j).
    l.id = "lease-ssh-" + berth::new_id();
    l.company_id = "company-1";
    l.environment_id = "env-ssh";
    l.provider = g.provider;
    l.provider_lease_id = g.provider_lease_id;
    l.metadata = g.metadata;
    return l;
}

struct acquired {
    berth::environment env;
    berth::environment_lease lease;
    std::string remote_cwd;
};

acquired acquire_on(ssh_driver const& d, sshd_fixture const& server, std::string const& name) {
    auto env = ssh_env(server.config(workspace_path(server, name)));
    auto const grant = d.acquire({.env = env, .company_id = "company-1", .agent_id = "agent-1"});
    auto lease = lease_from(grant);
    return {std::move(env), lease, std::string(grant.metadata.at("remoteCwd").as_string())};
}

template <class F>
berth::ssh_error ssh_error_of(F&& f) {
    try {
        f();
    } catch (berth::ssh_error const& e) {
        return e;
    }
    FAIL("expected a berth::ssh_error");
    return berth::ssh_error(ssh_errc::remote_failed, "unreachable");
}

template <class F>
std::string config_error_of(F&& f, std::string* field = nullptr) {
    try {
        f();
    } catch (berth::ssh_config_error const& e) {
        if (field) *field = e.field();
        return e.what();
    }
    FAIL("expected a berth::ssh_config_error");
    return {};
}

}  // namespace

// ---- config (no server needed) -------------------------------------------------------------------

TEST_CASE("ssh config: upstream's fields, defaults and messages", "[ssh][ssh_config]") {
    using berth::parse_ssh_config;
    SECTION("defaults: port 22, strictHostKeyChecking true, no knownHosts") {
        auto const c = parse_ssh_config(json(R"({"host":" build-1 ","username":"ci","remoteWorkspacePath":"/srv/w"})"));
        CHECK(c.host == "build-1");
        CHECK(c.port == 22);
        CHECK(c.username == "ci");
        CHECK(c.remote_workspace_path == "/srv/w");
        CHECK(c.strict_host_key_checking);
        CHECK_FALSE(c.known_hosts);
        CHECK_FALSE(c.private_key_secret_ref);
    }
    SECTION("port is coerced from a decimal string; knownHosts empty becomes none") {
        auto const c = parse_ssh_config(json(
            R"({"host":"h","port":"2222","username":"u","remoteWorkspacePath":"/w","knownHosts":"  ","strictHostKeyChecking":false})"));
        CHECK(c.port == 2222);
        CHECK_FALSE(c.known_hosts);
        CHECK_FALSE(c.strict_host_key_checking);
    }
    SECTION("privateKeySecretRef is read; version defaults to latest") {
        auto const c = parse_ssh_config(json(
            R"({"host":"h","username":"u","remoteWorkspacePath":"/w","privateKeySecretRef":{"type":"secret_ref","secretId":"s-1"}})"));
        REQUIRE(c.private_key_secret_ref);
        CHECK(c.private_key_secret_ref->secret_id == "s-1");
        CHECK(c.private_key_secret_ref->version == "latest");
    }
    std::string field;
    SECTION("host required") {
        CHECK(config_error_of([] { (void)parse_ssh_config(json(R"({"host":"  ","username":"u","remoteWorkspacePath":"/w"})")); },
                              &field) == "SSH environments require a host.");
        CHECK(field == "host");
    }
    SECTION("username required") {
        CHECK(config_error_of([] { (void)parse_ssh_config(json(R"({"host":"h","remoteWorkspacePath":"/w"})")); }, &field) ==
              "SSH environments require a username.");
        CHECK(field == "username");
    }
    SECTION("remoteWorkspacePath required and absolute") {
        CHECK(config_error_of([] { (void)parse_ssh_config(json(R"({"host":"h","username":"u"})")); }) ==
              "SSH environments require a remote workspace path.");
        CHECK(config_error_of([] {
                  (void)parse_ssh_config(json(R"({"host":"h","username":"u","remoteWorkspacePath":"srv/w"})"));
              }, &field) == "SSH remote workspace path must be absolute.");
        CHECK(field == "remoteWorkspacePath");
    }
    SECTION("port 1..65535, named with the value") {
        for (char const* bad : {"0", "65536", "\"22x\"", "-1", "2.5", "true"}) {
            auto const text = std::string(R"({"host":"h","username":"u","remoteWorkspacePath":"/w","port":)") + bad + "}";
            auto const msg = config_error_of([&] { (void)parse_ssh_config(json(text.c_str())); }, &field);
            CHECK(field == "port");
            CHECK(msg == "SSH port must be an integer from 1 to 65535 (got " +
                             boost::json::serialize(boost::json::parse(bad)) + ").");
        }
    }
    SECTION("a stored private key is refused, and its text is not echoed") {
        auto const msg = config_error_of([] {
            (void)parse_ssh_config(json(
                R"({"host":"h","username":"u","remoteWorkspacePath":"/w","privateKey":"-----BEGIN OPENSSH PRIVATE KEY-----xyz"})"));
        }, &field);
        CHECK(field == "privateKey");
        CHECK(msg.find("xyz") == std::string::npos);
    }
    SECTION("strict: unknown keys are refused; leasePolicy is allowed") {
        CHECK(config_error_of([] {
                  (void)parse_ssh_config(json(R"({"host":"h","username":"u","remoteWorkspacePath":"/w","hots":"x"})"));
              }) == "Unrecognized key(s) in object: 'hots'");
        CHECK_NOTHROW(parse_ssh_config(
            json(R"({"host":"h","username":"u","remoteWorkspacePath":"/w","leasePolicy":"ephemeral"})")));
    }
    SECTION("wrong types name the field") {
        CHECK(config_error_of([] {
                  (void)parse_ssh_config(
                      json(R"({"host":"h","username":"u","remoteWorkspacePath":"/w","strictHostKeyChecking":"yes"})"));
              }, &field) == "SSH strictHostKeyChecking must be a boolean (got \"yes\").");
        CHECK(config_error_of([] {
                  (void)parse_ssh_config(json(R"({"host":"h","username":"u","remoteWorkspacePath":"/w","knownHosts":5})"));
              }) == "SSH knownHosts must be a string (got 5).");
        CHECK(config_error_of([] {
                  (void)parse_ssh_config(json(
                      R"({"host":"h","username":"u","remoteWorkspacePath":"/w","privateKeySecretRef":{"type":"x"}})"));
              }, &field).find("privateKeySecretRef") != std::string::npos);
    }
}

// ---- acquire / release / realize / target ------------------------------------------------------------

TEST_CASE("ssh acquire: mkdir -p, cd, pwd, upstream's lease fields, no secrets", "[ssh]") {
    auto& server = shared_sshd();
    auto opts = options_for(server);
    opts.identity = berth::ssh_identity{.private_key = server.user_key_text()};  // the key held in memory
    ssh_driver const d(opts);
    auto const rwp = workspace_path(server, "acq") + "/nested/dir";
    auto const env = ssh_env(server.config(rwp));
    REQUIRE_FALSE(std::filesystem::exists(rwp));

    auto const grant = d.acquire({.env = env, .company_id = "company-1", .agent_id = "agent-7",
                                  .execution_workspace_mode = "isolated_workspace"});
    CHECK(std::filesystem::is_directory(rwp));
    CHECK(grant.provider == "ssh");
    auto const port = std::to_string(server.port());
    CHECK(grant.provider_lease_id == "ssh://" + server.user() + "@127.0.0.1:" + port + rwp);
    boost::json::object expected{{"agentId", "agent-7"},          {"driver", "ssh"},
                                 {"executionWorkspaceMode", "isolated_workspace"},
                                 {"host", "127.0.0.1"},           {"port", server.port()},
                                 {"username", server.user()},     {"remoteWorkspacePath", rwp},
                                 {"remoteCwd", rwp}};
    INFO(boost::json::serialize(grant.metadata));
    CHECK(grant.metadata == expected);
    auto const key_body = server.user_key_text().substr(40, 40);  // a piece of the key text
    CHECK(boost::json::serialize(grant.metadata).find(key_body) == std::string::npos);

    SECTION("without an agent: no agentId; no mode: null") {
        auto const g = d.acquire({.env = env, .company_id = "company-1", .agent_id = std::nullopt});
        CHECK_FALSE(g.metadata.contains("agentId"));
        CHECK(g.metadata.at("executionWorkspaceMode").is_null());
    }
    SECTION("release needs no connection and reports nothing to clean up") {
        auto const out = d.release(env, lease_from(grant), berth::lease_status::released);
        CHECK_FALSE(out.cleanup_status);
        CHECK_FALSE(out.failure_reason);
    }
    SECTION("realize: cwd is the lease's remoteCwd; the realization record") {
        auto const r = d.realize_workspace({.env = env, .lease = lease_from(grant), .local_path = "/local/ws",
                                            .remote_path = std::nullopt, .mode = "shared_workspace"});
        CHECK(r.cwd == rwp);
        auto const& rec = r.metadata.at("workspaceRealization").as_object();
        CHECK(rec.at("driver") == "ssh");
        CHECK(rec.at("transport") == "ssh");
        CHECK(rec.at("sync") == "ssh_git_import_export");
        CHECK(rec.at("cwd") == rwp.c_str());
        CHECK(rec.at("local").at("path") == "/local/ws");
        CHECK(rec.at("remote").at("path") == rwp.c_str());
    }
    SECTION("execution target: the SSH spec, without a private key") {
        auto const lease = lease_from(grant);
        auto const t = d.execution_target(env, lease);
        CHECK(t.kind == "remote");
        CHECK(t.transport == "ssh");
        CHECK(t.environment_id == env.id);
        CHECK(t.lease_id == lease.id);
        CHECK(t.remote_cwd == rwp);
        CHECK(t.spec.at("host") == "127.0.0.1");
        CHECK(t.spec.at("port") == server.port());
        CHECK(t.spec.at("username") == server.user().c_str());
        CHECK(t.spec.at("remoteWorkspacePath") == rwp.c_str());
        CHECK(t.spec.at("remoteCwd") == rwp.c_str());
        CHECK(t.spec.at("strictHostKeyChecking") == true);
        CHECK(t.spec.at("knownHosts") == server.known_hosts().c_str());
        CHECK_FALSE(t.spec.contains("privateKey"));
        CHECK(boost::json::serialize(t.spec).find(key_body) == std::string::npos);
    }
}

TEST_CASE("ssh acquire: a non-SSH environment and a bad config are refused before connecting", "[ssh]") {
    ssh_driver const d;
    auto env = ssh_env(json(R"({"host":"h","username":"u","remoteWorkspacePath":"/w"})"));
    env.driver = berth::driver_kind::local;
    try {
        (void)d.acquire({.env = env, .company_id = "c", .agent_id = std::nullopt});
        FAIL("acquire must refuse");
    } catch (berth::error const& e) {
        CHECK(std::string(e.what()) == "Expected SSH environment config for driver \"local\".");
    }
    auto bad = ssh_env(json(R"({"host":"h","username":"u","remoteWorkspacePath":"relative"})"));
    CHECK(config_error_of([&] { (void)d.acquire({.env = bad, .company_id = "c", .agent_id = std::nullopt}); }) ==
          "SSH remote workspace path must be absolute.");
    CHECK(d.pool_counters().connections_opened == 0);
}

// ---- execute ------------------------------------------------------------------------------------------

TEST_CASE("ssh execute: exit code, output, the lease's cwd, argv kept intact", "[ssh]") {
    auto& server = shared_sshd();
    ssh_driver const d(options_for(server));
    auto const a = acquire_on(d, server, "exec");

    SECTION("exit code and both streams; the framing line is not in stderr") {
        auto const r = d.execute(a.env, a.lease, {.program = "sh", .args = {"-c", "echo out; echo err >&2; exit 7"}});
        CHECK(r.exit_code == 7);
        CHECK_FALSE(r.signal);
        CHECK_FALSE(r.timed_out);
        CHECK(r.stdout_text == "out\n");
        CHECK(r.stderr_text == "err\n");
    }
    SECTION("default cwd is the lease's remoteCwd; cmd.cwd overrides it") {
        CHECK(d.execute(a.env, a.lease, {.program = "pwd"}).stdout_text == a.remote_cwd + "\n");
        CHECK(d.execute(a.env, a.lease, {.program = "pwd", .cwd = "/tmp"}).stdout_text == "/tmp\n");
    }
    SECTION("shell metacharacters, quotes, newlines and empty args arrive as separate, intact args") {
        std::vector<std::string> const args{"a b",  "",        "it's",  "\"dq\"", "$(touch /tmp/berth-pwned)",
                                            "`id`", "x;y|z&w", "l1\nl2", "*",     "\\", "--", "$HOME", "\t"};
        std::vector<std::string> argv{"%s\\0"};
        argv.insert(argv.end(), args.begin(), args.end());
        auto const r = d.execute(a.env, a.lease, {.program = "printf", .args = argv});
        REQUIRE(r.exit_code == 0);
        std::string expected;
        for (auto const& s : args) expected += s + '\0';
        CHECK(r.stdout_text == expected);
        CHECK_FALSE(std::filesystem::exists("/tmp/berth-pwned"));
    }
    SECTION("a missing program is exit 127 with the shell's message") {
        auto const r = d.execute(a.env, a.lease, {.program = "berth-no-such-program"});
        CHECK(r.exit_code == 127);
        CHECK(r.stderr_text.find("berth-no-such-program") != std::string::npos);
    }
    SECTION("a missing cwd is an error naming it") {
        auto const e = ssh_error_of([&] { (void)d.execute(a.env, a.lease, {.program = "true", .cwd = "/no/such/dir"}); });
        CHECK(e.code() == ssh_errc::invalid_command);
        CHECK(std::string(e.what()).find("/no/such/dir") != std::string::npos);
    }
    SECTION("an empty program and an invalid env name are refused") {
        CHECK(ssh_error_of([&] { (void)d.execute(a.env, a.lease, {.program = ""}); }).code() == ssh_errc::invalid_command);
        auto const e = ssh_error_of(
            [&] { (void)d.execute(a.env, a.lease, {.program = "true", .env = {{"BAD-NAME", "x"}}}); });
        CHECK(e.code() == ssh_errc::invalid_command);
        CHECK(std::string(e.what()) == "Invalid SSH environment variable key: BAD-NAME");
    }
}

TEST_CASE("ssh execute: env values arrive intact and are on no command line", "[ssh]") {
    auto& server = shared_sshd();
    ssh_driver const d(options_for(server));
    auto const a = acquire_on(d, server, "env");
    std::string const tricky = "a b'c\"d$HOME`id`;|&\n\nline3\\n $(echo no) __BERTH_END_x__\n";
    auto const r = d.execute(a.env, a.lease, {.program = "printenv", .args = {"TRICKY"},
                                               .env = {{"TRICKY", tricky}, {"OTHER", "2"}}});
    REQUIRE(r.exit_code == 0);
    CHECK(r.stdout_text == tricky + "\n");

    SECTION("no process on the machine has the value in its argv while the command runs") {
        std::string const secret = "berth-secret-value-" + std::to_string(::getpid());
        // Dumps every process's command line (the remote shell, sshd's processes, this one).
        auto const dump = d.execute(a.env, a.lease,
                                    {.program = "sh",
                                     .args = {"-c", "for f in /proc/[0-9]*/cmdline; do cat \"$f\"; echo; done; "
                                                    "printf 'seen:%s' \"${#API_TOKEN}\""},
                                     .env = {{"API_TOKEN", secret}}});
        REQUIRE(dump.exit_code == 0);
        CHECK(dump.stdout_text.find("seen:" + std::to_string(secret.size())) != std::string::npos);
        CHECK(dump.stdout_text.find(secret) == std::string::npos);
        CHECK(dump.stdout_text.find("sshd") != std::string::npos);  // the dump did see sshd's processes
    }
    SECTION("the value of a variable does not leak into the next command on a reused session") {
        auto const r2 = d.execute(a.env, a.lease, {.program = "sh", .args = {"-c", "printf '%s' \"${TRICKY-unset}\""}});
        CHECK(r2.stdout_text == "unset");
    }
}

TEST_CASE("ssh execute: stdin, bounded and streamed output", "[ssh]") {
    auto& server = shared_sshd();
    ssh_driver const d(options_for(server));
    auto const a = acquire_on(d, server, "io");

    SECTION("stdin: binary and large, echoed back without deadlock, also with env on stdin first") {
        std::string data(3 << 20, '\0');
        for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>((i * 131) ^ (i >> 9));
        auto const r = d.execute(a.env, a.lease, {.program = "cat", .env = {{"X", "1"}}, .stdin_data = data,
                                                   .max_output_bytes = std::size_t(8) << 20});
        REQUIRE(r.exit_code == 0);
        CHECK(r.stdout_text.size() == data.size());
        CHECK(r.stdout_text == data);
    }
    SECTION("no stdin_data: the command reads EOF") {
        auto const r = d.execute(a.env, a.lease, {.program = "sh", .args = {"-c", "cat; echo done"}});
        CHECK(r.stdout_text == "done\n");
    }
    SECTION("output beyond max_output_bytes is dropped and flagged, but every chunk is streamed") {
        std::size_t streamed_out = 0, streamed_err = 0;
        auto const r = d.execute(a.env, a.lease,
                                 {.program = "sh",
                                  .args = {"-c", "head -c 300000 /dev/zero; echo e1 >&2; echo e2 >&2"},
                                  .max_output_bytes = 1000,
                                  .on_output = [&](berth::output_stream s, std::string_view c) {
                                      (s == berth::output_stream::stdout_stream ? streamed_out : streamed_err) += c.size();
                                  }});
        CHECK(r.exit_code == 0);
        CHECK(r.stdout_text.size() == 1000);
        CHECK(r.stdout_truncated);
        CHECK(streamed_out == 300000);
        CHECK(r.stderr_text == "e1\ne2\n");
        CHECK_FALSE(r.stderr_truncated);
        CHECK(streamed_err == 6);
    }
    SECTION("an exception from on_output stops the command and reaches the caller") {
        auto const pidfile = a.remote_cwd + "/pid";
        CHECK_THROWS_WITH(d.execute(a.env, a.lease,
                                    {.program = "sh",
                                     .args = {"-c", "echo $$ > pid; echo hi; exec sleep 30"},
                                     .on_output = [](berth::output_stream, std::string_view) {
                                         throw std::runtime_error("consumer gave up");
                                     }}),
                          "consumer gave up");
        auto const pid = std::stol(berth::test::ssh::read_file(pidfile));
        bool gone = false;
        for (int i = 0; i < 200 && !gone; ++i, std::this_thread::sleep_for(10ms)) gone = ::kill(pid, 0) != 0;
        CHECK(gone);
    }
}

TEST_CASE("ssh execute: the deadline kills the remote process group, signals are reported", "[ssh]") {
    auto& server = shared_sshd();
    ssh_driver const d(options_for(server));
    auto const a = acquire_on(d, server, "deadline");

    SECTION("timed out: the command and its background child are gone") {
        auto const r = d.execute(a.env, a.lease,
                                 {.program = "sh",
                                  .args = {"-c", "sleep 300 & echo $! > bg; echo started; wait"},
                                  .timeout = 1s});
        CHECK(r.timed_out);
        CHECK_FALSE(r.exit_code);
        CHECK(r.signal == SIGTERM);
        CHECK(r.stdout_text == "started\n");
        auto const bg = std::stol(berth::test::ssh::read_file(a.remote_cwd + "/bg"));
        bool gone = false;
        for (int i = 0; i < 200 && !gone; ++i, std::this_thread::sleep_for(10ms)) gone = ::kill(bg, 0) != 0;
        CHECK(gone);
    }
    SECTION("a stop request cancels it as the deadline would: the command and its background child are gone") {
        std::stop_source stop;
        auto const started = std::filesystem::path(a.remote_cwd) / "started";
        std::jthread stopper([&] {
            for (int i = 0; i < 3000 && !std::filesystem::exists(started); ++i) std::this_thread::sleep_for(10ms);
            stop.request_stop();
        });
        auto const r = d.execute(a.env, a.lease,
                                 {.program = "sh",
                                  .args = {"-c", "sleep 300 & echo $! > bg; touch started; wait"},
                                  .timeout = 120s,
                                  .stop = stop.get_token()});
        CHECK(r.cancelled);
        CHECK_FALSE(r.timed_out);
        CHECK_FALSE(r.exit_code);
        CHECK(r.signal == SIGTERM);
        auto const bg = std::stol(berth::test::ssh::read_file(a.remote_cwd + "/bg"));
        bool gone = false;
        for (int i = 0; i < 200 && !gone; ++i, std::this_thread::sleep_for(10ms)) gone = ::kill(bg, 0) != 0;
        CHECK(gone);
    }
    SECTION("a command that ignores SIGTERM is SIGKILLed after the grace") {
        auto const r = d.execute(a.env, a.lease,
                                 {.program = "sh", .args = {"-c", "trap '' TERM; echo armed; while :; do sleep 1; done"},
                                  .timeout = 1s});
        CHECK(r.timed_out);
        CHECK(r.signal == SIGKILL);
    }
    SECTION("a command that closed its output but keeps running is still killed at the deadline") {
        auto const r = d.execute(a.env, a.lease,
                                 {.program = "sh", .args = {"-c", "exec >/dev/null 2>&1; sleep 30"}, .timeout = 1s});
        CHECK(r.timed_out);
        CHECK(r.signal == SIGTERM);
        CHECK(r.duration < 10s);
    }
        SECTION("killed by a signal: no exit code, the signal number") {
        auto const r = d.execute(a.env, a.lease, {.program = "sh", .args = {"-c", "kill -USR1 $$"}});
        CHECK_FALSE(r.timed_out);
        CHECK_FALSE(r.exit_code);
        CHECK(r.signal == SIGUSR1);
    }
    SECTION("the session is still usable after a timeout") {
        (void)d.execute(a.env, a.lease, {.program = "sleep", .args = {"30"}, .timeout = 300ms});
        CHECK(d.execute(a.env, a.lease, {.program = "echo", .args = {"ok"}}).stdout_text == "ok\n");
    }
}

// ---- the session pool ------------------------------------------------------------------------------------

TEST_CASE("ssh sessions are pooled per destination, reused, and shared by copies", "[ssh]") {
    auto& server = shared_sshd();
    ssh_driver const d(options_for(server));
    auto const a = acquire_on(d, server, "pool");  // one connection
    for (int i = 0; i < 5; ++i) REQUIRE(d.execute(a.env, a.lease, {.program = "true"}).exit_code == 0);
    ssh_driver const copy = d;
    REQUIRE(copy.execute(a.env, a.lease, {.program = "true"}).exit_code == 0);
    auto const c = d.pool_counters();
    CHECK(c.connections_opened == 1);
    CHECK(c.sessions_reused == 6);
    CHECK(c.idle == 1);

    SECTION("concurrent calls each get a session of their own and all succeed") {
        std::atomic<int> ok{0};
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t)
            threads.emplace_back([&, t] {
                for (int i = 0; i < 5; ++i) {
                    auto const r = d.execute(a.env, a.lease, {.program = "echo", .args = {std::to_string(t * 10 + i)}});
                    if (r.stdout_text == std::to_string(t * 10 + i) + "\n") ++ok;
                }
            });
        for (auto& t : threads) t.join();
        CHECK(ok == 20);
        auto const after = d.pool_counters();
        CHECK(after.connections_opened <= 4);
        CHECK(after.idle <= d.options().max_idle_sessions_per_host);
    }
}

TEST_CASE("ssh: a pooled session whose server went away is replaced by a fresh connection", "[ssh]") {
    sshd_fixture server;
    ssh_driver const d(options_for(server));
    auto const a = acquire_on(d, server, "reconnect");
    REQUIRE(d.pool_counters().idle == 1);
    server.kill_all();
    server.start();
    auto const r = d.execute(a.env, a.lease, {.program = "echo", .args = {"back"}});
    CHECK(r.stdout_text == "back\n");
    auto const c = d.pool_counters();
    CHECK(c.connections_opened == 2);
    CHECK(c.reconnects == 1);
}

TEST_CASE("ssh identity_for: a per-environment key (e.g. a resolved privateKeySecretRef) wins over the default",
          "[ssh]") {
    auto& server = shared_sshd();
    auto opts = options_for(server);
    opts.identity = berth::ssh_identity{.private_key_file = server.stranger_key_path()};  // refused by the server
    std::atomic<int> calls{0};
    opts.identity_for = [&](berth::environment const& env,
                            berth::ssh_config const& cfg) -> std::optional<berth::ssh_identity> {
        ++calls;
        if (env.id == "env-ssh" && cfg.private_key_secret_ref && cfg.private_key_secret_ref->secret_id == "key-1")
            return berth::ssh_identity{.private_key = server.user_key_text()};
        return std::nullopt;
    };
    ssh_driver const d(opts);
    auto cfg = server.config(workspace_path(server, "identity"));
    SECTION("resolved: the environment's key is used") {
        cfg["privateKeySecretRef"] = boost::json::object{{"type", "secret_ref"}, {"secretId", "key-1"}};
        CHECK(d.execute(ssh_env(cfg), {}, {.program = "true", .cwd = "/"}).exit_code == 0);
        CHECK(calls > 0);
    }
    SECTION("not resolved: the default identity is used (and refused here)") {
        CHECK(ssh_error_of([&] { (void)d.execute(ssh_env(cfg), {}, {.program = "true", .cwd = "/"}); }).code() ==
              ssh_errc::auth_failed);
    }
}

// ---- probe ----------------------------------------------------------------------------------------------

TEST_CASE("ssh probe: upstream's messages, never throws", "[ssh]") {
    auto& server = shared_sshd();
    ssh_driver const d(options_for(server));
    auto const rwp = workspace_path(server, "probe");
    SECTION("ok") {
        auto const r = d.probe(ssh_env(server.config(rwp)));
        CHECK(r.ok);
        CHECK(r.summary == "Connected to " + server.user() + "@127.0.0.1 and verified the remote workspace path.");
        CHECK(r.details.at("remoteCwd") == rwp.c_str());
        CHECK(r.details.at("port") == server.port());
    }
    SECTION("unreachable: failure with host, port, username, path, error, code") {
        auto cfg = server.config(rwp);
        cfg["port"] = berth::test::ssh::free_loopback_port();
        auto const r = d.probe(ssh_env(cfg));
        CHECK_FALSE(r.ok);
        CHECK(r.summary == "SSH probe failed for " + server.user() + "@127.0.0.1.");
        CHECK(r.details.at("host") == "127.0.0.1");
        CHECK(r.details.at("port") == cfg.at("port"));
        CHECK(r.details.at("username") == server.user().c_str());
        CHECK(r.details.at("remoteWorkspacePath") == rwp.c_str());
        CHECK(r.details.at("code") == "connect_failed");
        CHECK(r.details.at("error").as_string().size() > 0);
    }
    SECTION("a bad config: failure, not an exception") {
        auto const r = d.probe(ssh_env(json(R"({"host":"h","username":"u","remoteWorkspacePath":"rel"})")));
        CHECK_FALSE(r.ok);
        CHECK(r.summary == "SSH probe failed for u@h.");
        CHECK(r.details.at("error") == "SSH remote workspace path must be absolute.");
        CHECK(r.details.at("code") == "invalid_config");
    }
}

// ---- faults -------------------------------------------------------------------------------------------

TEST_CASE("ssh faults: unreachable port, silent server, wrong key, unreadable key", "[ssh]") {
    auto& server = shared_sshd();
    auto opts = options_for(server);
    opts.connect_timeout = 1s;
    ssh_driver const d(opts);
    auto const rwp = workspace_path(server, "faults");

    SECTION("a closed port: connect_failed naming the destination") {
        auto cfg = server.config(rwp);
        auto const port = berth::test::ssh::free_loopback_port();
        cfg["port"] = port;
        auto const e = ssh_error_of([&] { (void)d.acquire({.env = ssh_env(cfg), .company_id = "c", .agent_id = std::nullopt}); });
        CHECK(e.code() == ssh_errc::connect_failed);
        CHECK(std::string(e.what()).find("127.0.0.1:" + std::to_string(port)) != std::string::npos);
    }
    SECTION("a server that accepts but never speaks: an error after the connect timeout, no hang") {
        int const fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        REQUIRE(::listen(fd, 8) == 0);  // the kernel completes the handshake; nobody answers
        socklen_t len = sizeof addr;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
        auto cfg = server.config(rwp);
        cfg["port"] = ntohs(addr.sin_port);
        auto const t0 = std::chrono::steady_clock::now();
        auto const e = ssh_error_of([&] { (void)d.execute(ssh_env(cfg), {}, {.program = "true"}); });
        auto const took = std::chrono::steady_clock::now() - t0;
        ::close(fd);
        CHECK(e.code() == ssh_errc::connect_failed);
        CHECK(took < 15s);  // a generous bound: the point is that it returns at all
    }
    SECTION("a key the server does not know: auth_failed") {
        auto o = opts;
        o.identity = berth::ssh_identity{.private_key_file = server.stranger_key_path()};
        ssh_driver const stranger(o);
        auto const e = ssh_error_of(
            [&] { (void)stranger.acquire({.env = ssh_env(server.config(rwp)), .company_id = "c", .agent_id = std::nullopt}); });
        CHECK(e.code() == ssh_errc::auth_failed);
        CHECK(std::string(e.what()).find(server.user() + "@127.0.0.1") != std::string::npos);
    }
    SECTION("key text that is not a key: key_unreadable, the text is not in the message") {
        auto o = opts;
        o.identity = berth::ssh_identity{.private_key = "not-a-key-but-secret-material-42"};
        ssh_driver const broken(o);
        auto const e = ssh_error_of(
            [&] { (void)broken.execute(ssh_env(server.config(rwp)), {}, {.program = "true"}); });
        CHECK(e.code() == ssh_errc::key_unreadable);
        CHECK(std::string(e.what()).find("secret-material") == std::string::npos);
    }
}

TEST_CASE("ssh host keys: unknown refused under strict checking, changed refused always", "[ssh]") {
    auto& server = shared_sshd();
    auto const rwp = workspace_path(server, "hostkeys");
    auto const empty_known_hosts = (server.dir() / "empty_known_hosts").string();
    berth::test::ssh::write_file(empty_known_hosts, "");
    auto opts = options_for(server);
    opts.known_hosts_file = empty_known_hosts;
    ssh_driver const d(opts);

    SECTION("changed key") {
        auto cfg = server.config(rwp);
        cfg["knownHosts"] = server.changed_known_hosts();
        auto const e = ssh_error_of([&] { (void)d.execute(ssh_env(cfg), {}, {.program = "true"}); });
        CHECK(e.code() == ssh_errc::host_key_changed);
        CHECK(std::string(e.what()).find("refusing to connect") != std::string::npos);
        SECTION("even with strictHostKeyChecking off") {
            cfg["strictHostKeyChecking"] = false;
            CHECK(ssh_error_of([&] { (void)d.execute(ssh_env(cfg), {}, {.program = "true"}); }).code() ==
                  ssh_errc::host_key_changed);
        }
    }
    SECTION("unknown host (no knownHosts, an empty known hosts file)") {
        auto cfg = server.config(rwp);
        cfg.erase("knownHosts");
        auto const e = ssh_error_of([&] { (void)d.execute(ssh_env(cfg), {}, {.program = "true"}); });
        CHECK(e.code() == ssh_errc::host_key_unknown);
        SECTION("accepted with strictHostKeyChecking off, and nothing is written to the file") {
            cfg["strictHostKeyChecking"] = false;
            CHECK(d.execute(ssh_env(cfg), {}, {.program = "true", .cwd = "/"}).exit_code == 0);
            CHECK(berth::test::ssh::read_file(empty_known_hosts).empty());
        }
    }
    SECTION("the known hosts file option is used when the config has none") {
        auto const file = (server.dir() / "known_hosts_ok").string();
        berth::test::ssh::write_file(file, server.known_hosts());
        auto o = options_for(server);
        o.known_hosts_file = file;
        auto cfg = server.config(rwp);
        cfg.erase("knownHosts");
        CHECK(ssh_driver(o).execute(ssh_env(cfg), {}, {.program = "true", .cwd = "/"}).exit_code == 0);
    }
}

TEST_CASE("ssh: the server killed mid-command is an error, and the lease can still be released", "[ssh]") {
    sshd_fixture server;
    ssh_driver const d(options_for(server));
    berth::memory_store store;
    using stack = berth::stack<berth::drivers<ssh_driver>, berth::policies<berth::ephemeral>, berth::memory_store>;
    berth::run_orchestrator<stack> orch{store, d};
    auto const env = store.create_environment({.company_id = "company-1", .name = "doomed host",
                                               .driver = berth::driver_kind::ssh,
                                               .config = server.config(workspace_path(server, "killed"))},
                                              berth::system_clock{}.now());
    auto const acq = orch.acquire_for_run({.company_id = "company-1", .environment_id = env.id,
                                           .agent_id = std::nullopt, .heartbeat_run_id = "run-killed"});
    // The server dies once the command has started (its first output seen), never before.
    std::atomic<bool> started{false};
    std::thread killer([&] {
        auto const end = std::chrono::steady_clock::now() + 20s;
        while (!started && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(10ms);
        server.kill_all();
    });
    auto const e = ssh_error_of([&] {
        (void)orch.execute(acq.env, acq.lease,
                           {.program = "sh",
                            .args = {"-c", "echo started; sleep 30"},
                            .timeout = 20s,
                            .on_output = [&](berth::output_stream, std::string_view chunk) {
                                if (chunk.find("started") != std::string_view::npos) started = true;
                            }});
    });
    CHECK(started);
    killer.join();
    CHECK(e.code() == ssh_errc::connection_lost);
    // The lease ends, but the host is gone, so nothing could end the lease's remote processes:
    // release says so (cleanup failed, with the reason) instead of claiming a clean end.
    auto const released = orch.release_for_run({.company_id = "company-1", .agent_id = std::nullopt,
                                                .heartbeat_run_id = "run-killed",
                                                .outcome = berth::run_outcome::failed});
    CHECK(released.errors.empty());
    REQUIRE(released.released.size() == 1);
    CHECK_THAT(released.released[0].failure_reason.value_or(""), Catch::Contains("127.0.0.1"));
    CHECK(released.released[0].status == berth::lease_status::failed);  // ephemeral's status for a failed run
    CHECK(released.released[0].cleanup_status == berth::cleanup_status::failed);
    CHECK(store.get_lease(acq.lease.id)->status == berth::lease_status::failed);
}

namespace {
/// A process that runs (not gone, not a zombie waiting to be reaped). The "remote" host is this one.
bool running(pid_t pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    auto const close = text.rfind(')');
    return close != std::string::npos && close + 2 < text.size() && text[close + 2] != 'Z';
}
bool wait_gone(pid_t pid) {
    for (int i = 0; i < 500 && running(pid); ++i) std::this_thread::sleep_for(10ms);
    return !running(pid);
}
}  // namespace

TEST_CASE("ssh release ends what the lease's commands left running on the host, and nothing else", "[ssh]") {
    auto& server = shared_sshd();
    ssh_driver const d(options_for(server));
    auto a = acquire_on(d, server, "release-a");
    auto b = acquire_on(d, server, "release-b");
    b.lease.id = "lease-ssh-other-" + berth::new_id();
    // Each command leaves a detached job behind (its own session, output closed) and returns.
    auto leave_job = [&](acquired const& x) {
        auto const r = d.execute(x.env, x.lease,
                                 {.program = "sh",
                                  .args = {"-c", "setsid sleep 60 </dev/null >/dev/null 2>&1 & echo $!"},
                                  .timeout = 10s});
        REQUIRE(r.exit_code == 0);
        return static_cast<pid_t>(std::stol(r.stdout_text));
    };
    pid_t const job_a = leave_job(a);
    pid_t const job_b = leave_job(b);
    REQUIRE(running(job_a));
    REQUIRE(running(job_b));

    (void)d.release(a.env, a.lease, berth::lease_status::released);
    CHECK(wait_gone(job_a));
    CHECK(running(job_b));  // another lease's process is left alone
    (void)d.release(a.env, a.lease, berth::lease_status::released);  // idempotent
    (void)d.release(b.env, b.lease, berth::lease_status::expired);
    CHECK(wait_gone(job_b));
}

TEST_CASE("ssh release with the host unreachable reports a failed cleanup, and recovery retries it", "[ssh]") {
    sshd_fixture server;
    ssh_driver const d(options_for(server));
    auto const a = acquire_on(d, server, "release-unreachable");
    server.kill_all();
    static_assert(noexcept(d.release(a.env, a.lease, berth::lease_status::released)));
    auto const out = d.release(a.env, a.lease, berth::lease_status::released);
    CHECK(out.cleanup_status == berth::cleanup_status::failed);
    CHECK_THAT(out.failure_reason.value_or(""), Catch::Contains("127.0.0.1"));

    // Through recovery: a lease past its expiry whose host is out of reach stays pending_cleanup,
    // and the next recovery, with the host back, ends it.
    berth::memory_store store;
    berth::testing::manual_clock clock;
    using stack = berth::stack<berth::drivers<ssh_driver>, berth::policies<berth::ephemeral>, berth::memory_store,
                               berth::testing::manual_clock>;
    berth::run_orchestrator<stack> orch{store, clock, d};
    auto const env = store.create_environment({.company_id = "company-1", .name = "flaky host",
                                               .driver = berth::driver_kind::ssh,
                                               .config = server.config(workspace_path(server, "flaky"))},
                                              clock.now());
    server.start();
    auto const acq = orch.acquire_for_run({.company_id = "company-1", .environment_id = env.id,
                                           .agent_id = std::nullopt, .heartbeat_run_id = "run-flaky"});
    REQUIRE(acq.lease.expires_at);
    server.kill_all();
    clock.advance(std::chrono::hours(1));
    (void)berth::recover(orch);
    CHECK(store.get_lease(acq.lease.id)->status == berth::lease_status::pending_cleanup);
    server.start();
    (void)berth::recover(orch);
    auto const done = *store.get_lease(acq.lease.id);
    CHECK(done.status == berth::lease_status::expired);
    CHECK(done.cleanup_status == berth::cleanup_status::success);
}

// ---- workspace sync -------------------------------------------------------------------------------------

TEST_CASE("ssh workspace sync: tracked files pushed, remote edits pulled back, .git never", "[ssh]") {
    auto& server = shared_sshd();
    ssh_driver const d(options_for(server));
    auto const a = acquire_on(d, server, "sync");
    auto const local = server.dir() / ("local-" + std::to_string(::getpid()));
    std::filesystem::create_directories(local / "src");
    berth::test::ssh::write_file(local / "README", "v1\n");
    berth::test::ssh::write_file(local / "src" / "main.c", "int main(){}\n");
    berth::test::ssh::write_file(local / "untracked.txt", "not in git\n");
    auto git = [&](std::vector<std::string> args) {
        args.insert(args.begin(), {"-C", local.string(), "-c", "user.name=t", "-c", "user.email=t@t"});
        return berth::test::ssh::run_checked("git", std::move(args));
    };
    git({"init", "-q"});
    git({"add", "README", "src/main.c"});
    git({"commit", "-q", "-m", "init"});
    // As in a real checkout, the files were not written in the last seconds (see sync_marker).
    for (auto const* f : {"README", "src/main.c"})
        std::filesystem::last_write_time(local / f, std::filesystem::file_time_type::clock::now() - 1h);

    auto const pushed = d.sync_in(a.env, a.lease, local.string());
    CHECK(pushed.files == 2);
    std::filesystem::path const remote = a.remote_cwd;
    CHECK(berth::test::ssh::read_file(remote / "README") == "v1\n");
    CHECK(berth::test::ssh::read_file(remote / "src" / "main.c") == "int main(){}\n");
    CHECK_FALSE(std::filesystem::exists(remote / "untracked.txt"));
    CHECK_FALSE(std::filesystem::exists(remote / ".git"));

    // The run edits a file, adds one, and writes into a .git directory of its own.
    auto const r = d.execute(a.env, a.lease, {.program = "sh",
                                              .args = {"-c", "echo v2 > README; echo new > added.txt; "
                                                             "mkdir -p .git && echo evil > .git/config"}});
    REQUIRE(r.exit_code == 0);
    auto const local_git_config = berth::test::ssh::read_file(local / ".git" / "config");

    auto const pulled = d.sync_out(a.env, a.lease, local.string());
    CHECK(pulled.files == 2);
    CHECK(berth::test::ssh::read_file(local / "README") == "v2\n");
    CHECK(berth::test::ssh::read_file(local / "added.txt") == "new\n");
    CHECK(berth::test::ssh::read_file(local / "src" / "main.c") == "int main(){}\n");
    CHECK(berth::test::ssh::read_file(local / ".git" / "config") == local_git_config);

    SECTION("sync_in of a directory that is not a git work tree is a local error") {
        auto const plain = server.dir() / "not-a-repo";
        std::filesystem::create_directories(plain);
        CHECK(ssh_error_of([&] { (void)d.sync_in(a.env, a.lease, plain.string()); }).code() == ssh_errc::local_failed);
    }
}

// ---- the orchestrator's lifecycle through ssh_driver ------------------------------------------------------

namespace {

template <class Store>
void lifecycle_through_ssh(Store& store) {
    auto& server = shared_sshd();
    ssh_driver const d(options_for(server));
    using stack = berth::stack<berth::drivers<berth::local_driver, ssh_driver>,
                               berth::policies<berth::ephemeral, berth::retain_on_failure>, Store>;
    berth::run_orchestrator<stack> orch{store, berth::local_driver{}, d};
    auto const rwp = workspace_path(server, "lifecycle");
    auto const env = store.create_environment({.company_id = "company-1", .name = "Build host",
                                               .driver = berth::driver_kind::ssh, .config = server.config(rwp)},
                                              berth::system_clock{}.now());
    CHECK(orch.probe(env).ok);
    {
        berth::run_scope run{orch, {.company_id = "company-1", .environment_id = env.id, .agent_id = "agent-1",
                                    .heartbeat_run_id = "run-ssh-1"}};
        CHECK(run.lease().provider == "ssh");
        CHECK(run.lease().provider_lease_id == "ssh://" + server.user() + "@127.0.0.1:" +
                                                   std::to_string(server.port()) + rwp);
        auto const& realized = run.realize("/local/checkout", std::string("echo provisioned > provisioned.txt; echo \"$SHELL\""));
        CHECK(realized.cwd == rwp);
        REQUIRE(realized.target);
        CHECK(realized.target->kind == "remote");
        CHECK(realized.target->transport == "ssh");
        CHECK(berth::test::ssh::read_file(std::filesystem::path(rwp) / "provisioned.txt") == "provisioned\n");
        REQUIRE(run.lease().metadata);
        CHECK(run.lease().metadata->at("workspaceRealization").at("driver") == "ssh");

        auto const r = run.execute({.program = "sh", .args = {"-c", "pwd; cat provisioned.txt"}});
        CHECK(r.exit_code == 0);
        CHECK(r.stdout_text == rwp + "\nprovisioned\n");
        auto const released = run.finish(berth::run_outcome::succeeded);
        CHECK(released.errors.empty());
        REQUIRE(released.released.size() == 1);
        CHECK(released.released[0].status == berth::lease_status::released);
    }
    auto const events = store.list_activity({.run_id = "run-ssh-1"});
    REQUIRE(events.size() == 2);
    CHECK(events[0].action == "environment.lease_acquired");
    CHECK(events[1].action == "environment.lease_released");

    SECTION("a failing provision command: the seed's failure detail") {
        berth::run_scope run{orch, {.company_id = "company-1", .environment_id = env.id, .agent_id = "agent-1",
                                    .heartbeat_run_id = "run-ssh-2"}};
        try {
            (void)run.realize("/local/checkout", std::string("echo partial; echo 'no such tool' >&2; exit 3"));
            FAIL("realize must fail");
        } catch (berth::environment_run_error const& e) {
            CHECK(e.code() == berth::environment_error_code::workspace_realization_failed);
            CHECK(std::string(e.what()).find("exit code 3: no such tool") != std::string::npos);
        }
    }
}

}  // namespace

TEST_CASE("ssh lifecycle: acquire → realize → provision → execute → release (memory store)", "[ssh][orchestrator]") {
    berth::memory_store store;
    lifecycle_through_ssh(store);
}

#ifdef BERTH_TEST_SQLITE
TEST_CASE("ssh lifecycle: acquire → realize → provision → execute → release (sqlite store)", "[ssh][orchestrator]") {
    auto const path = std::filesystem::temp_directory_path() / ("berth-ssh-" + std::to_string(::getpid()) + ".db");
    {
        berth::sqlite_store store(path.string());
        lifecycle_through_ssh(store);
    }
    std::filesystem::remove(path);
    std::filesystem::remove(path.string() + "-wal");
    std::filesystem::remove(path.string() + "-shm");
}
#endif

#ifdef BERTH_RUN_EXE
TEST_CASE("berth-run --ssh: the command runs on the SSH host through the lifecycle, with --sync", "[ssh][berth_run]") {
    auto& server = shared_sshd();
    auto const rwp = workspace_path(server, "berth-run");
    auto const known = (server.dir() / "berth_run_known_hosts").string();
    berth::test::ssh::write_file(known, server.known_hosts());
    auto const local = server.dir() / ("berth-run-local-" + std::to_string(::getpid()));
    std::filesystem::create_directories(local);
    berth::test::ssh::write_file(local / "input.txt", "from local\n");
    berth::test::ssh::run_checked("git", {"-C", local.string(), "init", "-q"});
    berth::test::ssh::run_checked("git", {"-C", local.string(), "add", "input.txt"});
    std::filesystem::last_write_time(local / "input.txt", std::filesystem::file_time_type::clock::now() - 1h);

    auto const spec = server.user() + "@127.0.0.1:" + std::to_string(server.port()) + ":" + rwp;
    auto const r = berth::process::run(
        {.program = BERTH_RUN_EXE,
         .args = {"--db", ":memory:", "--ssh", spec, "--identity", server.user_key_path(), "--known-hosts", known,
                  "--cwd", local.string(), "--sync", "--", "sh", "-c",
                  "pwd; cat input.txt; echo 'made remotely' > output.txt; exit 3", "ignored-arg0"},
         .timeout = 60s},
        {.inherit_sanitized_environment = true});
    INFO(r.stderr_text);
    CHECK(r.exit_code == 3);
    CHECK(r.stdout_text == rwp + "\nfrom local\n");
    CHECK(r.stderr_text.find("provider ssh") != std::string::npos);
    CHECK(r.stderr_text.find("environment.lease_released") != std::string::npos);
    CHECK(berth::test::ssh::read_file(local / "output.txt") == "made remotely\n");

    SECTION("a malformed --ssh is a usage error, and the default --db is never created") {
        // The bug this guards: the spec was checked only after the store was opened, so a typo
        // left a berth.db in the working directory.
        auto const cwd = server.dir() / "usage-cwd";
        std::filesystem::create_directories(cwd);
        auto usage_error = [&](std::string const& spec) {
            return berth::process::run(
                {.program = BERTH_RUN_EXE, .args = {"--ssh", spec, "--", "true"}, .cwd = cwd.string()},
                {.inherit_sanitized_environment = true});
        };
        auto const bad = usage_error("nohost");
        CHECK(bad.exit_code == 2);
        CHECK(bad.stderr_text.find("expected USER@HOST:PORT:/PATH, got nohost") != std::string::npos);
        auto const bad_port = usage_error("me@host:99999:/work");
        CHECK(bad_port.exit_code == 2);
        CHECK(bad_port.stderr_text.find("--ssh me@host:99999:/work: SSH port must be an integer from 1 to 65535 (got \"99999\")") != std::string::npos);
        CHECK(std::filesystem::is_empty(cwd));
    }
}
#endif

#endif  // BERTH_TEST_SSH

// What berth's SSH execute costs over libssh itself, against a real sshd this benchmark starts
// (tests/support/sshd_fixture.hpp, on a free loopback port):
//
//   floor  raw libssh on an open session (TCP_NODELAY): new channel, exec request "true", read to
//          EOF, exit status, close — no berth code
//   berth  ssh_driver::execute of {program "true"} with the session pool warm: the same channel
//          round trip, plus berth's framing (cd into the lease's cwd, the pid line on stderr,
//          `exec 'true'`), the output drain with its deadline, and the pool checkout
//   scale  a fresh `ssh host true` with the OpenSSH client (new TCP connection, key exchange,
//          authentication, a session): what a driver that shells out to ssh pays per command
//
//   ratio ssh_execute_warm = berth / floor         (target <= 1.2)
//   ratio ssh_execute_vs_openssh_fresh = berth / scale   (target <= 0.5; typically far lower)
//
// The two rows of the first ratio run one after the other, so on a machine shared with other jobs a
// change of load between them moves that ratio by ±30 % (measured: 0.73 … 1.35 over five runs). The
// paired row alternates floor and berth calls in one loop, so both see the same load, and its ratio
// is printed as a third line:
//
//   ratio ssh_execute_warm_paired = berth / floor, interleaved   (target <= 1.2)

#include "bench_support.hpp"

// The stores are not used here; sshd_fixture.hpp pulls in <filesystem>.
#include <berth/drivers/ssh.hpp>
#include <berth/src.hpp>  // Boost.JSON's implementation: this executable's one TU

#include "sshd_fixture.hpp"

#include <libssh/libssh.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

namespace {

berth::test::ssh::sshd_fixture& server() {
    static berth::test::ssh::sshd_fixture s;
    return s;
}

struct raw_session {
    ssh_session s = nullptr;
    raw_session() {
        auto& srv = server();
        s = ssh_new();
        int const port = srv.port();
        int const nodelay = 1;
        bool const no_config = false;
        ssh_options_set(s, SSH_OPTIONS_HOST, "127.0.0.1");
        ssh_options_set(s, SSH_OPTIONS_PORT, &port);
        ssh_options_set(s, SSH_OPTIONS_USER, srv.user().c_str());
        ssh_options_set(s, SSH_OPTIONS_NODELAY, &nodelay);
        ssh_options_set(s, SSH_OPTIONS_PROCESS_CONFIG, &no_config);
        if (ssh_connect(s) != SSH_OK) throw std::runtime_error(ssh_get_error(s));
        ssh_key key = nullptr;
        ssh_pki_import_privkey_file(srv.user_key_path().c_str(), nullptr, nullptr, nullptr, &key);
        int const rc = ssh_userauth_publickey(s, nullptr, key);
        ssh_key_free(key);
        if (rc != SSH_AUTH_SUCCESS) throw std::runtime_error("raw libssh: authentication failed");
    }
    ~raw_session() {
        ssh_disconnect(s);
        ssh_free(s);
    }
    /// One exec of `true`; returns its exit status (or -1).
    int exec_true() const {
        ssh_channel ch = ssh_channel_new(s);
        int status = -1;
        if (ssh_channel_open_session(ch) == SSH_OK && ssh_channel_request_exec(ch, "true") == SSH_OK) {
            char buf[256];
            while (ssh_channel_read(ch, buf, sizeof buf, 0) > 0) {
            }
            status = ssh_channel_get_exit_status(ch);
            ssh_channel_close(ch);
        }
        ssh_channel_free(ch);
        return status;
    }
};

struct berth_side {
    berth::ssh_driver driver;
    berth::environment env{};
    berth::environment_lease lease{};
    berth_side()
        : driver([] {
              berth::ssh_driver_options o;
              o.identity = berth::ssh_identity{.private_key_file = server().user_key_path()};
              return o;
          }()) {
        env.id = "env-bench";
        env.driver = berth::driver_kind::ssh;
        env.config = server().config("/tmp");
        lease.id = "lease-bench";
    }
    int exec_true() const {
        auto const r = driver.execute(env, lease, berth::command{.program = "true"});
        return r.exit_code.value_or(-1);
    }
};

void raw_libssh_exec_true(benchmark::State& state) {
    raw_session const raw;
    (void)raw.exec_true();
    for (auto _ : state) {
        if (raw.exec_true() != 0) {
            state.SkipWithError("raw libssh exec of true failed");
            break;
        }
    }
}

void berth_ssh_execute_true(benchmark::State& state) {
    berth_side const b;
    (void)b.exec_true();  // warms the pool: one connection, then reused
    for (auto _ : state) {
        if (b.exec_true() != 0) {
            state.SkipWithError("berth ssh execute of true failed");
            break;
        }
    }
    state.counters["connections"] = static_cast<double>(b.driver.pool_counters().connections_opened);
}

void openssh_fresh_ssh_true(benchmark::State& state) {
    auto& srv = server();
    auto const known = (srv.dir() / "bench_known_hosts").string();
    berth::test::ssh::write_file(known, srv.known_hosts());
    berth::command const cmd{.program = "ssh",
                             .args = {"-p", std::to_string(srv.port()), "-i", srv.user_key_path(), "-o", "BatchMode=yes",
                                      "-o", "IdentitiesOnly=yes", "-o", "UserKnownHostsFile=" + known, "-o",
                                      "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR", "-F", "/dev/null",
                                      srv.user() + "@127.0.0.1", "true"}};
    for (auto _ : state) {
        auto const r = berth::process::run(cmd, {.inherit_sanitized_environment = true});
        if (r.exit_code != 0) {
            state.SkipWithError(("ssh failed: " + r.stderr_text).c_str());
            break;
        }
    }
}

void paired_ssh_execute_over_raw(benchmark::State& state) {
    using clock = std::chrono::steady_clock;
    raw_session const raw;
    berth_side const b;
    (void)raw.exec_true();
    (void)b.exec_true();
    clock::duration raw_t{}, berth_t{};
    bool berth_first = false;
    for (auto _ : state) {
        berth_first = !berth_first;
        for (int side = 0; side < 2; ++side) {
            auto const t0 = clock::now();
            if ((side == 0) == berth_first) {
                benchmark::DoNotOptimize(b.exec_true());
                berth_t += clock::now() - t0;
            } else {
                benchmark::DoNotOptimize(raw.exec_true());
                raw_t += clock::now() - t0;
            }
        }
    }
    if (raw_t.count() > 0) state.counters["berth_over_raw"] = double(berth_t.count()) / double(raw_t.count());
}

}  // namespace

BENCHMARK(raw_libssh_exec_true)->UseRealTime()->MinTime(1.0)->Unit(benchmark::kMicrosecond);
BENCHMARK(berth_ssh_execute_true)->UseRealTime()->MinTime(1.0)->Unit(benchmark::kMicrosecond);
BENCHMARK(openssh_fresh_ssh_true)->UseRealTime()->Iterations(5)->Unit(benchmark::kMicrosecond);
BENCHMARK(paired_ssh_execute_over_raw)->UseRealTime()->MinTime(1.0)->Unit(benchmark::kMicrosecond);

int main(int argc, char** argv) {
    return berth::bench::run_and_report(
        argc, argv,
        {{"ssh_execute_warm", "berth_ssh_execute_true/min_time:1.000/real_time",
          "raw_libssh_exec_true/min_time:1.000/real_time", 1.2},
         {"ssh_execute_vs_openssh_fresh", "berth_ssh_execute_true/min_time:1.000/real_time",
          "openssh_fresh_ssh_true/iterations:5/real_time", 0.5},
         {.metric = "ssh_execute_warm_paired",
          .numerator = "paired_ssh_execute_over_raw/min_time:1.000/real_time",
          .denominator = "",
          .target = 1.2,
          .counter = "berth_over_raw"}});
}

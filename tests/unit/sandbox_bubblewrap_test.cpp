// berth::bubblewrap with the real `bwrap`: what a sandboxed command can and cannot do (the
// security tests of issue 17), its lifetime (timeout, kill -9 of the host process), limits,
// reusable sandboxes through the sandbox driver, and config validation.
#include <catch2/catch.hpp>

#ifdef BERTH_TEST_SANDBOX

#include <berth/drivers/sandbox.hpp>
#include <berth/process/child.hpp>

#include <boost/json/parse.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <csignal>
#include <cstring>
#include <unistd.h>

using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

boost::json::object json(char const* text) { return boost::json::parse(text).as_object(); }

std::string slurp(fs::path const& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// Command lines (NULs as spaces) of the processes, in any pid namespace below ours, that contain
/// `marker`.
std::vector<std::string> processes_matching(std::string const& marker) {
    std::vector<std::string> found;
    std::error_code ec;
    for (fs::directory_iterator e("/proc", ec), end; !ec && e != end; e.increment(ec)) {
        auto const name = e->path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        auto cmdline = slurp(e->path() / "cmdline");
        for (auto& c : cmdline)
            if (c == '\0') c = ' ';
        if (cmdline.find(marker) != std::string::npos) found.push_back(name + ": " + cmdline.substr(0, 200));
    }
    return found;
}

int processes_with(std::string const& marker) { return static_cast<int>(processes_matching(marker).size()); }

/// Whether `sleep <marker>` runs: the innermost process of a sandbox started with that marker.
bool sleeper_runs(std::string const& marker) {
    for (auto const& p : processes_matching(marker))
        if (p.find(": sleep " + marker) != std::string::npos) return true;
    return false;
}

template <class P>
bool eventually(P pred, std::chrono::milliseconds limit = 5s) {
    auto const deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
        if (pred()) return true;
        std::this_thread::sleep_for(10ms);
    }
    return pred();
}

/// A sleep duration nobody else uses: it marks a test's sandboxed processes in /proc.
std::string unique_marker() {
    std::random_device rd;
    return "7" + std::to_string(100000 + rd() % 800000) + "." + std::to_string(rd() % 1000);
}

struct sandbox_fixture {
    fs::path root;
    berth::bubblewrap bw;
    berth::sandbox_driver<berth::bubblewrap> driver;
    berth::environment env;

    explicit sandbox_fixture(char const* config = R"({"provider": "bubblewrap"})")
        : root(make_root()), bw({.state_root = (root / "state").string()}), driver(bw), env(make_env(config)) {
        fs::create_directories(root / "ws-a");
        fs::create_directories(root / "ws-b");
    }
    ~sandbox_fixture() {
        std::error_code ec;
        fs::remove_all(root, ec);
    }
    sandbox_fixture(sandbox_fixture const&) = delete;
    sandbox_fixture& operator=(sandbox_fixture const&) = delete;

    static fs::path make_root() {
        std::string tmpl = (fs::temp_directory_path() / "berth-sandbox-test-XXXXXX").string();
        if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        return tmpl;
    }
    static berth::environment make_env(char const* config) {
        berth::environment e{};
        e.id = "env-bwrap";
        e.company_id = "company-1";
        e.name = "Bubblewrap";
        e.driver = berth::driver_kind::sandbox;
        e.config = json(config);
        return e;
    }

    berth::acquire_request request(char const* agent = "agent-a", char const* ew = "ew-1",
                                   berth::lease_policy_kind policy = berth::lease_policy_kind::ephemeral) const {
        return berth::acquire_request{.env = env,
                                      .company_id = env.company_id,
                                      .agent_id = std::string(agent),
                                      .heartbeat_run_id = "run-" + std::string(agent),
                                      .execution_workspace_id = std::string(ew),
                                      .lease_policy = policy};
    }

    /// Acquires and realizes a lease on `workspace` (as the orchestrator would, metadata included).
    berth::environment_lease open(fs::path const& workspace, berth::acquire_request const& r, char const* id = "lease-1") {
        auto const g = driver.acquire(r);
        berth::environment_lease l{};
        l.id = id;
        l.company_id = r.company_id;
        l.environment_id = env.id;
        l.execution_workspace_id = r.execution_workspace_id;
        l.heartbeat_run_id = r.heartbeat_run_id;
        l.lease_policy = r.lease_policy;
        l.provider = g.provider;
        l.provider_lease_id = g.provider_lease_id;
        l.metadata = g.metadata;
        auto const w = driver.realize_workspace(
            {.env = env, .lease = l, .local_path = workspace.string(), .remote_path = std::nullopt, .mode = std::nullopt, .metadata = {}});
        (*l.metadata)["workspaceRealization"] = w.metadata.at("workspaceRealization");
        return l;
    }
    berth::environment_lease open(fs::path const& workspace) { return open(workspace, request()); }

    berth::command_result sh(berth::environment_lease const& l, std::string const& script,
                             std::chrono::milliseconds timeout = 20s) const {
        return driver.execute(env, l, {.program = "sh", .args = {"-c", script}, .timeout = timeout});
    }
};

}  // namespace

TEST_CASE("bubblewrap: a command runs in the workspace, bound read-write at /workspace",
          "[sandbox][bubblewrap]") {
    sandbox_fixture f;
    auto const l = f.open(f.root / "ws-a");
    auto const r = f.sh(l, "pwd; echo made > result.txt; id -u; echo \"$HOME\"; hostname");
    INFO(r.stderr_text);
    REQUIRE(r.exit_code == 0);
    CHECK(r.stdout_text.substr(0, r.stdout_text.find('\n')) == "/workspace");
    CHECK(r.stdout_text.find("/home/sandbox\nberth-sandbox") != std::string::npos);
    CHECK(slurp(f.root / "ws-a" / "result.txt") == "made\n");
    // stdin, exit codes and cwd inside the sandbox pass through.
    auto const in = f.driver.execute(f.env, l, {.program = "cat", .stdin_data = std::string("piped")});
    CHECK(in.stdout_text == "piped");
    CHECK(f.sh(l, "exit 7").exit_code == 7);
    CHECK(f.driver.execute(f.env, l, {.program = "pwd", .cwd = std::string("/tmp")}).stdout_text == "/tmp\n");
}

TEST_CASE("bubblewrap security: the command cannot read the host's home, /root, /tmp or /etc/shadow",
          "[sandbox][bubblewrap][sandbox-security]") {
    sandbox_fixture f;
    // A secret in the host's home (HOME, else /root) and one in the host's /tmp.
    fs::path const home = std::getenv("HOME") ? std::getenv("HOME") : "/root";
    auto const secret_file = home / (".berth-sandbox-secret-" + unique_marker());
    auto const tmp_secret = fs::temp_directory_path() / (".berth-sandbox-secret-" + unique_marker());
    { std::ofstream(secret_file) << "host-secret"; }
    { std::ofstream(tmp_secret) << "host-secret"; }
    auto const l = f.open(f.root / "ws-a");
    auto const r = f.sh(l, "cat '" + secret_file.string() + "' '" + tmp_secret.string() +
                               "' /root/.bashrc /etc/shadow 2>&1; ls /root /home/* 2>&1; echo done");
    fs::remove(secret_file);
    fs::remove(tmp_secret);
    INFO(r.stdout_text);
    CHECK(r.stdout_text.find("host-secret") == std::string::npos);
    CHECK(r.stdout_text.find("/root': No such file or directory") != std::string::npos);
    CHECK(r.stdout_text.find("/etc/shadow: No such file or directory") != std::string::npos);
    CHECK(r.stdout_text.find("done") != std::string::npos);
}

TEST_CASE("bubblewrap security: the command cannot write outside its workspace",
          "[sandbox][bubblewrap][sandbox-security]") {
    sandbox_fixture f;
    auto const a = f.open(f.root / "ws-a", f.request("agent-a"), "lease-a");
    auto const b = f.open(f.root / "ws-b", f.request("agent-b"), "lease-b");
    auto const marker = "berth-write-" + unique_marker();
    auto const other = (f.root / "ws-b" / marker).string();
    // Each write must fail; the script reports the ones that did not.
    auto const r = f.sh(a, "for p in /etc/" + marker + " /usr/" + marker + " /" + marker + " /usr/bin/" + marker +
                               " '" + other + "' '" + (f.root / "state").string() + "/" + marker + "'; do " +
                               "(echo x > \"$p\") 2>/dev/null && echo \"WROTE $p\"; done; echo checked");
    INFO(r.stdout_text << r.stderr_text);
    CHECK(r.stdout_text == "checked\n");
    CHECK_FALSE(fs::exists("/etc/" + marker));
    CHECK_FALSE(fs::exists("/usr/" + marker));
    CHECK_FALSE(fs::exists(other));
    // The other lease's workspace is not even visible: its host path does not exist in here.
    CHECK(f.sh(a, "test -e '" + (f.root / "ws-b").string() + "'").exit_code == 1);
    (void)b;
}

TEST_CASE("bubblewrap security: the command does not see host processes", "[sandbox][bubblewrap][sandbox-security]") {
    sandbox_fixture f;
    auto const marker = unique_marker();
    auto host = berth::process::child::start({.program = "sleep", .args = {marker}});
    REQUIRE(eventually([&] { return processes_with(marker) == 1; }));
    auto const l = f.open(f.root / "ws-a");
    auto const r = f.sh(l, "cat /proc/[0-9]*/cmdline | tr '\\0' ' '; echo; ls -d /proc/[0-9]* | wc -l");
    host.signal_group(SIGKILL);
    (void)host.wait();
    INFO(r.stdout_text);
    REQUIRE(r.exit_code == 0);
    CHECK(r.stdout_text.find(marker) == std::string::npos);
    // bwrap's init, sh, and the pipeline's processes: nothing else.
    auto const count = std::stoi(r.stdout_text.substr(r.stdout_text.rfind('\n', r.stdout_text.size() - 2) + 1));
    CHECK(count <= 5);
}

TEST_CASE("bubblewrap security: no host environment beyond the allow-list, and no value in bwrap's argv",
          "[sandbox][bubblewrap][sandbox-security]") {
    ::setenv("BERTH_SANDBOX_TEST_API_TOKEN", "tok-123-secret", 1);
    ::setenv("BERTH_SANDBOX_TEST_PLAIN", "plain-value", 1);
    sandbox_fixture f(R"({"provider": "bubblewrap", "allowEnv": ["BERTH_SANDBOX_TEST_PLAIN"]})");
    auto const l = f.open(f.root / "ws-a");
    berth::command const c{.program = "env", .env = {{"RUN_SECRET_TOKEN", "given-by-caller"}}};
    auto const r = f.driver.execute(f.env, l, c);
    ::unsetenv("BERTH_SANDBOX_TEST_API_TOKEN");
    INFO(r.stdout_text);
    CHECK(r.stdout_text.find("tok-123-secret") == std::string::npos);
    CHECK(r.stdout_text.find("BERTH_SANDBOX_TEST_PLAIN=plain-value") != std::string::npos);  // allow-listed
    CHECK(r.stdout_text.find("RUN_SECRET_TOKEN=given-by-caller") != std::string::npos);       // the command's own
    CHECK(r.stdout_text.find("HOME=/home/sandbox") != std::string::npos);
    CHECK(r.stdout_text.find("SSH_AUTH_SOCK") == std::string::npos);
    // Only the allow-listed plain variable, ours and the command's: count the lines.
    std::size_t lines = 0;
    for (char ch : r.stdout_text) lines += ch == '\n';
    CHECK(lines <= 10);
    // The command's values travel in bwrap's environment, never in its argv (visible in ps).
    auto const params = berth::sandbox_lease_params{.provider_lease_id = l.provider_lease_id,
                                                    .lease_metadata = *l.metadata,
                                                    .config = {}};
    for (auto const& arg : f.bw.bwrap_args(params, c)) CHECK(arg.find("given-by-caller") == std::string::npos);
    ::unsetenv("BERTH_SANDBOX_TEST_PLAIN");

    // A secret name cannot be allow-listed.
    CHECK_THROWS_WITH(f.bw.validate_config(json(R"({"allowEnv": ["GITHUB_TOKEN"]})")),
                      "Bubblewrap allowEnv must not name a secret variable (GITHUB_TOKEN); pass it in the "
                      "command's env instead.");
}

TEST_CASE("bubblewrap lifetime: on timeout the command is killed with its whole tree",
          "[sandbox][bubblewrap][sandbox-security]") {
    sandbox_fixture f;
    auto const l = f.open(f.root / "ws-a");
    auto const marker = unique_marker();
    auto const started = std::chrono::steady_clock::now();
    // Two background sleeps and one that ignores SIGTERM: all must die.
    auto const r = f.sh(l, "sleep " + marker + " & (trap '' TERM; sleep " + marker + ") & sleep " + marker + "; wait",
                        400ms);
    CHECK(r.timed_out);
    CHECK(std::chrono::steady_clock::now() - started < 4s);
    CHECK(eventually([&] { return processes_with(marker) == 0; }, 2s));
}

TEST_CASE("bubblewrap lifetime: kill -9 of the process that holds the sandbox kills the sandbox",
          "[sandbox][bubblewrap][sandbox-security]") {
    sandbox_fixture f;
    auto const marker = unique_marker();
    auto helper = berth::process::child::start(
        {.program = BERTH_TEST_SANDBOX_HELPER, .args = {(f.root / "state").string(), marker}});
    REQUIRE(eventually([&] { return sleeper_runs(marker); }, 10s));
    ::kill(helper.pid(), SIGKILL);
    int const status = helper.wait();
    CHECK(WIFSIGNALED(status));
    bool const gone = eventually([&] { return processes_with(marker) == 0; }, 3s);
    for (auto const& p : processes_matching(marker)) UNSCOPED_INFO("left: " << p);
    CHECK(gone);
}

TEST_CASE("bubblewrap: resource limits apply to the command", "[sandbox][bubblewrap]") {
    sandbox_fixture f(R"({"provider": "bubblewrap", "limits": {"cpuSeconds": 30, "addressSpaceBytes": 2147483648,
                           "openFiles": 64, "processes": 300}})");
    auto const l = f.open(f.root / "ws-a");
    auto const r = f.sh(l, "cat /proc/self/limits");
    INFO(r.stdout_text << r.stderr_text);
    REQUIRE(r.exit_code == 0);
    // "Max open files            64                   64                   files": soft and hard limit.
    auto limit = [&](char const* name) {
        auto const at = r.stdout_text.find(name);
        if (at == std::string::npos) return std::string();
        std::istringstream in(r.stdout_text.substr(at + std::strlen(name)));
        std::string soft, hard;
        in >> soft >> hard;
        return soft + "/" + hard;
    };
    CHECK(limit("Max cpu time") == "30/30");
    CHECK(limit("Max address space") == "2147483648/2147483648");
    CHECK(limit("Max open files") == "64/64");
    CHECK(limit("Max processes") == "300/300");
    // The limit bites: a shell cannot hold more than 64 descriptors.
    auto const fds = f.driver.execute(
        f.env, l, {.program = "bash", .args = {"-c", "for i in $(seq 1 100); do exec {fd}</dev/null || { echo $fd; exit; }; done; echo none"}});
    INFO(fds.stdout_text << fds.stderr_text);
    REQUIRE(fds.stdout_text != "none\n");
    CHECK(std::stoi(fds.stdout_text) <= 63);
}

TEST_CASE("bubblewrap: no network unless the config allows it", "[sandbox][bubblewrap][sandbox-security]") {
    sandbox_fixture f;
    auto const l = f.open(f.root / "ws-a");
    auto const r = f.sh(l, "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '");
    CHECK(r.stdout_text == "lo\n");
}

TEST_CASE("bubblewrap: lease state lives under the state root and goes with the lease", "[sandbox][bubblewrap]") {
    sandbox_fixture f;
    auto l = f.open(f.root / "ws-a");
    auto const dir = f.bw.lease_directory(l.provider_lease_id);
    CHECK(dir.parent_path() == f.root / "state");
    CHECK(fs::is_directory(dir / "home"));
    // /tmp and HOME persist across the lease's commands.
    CHECK(f.sh(l, "echo one > /tmp/t && echo two > ~/h").exit_code == 0);
    CHECK(f.sh(l, "cat /tmp/t ~/h").stdout_text == "one\ntwo\n");
    (void)f.driver.release(f.env, l, berth::lease_status::released);
    CHECK_FALSE(fs::exists(dir));
    // A gone sandbox is an error naming it, not a sandbox without state.
    CHECK_THROWS_WITH(f.sh(l, "true"), "Bubblewrap sandbox \"" + *l.provider_lease_id + "\" no longer exists.");
    // Lease ids come from metadata: anything but ours is refused, so no path can be smuggled in.
    l.provider_lease_id = "../../etc";
    CHECK_THROWS_WITH(f.sh(l, "true"), "bubblewrap: \"../../etc\" is not a bubblewrap sandbox id (bwrap-<uuid>)");
}

TEST_CASE("bubblewrap reuse: a reused sandbox keeps the previous run's files, another agent never gets them",
          "[sandbox][bubblewrap][sandbox-reuse]") {
    sandbox_fixture f(R"({"provider": "bubblewrap", "reuseLease": true})");
    auto const reuse = berth::lease_policy_kind::reuse_by_environment;
    auto first = f.open(f.root / "ws-a", f.request("agent-a", "ew-1", reuse), "lease-1");
    REQUIRE(first.metadata->if_contains(berth::reusable_sandbox_lease_key));
    CHECK(f.sh(first, "echo remembered > ~/note").exit_code == 0);
    (void)f.driver.release(f.env, first, berth::lease_status::released);
    first.status = berth::lease_status::released;
    CHECK(fs::exists(f.bw.lease_directory(first.provider_lease_id)));

    // The next run of agent-a on ew-1: the previous lease is the candidate, and resumes.
    auto const next = f.request("agent-a", "ew-1", reuse);
    CHECK(berth::judge_sandbox_reuse_candidate(*f.driver.reuse_scope(next), next.heartbeat_run_id, first) ==
          berth::sandbox_reuse_verdict::reuse);
    auto const g = f.driver.resume(f.env, first);
    CHECK(g.provider_lease_id == first.provider_lease_id);
    auto resumed = first;
    resumed.metadata = g.metadata;
    CHECK(f.sh(resumed, "cat ~/note").stdout_text == "remembered\n");

    // agent-b, same workspace: not a candidate; its own new sandbox has no note.
    auto const other = f.request("agent-b", "ew-1", reuse);
    CHECK(berth::judge_sandbox_reuse_candidate(*f.driver.reuse_scope(other), other.heartbeat_run_id, first) ==
          berth::sandbox_reuse_verdict::skip);
    auto const b = f.open(f.root / "ws-a", other, "lease-2");
    CHECK(b.provider_lease_id != first.provider_lease_id);
    auto const rb = f.sh(b, "cat ~/note");
    CHECK(rb.exit_code != 0);
    CHECK(rb.stdout_text.empty());

    // Expired at release: the sandbox is destroyed (upstream lease_expired).
    auto const out = f.driver.release(f.env, resumed, berth::lease_status::expired);
    CHECK(out.failure_reason == "lease_expired");
    CHECK_FALSE(fs::exists(f.bw.lease_directory(first.provider_lease_id)));
    CHECK_THROWS_WITH(f.driver.resume(f.env, first),
                      "Bubblewrap sandbox \"" + *first.provider_lease_id + "\" no longer exists.");
    (void)f.driver.destroy(f.env, b);
    CHECK(fs::is_empty(f.root / "state"));
}

TEST_CASE("bubblewrap: realization and config are validated, naming the field", "[sandbox][bubblewrap]") {
    sandbox_fixture f;
    auto const g = f.driver.acquire(f.request());
    berth::environment_lease l{};
    l.id = "lease-1";
    l.provider = g.provider;
    l.provider_lease_id = g.provider_lease_id;
    l.metadata = g.metadata;
    for (char const* bad : {"/", "relative/path", "/nonexistent/berth/dir", "/tmp/../etc"}) {
        INFO(bad);
        CHECK_THROWS_WITH(f.driver.realize_workspace({.env = f.env, .lease = l, .local_path = std::string(bad),
                                                      .remote_path = std::nullopt, .mode = std::nullopt, .metadata = {}}),
                          "Bubblewrap workspace \"" + std::string(bad) +
                              "\" must be an existing absolute directory other than /.");
    }
    auto field_of = [&](char const* config) {
        try {
            (void)f.bw.validate_config(json(config));
        } catch (berth::sandbox_config_error const& e) {
            return e.field();
        }
        return std::string("(none)");
    };
    CHECK(field_of(R"({"network": "yes"})") == "network");
    CHECK(field_of(R"({"limits": {"openFiles": 0}})") == "limits.openFiles");
    CHECK(field_of(R"({"limits": {"memory": 1}})") == "limits.memory");
    CHECK(field_of(R"({"readOnlyPaths": ["/"]})") == "readOnlyPaths");
    CHECK(field_of(R"({"image": "ubuntu"})") == "image");
    CHECK(field_of(R"({"network": true, "reuseLease": true, "limits": {"cpuSeconds": null}})") == "(none)");
    (void)f.driver.destroy(f.env, l);
}

TEST_CASE("bubblewrap: probe runs a sandbox", "[sandbox][bubblewrap]") {
    sandbox_fixture f;
    auto const p = f.driver.probe(f.env);
    INFO(p.summary);
    CHECK(p.ok);
    CHECK(p.summary.rfind("Bubblewrap sandbox is available (bubblewrap ", 0) == 0);
    CHECK(p.details.at("provider") == "bubblewrap");
    berth::bubblewrap broken{{.state_root = (f.root / "state").string(), .bwrap = "/nonexistent/bwrap"}};
    auto const bad = broken.probe({});
    CHECK_FALSE(bad.ok);
    CHECK(bad.summary.rfind("Bubblewrap sandbox failed: ", 0) == 0);
}

#endif  // BERTH_TEST_SANDBOX

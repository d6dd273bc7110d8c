// berth-run — run one command through berth's whole lifecycle:
//   resolve → acquire → realize → execute → release
// printing one progress line per step (on stderr, so stdout stays the command's), then the
// environment's leases and the company's activity as tables — read back from the SQLite file
// (--db, default ./berth.db), so a second run shows the first one's lease and events too. The exit
// code is the command's (124 on timeout, 128+N on signal N, 125 when berth itself failed).
//
//   berth-run [options] -- COMMAND [ARGS...]

#include <berth/berth.hpp>
#include <berth/drivers/local.hpp>
#include <berth/src.hpp>
#include <berth/stores/sqlite.hpp>
#if BERTH_RUN_WITH_SERVICES
#include "services.hpp"  // --services FILE: the run's runtime services
#endif
#ifdef BERTH_RUN_WITH_SSH
#include <berth/drivers/ssh.hpp>
#endif

#include <fmt/format.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct options {
    std::string company = "demo-company";
    std::optional<std::string> agent;
    std::string run = berth::new_id();
    std::optional<std::string> environment;
    std::string cwd = std::filesystem::current_path().string();
    std::chrono::seconds timeout{600};
    std::string db = "berth.db";
    std::optional<std::string> services;
    bool worktree = false;  // run in a fresh git worktree of --cwd's repository (berth/workspace)
    std::optional<std::string> issue, title;
    bool keep = false;
    std::optional<std::string> ssh;          // user@host:port:/path
    std::optional<std::string> identity;     // private key file for --ssh
    std::optional<std::string> known_hosts;  // known_hosts file for --ssh
    bool sync = false;                       // push --cwd's tracked files before, pull changes after
    std::vector<std::string> argv;
};

constexpr char const* usage = R"(usage: berth-run [options] -- COMMAND [ARGS...]

Runs COMMAND through berth's lifecycle (resolve, acquire, realize, execute, release) on the local
machine, every step recorded in a SQLite file, then prints the environment's leases and the
company's activity from that file (so earlier runs show too).

options:
  --company ID       company the run belongs to            (default: demo-company)
  --agent ID         agent running it                      (default: none; recorded as the system's)
  --run ID           heartbeat run id                      (default: a new UUID)
  --environment ID   environment to use                    (default: the company's local environment)
  --cwd DIR          workspace directory                   (default: the current directory)
  --timeout SECONDS  deadline for COMMAND                  (default: 600)
  --db PATH          SQLite file of leases and activity    (default: ./berth.db; :memory: keeps nothing)
  --services FILE    start the runtime services of FILE (workspace runtime JSON) for the run,
                     print the workspace-ready summary, stop them by their policies afterwards
  --worktree         run COMMAND in a new git worktree of the --cwd repository, removed afterwards
  --issue ID         issue of the run: names the worktree's branch (default: run-<run id>)
  --title TEXT       issue title: the branch's slug        (default: the issue id)
  --keep             keep the worktree and its branch after the run
  --ssh USER@HOST:PORT:/PATH
                     run on an SSH host instead, in the remote workspace /PATH (an ssh environment is
                     created in the store, or reused when one has the same host, port, user and path)
  --identity FILE    private key for --ssh                 (default: ssh-agent / ~/.ssh/id_*)
  --known-hosts FILE known_hosts for --ssh's host key       (default: ~/.ssh/known_hosts; strict)
  --sync             with --ssh: push the --cwd git work tree's tracked files before COMMAND and pull
                     the files COMMAND changed back after it
  -h, --help         this text
)";

[[noreturn]] void die_usage(std::string const& why) {
    std::fprintf(stderr, "berth-run: %s\n\n%s", why.c_str(), usage);
    std::exit(2);
}

#ifdef BERTH_RUN_WITH_SSH
/// `user@host:port:/path` (or `user@host:/path`) as an SSH environment config; parse_ssh_config
/// checks it with upstream's messages. A bad spec is a usage error, found before --db is opened.
boost::json::object ssh_config_of(std::string const& spec) {
    auto const at = spec.find('@');
    auto const path = spec.find(":/");
    if (at == std::string::npos || path == std::string::npos || path < at)
        die_usage(fmt::format("--ssh: expected USER@HOST:PORT:/PATH, got {}", spec));
    auto host = spec.substr(at + 1, path - at - 1);
    boost::json::object config{{"username", spec.substr(0, at)}, {"remoteWorkspacePath", spec.substr(path + 1)}};
    if (auto const colon = host.rfind(':'); colon != std::string::npos) {
        config["port"] = host.substr(colon + 1);
        host.resize(colon);
    }
    config["host"] = host;
    try {
        config["port"] = berth::parse_ssh_config(config).port;
    } catch (berth::ssh_config_error const& e) {
        die_usage(fmt::format("--ssh {}: {}", spec, e.what()));
    }
    return config;
}
#endif

options parse(int argc, char** argv) {
    options o;
    int i = 1;
    auto value = [&](std::string_view flag) -> std::string {
        if (i + 1 >= argc) die_usage(fmt::format("{} needs a value", flag));
        return argv[++i];
    };
    for (; i < argc; ++i) {
        std::string_view const a = argv[i];
        if (a == "--") {
            for (++i; i < argc; ++i) o.argv.emplace_back(argv[i]);
            break;
        }
        if (a == "-h" || a == "--help") {
            std::fputs(usage, stdout);
            std::exit(0);
        } else if (a == "--company") o.company = value(a);
        else if (a == "--agent") o.agent = value(a);
        else if (a == "--run") o.run = value(a);
        else if (a == "--environment") o.environment = value(a);
        else if (a == "--cwd") o.cwd = value(a);
        else if (a == "--db") o.db = value(a);
        else if (a == "--services") o.services = value(a);
        else if (a == "--worktree") o.worktree = true;
        else if (a == "--issue") o.issue = value(a);
        else if (a == "--title") o.title = value(a);
        else if (a == "--keep") o.keep = true;
        else if (a == "--ssh") o.ssh = value(a);
        else if (a == "--identity") o.identity = value(a);
        else if (a == "--known-hosts") o.known_hosts = value(a);
        else if (a == "--sync") o.sync = true;
        else if (a == "--timeout") {
            auto const v = value(a);
            char* end = nullptr;
            long const n = std::strtol(v.c_str(), &end, 10);
            if (v.empty() || *end != '\0' || n <= 0) die_usage(fmt::format("--timeout: not a positive number of seconds: {}", v));
            o.timeout = std::chrono::seconds(n);
        } else die_usage(fmt::format("unknown option: {}", a));
    }
    if (o.argv.empty()) die_usage("no COMMAND given after --");
    if (o.company.empty()) die_usage("--company must not be empty");
    if (o.db.empty()) die_usage("--db must not be empty");
    if (o.ssh && (o.environment || o.worktree)) die_usage("--ssh excludes --environment and --worktree");
    if (!o.ssh && (o.identity || o.known_hosts || o.sync)) die_usage("--identity, --known-hosts and --sync need --ssh");
#ifndef BERTH_RUN_WITH_SSH
    if (o.ssh) die_usage("--ssh: this berth-run was built without the SSH driver (libssh-dev)");
#else
    if (o.ssh) (void)ssh_config_of(*o.ssh);  // a usage error must not create the --db file
#endif
    return o;
}

#ifdef BERTH_RUN_WITH_SSH
/// The id of the company's SSH environment for this config, created on first use.
template <class Store>
std::string ssh_environment(Store& store, options const& o) {
    auto const config = ssh_config_of(*o.ssh);
    for (auto const& e : store.list_environments(o.company, {.driver = berth::driver_kind::ssh}))
        if (e.config == config) return e.id;
    return store
        .create_environment({.company_id = o.company, .name = "ssh " + *o.ssh, .driver = berth::driver_kind::ssh,
                             .config = config},
                            berth::system_clock{}.now())
        .id;
}
#endif

void step(std::string_view name, std::string const& text) { fmt::print(stderr, "[berth] {:<8} {}\n", name, text); }

std::string shown(std::optional<std::string> const& s) { return s ? *s : "-"; }
template <class T>
std::string shown(std::optional<T> const& v) {
    return v ? fmt::format("{}", *v) : "-";
}

void print_lease(berth::environment_lease const& l) {
    std::vector<std::pair<std::string, std::string>> rows{
        {"id", l.id},
        {"environment", l.environment_id},
        {"run", shown(l.heartbeat_run_id)},
        {"status", berth::to_string(l.status)},
        {"policy", berth::to_string(l.lease_policy)},
        {"provider", shown(l.provider)},
        {"epoch", std::to_string(l.epoch)},
        {"acquired at", berth::to_iso8601(l.acquired_at)},
        {"released at", shown(l.released_at)},
        {"failure reason", shown(l.failure_reason)},
        {"cleanup status", shown(l.cleanup_status)},
    };
    fmt::print(stderr, "\nlease\n");
    for (auto const& [k, v] : rows) fmt::print(stderr, "  {:<15} {}\n", k, v);
}

/// Every lease of the environment (newest first) and every event of the company, oldest first.
void print_history(std::vector<berth::environment_lease> const& leases,
                   std::vector<berth::activity_event> const& events, std::string const& db) {
    fmt::print(stderr, "\nleases of this environment in {} ({})\n  {:<36}  {:<36}  {:<9}  {:<5}  {}\n", db,
               leases.size(), "lease", "run", "status", "epoch", "acquired at");
    for (auto const& l : leases)
        fmt::print(stderr, "  {:<36}  {:<36}  {:<9}  {:<5}  {}\n", l.id, shown(l.heartbeat_run_id),
                   berth::to_string(l.status), l.epoch, berth::to_iso8601(l.acquired_at));
    fmt::print(stderr, "\nactivity of this company ({} events)\n  {:<27}  {:<27}  {:<8}  {}\n", events.size(), "time",
               "action", "actor", "details");
    for (auto const& e : events)
        fmt::print(stderr, "  {:<27}  {:<27}  {:<8}  {}\n", berth::to_iso8601(e.created_at), e.action, e.actor_type,
                   boost::json::serialize(e.details));
}

int exit_code_of(berth::command_result const& r) {
    if (r.timed_out) return 124;
    if (r.exit_code) return *r.exit_code;
    if (r.signal) return 128 + *r.signal;
    return 125;
}

template <class Store>
int run_demo(Store& store, options const& o) {
#ifdef BERTH_RUN_WITH_SSH
    using stack = berth::stack<berth::drivers<berth::local_driver, berth::ssh_driver>,
                               berth::policies<berth::ephemeral, berth::retain_on_failure>, Store>;
    berth::ssh_driver_options ssh_options;
    if (o.identity) ssh_options.identity = berth::ssh_identity{.private_key_file = *o.identity};
    ssh_options.known_hosts_file = o.known_hosts;
    berth::run_orchestrator<stack> orch{store, berth::local_driver{}, berth::ssh_driver{std::move(ssh_options)}};
    auto const environment_id = o.ssh ? std::optional<std::string>(ssh_environment(store, o)) : o.environment;
#else
    using stack = berth::stack<berth::drivers<berth::local_driver>,
                               berth::policies<berth::ephemeral, berth::retain_on_failure>, Store>;
    berth::run_orchestrator<stack> orch{store, berth::local_driver{}};
    auto const environment_id = o.environment;
#endif

    auto const env = orch.resolve_environment({.company_id = o.company, .environment_id = environment_id});
    step("resolve", fmt::format("environment \"{}\" ({}, {}) {}", env.name, env.driver, env.status, env.id));

    auto const issue = o.issue.value_or("run-" + o.run.substr(0, 8));
    berth::run_scope run{orch, {.company_id = o.company,
                                .environment_id = env.id,
                                .agent_id = o.agent,
                                .heartbeat_run_id = o.run,
                                .issue_id = o.worktree || o.issue ? std::optional(issue) : std::nullopt}};
    step("acquire", fmt::format("lease {} policy {} provider {}", run.lease().id, run.lease().lease_policy,
                                shown(run.lease().provider)));

    auto const& realized =
        o.worktree ? run.realize(berth::realize_workspace_request{
                         .base = {.base_cwd = o.cwd, .project_id = o.cwd},
                         .strategy = {.type = berth::workspace_strategy_type::git_worktree},
                         .issue = berth::workspace_issue{.id = issue, .identifier = issue, .title = o.title},
                         .agent = {.id = o.agent, .name = o.agent.value_or("berth-run"), .company_id = o.company}})
                   : run.realize(o.cwd);
    if (realized.workspace)
        step("worktree", fmt::format("{} branch {} ({})", realized.cwd, shown(realized.workspace->branch_name),
                                     realized.workspace->created ? "created" : "reused"));
    step("realize", fmt::format("cwd {}{}", realized.cwd,
                                realized.target ? " target " + realized.target->kind : std::string()));

#if BERTH_RUN_WITH_SERVICES
    std::optional<run_services<Store>> services;
    if (o.services) services.emplace(store, *o.services, o.run, realized.cwd, o.company, o.agent);
#else
    if (o.services) throw std::runtime_error("--services: this berth-run was built without berth::services");
#endif

    std::string shown_argv;
    for (auto const& a : o.argv) shown_argv += (shown_argv.empty() ? "" : " ") + a;
    step("execute", shown_argv);
    berth::command cmd{.program = o.argv.front(),
                       .args = {o.argv.begin() + 1, o.argv.end()},
                       .timeout = o.timeout,
                       .on_output = [](berth::output_stream s, std::string_view chunk) {
                           auto* f = s == berth::output_stream::stdout_stream ? stdout : stderr;
                           std::fwrite(chunk.data(), 1, chunk.size(), f);
                           std::fflush(f);
                       }};
#ifdef BERTH_RUN_WITH_SSH
    auto const& ssh = orch.template driver<berth::ssh_driver>();
    if (o.sync) {
        auto const pushed = ssh.sync_in(env, run.lease(), o.cwd);
        step("sync", fmt::format("pushed {} tracked files of {} ({} bytes)", pushed.files, o.cwd, pushed.bytes));
    }
#endif
    auto const result = run.execute(std::move(cmd));
#ifdef BERTH_RUN_WITH_SSH
    if (o.sync) {
        auto const pulled = ssh.sync_out(env, run.lease(), o.cwd);
        step("sync", fmt::format("pulled {} changed files into {}", pulled.files, o.cwd));
    }
#endif
    auto const code = exit_code_of(result);
    step("execute", fmt::format("{} in {:.1f} ms", result.timed_out ? std::string("timed out")
                                                   : result.exit_code ? fmt::format("exit {}", *result.exit_code)
                                                                      : fmt::format("signal {}", shown(result.signal)),
                                 double(result.duration.count()) / 1000.0));

    auto const outcome = result.timed_out ? berth::run_outcome::timed_out
                         : code == 0      ? berth::run_outcome::succeeded
                                          : berth::run_outcome::failed;
    auto const released = run.finish(outcome);
    for (auto const& e : released.errors) step("release", fmt::format("error on lease {}: {}", e.lease_id, e.message));
    for (auto const& l : released.released)
        step("release", fmt::format("lease {} {}{}", l.id, l.status,
                                    l.failure_reason ? " (" + *l.failure_reason + ")" : std::string()));

    if (realized.execution_workspace && !o.keep) {
#if BERTH_RUN_WITH_SERVICES
        services.reset();  // the run's services run in the worktree: release them before removing it
#endif
        berth::workspace_manager wm{store, orch.workspaces()};
        auto const done = wm.cleanup(realized.execution_workspace->id, {.heartbeat_run_id = o.run,
                                                                        .cleanup_reason = "berth-run finished"});
        step("cleanup", fmt::format("{} {}", shown(done.result.cleaned_path),
                                    done.result.cleaned ? "removed" : "NOT removed"));
        for (auto const& w : done.result.warnings) step("cleanup", "warning: " + w);
    } else if (realized.execution_workspace) {
        step("cleanup", fmt::format("kept {} (--keep)", realized.cwd));
    }
    for (auto const& op : store.list_operations({.company_id = o.company, .heartbeat_run_id = o.run}))
        step("op", fmt::format("{:<19} {:<9} exit {} {}", op.phase, op.status, shown(op.exit_code),
                               op.command.value_or("(no command)")));

    auto const lease = store.get_lease(run.lease().id);
    print_lease(lease ? *lease : run.lease());
    print_history(store.list_leases(env.id, {}), store.list_activity({.company_id = o.company}), o.db);
    return code;
}

}  // namespace

int main(int argc, char** argv) {
    auto const o = parse(argc, argv);
    try {
        auto store = berth::sqlite_store::open(o.db);
        return run_demo(store, o);
    } catch (berth::environment_run_error const& e) {
        std::fprintf(stderr, "berth-run: %s: %s\n", berth::to_string(e.code()), e.what());
    } catch (std::exception const& e) {
        std::fprintf(stderr, "berth-run: %s\n", e.what());
    }
    return 125;
}

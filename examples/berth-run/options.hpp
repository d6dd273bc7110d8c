// berth-run's command line: the options struct and its parser (CLI11, Debian's libcli11-dev).
//
// Everything before the first `--` is berth-run's own (`--db PATH` or `--db=PATH`); everything
// after it is the command, passed on untouched. A word that is not an option before `--` is most
// likely a command given without it (`berth-run ls`): that gets a hint, not "unknown option".
// To add an option: a member in `options`, one line in add_options(), a check in validate().
#pragma once

#include <CLI/App.hpp>
#include <CLI/Config.hpp>
#include <CLI/Formatter.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <berth/model/ids.hpp>  // berth::new_id (the default run id)

namespace berth_run {

/// How much berth-run says on stderr, and whether stdout is one JSON document.
enum class output_mode { normal, quiet, json };

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
    std::optional<std::string> provision;  // provision command of the worktree (or the SSH workspace)
    std::optional<std::chrono::seconds> provision_timeout;
    std::optional<std::string> ssh;          // user@host:port:/path
    std::optional<std::string> identity;     // private key file for --ssh
    std::optional<std::string> known_hosts;  // known_hosts file for --ssh
    bool sync = false;                       // push --cwd's tracked files before, pull changes after
    std::optional<std::string> plugin;         // a plugin worker (upstream's SDK): node FILE.mjs, or an executable
    std::optional<std::string> plugin_config;  // its environment's driverConfig, as JSON
    std::optional<std::string> sandbox;      // provider of the sandbox COMMAND runs in (bubblewrap)
    bool reuse = false;                      // keep the sandbox for the next run of --agent on --cwd
    bool destroy_reusable = false;           // destroy the sandboxes --reuse kept (--cwd's, or --issue's)
    bool quiet = false;
    bool json = false;
    std::vector<std::string> argv;  // the command, after `--`

    [[nodiscard]] output_mode mode() const noexcept {
        return json ? output_mode::json : quiet ? output_mode::quiet : output_mode::normal;
    }
};

inline constexpr char const* usage_line =
    "usage: berth-run [options] -- COMMAND [ARGS...]\n       berth-run --destroy-reusable [--cwd DIR | --issue ID] [--db PATH]";

inline constexpr char const* description = R"(Runs COMMAND through berth's lifecycle (resolve, acquire, realize, execute, release) on the local
machine, every step recorded in a SQLite file, then prints the environment's leases and the
company's activity from that file (so earlier runs show too). A line on stderr says what each
step is about to do; on a terminal, a long step shows its elapsed time while it runs.
The exit code is COMMAND's (124: timed out, 128+N: killed by signal N, 125: berth failed, 2: usage).)";

inline constexpr char const* footer = R"(Options take their value as `--db PATH` or `--db=PATH`. Examples:
  berth-run -- ls -la
  berth-run --db=:memory: --json -- make test > run.json
  berth-run --worktree --issue ENG-1 --provision 'npm ci' -- npm test
  berth-run --sandbox bubblewrap --reuse --agent a1 -- make test   (then: berth-run --destroy-reusable))";

/// The usage line is berth-run's own: CLI11's would not show the `--` before COMMAND.
class formatter : public CLI::Formatter {
public:
    std::string make_usage(CLI::App const* app, std::string) const override {
        return std::string(usage_line) + "\n" + app->get_description() + "\n";
    }
    std::string make_description(CLI::App const*) const override { return {}; }
};

[[noreturn]] inline void die_usage(std::string const& why) {
    std::fprintf(stderr, "berth-run: %s\n%s\n(berth-run --help lists the options)\n", why.c_str(), usage_line);
    std::exit(2);
}

inline void add_options(CLI::App& app, options& o) {
    app.add_option("--company", o.company, "company the run belongs to")->capture_default_str();
    app.add_option("--agent", o.agent, "agent running it (default: none; recorded as the system's)");
    app.add_option("--run", o.run, "heartbeat run id (default: a new UUID)");
    app.add_option("--environment", o.environment, "environment to use (default: the company's local one)");
    app.add_option("--cwd", o.cwd, "workspace directory (default: the current directory)")->type_name("DIR");
    app.add_option("--timeout", o.timeout, "deadline for COMMAND, in seconds (default: 600)")
        ->type_name("SECONDS")
        ->check(CLI::PositiveNumber);
    app.add_option("--db", o.db,
                   "SQLite file of leases and activity (:memory: keeps nothing), or a PostgreSQL database "
                   "many hosts share: postgresql://user@host/db or 'host=... dbname=...' (the password in "
                   "PGPASSWORD or ~/.pgpass, not here)")
        ->capture_default_str()
        ->type_name("PATH");
    app.add_flag("-q,--quiet", o.quiet, "no progress lines and no tables: only COMMAND's output and errors");
    app.add_flag("--json", o.json,
                 "print one JSON document on stdout (the run's lease, events, steps, operations and exit code); "
                 "COMMAND's stdout goes to stderr");
    app.add_option("--services", o.services,
                   "start the runtime services of FILE (workspace runtime JSON) for the run, print the "
                   "workspace-ready summary, stop them by their policies afterwards")
        ->type_name("FILE");
    app.add_flag("--worktree", o.worktree, "run COMMAND in a new git worktree of the --cwd repository, removed after");
    app.add_option("--issue", o.issue, "issue of the run: names the worktree's branch (default: run-<run id>)");
    app.add_option("--title", o.title, "issue title: the branch's slug (default: the issue id)")->type_name("TEXT");
    app.add_flag("--keep", o.keep, "keep the worktree and its branch after the run");
    app.add_option("--provision", o.provision,
                   "shell command that provisions the workspace before COMMAND (needs --worktree or --ssh); "
                   "its output is shown as it runs")
        ->type_name("CMD");
    app.add_option("--provision-timeout", o.provision_timeout,
                   "deadline of --provision in a --worktree, in seconds (default: 900; over --ssh: 300)")
        ->type_name("SECONDS")
        ->check(CLI::PositiveNumber);
    app.add_option("--ssh", o.ssh,
                   "run on an SSH host instead, in the remote workspace /PATH (an ssh environment is created "
                   "in the store, or reused when one has the same host, port, user and path)")
        ->type_name("USER@HOST:PORT:/PATH");
    app.add_option("--identity", o.identity, "private key for --ssh (default: ssh-agent / ~/.ssh/id_*)")
        ->type_name("FILE");
    app.add_option("--known-hosts", o.known_hosts, "known_hosts for --ssh's host key (default: ~/.ssh/known_hosts)")
        ->type_name("FILE");
    app.add_option("--plugin", o.plugin,
                   "run in a plugin's environment instead: WORKER is a Paperclip plugin worker (a .mjs/.js file is run "
                   "with node; its manifest.json beside it names the plugin and its driver)")
        ->type_name("WORKER");
    app.add_option("--plugin-config", o.plugin_config, "with --plugin: the environment's driverConfig, as JSON")
        ->type_name("JSON");
    app.add_flag("--sync", o.sync,
                 "with --ssh: push the --cwd git work tree's tracked files before COMMAND and pull the files "
                 "COMMAND changed back after it");
    app.add_option("--sandbox", o.sandbox,
                   "run COMMAND isolated in a sandbox of PROVIDER (bubblewrap): --cwd bound at /workspace, no "
                   "host home, no host secrets, no network (docs/drivers/sandbox.md)")
        ->type_name("PROVIDER");
    app.add_flag("--reuse", o.reuse,
                 "with --sandbox and --agent: keep the sandbox (its home and /tmp) after a successful run and "
                 "resume it in the next run of the same agent on the same --cwd (with --worktree: the same "
                 "--issue's worktree) (--db must be a file; docs/drivers/sandbox.md)");
    app.add_flag("--destroy-reusable", o.destroy_reusable,
                 "instead of running a command: destroy every sandbox --reuse kept for --cwd (any agent), or with "
                 "--issue those of that issue; their leases end expired (no COMMAND)");
}

/// Checks that span several options; each message names the option and the value.
inline void validate(options const& o) {
    if (o.company.empty()) die_usage("--company must not be empty");
    if (o.db.empty()) die_usage("--db must not be empty");
    if (o.quiet && o.json) die_usage("--quiet and --json exclude each other (--json is quiet on stdout already)");
    if (o.ssh && (o.environment || o.worktree)) die_usage("--ssh excludes --environment and --worktree");
    if (!o.ssh && (o.identity || o.known_hosts || o.sync)) die_usage("--identity, --known-hosts and --sync need --ssh");
    if (o.provision && !o.worktree && !o.ssh)
        die_usage(fmt::format("--provision {}: needs --worktree or --ssh (berth provisions the workspaces it creates, "
                              "never the project directory itself)",
                              *o.provision));
    if (o.keep && !o.worktree) die_usage("--keep needs --worktree");
    if (o.sandbox && (o.ssh || o.plugin || o.environment))
        die_usage("--sandbox excludes --ssh, --plugin and --environment");
    if (o.reuse && !o.sandbox) die_usage("--reuse needs --sandbox");
    if (o.reuse && !o.agent)
        die_usage("--reuse needs --agent ID: a kept sandbox is resumed by the same agent only");
    if (o.reuse && o.worktree && !o.issue)
        die_usage("--reuse with --worktree needs --issue ID: the kept sandbox belongs to the issue's worktree "
                  "(without --issue every run has a worktree of its own)");
    if (o.provision_timeout && !o.provision) die_usage("--provision-timeout needs --provision");
    if (o.destroy_reusable) {
        if (!o.argv.empty()) die_usage("--destroy-reusable runs no COMMAND (nothing goes after --)");
        if (o.agent)
            die_usage(fmt::format("--agent {}: --destroy-reusable destroys the kept sandboxes of every agent of --cwd "
                                  "(or of --issue); it does not take --agent",
                                  *o.agent));
        if (o.reuse || o.worktree || o.ssh || o.plugin || o.environment || o.services || o.provision || o.keep)
            die_usage("--destroy-reusable takes only --cwd or --issue (and --db, --company, --quiet, --json)");
    }
    if (o.plugin && (o.ssh || o.environment || o.worktree))
        die_usage("--plugin excludes --ssh, --environment and --worktree");
    if (o.plugin_config && !o.plugin) die_usage("--plugin-config needs --plugin");
    if (o.provision && o.plugin)
        die_usage(fmt::format("--provision {}: not with --plugin (a plugin environment provisions itself)", *o.provision));
}

/// A command given without `--`: say how to run it rather than "unknown option".
[[noreturn]] inline void die_command_without_separator(std::vector<std::string> const& extras) {
    std::string command;
    for (auto const& a : extras) command += (command.empty() ? "" : " ") + a;
    die_usage(fmt::format("\"{}\" is not an option of berth-run. To run it as the command, put it after `--`:\n"
                          "  berth-run [options] -- {}",
                          extras.front(), command));
}

/// Parses argv; prints help and exits 0 for -h/--help, exits 2 with a message for a usage error.
inline options parse_options(int argc, char** argv) {
    std::vector<std::string> own;
    options o;
    int i = 1;
    for (; i < argc; ++i) {
        if (std::string(argv[i]) == "--") break;
        own.emplace_back(argv[i]);
    }
    bool const separated = i < argc;
    for (++i; i < argc; ++i) o.argv.emplace_back(argv[i]);

    CLI::App app{description, "berth-run"};
    app.formatter(std::make_shared<formatter>());
    app.footer(footer);
    app.allow_extras();  // so that a stray word gets the `--` hint below
    add_options(app, o);
    std::reverse(own.begin(), own.end());  // CLI11 takes a vector of arguments last-first
    try {
        app.parse(own);
    } catch (CLI::CallForHelp const&) {
        std::fputs(app.help().c_str(), stdout);
        std::exit(0);
    } catch (CLI::ParseError const& e) {
        die_usage(e.what());
    }
    if (auto const extras = app.remaining(); !extras.empty()) {
        auto const word = std::find_if(extras.begin(), extras.end(), [](auto const& a) { return a.empty() || a[0] != '-'; });
        if (word != extras.end()) die_command_without_separator({word, extras.end()});
        die_usage("unknown option: " + extras.front());
    }
    if (o.argv.empty() && !o.destroy_reusable)
        die_usage(separated ? "no COMMAND given after --" : "no COMMAND given (it goes after --)");
    validate(o);
    return o;
}

}  // namespace berth_run

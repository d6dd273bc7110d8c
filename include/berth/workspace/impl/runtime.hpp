#pragma once
// Definitions of berth::workspace_runtime (declared and documented in berth/workspace/runtime.hpp,
// which includes this file at its end; not meant to be included on its own).

#include <berth/error.hpp>              // parse_error
#include <berth/model/command.hpp>      // last_lines, output_stream
#include <berth/model/enum_string.hpp>  // parse_enum, to_string
#include <berth/process/proc.hpp>       // processes_working_in (an interrupted creation's git)
#include <berth/process/lease_processes.hpp>  // lease_variable (the provision command carries it)

#include <boost/json/serialize.hpp>  // serialize (values in parse errors)
#include <boost/json/value.hpp>      // boost::json::value

#include <csignal>       // kill, SIGKILL
#include <cstdlib>       // std::getenv
#include <functional>    // std::function (provision output)
#include <stop_token>    // std::stop_token
#include <filesystem>    // std::filesystem
#include <fstream>       // std::ifstream, std::ofstream (info/exclude)
#include <map>           // std::map
#include <string_view>   // std::string_view
#include <system_error>  // std::error_code
#include <vector>        // std::vector

namespace berth::detail::workspace {

namespace fs = std::filesystem;


[[nodiscard]] BERTH_DECL std::optional<std::string> string_member(json_object const& o, std::string_view key,
                                                              std::string_view field) {
    auto const* v = o.if_contains(key);
    if (!v || v->is_null()) return std::nullopt;
    if (!v->is_string()) throw parse_error(std::string(field), boost::json::serialize(*v), "expected a string");
    return std::string(v->get_string());
}

/// A non-empty value after trimming, else nullopt.
[[nodiscard]] BERTH_DECL std::optional<std::string> non_empty(std::optional<std::string> const& s) {
    if (!s) return std::nullopt;
    auto t = git_runner::trim(*s);
    if (t.empty()) return std::nullopt;
    return t;
}

/// The lines of git's stdout.
[[nodiscard]] BERTH_DECL std::vector<std::string> lines_of(std::string_view text) {
    std::vector<std::string> out;
    while (!text.empty()) {
        auto const nl = text.find('\n');
        auto line = git_runner::trim(text.substr(0, nl));
        if (!line.empty()) out.push_back(std::move(line));
        if (nl == std::string_view::npos) break;
        text.remove_prefix(nl + 1);
    }
    return out;
}

/// The same directory, as far as the file system can tell (symlinks resolved where they exist).
[[nodiscard]] BERTH_DECL fs::path canonical_or_normal(fs::path const& p) {
    std::error_code ec;
    auto c = fs::weakly_canonical(p, ec);
    return ec ? p.lexically_normal() : c.lexically_normal();
}

[[nodiscard]] BERTH_DECL bool same_path(fs::path const& a, fs::path const& b) {
    return canonical_or_normal(a) == canonical_or_normal(b);
}

[[nodiscard]] BERTH_DECL bool is_directory(std::string const& p) {
    std::error_code ec;
    return fs::is_directory(p, ec);
}

/// A ref from the config must not look like an option to git.
BERTH_DECL void check_ref_argument(std::string const& ref, std::string_view field) {
    if (ref.starts_with("-") || ref.find('\0') != std::string::npos || ref.find('\n') != std::string::npos)
        throw workspace_error("Unexpected " + std::string(field) + " value: " + ref +
                              " (a git ref must not start with '-' or contain newlines)");
}

/// Runs one git command, recorded when there is a recorder (upstream recordGitOperation), and
/// returns its result without throwing for a non-zero exit.
BERTH_DECL command_result run_git_recorded(git_runner const& git, operation_recorder* recorder,
                                       workspace_operation_phase phase, std::vector<std::string> const& args,
                                       std::string const& cwd, json_object metadata,
                                       std::optional<std::string> success_message, std::stop_token stop = {}) {
    if (!recorder) return git.run(args, cwd, std::move(stop));
    command_result result;
    recorder->record(phase, format_command_for_display("git", args), cwd, std::move(metadata), [&] {
        result = git.run(args, cwd, stop);
        bool const ok = result.exit_code == 0 && !result.timed_out && !result.cancelled;
        return operation_outcome{.status = ok ? workspace_operation_status::succeeded
                                              : workspace_operation_status::failed,
                                 .exit_code = result.exit_code,
                                 .stdout_text = result.stdout_text,
                                 .stderr_text = result.stderr_text,
                                 .system_message = ok ? success_message : std::nullopt};
    });
    return result;
}

/// Upstream runWorkspaceCommand / recordWorkspaceCommandOperation: `<shell> -c <command>` in
/// `cwd` with `env`, recorded when there is a recorder.
/// @throws workspace_error `<label> failed: <stderr>\n<stdout>`, each its last 20 lines (or `... failed
///         with exit code N`; `timed out` / `cancelled` first when it was ended).
BERTH_DECL void run_workspace_command(workspace_runtime_options const& options, std::string const& shell,
                                  operation_recorder* recorder, workspace_operation_phase phase,
                                  std::string const& command_text, std::string const& cwd,
                                  process::environment_map const& env, std::string const& label,
                                  json_object metadata, std::optional<std::string> success_message,
                                  std::stop_token stop = {},
                                  std::function<void(output_stream, std::string_view)> const& on_output = {},
                                  std::optional<std::chrono::milliseconds> timeout = std::nullopt) {
    command_result result;
    auto run = [&] {
        berth::command cmd{.program = shell,
                           .args = {"-c", command_text},
                           .cwd = cwd,
                           .timeout = timeout.value_or(options.command_timeout),
                           .on_output = on_output,
                           .stop = stop};
        try {
            result = process::run(cmd, {.inherit_sanitized_environment = false, .base_environment = env});
        } catch (process_error const& e) {
            throw workspace_error(label + " failed: " + e.what());
        }
    };
    if (recorder) {
        recorder->record(phase, command_text, cwd, std::move(metadata), [&] {
            run();
            bool const ok = result.exit_code == 0 && !result.timed_out && !result.cancelled;
            return operation_outcome{.status = ok ? workspace_operation_status::succeeded
                                                  : workspace_operation_status::failed,
                                     .exit_code = result.exit_code,
                                     .stdout_text = result.stdout_text,
                                     .stderr_text = result.stderr_text,
                                     .system_message = ok ? success_message : std::nullopt};
        });
    } else {
        run();
    }
    if (result.exit_code == 0 && !result.timed_out && !result.cancelled) return;
    // Upstream's `<stderr>\n<stdout>`, each cut to its last lines: the end of the output says why a
    // command failed, its start is often a login profile's noise, and all of it can be megabytes.
    std::string details = last_lines(result.stderr_text);
    if (auto const out = last_lines(result.stdout_text); !out.empty()) details += (details.empty() ? "" : "\n") + out;
    if (result.timed_out || result.cancelled)
        details = (result.cancelled ? "cancelled" : "timed out") + (details.empty() ? std::string() : ": " + details);
    throw workspace_error(details.empty() ? label + " failed with exit code " +
                                                std::to_string(result.exit_code.value_or(-1))
                                          : label + " failed: " + details);
}

/// The base environment of workspace commands: the configured one or this process's whole one
/// (the seed's `process.env`), minus secrets only when `strip_secret_environment` asks for it.
[[nodiscard]] BERTH_DECL process::environment_map command_base_env(workspace_runtime_options const& options) {
    auto env = options.command_environment ? *options.command_environment : process::current_environment();
    if (options.strip_secret_environment)
        std::erase_if(env, [](auto const& kv) { return process::is_secret_env_name(kv.first); });
    return env;
}

/// The seed's sanitizeRuntimeServiceBaseEnv, applied to the base of cleanup and teardown
/// commands: the host's own variables (PAPERCLIP_* there, BERTH_* here), DATABASE_URL and the two
/// npm auth settings, names compared exactly as the seed deletes them.
BERTH_DECL void drop_host_variables(process::environment_map& env) {
    std::erase_if(env, [](auto const& kv) {
        return kv.first.starts_with("BERTH_") || kv.first == "DATABASE_URL" ||
               kv.first == "npm_config_tailscale_auth" || kv.first == "npm_config_authenticated_private";
    });
}

/// Adds `/.berth/` to the repository's `info/exclude` (once), so that the default worktree parent
/// inside the checkout is not an untracked directory that a `git add -A` there would pick up as
/// embedded repositories. Best effort: a failure to write changes nothing else.
BERTH_DECL void exclude_berth_dir(std::string const& common_dir) {
    namespace fs = std::filesystem;
    auto const file = fs::path(common_dir) / "info" / "exclude";
    std::error_code ec;
    if (fs::exists(file, ec)) {
        std::ifstream in(file);
        std::string line;
        while (std::getline(in, line))
            if (line == "/.berth/") return;
    }
    fs::create_directories(file.parent_path(), ec);
    std::ofstream out(file, std::ios::app);
    out << "\n# berth execution workspaces (docs/workspaces.md)\n/.berth/\n";
}

/// Whether the repository may have remote-tracking refs of `origin` (so that the default branch
/// can be detected), decided from the files alone: a `refs/remotes/origin` directory (loose refs),
/// a `refs/remotes/origin/` line in `packed-refs`, or a reftable store (not read: assumed yes).
/// When this is false there is nothing for-each-ref could find, and its process is saved.
[[nodiscard]] BERTH_DECL bool may_have_origin_refs(std::string const& common_dir) {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::path const dir(common_dir);
    if (fs::exists(dir / "reftable", ec) || fs::exists(dir / "refs" / "remotes" / "origin", ec)) return true;
    std::ifstream packed(dir / "packed-refs");
    std::string line;
    while (std::getline(packed, line))
        if (line.find(" refs/remotes/origin/") != std::string::npos) return true;
    return false;
}

/// The default branch (upstream detectDefaultBranch, one process): origin/HEAD's target, else
/// origin/main, else origin/master. The start point is the local branch of that name when there
/// is one (upstream's seed uses the name), else the remote-tracking ref. nullopt when none.
struct detected_base {
    std::string ref;
    std::string sha;
};
[[nodiscard]] BERTH_DECL std::optional<detected_base> detect_default_branch(git_runner const& git,
                                                                        std::string const& repo_root) {
    auto const r = git.run({"for-each-ref", "--format=%(refname) %(objectname) %(symref)",
                            "refs/remotes/origin/HEAD", "refs/remotes/origin/main", "refs/remotes/origin/master",
                            "refs/heads/"},
                           repo_root);
    if (r.exit_code != 0) return std::nullopt;
    std::map<std::string, std::string> sha_of;
    std::optional<std::string> origin_head_target;
    for (auto const& line : lines_of(r.stdout_text)) {
        auto const sp1 = line.find(' ');
        if (sp1 == std::string::npos) continue;
        auto const sp2 = line.find(' ', sp1 + 1);
        std::string const name = line.substr(0, sp1);
        std::string const sha = line.substr(sp1 + 1, sp2 == std::string::npos ? std::string::npos : sp2 - sp1 - 1);
        sha_of[name] = sha;
        if (name == "refs/remotes/origin/HEAD" && sp2 != std::string::npos) origin_head_target = line.substr(sp2 + 1);
    }
    std::optional<std::string> branch;
    if (origin_head_target && origin_head_target->starts_with("refs/remotes/origin/"))
        branch = origin_head_target->substr(std::string_view("refs/remotes/origin/").size());
    for (char const* candidate : {"main", "master"})
        if (!branch && sha_of.contains(std::string("refs/remotes/origin/") + candidate)) branch = candidate;
    if (!branch) return std::nullopt;
    if (auto it = sha_of.find("refs/heads/" + *branch); it != sha_of.end()) return detected_base{*branch, it->second};
    if (auto it = sha_of.find("refs/remotes/origin/" + *branch); it != sha_of.end())
        return detected_base{"origin/" + *branch, it->second};
    return std::nullopt;
}

/// berth's marker of a worktree being created, beside its lock file: written before `git worktree
/// add`, removed once it succeeded. Lines `key=value`: branch, branchCreated (1 when berth runs
/// `worktree add -b`), baseSha (the new branch's expected tip).
[[nodiscard]] BERTH_DECL fs::path creation_marker_of(fs::path const& lock_file) {
    return fs::path(lock_file).replace_extension(".creating");
}

BERTH_DECL void write_creation_marker(fs::path const& marker, std::string const& branch, bool branch_created,
                                  std::optional<std::string> const& base_sha) {
    std::ofstream out(marker, std::ios::trunc);
    out << "branch=" << branch << "\nbranchCreated=" << (branch_created ? 1 : 0)
        << "\nbaseSha=" << base_sha.value_or("") << "\n";
    out.flush();
    if (!out)
        throw workspace_error("Cannot write the worktree creation marker \"" + marker.string() +
                              "\" (is the disk full?).");
}

[[nodiscard]] BERTH_DECL std::map<std::string, std::string> read_creation_marker(fs::path const& marker) {
    std::map<std::string, std::string> out;
    std::ifstream in(marker);
    std::string line;
    while (std::getline(in, line))
        if (auto const eq = line.find('='); eq != std::string::npos) out[line.substr(0, eq)] = line.substr(eq + 1);
    return out;
}

/// git's own sign of a creation that did not finish: `<worktree>/.git` names an admin directory
/// whose `locked` file still says "initializing" (git writes it first and removes it last).
[[nodiscard]] BERTH_DECL bool git_creation_unfinished(fs::path const& worktree) {
    std::ifstream dotgit(worktree / ".git");
    std::string line;
    if (!std::getline(dotgit, line) || !line.starts_with("gitdir: ")) return false;
    std::ifstream locked(fs::path(git_runner::trim(line.substr(8))) / "locked");
    std::string reason;
    std::getline(locked, reason);
    return reason.find("initializing") != std::string::npos;
}

/// Removes a worktree whose creation an interrupted run left unfinished, so that it is made again
/// rather than reused as complete. The caller holds the worktree's lock: no live berth run works
/// there. Git processes still working inside (the dead run's `git worktree add` and its `git reset
/// --hard` child) are killed first, or they would go on writing into (or remove) the new worktree.
/// The branch is deleted only when the marker says berth was creating it and its tip is the one
/// berth started it at. Returns false when the worktree shows no unfinished creation.
BERTH_DECL bool discard_unfinished_worktree(git_runner const& git, std::string const& repo_root, fs::path const& worktree,
                                        fs::path const& marker, std::vector<std::string>& warnings) {
    std::error_code ec;
    bool const marked = fs::exists(marker, ec);
    bool const initializing = !marked && git_creation_unfinished(worktree);
    if (!marked && !initializing) return false;
    for (auto const pid : process::processes_working_in(worktree)) {
        auto const comm = process::detail::read_small_file(("/proc/" + std::to_string(pid) + "/comm").c_str());
        if (comm && process::detail::trimmed(*comm) == "git") ::kill(pid, SIGKILL);
    }
    (void)git.run({"worktree", "remove", "--force", "--force", worktree.string()}, repo_root);
    if (fs::exists(fs::symlink_status(worktree, ec))) fs::remove_all(worktree, ec);
    (void)git.run({"worktree", "prune"}, repo_root);
    if (marked) {
        auto const m = read_creation_marker(marker);
        auto const branch = m.contains("branch") ? m.at("branch") : std::string();
        auto const sha = m.contains("baseSha") ? m.at("baseSha") : std::string();
        if (!branch.empty() && !branch.starts_with("-") && m.contains("branchCreated") &&
            m.at("branchCreated") == "1") {
            auto const tip = git.run({"rev-parse", "--verify", "--quiet", "refs/heads/" + branch}, repo_root);
            if (tip.exit_code == 0 && !sha.empty() && git_runner::trim(tip.stdout_text) == sha)
                (void)git.run({"branch", "-D", branch}, repo_root);
        }
        fs::remove(marker, ec);
    }
    warnings.push_back("Discarded the unfinished worktree at " + worktree.string() + " (" +
                       (marked ? "berth's creation marker" : "git's \"locked: initializing\"") +
                       ") left by an interrupted run; it was created again.");
    return true;
}

}  // namespace berth::detail::workspace

namespace berth {

BERTH_DECL workspace_strategy workspace_strategy_from_json(json_object const& config) {
    using detail::workspace::string_member;
    workspace_strategy s;
    json_object strategy;
    if (auto const* v = config.if_contains("workspaceStrategy"); v && !v->is_null()) {
        if (!v->is_object())
            throw parse_error("workspaceStrategy", boost::json::serialize(*v), "expected an object");
        strategy = v->get_object();
    }
    if (auto t = string_member(strategy, "type", "workspaceStrategy.type"))
        s.type = parse_enum<workspace_strategy_type>(*t);
    s.branch_template = string_member(strategy, "branchTemplate", "workspaceStrategy.branchTemplate");
    s.worktree_parent_dir = string_member(strategy, "worktreeParentDir", "workspaceStrategy.worktreeParentDir");
    s.base_ref = string_member(strategy, "baseRef", "workspaceStrategy.baseRef");
    s.provision_command = string_member(strategy, "provisionCommand", "workspaceStrategy.provisionCommand");
    s.teardown_command = string_member(strategy, "teardownCommand", "workspaceStrategy.teardownCommand");
    s.cleanup_command = string_member(strategy, "cleanupCommand", "workspaceStrategy.cleanupCommand");
    if (!s.provision_command) s.provision_command = string_member(config, "provisionCommand", "provisionCommand");
    if (!s.teardown_command) s.teardown_command = string_member(config, "teardownCommand", "teardownCommand");
    if (!s.cleanup_command) s.cleanup_command = string_member(config, "cleanupCommand", "cleanupCommand");
    return s;
}

BERTH_DECL std::string workspace_runtime::shell() const {
    if (options_.shell && !options_.shell->empty()) return *options_.shell;
    if (char const* sh = std::getenv("SHELL")) {
        auto t = git_runner::trim(sh);
        if (!t.empty()) return t;
    }
    return "/bin/sh";
}

BERTH_DECL process::environment_map workspace_runtime::workspace_command_env(realize_workspace_request const& request,
                                                                         realized_workspace const& ws) const {
    auto env = detail::workspace::command_base_env(options_);
    // The seed's provision env is `{...process.env}` plus its workspace variables; an inherited
    // lease id is not this command's (recovery ends processes by it), so only the request's counts.
    env.erase(std::string(process::lease_variable));
    auto const& base = request.base;
    std::string const path = ws.worktree_path.value_or(ws.cwd);
    env["BERTH_WORKSPACE_CWD"] = path;
    env["BERTH_WORKSPACE_PATH"] = path;
    env["BERTH_WORKSPACE_WORKTREE_PATH"] = path;
    env["BERTH_WORKSPACE_BRANCH"] = ws.branch_name.value_or("");
    env["BERTH_WORKSPACE_BASE_CWD"] = base.base_cwd;
    env["BERTH_WORKSPACE_REPO_ROOT"] = ws.repo_root.value_or("");
    env["BERTH_WORKSPACE_SOURCE"] = to_string(base.source);
    env["BERTH_WORKSPACE_REPO_REF"] = base.repo_ref.value_or("");
    env["BERTH_WORKSPACE_REPO_URL"] = base.repo_url.value_or("");
    env["BERTH_WORKSPACE_CREATED"] = ws.created ? "true" : "false";
    env["BERTH_PROJECT_ID"] = base.project_id.value_or("");
    env["BERTH_PROJECT_WORKSPACE_ID"] = base.workspace_id.value_or("");
    env["BERTH_AGENT_ID"] = request.agent.id.value_or("");
    env["BERTH_AGENT_NAME"] = request.agent.name;
    env["BERTH_COMPANY_ID"] = request.agent.company_id;
    env["BERTH_ISSUE_ID"] = request.issue ? request.issue->id : "";
    env["BERTH_ISSUE_IDENTIFIER"] = request.issue ? request.issue->identifier.value_or("") : "";
    env["BERTH_ISSUE_TITLE"] = request.issue ? request.issue->title.value_or("") : "";
    if (request.lease_id && !request.lease_id->empty()) env[std::string(process::lease_variable)] = *request.lease_id;
    return env;
}

BERTH_DECL process::environment_map workspace_runtime::cleanup_env(cleanup_workspace_request const& request) const {
    auto env = detail::workspace::command_base_env(options_);
    detail::workspace::drop_host_variables(env);
    auto const& w = request.workspace;
    env["BERTH_WORKSPACE_CWD"] = w.cwd.value_or("");
    env["BERTH_WORKSPACE_PATH"] = w.cwd.value_or("");
    env["BERTH_WORKSPACE_WORKTREE_PATH"] = w.provider_ref ? *w.provider_ref : w.cwd.value_or("");
    env["BERTH_WORKSPACE_BRANCH"] = w.branch_name.value_or("");
    env["BERTH_WORKSPACE_BASE_CWD"] = request.project_workspace_cwd.value_or("");
    env["BERTH_WORKSPACE_REPO_ROOT"] = request.project_workspace_cwd.value_or("");
    env["BERTH_WORKSPACE_REPO_URL"] = w.repo_url.value_or("");
    env["BERTH_WORKSPACE_REPO_REF"] = w.base_ref.value_or("");
    env["BERTH_PROJECT_ID"] = w.project_id;
    env["BERTH_PROJECT_WORKSPACE_ID"] = w.project_workspace_id.value_or("");
    env["BERTH_ISSUE_ID"] = w.source_issue_id.value_or("");
    return env;
}

BERTH_DECL realized_workspace workspace_runtime::realize(realize_workspace_request const& request,
                                                     operation_recorder* recorder) const {
    namespace dw = detail::workspace;
    namespace fs = std::filesystem;
    auto const& base = request.base;
    auto const& strategy = request.strategy;
    realized_workspace ws{.base = base};

    if (strategy.type != workspace_strategy_type::git_worktree) {
        ws.strategy = workspace_strategy_type::project_primary;
        ws.cwd = base.base_cwd;
        return ws;  // upstream: no provisioning, no git
    }
    ws.strategy = workspace_strategy_type::git_worktree;
    if (base.base_cwd.empty()) throw workspace_error("Unexpected base cwd value: (empty) (a git_worktree needs one)");
    if (!dw::is_directory(base.base_cwd))
        throw workspace_error("Base cwd \"" + base.base_cwd + "\" does not exist or is not a directory.");

    // 1. The repository (and, when the base ref is known, its commit), in one git process.
    std::optional<std::string> configured_ref = dw::non_empty(strategy.base_ref);
    char const* ref_field = "workspaceStrategy.baseRef";
    if (!configured_ref) {
        configured_ref = dw::non_empty(base.repo_ref);
        ref_field = "repoRef";
    }
    if (configured_ref) dw::check_ref_argument(*configured_ref, ref_field);
    std::vector<std::string> probe{"rev-parse", "--path-format=absolute", "--show-toplevel", "--git-common-dir"};
    // The commit of the start point: the configured ref, else HEAD (the last fallback; when the
    // default branch is detected instead, for-each-ref gives that branch's commit).
    probe.push_back(configured_ref.value_or("HEAD") + "^{commit}");
    probe.push_back("--");
    auto const probed = git_.run(probe, base.base_cwd);
    auto const lines = dw::lines_of(probed.stdout_text);
    if (probed.exit_code != 0 || lines.size() < 2) {
        if (lines.size() < 2)
            throw workspace_error("Base cwd \"" + base.base_cwd + "\" is not inside a git repository: " +
                                  git_runner::failure({"rev-parse", "--show-toplevel"}, probed, std::nullopt).what());
        if (!configured_ref)
            throw workspace_error("The repository " + lines[0] + " has no commit at HEAD to start a worktree from: " +
                                  git_runner::trim(probed.stderr_text));
        throw workspace_error("Base ref \"" + *configured_ref + "\" (" + ref_field + ") does not name a commit in " +
                              lines[0] + ": " + git_runner::trim(probed.stderr_text));
    }
    std::string const repo_root = lines[0];
    std::string const common_dir = lines[1];
    ws.repo_root = repo_root;

    // 2. The branch and the path.
    auto const vars = make_template_variables(
        request.issue ? std::optional<std::string>(request.issue->id) : std::nullopt,
        request.issue ? request.issue->identifier : std::nullopt, request.issue ? request.issue->title : std::nullopt,
        request.agent.id, request.agent.name, base.project_id, base.repo_ref);
    auto const branch_template = dw::non_empty(strategy.branch_template).value_or(default_branch_template);
    std::string const branch = sanitize_branch_name(render_workspace_template(branch_template, vars));
    auto const configured_parent = dw::non_empty(strategy.worktree_parent_dir);
    fs::path const parent = configured_parent ? resolve_worktree_parent_dir(*configured_parent, repo_root)
                                              : fs::path(repo_root) / ".berth" / "worktrees";
    fs::path const worktree = (parent / branch).lexically_normal();
    if (!path_is_within(worktree, parent) || worktree == parent.lexically_normal())
        throw workspace_error("Worktree path \"" + worktree.string() + "\" for branch \"" + branch +
                              "\" is not below the worktree parent directory \"" + parent.string() + "\".");
    std::string const worktree_path = worktree.string();
    ws.branch_name = branch;
    ws.worktree_path = worktree_path;
    ws.cwd = worktree_path;

    std::error_code ec;
    fs::create_directories(parent, ec);
    if (ec)
        throw workspace_error("Cannot create the worktree parent directory \"" + parent.string() +
                              "\": " + ec.message());
    if (!configured_parent) dw::exclude_berth_dir(common_dir);

    // The worktree is this run's from here until the caller drops the result (see the file comment).
    auto const lock_file = workspace_lock::path_for(common_dir, worktree_path);
    ws.lock = std::make_shared<workspace_lock const>(
        workspace_lock::acquire(lock_file, options_.lock_wait, worktree_path));
    auto const marker = dw::creation_marker_of(lock_file);
    dw::discard_unfinished_worktree(git_, repo_root, worktree, marker, ws.warnings);

    auto provision = [&] {
        auto const cmd = dw::non_empty(strategy.provision_command);
        if (!cmd) return;
        dw::run_workspace_command(options_, shell(), recorder, workspace_operation_phase::workspace_provision, *cmd,
                                  worktree_path, workspace_command_env(request, ws),
                                  "Execution workspace provision command \"" + *cmd + "\"",
                                  json_object{{"repoRoot", repo_root},
                                              {"worktreePath", worktree_path},
                                              {"branchName", branch},
                                              {"created", ws.created}},
                                  "Provisioned workspace at " + worktree_path + "\n", request.stop,
                                  request.on_provision_output, request.provision_timeout);
    };
    auto not_a_worktree = [&] {
        return workspace_error("Configured worktree path \"" + worktree_path +
                               "\" already exists and is not a git worktree.");
    };

    // 3. Reuse an existing worktree of this repository at that path.
    auto const st = fs::symlink_status(worktree, ec);
    if (!ec && fs::exists(st)) {
        if (!fs::is_directory(st)) throw not_a_worktree();  // a file, or a symlink (never followed)
        auto const r = git_.run({"rev-parse", "--path-format=absolute", "--show-toplevel", "--git-common-dir"},
                                worktree_path);
        auto const l = dw::lines_of(r.stdout_text);
        if (r.exit_code != 0 || l.size() < 2 || !dw::same_path(l[0], worktree) || !dw::same_path(l[1], common_dir))
            throw not_a_worktree();
        if (recorder)
            recorder->record(workspace_operation_phase::worktree_prepare, std::nullopt, repo_root,
                             json_object{{"repoRoot", repo_root},
                                         {"worktreePath", worktree_path},
                                         {"branchName", branch},
                                         {"baseRef", configured_ref ? boost::json::value(*configured_ref)
                                                                    : boost::json::value(nullptr)},
                                         {"created", false},
                                         {"reused", true}},
                             [&] {
                                 return operation_outcome{.status = workspace_operation_status::succeeded,
                                                          .exit_code = 0,
                                                          .system_message = "Reused existing git worktree at " +
                                                                            worktree_path + "\n"};
                             });
        ws.created = false;
        provision();
        return ws;
    }

    // 4. Create it: the start point, then `worktree add -b`, or attach an existing branch.
    std::string base_ref;
    std::optional<std::string> base_sha;
    std::optional<std::string> const probed_sha =
        lines.size() >= 3 && lines[2] != "--" ? std::optional<std::string>(lines[2]) : std::nullopt;
    if (configured_ref) {
        base_ref = *configured_ref;
        base_sha = probed_sha;
    } else if (auto detected = dw::may_have_origin_refs(common_dir)
                                   ? dw::detect_default_branch(git_, repo_root)
                                   : std::nullopt) {
        base_ref = detected->ref;
        base_sha = detected->sha;
    } else {
        base_ref = "HEAD";
        base_sha = probed_sha;
    }
    ws.base_ref = base_ref;
    json_object md{{"repoRoot", repo_root},
                   {"worktreePath", worktree_path},
                   {"branchName", branch},
                   {"baseRef", base_ref},
                   {"created", true}};
    // What a recovery needs if this run dies before its execution workspace record exists.
    if (base_sha) md["baseSha"] = *base_sha;
    if (request.remove_when_run_ends) md["removeWhenRunEnds"] = true;
    // A stop request ends `git worktree add` (its checkout and hooks with it) and discards what it
    // made, under this run's lock: nothing half-made stays to be taken for a complete worktree.
    auto cancelled = [&](std::vector<std::string> const& args, command_result const& r) {
        auto const failed = git_runner::failure(args, r, "git worktree add " + worktree_path);
        dw::discard_unfinished_worktree(git_, repo_root, worktree, marker, ws.warnings);
        return workspace_error(failed.what());
    };
    std::vector<std::string> const add_args{"worktree", "add", "-b", branch, worktree_path, base_ref};
    dw::write_creation_marker(marker, branch, true, base_sha);
    auto const add = dw::run_git_recorded(git_, recorder, workspace_operation_phase::worktree_prepare, add_args,
                                          repo_root, md, "Created git worktree at " + worktree_path + "\n",
                                          request.stop);
    if (add.cancelled) throw cancelled(add_args, add);
    if (add.exit_code == 0 && !add.timed_out) {
        ws.branch_created = true;
        ws.branch_head_sha = base_sha;
        if (!base_sha) {  // HEAD as the start point: read the new branch's tip
            auto const tip = git_.run({"rev-parse", "--verify", "--quiet", "refs/heads/" + branch}, repo_root);
            if (tip.exit_code == 0) ws.branch_head_sha = git_runner::trim(tip.stdout_text);
        }
    } else {
        auto const failed = git_runner::failure({"worktree", "add", "-b", branch, worktree_path, base_ref}, add,
                                                "git worktree add " + worktree_path);
        std::string lower = failed.what();
        for (auto& c : lower) c = (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c;
        if (lower.find("already exists") == std::string::npos) throw failed;
        md["created"] = false;
        md["reusedExistingBranch"] = true;
        dw::write_creation_marker(marker, branch, false, std::nullopt);
        std::vector<std::string> const attach_args{"worktree", "add", worktree_path, branch};
        auto const attach = dw::run_git_recorded(git_, recorder, workspace_operation_phase::worktree_prepare,
                                                 attach_args, repo_root, md,
                                                 "Attached existing branch " + branch + " at " + worktree_path + "\n",
                                                 request.stop);
        if (attach.cancelled) throw cancelled(attach_args, attach);
        if (attach.exit_code != 0 || attach.timed_out)
            throw git_runner::failure({"worktree", "add", worktree_path, branch}, attach,
                                      "git worktree add " + worktree_path);
        ws.branch_created = false;
    }
    fs::remove(marker, ec);  // created: from now on the worktree is complete
    ws.created = true;
    provision();
    return ws;
}

BERTH_DECL bool workspace_runtime::discard_unfinished(std::string const& repo_root, std::string const& worktree_path,
                                                  std::vector<std::string>& warnings) const {
    namespace dw = detail::workspace;
    if (!dw::is_directory(repo_root)) return false;
    auto const r = git_.run({"rev-parse", "--path-format=absolute", "--git-common-dir"}, repo_root);
    auto const l = dw::lines_of(r.stdout_text);
    if (r.exit_code != 0 || l.empty()) return false;
    auto const lock_file = workspace_lock::path_for(l[0], worktree_path);
    auto lock = workspace_lock::try_acquire(lock_file);
    if (!lock) return false;  // a live run is creating or using it
    return dw::discard_unfinished_worktree(git_, repo_root, worktree_path, dw::creation_marker_of(lock_file),
                                           warnings);
}

BERTH_DECL cleanup_result workspace_runtime::cleanup(cleanup_workspace_request const& request,
                                                 operation_recorder* recorder) const {
    namespace dw = detail::workspace;
    namespace fs = std::filesystem;
    cleanup_result result;
    auto const& w = request.workspace;
    std::optional<std::string> const workspace_path = w.provider_ref ? w.provider_ref : w.cwd;
    result.cleaned_path = workspace_path;
    auto const env = cleanup_env(request);
    auto md_bool = [&](std::string_view key) {
        if (!w.metadata) return false;
        auto const* v = w.metadata->if_contains(key);
        return v && v->is_bool() && v->get_bool();
    };
    auto md_string = [&](std::string_view key) -> std::optional<std::string> {
        if (!w.metadata) return std::nullopt;
        auto const* v = w.metadata->if_contains(key);
        if (!v || !v->is_string()) return std::nullopt;
        return std::string(v->get_string());
    };
    json_object const* config = nullptr;
    if (w.metadata)
        if (auto const* c = w.metadata->if_contains("config"); c && c->is_object()) config = &c->get_object();
    auto config_string = [&](char const* key) -> std::optional<std::string> {
        if (!config) return std::nullopt;
        auto const* v = config->if_contains(key);
        if (!v || !v->is_string()) return std::nullopt;
        return std::string(v->get_string());
    };
    bool const created_by_runtime = md_bool("createdByRuntime");

    // 1. Cleanup commands, then teardown (upstream order), each failure a warning.
    std::vector<std::string> commands;
    for (auto const& c : {request.cleanup_command ? request.cleanup_command : config_string("cleanupCommand"),
                          request.project_cleanup_command,
                          request.teardown_command ? request.teardown_command : config_string("teardownCommand")})
        if (auto t = dw::non_empty(c)) commands.push_back(*t);
    std::string command_cwd = workspace_path && dw::is_directory(*workspace_path) ? *workspace_path
                              : request.project_workspace_cwd                    ? *request.project_workspace_cwd
                                                                                 : fs::current_path().string();
    for (auto const& c : commands) {
        try {
            dw::run_workspace_command(options_, shell(), recorder, workspace_operation_phase::workspace_teardown, c,
                                      command_cwd, env, "Execution workspace cleanup command \"" + c + "\"",
                                      json_object{{"workspaceId", w.id},
                                                  {"workspacePath", workspace_path ? boost::json::value(*workspace_path)
                                                                                   : boost::json::value(nullptr)},
                                                  {"branchName", w.branch_name ? boost::json::value(*w.branch_name)
                                                                               : boost::json::value(nullptr)},
                                                  {"providerType", to_string(w.provider_type)}},
                                      "Completed cleanup command \"" + c + "\"\n");
        } catch (workspace_error const& e) {
            result.warnings.emplace_back(e.what());
        }
    }

    if (w.provider_type == workspace_provider_type::git_worktree && workspace_path) {
        // 2. The repository (upstream resolveGitRepoRootForWorkspaceCleanup) and, in the same
        //    process, the branch's current tip when berth may delete it.
        bool const may_delete_branch = created_by_runtime && w.branch_name.has_value();
        std::optional<std::string> repo_root, common_dir, current_tip;
        std::vector<std::string> candidates;
        if (request.project_workspace_cwd) candidates.push_back(*request.project_workspace_cwd);
        if (auto r = md_string("repoRoot")) candidates.push_back(*r);
        candidates.push_back(*workspace_path);
        for (auto const& dir : candidates) {
            if (!dw::is_directory(dir)) continue;
            std::vector<std::string> args{"rev-parse", "--path-format=absolute", "--git-common-dir"};
            if (may_delete_branch && !w.branch_name->starts_with("-")) {
                args.push_back("refs/heads/" + *w.branch_name + "^{commit}");
                args.push_back("--");
            }
            command_result r;
            try {
                r = git_.run(args, dir);
            } catch (workspace_error const& e) {
                result.warnings.emplace_back(e.what());
                break;
            }
            auto const l = dw::lines_of(r.stdout_text);
            if (l.empty()) continue;
            common_dir = l[0];
            repo_root = fs::path(l[0]).parent_path().string();
            if (r.exit_code == 0 && l.size() >= 2 && l[1] != "--") current_tip = l[1];
            break;
        }
        // 2b. The worktree's lock: the caller's own, else taken here; a worktree another live run
        //     holds is left alone, branch included.
        std::optional<workspace_lock> own_lock;
        bool held_elsewhere = false;
        if (repo_root && common_dir) {
            auto const lock_file = workspace_lock::path_for(*common_dir, *workspace_path);
            if (!request.held_lock || request.held_lock->path() != lock_file.string()) {
                own_lock = workspace_lock::try_acquire(lock_file);
                if (!own_lock) {
                    held_elsewhere = true;
                    result.warnings.push_back("Skipped removing worktree \"" + *workspace_path +
                                              "\": another live run holds it (" +
                                              workspace_lock::holder_of(lock_file) + ").");
                }
            }
        }
        if (held_elsewhere) {
            // nothing to do: the holder cleans up, or a later recovery once it is gone
        } else if (dw::is_directory(*workspace_path)) {
            if (!repo_root) {
                result.warnings.push_back("Could not resolve git repo root for \"" + *workspace_path + "\".");
            } else {
                std::vector<std::string> args{"worktree", "remove", "--force", *workspace_path};
                try {
                    auto const r = dw::run_git_recorded(git_, recorder, workspace_operation_phase::worktree_cleanup,
                                                        args, *repo_root,
                                                        json_object{{"workspaceId", w.id},
                                                                    {"workspacePath", *workspace_path},
                                                                    {"branchName", w.branch_name
                                                                                       ? boost::json::value(*w.branch_name)
                                                                                       : boost::json::value(nullptr)},
                                                                    {"cleanupAction", "worktree_remove"}},
                                                        "Removed git worktree " + *workspace_path + "\n");
                    if (r.exit_code != 0 || r.timed_out)
                        result.warnings.emplace_back(
                            git_runner::failure(args, r, "git worktree remove " + *workspace_path).what());
                } catch (workspace_error const& e) {
                    result.warnings.emplace_back(e.what());
                }
            }
        }
        // 3. The branch: only one berth created, only while its tip is the one berth recorded.
        if (may_delete_branch && !held_elsewhere) {
            auto const& branch = *w.branch_name;
            auto const expected = md_string("branchHeadSha");
            auto skipped = [&](std::string const& why) {
                result.warnings.push_back("Skipped deleting branch \"" + branch + "\": " + why);
            };
            if (!repo_root) {
                result.warnings.push_back("Could not resolve git repo root to delete branch \"" + branch + "\".");
            } else if (!md_bool("branchCreatedByRuntime")) {
                skipped("berth attached an existing branch; it did not create it.");
            } else if (branch.starts_with("-")) {
                skipped("not a branch name berth makes.");
            } else if (!current_tip) {
                // Already gone: nothing to delete.
            } else if (!expected) {
                skipped("its tip at creation was not recorded.");
            } else if (*current_tip != *expected) {
                skipped("its tip moved since berth created it (" + expected->substr(0, 12) + " -> " +
                        current_tip->substr(0, 12) + ").");
            } else {
                std::vector<std::string> args{"branch", "-d", branch};
                try {
                    auto const r = dw::run_git_recorded(git_, recorder, workspace_operation_phase::worktree_cleanup,
                                                        args, *repo_root,
                                                        json_object{{"workspaceId", w.id},
                                                                    {"workspacePath", *workspace_path},
                                                                    {"branchName", branch},
                                                                    {"cleanupAction", "branch_delete"}},
                                                        "Deleted branch " + branch + "\n");
                    if (r.exit_code != 0 || r.timed_out)
                        skipped(git_runner::failure(args, r, "git branch -d " + branch).what());
                } catch (workspace_error const& e) {
                    skipped(e.what());
                }
            }
        }
    } else if (w.provider_type == workspace_provider_type::local_fs && created_by_runtime && workspace_path) {
        // 4. A directory berth created: removed, unless it is or contains the project workspace.
        fs::path const target = dw::canonical_or_normal(*workspace_path);
        std::optional<fs::path> project;
        if (request.project_workspace_cwd) project = dw::canonical_or_normal(*request.project_workspace_cwd);
        bool const contains_project = project && path_is_within(*project, target);
        if (!fs::path(*workspace_path).is_absolute()) {
            result.warnings.push_back("Refusing to remove path \"" + *workspace_path + "\" because it is not absolute.");
        } else if (contains_project) {
            result.warnings.push_back("Refusing to remove path \"" + *workspace_path +
                                      "\" because it contains the project workspace.");
        } else if (target == target.root_path()) {
            result.warnings.push_back("Refusing to remove path \"" + *workspace_path + "\" because it is a root.");
        } else {
            std::error_code ec;
            fs::remove_all(fs::path(*workspace_path), ec);  // a symlink itself is removed, never followed
            if (ec) {
                result.warnings.push_back("Could not remove \"" + *workspace_path + "\": " + ec.message());
            } else if (recorder) {
                recorder->record(workspace_operation_phase::workspace_teardown, std::nullopt,
                                 project ? project->string() : fs::current_path().string(),
                                 json_object{{"workspaceId", w.id},
                                             {"workspacePath", target.string()},
                                             {"cleanupAction", "remove_local_fs"}},
                                 [&] {
                                     return operation_outcome{.status = workspace_operation_status::succeeded,
                                                              .exit_code = 0,
                                                              .system_message = "Removed local workspace directory " +
                                                                                target.string() + "\n"};
                                 });
            }
        }
    }

    std::error_code ec;
    result.cleaned = !workspace_path || !fs::exists(fs::symlink_status(*workspace_path, ec));
    return result;
}

}  // namespace berth

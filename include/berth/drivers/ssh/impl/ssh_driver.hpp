#pragma once
// Definitions of berth::ssh_driver (declared in berth/drivers/ssh.hpp).

#include <berth/drivers/ssh/detail/channel.hpp>  // run_channel
#include <berth/drivers/ssh/detail/shell.hpp>    // build_exec, shell_quote
#include <berth/process/signal_name.hpp>         // signal_name (failure messages)
#include <berth/process/spawn.hpp>               // process::run (git ls-files, tar for workspace sync)

#include <boost/json/value.hpp>  // boost::json::value (null members)

#include <algorithm>    // std::count
#include <cctype>       // std::isalnum
#include <exception>    // std::exception
#include <string_view>  // std::string_view
#include <utility>      // std::move

#include <sys/stat.h>  // lstat (tracked files deleted in the work tree)

namespace berth {

namespace detail::ssh {

inline std::string trim(std::string_view s) {
    auto const b = s.find_first_not_of(" \t\r\n");
    if (b == std::string_view::npos) return {};
    auto const e = s.find_last_not_of(" \t\r\n");
    return std::string(s.substr(b, e - b + 1));
}

inline std::string first_line(std::string_view s) {
    auto t = trim(s);
    auto const nl = t.find('\n');
    return nl == std::string::npos ? t : t.substr(0, nl);
}

/// `exit code N: <first stderr line>` for messages about a remote or local step that failed.
inline std::string failure_detail(command_result const& r) {
    std::string s = r.timed_out ? std::string("timed out")
                    : r.exit_code ? "exit code " + std::to_string(*r.exit_code)
                                  : "signal " + process::signal_name(r.signal.value_or(0));
    auto line = first_line(r.stderr_text);
    if (line.empty()) line = first_line(r.stdout_text);
    return line.empty() ? s : s + ": " + line;
}

/// The name of the remote file sync_in touches and sync_out compares against, kept outside the
/// workspace in `${XDG_CACHE_HOME:-$HOME/.cache}/berth/` (the user's own directory, not a
/// shared /tmp where another user could plant a symlink under a guessable name). Its
/// mtime is set 2 s into the past: file systems stamp with a coarse clock (a few ms per tick), so a
/// file edited right after the sync could otherwise carry the marker's very timestamp and not count
/// as newer. The pushed files keep their local mtimes (tar -x without -m), so they stay older
/// unless they were edited locally within those 2 s (then they come back unchanged: harmless).
inline std::string sync_marker(std::string const& lease_id) {
    std::string safe;
    for (char c : lease_id) safe += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') ? c : '_';
    return "sync-" + (safe.empty() ? std::string("lease") : safe) + ".marker";
}

inline constexpr std::size_t sync_max_archive = std::size_t(1) << 31;  // 2 GiB per direction

}  // namespace detail::ssh

inline ssh_driver::ssh_driver(ssh_driver_options options)
    : options_(std::make_shared<ssh_driver_options const>(std::move(options))),
      pool_(std::make_shared<detail::ssh::session_pool>(options_->max_idle_sessions_per_host,
                                                        options_->idle_timeout)) {}

inline ssh_config ssh_driver::config_of(environment const& env) const { return parse_ssh_config(env.config); }

inline detail::ssh::endpoint ssh_driver::endpoint_for(environment const& env, ssh_config const& cfg) const {
    detail::ssh::endpoint ep;
    ep.host = cfg.host;
    ep.port = cfg.port;
    ep.username = cfg.username;
    ep.known_hosts_text = cfg.known_hosts;
    ep.known_hosts_file = options_->known_hosts_file;
    ep.strict_host_key_checking = cfg.strict_host_key_checking;
    ep.connect_timeout = options_->connect_timeout;
    ep.keepalive_interval = options_->keepalive_interval;
    std::optional<ssh_identity> id;
    if (options_->identity_for) id = options_->identity_for(env, cfg);
    if (!id) id = options_->identity;
    if (id) {
        ep.private_key_file = id->private_key_file;
        ep.private_key = id->private_key;
        ep.passphrase = id->passphrase;
    }
    return ep;
}

inline command_result ssh_driver::run(detail::ssh::endpoint const& ep, command const& cmd, std::string const& cwd,
                                      std::string_view lease_id) const {
    if (cmd.program.empty())
        throw ssh_error(ssh_errc::invalid_command, "An SSH command needs a program (it is empty)");
    // Built (and validated) before connecting: a bad command costs no connection.
    auto const text = detail::ssh::build_exec(cmd, cwd, options_->source_login_profiles, lease_id);
    auto const dest = ep.destination();
    detail::ssh::run_params const params{
        .kill_grace = options_->kill_grace, .session_timeout = ep.connect_timeout, .destination = dest};
    return pool_->with_session(ep, [&](ssh_session s) { return detail::ssh::run_channel(s, text, cmd, params); });
}

inline std::string ssh_driver::ensure_workspace(detail::ssh::endpoint const& ep, ssh_config const& cfg) const {
    command const c{.program = "sh",
                    .args = {"-c", "mkdir -p -- \"$1\" && cd -- \"$1\" && pwd", "berth", cfg.remote_workspace_path},
                    .timeout = std::chrono::seconds(15),
                    .max_output_bytes = 128 * 1024};
    auto const r = run(ep, c, "");
    auto cwd = detail::ssh::trim(r.stdout_text);
    if (r.timed_out || r.exit_code != 0 || cwd.empty())
        throw ssh_error(ssh_errc::remote_failed, "Could not prepare the remote workspace " +
                                                     cfg.remote_workspace_path + " on " + ep.destination() + " (" +
                                                     detail::ssh::failure_detail(r) + ")");
    return cwd;
}

inline std::string ssh_driver::remote_cwd_of(environment_lease const& lease, ssh_config const& cfg) {
    if (lease.metadata)
        if (auto const* v = lease.metadata->if_contains("remoteCwd"); v && v->is_string() && !v->get_string().empty())
            return std::string(v->get_string());
    return cfg.remote_workspace_path;
}

inline lease_grant ssh_driver::acquire(acquire_request const& request) const {
    if (request.env.driver != driver_kind::ssh)
        throw error("Expected SSH environment config for driver \"" + std::string(to_string(request.env.driver)) +
                    "\".");
    auto const cfg = config_of(request.env);
    auto const ep = endpoint_for(request.env, cfg);
    auto const remote_cwd = ensure_workspace(ep, cfg);

    lease_grant grant;
    grant.provider = "ssh";
    grant.provider_lease_id = "ssh://" + cfg.username + "@" + cfg.host + ":" + std::to_string(cfg.port) + remote_cwd;
    if (request.agent_id.has_value()) grant.metadata["agentId"] = *request.agent_id;
    grant.metadata["driver"] = "ssh";
    if (request.execution_workspace_mode)
        grant.metadata["executionWorkspaceMode"] = *request.execution_workspace_mode;
    else
        grant.metadata["executionWorkspaceMode"] = nullptr;
    grant.metadata["host"] = cfg.host;
    grant.metadata["port"] = cfg.port;
    grant.metadata["username"] = cfg.username;
    grant.metadata["remoteWorkspacePath"] = cfg.remote_workspace_path;
    grant.metadata["remoteCwd"] = remote_cwd;
    return grant;
}

inline workspace_realization ssh_driver::realize_workspace(realize_request const& request) const {
    auto nullable_string = [](std::optional<std::string> const& s) {
        return s ? boost::json::value(*s) : boost::json::value(nullptr);
    };
    std::optional<std::string> remote;
    if (request.lease.metadata)
        if (auto const* v = request.lease.metadata->if_contains("remoteCwd"); v && v->is_string())
            remote = std::string(v->get_string());
    if (!remote) remote = request.remote_path;
    std::optional<std::string> const chosen = remote ? remote : request.local_path;

    boost::json::object record;
    record["version"] = 1;
    record["driver"] = "ssh";
    record["transport"] = "ssh";
    record["sync"] = "ssh_git_import_export";
    record["mode"] = nullable_string(request.mode);
    record["cwd"] = nullable_string(chosen);
    record["local"] = boost::json::object{{"path", nullable_string(request.local_path)}};
    record["remote"] = boost::json::object{{"path", nullable_string(remote)}};

    workspace_realization realization;
    realization.cwd = chosen.value_or("/");
    realization.remote_cwd = remote;
    realization.metadata["workspaceRealization"] = std::move(record);
    return realization;
}

inline command_result ssh_driver::execute(environment const& env, environment_lease const& lease,
                                          command const& cmd) const {
    auto const cfg = config_of(env);
    auto const cwd = cmd.cwd ? *cmd.cwd : remote_cwd_of(lease, cfg);
    return run(endpoint_for(env, cfg), cmd, cwd, lease.id);
}

inline release_outcome ssh_driver::release(environment const& env, environment_lease const& lease,
                                           lease_status) const noexcept {
    try {
        end_lease_processes(env, lease);
        return {};
    } catch (std::exception const& e) {
        try {
            return {.cleanup_status = cleanup_status::failed, .failure_reason = std::string(e.what())};
        } catch (...) {
        }
    } catch (...) {
    }
    return {.cleanup_status = cleanup_status::failed, .failure_reason = std::nullopt};
}

inline void ssh_driver::end_lease_processes(environment const& env, environment_lease const& lease) const {
    auto const cfg = config_of(env);
    auto const ep = endpoint_for(env, cfg);
    // A few rounds: a process may fork while the first round kills its parent. Killed processes
    // are zombies until reaped, and a zombie's environ reads empty, so they are not found again.
    static constexpr char const* script =
        "t=$1; n=0; while [ $n -lt 5 ]; do found=; "
        "for f in $(grep -lzxF -- \"$t\" /proc/[0-9]*/environ 2>/dev/null); do p=${f#/proc/}; "
        "kill -KILL \"${p%/environ}\" 2>/dev/null && found=1; done; "
        "[ -z \"$found\" ] && exit 0; n=$((n+1)); sleep 0.1 2>/dev/null || sleep 1; done; exit 3";
    command const c{.program = "sh",
                    .args = {"-c", script, "berth", std::string(detail::ssh::lease_variable) + "=" + lease.id},
                    .timeout = std::chrono::seconds(15),
                    .max_output_bytes = 64 * 1024};
    auto const r = run(ep, c, "");
    if (r.timed_out || r.exit_code != 0)
        throw ssh_error(ssh_errc::remote_failed, "Could not end the processes of lease " + lease.id + " on " +
                                                     ep.destination() + " (" + detail::ssh::failure_detail(r) + ")");
}

inline probe_result ssh_driver::probe(environment const& env) const noexcept {
    try {
        probe_result result;
        auto raw = [&](char const* key) -> boost::json::value {
            if (auto const* v = env.config.if_contains(key)) return *v;
            return nullptr;
        };
        auto raw_text = [&](char const* key) {
            auto const* v = env.config.if_contains(key);
            return v && v->is_string() ? std::string(v->get_string()) : std::string();
        };
        std::string user = raw_text("username"), host = raw_text("host");
        result.details = {{"host", raw("host")},
                          {"port", raw("port").is_null() ? boost::json::value(22) : raw("port")},
                          {"username", raw("username")},
                          {"remoteWorkspacePath", raw("remoteWorkspacePath")}};
        try {
            auto const cfg = config_of(env);
            user = cfg.username;
            host = cfg.host;
            result.details = {{"host", cfg.host},
                              {"port", cfg.port},
                              {"username", cfg.username},
                              {"remoteWorkspacePath", cfg.remote_workspace_path}};
            auto const cwd = ensure_workspace(endpoint_for(env, cfg), cfg);
            result.ok = true;
            result.summary = "Connected to " + cfg.username + "@" + cfg.host +
                             " and verified the remote workspace path.";
            result.details["remoteCwd"] = cwd;
            return result;
        } catch (ssh_error const& e) {
            result.details["error"] = e.what();
            result.details["code"] = to_string(e.code());
        } catch (ssh_config_error const& e) {
            result.details["error"] = e.what();
            result.details["code"] = "invalid_config";
        } catch (std::exception const& e) {
            result.details["error"] = e.what();
            result.details["code"] = nullptr;
        }
        result.ok = false;
        result.summary = "SSH probe failed for " + user + "@" + host + ".";
        return result;
    } catch (...) {
        return probe_result{};
    }
}

inline berth::execution_target ssh_driver::execution_target(environment const& env,
                                                            environment_lease const& lease) const {
    auto const cfg = config_of(env);
    auto const cwd = remote_cwd_of(lease, cfg);
    berth::execution_target t;
    t.kind = "remote";
    t.transport = "ssh";
    t.environment_id = env.id;
    t.lease_id = lease.id;
    t.remote_cwd = cwd;
    t.spec = {{"host", cfg.host},
              {"port", cfg.port},
              {"username", cfg.username},
              {"remoteWorkspacePath", cfg.remote_workspace_path},
              {"knownHosts", cfg.known_hosts ? boost::json::value(*cfg.known_hosts) : boost::json::value(nullptr)},
              {"strictHostKeyChecking", cfg.strict_host_key_checking},
              {"remoteCwd", cwd}};
    return t;
}

inline ssh_sync_result ssh_driver::sync_in(environment const& env, environment_lease const& lease,
                                           std::string const& local_dir) const {
    auto const cfg = config_of(env);
    auto const ep = endpoint_for(env, cfg);
    auto const remote_cwd = remote_cwd_of(lease, cfg);
    process::run_options const local{.inherit_sanitized_environment = true};

    auto const ls = process::run({.program = "git", .args = {"ls-files", "-z"}, .cwd = local_dir,
                                  .timeout = std::chrono::minutes(2), .max_output_bytes = std::size_t(1) << 28},
                                 local);
    if (ls.exit_code != 0)
        throw ssh_error(ssh_errc::local_failed, "Could not list the tracked files of " + local_dir +
                                                    " (git ls-files: " + detail::ssh::failure_detail(ls) + ")");
    std::string list;
    ssh_sync_result out;
    std::string_view rest = ls.stdout_text;
    while (!rest.empty()) {
        auto const z = rest.find('\0');
        auto const name = rest.substr(0, z);
        rest.remove_prefix(z == std::string_view::npos ? rest.size() : z + 1);
        if (name.empty() || name == ".git" || name.starts_with(".git/") || name == ".paperclip-runtime" ||
            name.starts_with(".paperclip-runtime/"))
            continue;
        struct ::stat st{};
        if (::lstat((local_dir + "/" + std::string(name)).c_str(), &st) != 0) continue;  // tracked, deleted
        list.append(name);
        list += '\0';
        ++out.files;
    }
    auto const tar = process::run({.program = "tar", .args = {"-c", "-f", "-", "--null", "--no-recursion", "-T", "-"},
                                   .cwd = local_dir, .stdin_data = list, .timeout = std::chrono::minutes(10),
                                   .max_output_bytes = detail::ssh::sync_max_archive},
                                  local);
    if (tar.exit_code != 0 || tar.stdout_truncated)
        throw ssh_error(ssh_errc::local_failed, "Could not archive the workspace " + local_dir + " (tar: " +
                                                    detail::ssh::failure_detail(tar) + ")");
    out.bytes = tar.stdout_text.size();
    command const put{.program = "sh",
                      .args = {"-c", "mkdir -p -- \"$1\" && cd -- \"$1\" && tar -x -f - && "
                               "m=\"${XDG_CACHE_HOME:-$HOME/.cache}/berth\" && mkdir -p \"$m\" && "
                               ": > \"$m/$2\" && touch -d '2 seconds ago' \"$m/$2\"", "berth-sync",
                               remote_cwd, detail::ssh::sync_marker(lease.id)},
                      .stdin_data = tar.stdout_text,
                      .timeout = std::chrono::minutes(10),
                      .max_output_bytes = 64 * 1024};
    auto const r = run(ep, put, "");
    if (r.exit_code != 0)
        throw ssh_error(ssh_errc::remote_failed, "Could not unpack the workspace into " + remote_cwd + " on " +
                                                     ep.destination() + " (" + detail::ssh::failure_detail(r) + ")");
    return out;
}

inline ssh_sync_result ssh_driver::sync_out(environment const& env, environment_lease const& lease,
                                            std::string const& local_dir) const {
    auto const cfg = config_of(env);
    auto const ep = endpoint_for(env, cfg);
    auto const remote_cwd = remote_cwd_of(lease, cfg);
    command const get{
        .program = "sh",
        .args = {"-c",
                 "cd -- \"$1\" || exit 1; m=\"${XDG_CACHE_HOME:-$HOME/.cache}/berth/$2\"; "
                 "if [ -e \"$m\" ]; then set -- -newer \"$m\"; else set --; fi; "
                 "find . \\( -path ./.git -o -path ./.paperclip-runtime \\) -prune -o -type f \"$@\" -print0 | "
                 "tar -c -f - --null --no-recursion -T -",
                 "berth-sync", remote_cwd, detail::ssh::sync_marker(lease.id)},
        .timeout = std::chrono::minutes(10),
        .max_output_bytes = detail::ssh::sync_max_archive};
    auto const r = run(ep, get, "");
    if (r.exit_code != 0 || r.stdout_truncated)
        throw ssh_error(ssh_errc::remote_failed, "Could not archive the changed files of " + remote_cwd + " on " +
                                                     ep.destination() + " (" + detail::ssh::failure_detail(r) + ")");
    auto const untar = process::run(
        {.program = "tar",
         .args = {"-x", "-v", "-f", "-", "--no-same-owner", "--exclude=.git", "--exclude=.paperclip-runtime"},
         .cwd = local_dir, .stdin_data = r.stdout_text, .timeout = std::chrono::minutes(10),
         .max_output_bytes = std::size_t(1) << 26},
        {.inherit_sanitized_environment = true});
    if (untar.exit_code != 0)
        throw ssh_error(ssh_errc::local_failed, "Could not unpack the remote changes into " + local_dir + " (tar: " +
                                                    detail::ssh::failure_detail(untar) + ")");
    ssh_sync_result out;
    out.bytes = r.stdout_text.size();
    out.files = static_cast<std::size_t>(std::count(untar.stdout_text.begin(), untar.stdout_text.end(), '\n'));
    return out;
}

}  // namespace berth

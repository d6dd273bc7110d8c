#pragma once
// Definitions of berth::bubblewrap (declared in berth/drivers/sandbox/bubblewrap.hpp).

#include <boost/json/array.hpp>  // boost::json::array
#include <boost/json/parse.hpp>  // boost::json::parse (lease.json)

#include <cerrno>    // errno, EINTR
#include <utility>   // std::move

#include <csignal>   // SIGKILL
#include <thread>    // std::this_thread::sleep_for

#include <fcntl.h>      // open
#include <signal.h>     // kill
#include <sys/types.h>  // pid_t
#include <unistd.h>     // read, close, getpid

namespace berth {

namespace detail::bwrap {

inline std::filesystem::path default_state_root() {
    if (char const* x = std::getenv("XDG_STATE_HOME"); x != nullptr && x[0] == '/')
        return std::filesystem::path(x) / "berth" / "sandboxes";
    if (char const* h = std::getenv("HOME"); h != nullptr && h[0] == '/')
        return std::filesystem::path(h) / ".local" / "state" / "berth" / "sandboxes";
    throw error("bubblewrap: no state_root given and neither XDG_STATE_HOME nor HOME is an absolute path");
}

/// `name` as given when it has a '/', else the first executable of that name in this process's PATH
/// (else `name` itself: the spawn then fails naming it).
inline std::string resolve_executable(std::string const& name) {
    if (name.find('/') != std::string::npos) return name;
    char const* path = std::getenv("PATH");
    std::string_view rest = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
    while (!rest.empty()) {
        auto const colon = rest.find(':');
        auto dir = rest.substr(0, colon);
        rest = colon == std::string_view::npos ? std::string_view() : rest.substr(colon + 1);
        if (dir.empty() || dir.front() != '/') continue;
        std::string candidate = std::string(dir) + "/" + name;
        if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    return name;
}

/// A provider lease id of ours: `bwrap-` and a UUID (lowercase hex and dashes).
inline bool valid_lease_id(std::string_view id) noexcept {
    constexpr std::string_view prefix = "bwrap-";
    if (id.size() != prefix.size() + 36 || id.substr(0, prefix.size()) != prefix) return false;
    for (char c : id.substr(prefix.size()))
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == '-')) return false;
    return true;
}

inline bool valid_env_name(std::string_view n) noexcept {
    if (n.empty() || (n.front() >= '0' && n.front() <= '9')) return false;
    for (char c : n)
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
    return true;
}

inline bool safe_absolute_path(std::string_view p) noexcept {
    if (p.empty() || p.front() != '/' || p == "/") return false;
    if (p.find('\0') != std::string_view::npos) return false;
    // No `..` component: a bound path is exactly the one named.
    std::size_t pos = 0;
    while (pos <= p.size()) {
        auto const next = p.find('/', pos);
        auto const part = p.substr(pos, next == std::string_view::npos ? std::string_view::npos : next - pos);
        if (part == "..") return false;
        if (next == std::string_view::npos) break;
        pos = next + 1;
    }
    return true;
}

/// The file's content, or nullopt when it cannot be opened. POSIX calls rather than an ifstream:
/// every realize reads workspace-path, and an ifstream's set-up cost more than a resume.
inline std::optional<std::string> read_small_file(std::filesystem::path const& p) {
    int const fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    std::string s;
    char buf[4096];
    for (;;) {
        auto const n = ::read(fd, buf, sizeof buf);
        if (n > 0) {
            s.append(buf, static_cast<std::size_t>(n));
        } else if (n == 0 || errno != EINTR) {
            break;
        }
    }
    ::close(fd);
    return s;
}

/// The prefix of a sandbox directory being made: `.making-<pid>-<start time>-<uuid>`.
inline constexpr std::string_view making_prefix = ".making-";

struct process_identity {
    std::string host;
    std::int64_t pid = 0;
    std::int64_t start_time = 0;
};
inline process_identity this_process() {
    auto const pid = static_cast<std::int64_t>(::getpid());
    return {process::host_identity(), pid, process::pid_start_time(pid).value_or(0)};
}

inline void write_file(std::filesystem::path const& p, std::string const& text) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out) throw error("bubblewrap: cannot write " + p.string());
}

}  // namespace detail::bwrap

inline bubblewrap::bubblewrap(bubblewrap_options options) {
    auto p = std::make_shared<plan>();
    p->state_root = options.state_root.empty() ? detail::bwrap::default_state_root()
                                               : std::filesystem::path(options.state_root);
    p->bwrap = detail::bwrap::resolve_executable(options.bwrap);
    auto& a = p->fixed_args;
    a = {"--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
         "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--hostname", "berth-sandbox"};
    // The host's layout is read once: whether /bin is a directory or merged-usr's link to usr/bin
    // does not change while we run, and every execute would otherwise pay the lstat calls.
    for (auto const& path : options.system_paths) {
        std::error_code ec;
        auto const st = std::filesystem::symlink_status(path, ec);
        if (ec) continue;
        if (std::filesystem::is_symlink(st)) {
            auto const target = std::filesystem::read_symlink(path, ec);
            if (!ec) a.insert(a.end(), {"--symlink", target.string(), path});
        } else if (std::filesystem::is_directory(st)) {
            a.insert(a.end(), {"--ro-bind", path, path});
        }
    }
    for (auto const& path : options.etc_paths) {
        std::error_code ec;
        if (std::filesystem::exists(path, ec)) a.insert(a.end(), {"--ro-bind", path, path});
    }
    a.insert(a.end(), {"--proc", "/proc", "--dev", "/dev"});
    p->options = std::move(options);
    plan_ = std::move(p);
}

inline json_object bubblewrap::validate_config(json_object const& config) const {
    static constexpr std::array<std::string_view, 4> own{"network", "limits", "allowEnv", "readOnlyPaths"};
    refuse_unknown_sandbox_keys(config, own);
    auto got = [](boost::json::value const& v) { return " (got " + boost::json::serialize(v) + ")."; };
    if (auto const* n = config.if_contains("network"); n && !n->is_null() && !n->is_bool())
        throw sandbox_config_error("network", "Bubblewrap network must be a boolean" + got(*n));
    if (auto const* l = config.if_contains("limits"); l && !l->is_null()) {
        if (!l->is_object()) throw sandbox_config_error("limits", "Bubblewrap limits must be an object" + got(*l));
        for (auto const& kv : l->get_object()) {
            std::string_view const k(kv.key());
            if (k != "cpuSeconds" && k != "addressSpaceBytes" && k != "openFiles" && k != "processes")
                throw sandbox_config_error("limits." + std::string(k),
                                           "Unrecognized key(s) in object: '" + std::string(k) + "'");
            auto const& v = kv.value();
            bool const ok = v.is_null() || (v.is_int64() && v.get_int64() > 0) || (v.is_uint64() && v.get_uint64() > 0 &&
                                                                                     v.get_uint64() <= INT64_MAX);
            if (!ok)
                throw sandbox_config_error("limits." + std::string(k), "Bubblewrap limits." + std::string(k) +
                                                                           " must be a positive integer or null" + got(v));
        }
    }
    if (auto const* e = config.if_contains("allowEnv"); e && !e->is_null()) {
        if (!e->is_array()) throw sandbox_config_error("allowEnv", "Bubblewrap allowEnv must be an array of names" + got(*e));
        for (auto const& v : e->get_array()) {
            if (!v.is_string() || !detail::bwrap::valid_env_name(std::string_view(v.get_string())))
                throw sandbox_config_error("allowEnv", "Bubblewrap allowEnv must hold variable names" + got(v));
            if (process::is_secret_env_name(std::string_view(v.get_string())))
                throw sandbox_config_error("allowEnv", "Bubblewrap allowEnv must not name a secret variable (" +
                                                           std::string(v.get_string()) +
                                                           "); pass it in the command's env instead.");
        }
    }
    if (auto const* r = config.if_contains("readOnlyPaths"); r && !r->is_null()) {
        if (!r->is_array())
            throw sandbox_config_error("readOnlyPaths", "Bubblewrap readOnlyPaths must be an array of absolute paths" + got(*r));
        for (auto const& v : r->get_array())
            if (!v.is_string() || !detail::bwrap::safe_absolute_path(std::string_view(v.get_string())))
                throw sandbox_config_error("readOnlyPaths",
                                           "Bubblewrap readOnlyPaths must hold absolute paths other than / without .." +
                                               got(v));
    }
    return config;
}

inline bubblewrap_config bubblewrap::parse_config(json_object const& config) const {
    bubblewrap_config c;
    c.limits = plan_->options.limits;
    if (auto const* n = config.if_contains("network"); n && n->is_bool()) c.network = n->get_bool();
    if (auto const* l = config.if_contains("limits"); l && l->is_object()) {
        auto set = [&](char const* key, std::optional<std::int64_t>& into) {
            auto const* v = l->get_object().if_contains(key);
            if (v == nullptr) return;
            if (v->is_null()) into.reset();
            else if (v->is_int64()) into = v->get_int64();
            else if (v->is_uint64()) into = static_cast<std::int64_t>(v->get_uint64());
        };
        set("cpuSeconds", c.limits.cpu_seconds);
        set("addressSpaceBytes", c.limits.address_space_bytes);
        set("openFiles", c.limits.open_files);
        set("processes", c.limits.processes);
    }
    if (auto const* e = config.if_contains("allowEnv"); e && e->is_array())
        for (auto const& v : e->get_array())
            if (v.is_string()) c.allow_env.emplace_back(v.get_string());
    if (auto const* r = config.if_contains("readOnlyPaths"); r && r->is_array())
        for (auto const& v : r->get_array())
            if (v.is_string()) c.read_only_paths.emplace_back(v.get_string());
    return c;
}

inline std::filesystem::path bubblewrap::lease_directory(std::optional<std::string> const& id) const {
    if (!id || !detail::bwrap::valid_lease_id(*id))
        throw error("bubblewrap: \"" + id.value_or("") + "\" is not a bubblewrap sandbox id (bwrap-<uuid>)");
    return plan_->state_root / *id;
}

inline sandbox_lease bubblewrap::acquire(sandbox_acquire_params const& params) const {
    std::string const uuid = new_id();
    std::string const id = "bwrap-" + uuid;
    auto const dir = plan_->state_root / id;
    std::error_code ec;
    if (std::filesystem::create_directories(plan_->state_root, ec); !ec)
        std::filesystem::permissions(plan_->state_root, std::filesystem::perms::owner_all,
                                     std::filesystem::perm_options::replace, ec);
    if (ec) throw error("bubblewrap: cannot create the state root " + plan_->state_root.string() + ": " + ec.message());
    // Made under a name that says which process makes it, then renamed: a process killed half-way
    // leaves a directory reap_orphans knows to be dead, never a sandbox without its owner file.
    auto const self = detail::bwrap::this_process();
    auto const making = plan_->state_root / (std::string(detail::bwrap::making_prefix) + std::to_string(self.pid) + "-" +
                                             std::to_string(self.start_time) + "-" + uuid);
    if (!std::filesystem::create_directory(making, ec) || ec)
        throw error("bubblewrap: cannot create the sandbox directory " + making.string() + ": " +
                    (ec ? ec.message() : std::string("it already exists")));
    try {
        for (char const* sub : {"home", "tmp", "workspace"}) {
            std::filesystem::create_directory(making / sub, ec);
            if (ec) throw error("bubblewrap: cannot create " + (making / sub).string() + ": " + ec.message());
        }
        // Who the sandbox belongs to, for an operator looking at the state root, and for
        // reap_orphans: the process that made it (until it has recorded its lease) and the lease's
        // company and environment (where its lease is looked up).
        json_object owner{{"provider", name},
                          {"companyId", params.company_id},
                          {"environmentId", params.environment_id},
                          {"runId", params.run_id},
                          {"agentId", params.agent_id ? boost::json::value(*params.agent_id) : boost::json::value()},
                          {"executionWorkspaceId", params.execution_workspace_id
                                                       ? boost::json::value(*params.execution_workspace_id)
                                                       : boost::json::value()},
                          {"reusable", params.reusable},
                          {"holderHost", self.host},
                          {"holderPid", self.pid},
                          {"holderStartTime", self.start_time}};
        detail::bwrap::write_file(making / "lease.json", boost::json::serialize(owner) + "\n");
        std::filesystem::rename(making, dir, ec);
        if (ec) throw error("bubblewrap: cannot create the sandbox directory " + dir.string() + ": " + ec.message());
    } catch (...) {
        std::filesystem::remove_all(making, ec);
        throw;
    }
    return sandbox_lease{.provider_lease_id = id,
                         .metadata = {{"remoteCwd", workspace_path}, {"shellCommand", "sh"}, {"sandboxHome", home_path}},
                         .expires_at = std::nullopt};
}

inline sandbox_lease bubblewrap::resume(sandbox_lease_params const& lease) const {
    auto const dir = lease_directory(lease.provider_lease_id);
    std::error_code ec;
    if (!std::filesystem::is_directory(dir / "home", ec))
        throw error("Bubblewrap sandbox \"" + *lease.provider_lease_id + "\" no longer exists.");
    return sandbox_lease{.provider_lease_id = lease.provider_lease_id, .metadata = {}, .expires_at = std::nullopt};
}

inline void bubblewrap::release(sandbox_lease_params const& lease) const {
    if (lease.reusable) return;  // kept for the next run of the same scope; destroy deletes it
    // The run is over and each of its commands ended with its sandbox's pid namespace: only the
    // state is left. (Processes outlive a command only when its host died: destroy, which
    // recovery calls for such a lease, ends them.)
    auto const dir = lease_directory(lease.provider_lease_id);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    if (ec) throw error("bubblewrap: cannot delete the sandbox " + dir.string() + ": " + ec.message());
}

inline void bubblewrap::destroy(sandbox_lease_params const& lease) const {
    auto const dir = lease_directory(lease.provider_lease_id);
    kill_processes(*lease.provider_lease_id);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    if (ec) throw error("bubblewrap: cannot delete the sandbox " + dir.string() + ": " + ec.message());
}

inline std::size_t bubblewrap::kill_processes(std::string const& provider_lease_id) const {
    if (!detail::bwrap::valid_lease_id(provider_lease_id))
        throw error("bubblewrap: \"" + provider_lease_id + "\" is not a bubblewrap sandbox id (bwrap-<uuid>)");
    std::size_t killed = 0;
    // Until a scan finds none: a bwrap killed now may have cloned the sandbox's init just before,
    // and a process is in /proc as soon as its clone returns; once no bwrap of the sandbox is
    // left, nothing can start another one. Bounded, for a process that ignores nothing but
    // cannot be killed (uninterruptible sleep): 200 rounds of 10 ms.
    for (int round = 0; round < 200; ++round) {
        auto const pids = process::scan_environments(sandbox_id_variable).carrying_value(provider_lease_id);
        if (pids.empty()) break;
        for (auto const pid : pids)
            if (::kill(pid, SIGKILL) == 0) ++killed;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return killed;
}

template <class Held>
bubblewrap::reap_result bubblewrap::reap_orphans(Held&& held, std::chrono::seconds grace) const {
    namespace fs = std::filesystem;
    reap_result out;
    std::error_code ec;
    auto const host = process::host_identity();
    auto int_at = [](json_object const& o, char const* key) -> std::optional<std::int64_t> {
        auto const* v = o.if_contains(key);
        if (v && v->is_int64()) return v->get_int64();
        if (v && v->is_uint64()) return static_cast<std::int64_t>(v->get_uint64());
        return std::nullopt;
    };
    for (fs::directory_iterator it(plan_->state_root, ec), end; !ec && it != end; it.increment(ec)) {
        auto const name = it->path().filename().string();
        try {
            if (name.rfind(detail::bwrap::making_prefix, 0) == 0) {
                // .making-<pid>-<start time>-<uuid>
                std::string_view rest(name);
                rest.remove_prefix(detail::bwrap::making_prefix.size());
                auto const dash1 = rest.find('-');
                auto const dash2 = dash1 == std::string_view::npos ? dash1 : rest.find('-', dash1 + 1);
                if (dash2 == std::string_view::npos) continue;
                auto const pid = std::stoll(std::string(rest.substr(0, dash1)));
                auto const start = std::stoll(std::string(rest.substr(dash1 + 1, dash2 - dash1 - 1)));
                if (process::process_alive(pid, start)) continue;
                std::error_code rm;
                fs::remove_all(it->path(), rm);
                if (rm) out.errors.push_back(name + ": " + rm.message());
                else out.removed.push_back(name);
                continue;
            }
            if (!detail::bwrap::valid_lease_id(name)) continue;
            auto const text = detail::bwrap::read_small_file(it->path() / "lease.json");
            if (!text) continue;
            boost::system::error_code jec;
            auto const parsed = boost::json::parse(*text, jec);
            if (jec || !parsed.is_object()) continue;
            state_directory const dir{name, parsed.get_object()};
            auto const* holder_host = dir.owner.if_contains("holderHost");
            auto const pid = int_at(dir.owner, "holderPid");
            auto const start = int_at(dir.owner, "holderStartTime");
            bool const maker_runs = holder_host && holder_host->is_string() && holder_host->get_string() == host &&
                                    pid && start && process::process_alive(*pid, *start);
            if (maker_runs) {
                std::error_code tec;
                auto const made = fs::last_write_time(it->path() / "lease.json", tec);
                if (tec || fs::file_time_type::clock::now() - made < grace) continue;
            }
            if (held(dir)) continue;
            destroy(sandbox_lease_params{.provider_lease_id = name});
            out.removed.push_back(name);
        } catch (std::exception const& e) {
            out.errors.push_back(name + ": " + e.what());
        }
    }
    return out;
}

inline sandbox_realized bubblewrap::realize(sandbox_realize_params const& params) const {
    auto const dir = lease_directory(params.lease.provider_lease_id);
    std::error_code ec;
    if (params.local_path) {
        auto const& p = *params.local_path;
        if (!detail::bwrap::safe_absolute_path(p) || !std::filesystem::is_directory(p, ec))
            throw sandbox_config_error("localPath", "Bubblewrap workspace \"" + p +
                                                        "\" must be an existing absolute directory other than /.");
        // Rewritten only when it changes: a resumed sandbox is realized on the same workspace, and
        // truncating the file makes ext4 flush it on close (~0.3 ms, more than the whole resume).
        if (detail::bwrap::read_small_file(dir / "workspace-path") != p)
            detail::bwrap::write_file(dir / "workspace-path", p);
    }
    return sandbox_realized{.cwd = workspace_path, .metadata = {{"sync", "none"}}};
}

inline std::string bubblewrap::workspace_of(sandbox_lease_params const& lease, std::filesystem::path const& dir) const {
    if (auto p = detail::bwrap::read_small_file(dir / "workspace-path"); p && !p->empty()) return *p;
    // A lease realized elsewhere (its state copied, metadata persisted) still finds its workspace.
    if (auto const* r = lease.lease_metadata.if_contains("workspaceRealization"); r && r->is_object())
        if (auto const* l = r->get_object().if_contains("local"); l && l->is_object())
            if (auto const* path = l->get_object().if_contains("path"); path && path->is_string() &&
                                                                         detail::bwrap::safe_absolute_path(std::string_view(path->get_string())))
                return std::string(path->get_string());
    return (dir / "workspace").string();
}

inline std::vector<std::string> bubblewrap::bwrap_args(sandbox_lease_params const& lease, command const& cmd) const {
    auto const cfg = parse_config(lease.config);
    auto const dir = lease_directory(lease.provider_lease_id);
    std::vector<std::string> a = plan_->fixed_args;
    a.reserve(a.size() + 40 + cmd.args.size());
    if (!cfg.network) a.emplace_back("--unshare-net");
    for (auto const& p : cfg.read_only_paths) a.insert(a.end(), {"--ro-bind-try", p, p});
    a.insert(a.end(), {"--bind", (dir / "home").string(), home_path, "--bind", (dir / "tmp").string(), "/tmp",
                       "--bind", workspace_of(lease, dir), workspace_path, "--remount-ro", "/", "--chdir",
                       cmd.cwd && !cmd.cwd->empty() ? *cmd.cwd : std::string(workspace_path), "--"});
    if (!cfg.limits.empty()) {
        a.push_back(plan_->options.prlimit);
        auto lim = [&](char const* flag, std::optional<std::int64_t> const& v) {
            if (v) a.push_back(std::string(flag) + std::to_string(*v));
        };
        lim("--cpu=", cfg.limits.cpu_seconds);
        lim("--as=", cfg.limits.address_space_bytes);
        lim("--nofile=", cfg.limits.open_files);
        lim("--nproc=", cfg.limits.processes);
        a.emplace_back("--");
    }
    a.push_back(cmd.program);
    a.insert(a.end(), cmd.args.begin(), cmd.args.end());
    return a;
}

inline process::environment_map bubblewrap::sandbox_environment(bubblewrap_config const& cfg, command const& cmd) const {
    process::environment_map env{{"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
                                 {"HOME", home_path},
                                 {"TMPDIR", "/tmp"},
                                 {"LANG", "C.UTF-8"}};
    auto pass = [&](std::string const& n) {
        if (process::is_secret_env_name(n)) return;
        if (char const* v = std::getenv(n.c_str())) env[n] = v;
    };
    for (auto const& n : plan_->options.allow_env) pass(n);
    for (auto const& n : cfg.allow_env) pass(n);
    for (auto const& [k, v] : cmd.env) env[k] = v;
    return env;
}

inline command_result bubblewrap::execute(sandbox_lease_params const& lease, command const& cmd) const {
    if (cmd.program.empty()) throw error("bubblewrap: a command needs a program (it is empty)");
    auto const dir = lease_directory(lease.provider_lease_id);
    std::error_code ec;
    if (!std::filesystem::is_directory(dir / "home", ec))
        throw error("Bubblewrap sandbox \"" + *lease.provider_lease_id + "\" no longer exists.");
    auto const cfg = parse_config(lease.config);
    auto env = sandbox_environment(cfg, cmd);
    // bwrap, the sandbox's init (a clone of it) and the command carry the sandbox's id: destroy
    // finds by it what a dead host left running (kill_processes).
    env[sandbox_id_variable] = *lease.provider_lease_id;
    command const outer{.program = plan_->bwrap,
                        .args = bwrap_args(lease, cmd),
                        .cwd = dir.string(),
                        .env = std::move(env),
                        .stdin_data = cmd.stdin_data,
                        .timeout = cmd.timeout,
                        .max_output_bytes = cmd.max_output_bytes,
                        .on_output = cmd.on_output};
    return process::run(outer, {.inherit_sanitized_environment = false,
                                 .base_environment = {},
                                 .kill_grace = plan_->options.kill_grace});
}

inline probe_result bubblewrap::probe(json_object const& config) const noexcept {
    try {
        (void)validate_config(config);
        auto const cfg = parse_config(config);
        auto const version = process::run({.program = plan_->bwrap, .args = {"--version"}, .timeout = std::chrono::seconds(10)});
        std::vector<std::string> args = plan_->fixed_args;
        if (!cfg.network) args.emplace_back("--unshare-net");
        args.insert(args.end(), {"--remount-ro", "/", "--", "true"});
        auto const r = process::run({.program = plan_->bwrap, .args = std::move(args), .timeout = std::chrono::seconds(10)});
        std::string v = version.stdout_text;
        while (!v.empty() && (v.back() == '\n' || v.back() == ' ')) v.pop_back();
        probe_result out;
        out.details = {{"bwrap", plan_->bwrap}, {"version", v}, {"stateRoot", plan_->state_root.string()},
                       {"network", cfg.network}};
        if (r.exit_code == 0) {
            out.ok = true;
            out.summary = "Bubblewrap sandbox is available (" + v + ").";
        } else {
            std::string why = r.stderr_text;
            while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
            out.summary = "Bubblewrap sandbox failed: " + (why.empty() ? std::string("exit ") + std::to_string(r.exit_code.value_or(-1)) : why);
        }
        return out;
    } catch (std::exception const& e) {
        try {
            return probe_result{.ok = false, .summary = std::string("Bubblewrap sandbox failed: ") + e.what(), .details = {}};
        } catch (...) {
            return probe_result{};
        }
    }
}

}  // namespace berth

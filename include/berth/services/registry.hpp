#pragma once
//! @file
//! berth::services::service_registry — the on-disk registry that lets a new berth process adopt
//! the services an earlier one started (upstream `local-service-supervisor.ts`): one JSON file per
//! service, `<dir>/<serviceKey>.json`, pretty-printed with a trailing newline, written atomically
//! (a temporary file renamed over the old one).
//!
//! Default directory: `$BERTH_HOME/instances/<$BERTH_INSTANCE_ID or "default">/runtime-services`,
//! with `$BERTH_HOME` defaulting to `~/.berth` (upstream: PAPERCLIP_HOME, ~/.paperclip).
//!
//! Record (the seed's fields): `{version: 1, serviceKey, profileKind, serviceName, command, cwd,
//! envFingerprint, port|null, url|null, pid, processGroupId|null, provider: "local_process",
//! runtimeServiceId|null, reuseKey|null, startedAt, lastSeenAt, metadata{projectId,
//! projectWorkspaceId, executionWorkspaceId, issueId, scopeType, scopeId}}` plus berth's
//! `ownerPid`: the berth process that supervises the service (the orphan check uses it).
//!
//! Adoption (find_adoptable), upstream's checks in order: the record's pid is alive (else, when
//! the port has a live listener, the record is re-pointed to that pid; else the record is stale
//! and deleted); the process's command line contains the command or the service name; the port's
//! listener has its cwd inside the service cwd; command, cwd, envFingerprint and port equal.

#include <berth/error.hpp>                 // berth::error
#include <berth/model/record.hpp>          // json_object
#include <berth/services/detail/proc.hpp>  // pid_alive, command_line, process_cwd, port_owner, path_within

#include <boost/json/object.hpp>     // boost::json::object
#include <boost/json/parse.hpp>      // parse
#include <boost/json/serialize.hpp>  // serialize
#include <boost/json/value.hpp>      // boost::json::value

#include <cstdint>     // std::int64_t
#include <cstdlib>     // std::getenv
#include <filesystem>  // std::filesystem
#include <fstream>     // std::ifstream, std::ofstream
#include <iterator>    // std::istreambuf_iterator
#include <optional>    // std::optional
#include <string>      // std::string
#include <vector>      // std::vector

#include <unistd.h>  // getpid

namespace berth::services {

/// One registry file.
struct registry_record {
    int version = 1;
    std::string service_key{};
    std::string profile_kind = "workspace-runtime";
    std::string service_name{};
    std::string command{};
    std::string cwd{};
    std::string env_fingerprint{};
    std::optional<std::int64_t> port{};
    std::optional<std::string> url{};
    std::int64_t pid = 0;
    std::optional<std::int64_t> process_group_id{};
    std::string provider = "local_process";
    std::optional<std::string> runtime_service_id{};
    std::optional<std::string> reuse_key{};
    std::string started_at{};
    std::string last_seen_at{};
    json_object metadata{};
    std::optional<std::int64_t> owner_pid{};  ///< berth: the supervising process
};

/// What a start looks for in the registry.
struct adoption_query {
    std::string service_key;
    std::string service_name;
    std::string command;
    std::string cwd;
    std::string env_fingerprint;
    std::optional<std::int64_t> port;
};

/// `$BERTH_HOME/instances/<instance>/runtime-services` (see the file comment).
[[nodiscard]] inline std::filesystem::path default_registry_dir() {
    char const* home = std::getenv("BERTH_HOME");
    std::filesystem::path base;
    if (home && *home) base = home;
    else {
        char const* h = std::getenv("HOME");
        base = std::filesystem::path(h && *h ? h : "/tmp") / ".berth";
    }
    char const* inst = std::getenv("BERTH_INSTANCE_ID");
    return base / "instances" / (inst && *inst ? inst : "default") / "runtime-services";
}

namespace detail {

inline boost::json::value opt(std::optional<std::string> const& s) {
    return s ? boost::json::value(*s) : boost::json::value(nullptr);
}
inline boost::json::value opt(std::optional<std::int64_t> const& n) {
    return n ? boost::json::value(*n) : boost::json::value(nullptr);
}

/// Pretty JSON (2 spaces), as upstream's JSON.stringify(record, null, 2).
inline void pretty(std::string& out, boost::json::value const& v, int indent) {
    auto pad = [&](int n) { out.append(std::size_t(n) * 2, ' '); };
    if (v.is_object() && !v.get_object().empty()) {
        out += "{\n";
        bool first = true;
        for (auto const& kv : v.get_object()) {
            if (!std::exchange(first, false)) out += ",\n";
            pad(indent + 1);
            out += boost::json::serialize(boost::json::value(kv.key()));
            out += ": ";
            pretty(out, kv.value(), indent + 1);
        }
        out += '\n';
        pad(indent);
        out += '}';
    } else {
        out += boost::json::serialize(v);
    }
}

}  // namespace detail

[[nodiscard]] inline boost::json::object to_json(registry_record const& r) {
    return boost::json::object{{"version", r.version},
                               {"serviceKey", r.service_key},
                               {"profileKind", r.profile_kind},
                               {"serviceName", r.service_name},
                               {"command", r.command},
                               {"cwd", r.cwd},
                               {"envFingerprint", r.env_fingerprint},
                               {"port", detail::opt(r.port)},
                               {"url", detail::opt(r.url)},
                               {"pid", r.pid},
                               {"processGroupId", detail::opt(r.process_group_id)},
                               {"provider", r.provider},
                               {"runtimeServiceId", detail::opt(r.runtime_service_id)},
                               {"reuseKey", detail::opt(r.reuse_key)},
                               {"startedAt", r.started_at},
                               {"lastSeenAt", r.last_seen_at},
                               {"metadata", r.metadata},
                               {"ownerPid", detail::opt(r.owner_pid)}};
}

/// Reads a record; nullopt when required fields are missing or of the wrong type.
[[nodiscard]] inline std::optional<registry_record> registry_record_from_json(boost::json::value const& v) {
    if (!v.is_object()) return std::nullopt;
    auto const& o = v.get_object();
    auto str = [&](char const* k) -> std::optional<std::string> {
        auto const* x = o.if_contains(k);
        return x && x->is_string() ? std::optional<std::string>(std::string(x->get_string())) : std::nullopt;
    };
    auto num = [&](char const* k) -> std::optional<std::int64_t> {
        auto const* x = o.if_contains(k);
        if (x && x->is_int64()) return x->get_int64();
        if (x && x->is_uint64()) return static_cast<std::int64_t>(x->get_uint64());
        return std::nullopt;
    };
    registry_record r;
    auto key = str("serviceKey");
    auto pid = num("pid");
    if (!key || !pid) return std::nullopt;
    r.version = static_cast<int>(num("version").value_or(1));
    r.service_key = *key;
    r.profile_kind = str("profileKind").value_or("workspace-runtime");
    r.service_name = str("serviceName").value_or("");
    r.command = str("command").value_or("");
    r.cwd = str("cwd").value_or("");
    r.env_fingerprint = str("envFingerprint").value_or("");
    r.port = num("port");
    r.url = str("url");
    r.pid = *pid;
    r.process_group_id = num("processGroupId");
    r.provider = str("provider").value_or("local_process");
    r.runtime_service_id = str("runtimeServiceId");
    r.reuse_key = str("reuseKey");
    r.started_at = str("startedAt").value_or("");
    r.last_seen_at = str("lastSeenAt").value_or("");
    if (auto const* m = o.if_contains("metadata"); m && m->is_object()) r.metadata = m->get_object();
    r.owner_pid = num("ownerPid");
    return r;
}

/// Whether the live process of `r` is the service: its command line contains the command
/// (trimmed) or the service name (upstream's `ps` check), or — a shell that exec'd something the
/// command line no longer shows (`env X=1 pnpm dev`, quoting) — the port's listener is in the
/// record's process group (upstream #11744: listener and process group prove ownership).
[[nodiscard]] inline bool command_matches(registry_record const& r, std::string const& command,
                                          std::string const& service_name, std::optional<std::int64_t> listener) {
    auto const cmdline = detail::command_line(r.pid);
    auto const b = command.find_first_not_of(" \t\r\n");
    auto const e = command.find_last_not_of(" \t\r\n");
    auto const trimmed = b == std::string::npos ? std::string() : command.substr(b, e - b + 1);
    if (!trimmed.empty() && cmdline.find(trimmed) != std::string::npos) return true;
    if (!service_name.empty() && cmdline.find(service_name) != std::string::npos) return true;
    return listener && r.process_group_id && detail::process_group(*listener) == r.process_group_id;
}

/// The registry directory and its records. Thread-safe (every operation is one file operation;
/// writes are atomic renames), and safe across processes sharing the directory.
class service_registry {
public:
    explicit service_registry(std::filesystem::path dir = default_registry_dir()) : dir_(std::move(dir)) {}

    [[nodiscard]] std::filesystem::path const& dir() const noexcept { return dir_; }

    /// `<dir>/<key>.json`.
    /// @throws berth::error for a key that is not a sanitised service key ([a-z0-9_-] only): a
    ///         key can never name a file outside the directory.
    [[nodiscard]] std::filesystem::path file_for(std::string const& key) const {
        if (key.empty() || key.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_-") != std::string::npos)
            throw error("Unexpected runtime service key value: " + key + " (expected [a-z0-9_-] only)");
        return dir_ / (key + ".json");
    }

    /// Writes (or replaces) the record, creating the directory.
    /// @throws berth::error naming the file when it cannot be written.
    void write(registry_record const& r) const {
        auto const path = file_for(r.service_key);
        std::error_code ec;
        std::filesystem::create_directories(dir_, ec);
        std::string text;
        detail::pretty(text, to_json(r), 0);
        text += '\n';
        auto const tmp = dir_ / (r.service_key + ".json.tmp-" + std::to_string(::getpid()));
        {
            std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
            out << text;
            if (!out) throw error("Cannot write the runtime service registry file " + tmp.string());
        }
        std::filesystem::rename(tmp, path, ec);
        if (ec) {
            std::filesystem::remove(tmp, ec);
            throw error("Cannot write the runtime service registry file " + path.string() + ": " + ec.message());
        }
    }

    /// The record of `key`, or nullopt (absent or unreadable).
    [[nodiscard]] std::optional<registry_record> read(std::string const& key) const {
        std::ifstream in(file_for(key), std::ios::binary);
        if (!in) return std::nullopt;
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        boost::system::error_code ec;
        auto v = boost::json::parse(text, ec);
        if (ec) return std::nullopt;
        return registry_record_from_json(v);
    }

    /// Removes the record of `key` (no error when absent).
    void remove(std::string const& key) const {
        std::error_code ec;
        std::filesystem::remove(file_for(key), ec);
    }

    /// Every readable record of the directory.
    [[nodiscard]] std::vector<registry_record> list() const {
        std::vector<registry_record> out;
        std::error_code ec;
        for (auto const& e : std::filesystem::directory_iterator(dir_, ec)) {
            auto const name = e.path().filename().string();
            if (name.size() <= 5 || name.substr(name.size() - 5) != ".json") continue;
            auto const key = name.substr(0, name.size() - 5);
            if (key.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_-") != std::string::npos) continue;
            if (auto r = read(key)) out.push_back(std::move(*r));
        }
        return out;
    }

    /// The record naming runtime service `id` (upstream findLocalServiceRegistryRecordByRuntimeServiceId).
    [[nodiscard]] std::optional<registry_record> find_by_runtime_service_id(std::string const& id) const {
        for (auto& r : list())
            if (r.runtime_service_id == id) return std::move(r);
        return std::nullopt;
    }

    /// Sets lastSeenAt (and runtimeServiceId) of an existing record.
    void touch(std::string const& key, std::optional<std::string> const& runtime_service_id,
               std::string const& last_seen_at, std::optional<std::int64_t> owner_pid = std::nullopt) const {
        auto r = read(key);
        if (!r) return;
        if (runtime_service_id) r->runtime_service_id = runtime_service_id;
        r->last_seen_at = last_seen_at;
        if (owner_pid) r->owner_pid = owner_pid;
        write(*r);
    }

    /// The live process a start may adopt instead of starting a second copy (see the file
    /// comment), or nullopt. Deletes the record when it is stale (no process, no listener).
    [[nodiscard]] std::optional<registry_record> find_adoptable(adoption_query const& q) const {
        auto r = read(q.service_key);
        if (!r) return std::nullopt;
        if (!detail::pid_running(r->pid)) {
            auto const owner = r->port ? detail::port_owner(*r->port) : std::nullopt;
            if (!owner) {
                remove(q.service_key);
                return std::nullopt;
            }
            r->pid = *owner;  // the listener outlived the shell that started it
            r->process_group_id = detail::process_group(*owner);
        }
        std::optional<std::int64_t> listener;
        if (r->port) {
            listener = detail::port_owner(*r->port);
            if (!listener) return std::nullopt;
            auto const cwd = detail::process_cwd(*listener);
            if (!cwd || !detail::path_within(*cwd, q.cwd)) return std::nullopt;
        }
        if (!command_matches(*r, q.command, q.service_name, listener)) return std::nullopt;
        if (r->command != q.command || r->cwd != q.cwd || r->env_fingerprint != q.env_fingerprint)
            return std::nullopt;
        if (q.port && r->port != q.port) return std::nullopt;
        return r;
    }

private:
    std::filesystem::path dir_;
};

}  // namespace berth::services

#pragma once
// Definitions of berth/services/config.hpp (included at its bottom).

#include <berth/model/enum_string.hpp>  // try_parse_enum

#include <boost/json/array.hpp>   // boost::json::array
#include <boost/json/object.hpp>  // boost::json::object

#include <algorithm>  // std::max
#include <climits>    // INT64_MAX
#include <string>     // std::string, std::to_string

namespace berth::services {
namespace detail {

[[nodiscard]] inline std::string shown(boost::json::value const& v) {
    auto s = boost::json::serialize(v);
    return s.size() > 200 ? s.substr(0, 200) + "..." : s;
}

/// `Runtime service "<name>": field "<field>" <what>, got <value>`.
[[noreturn]] inline void bad(std::string const& service, std::string const& field, std::string const& what,
                             boost::json::value const& got) {
    throw config_error(service, field,
                       "Runtime service \"" + service + "\": field \"" + field + "\" " + what + ", got " + shown(got));
}

inline std::optional<std::string> string_field(boost::json::object const& o, char const* key,
                                               std::string const& service, std::string const& field) {
    auto const* v = o.if_contains(key);
    if (!v || v->is_null()) return std::nullopt;
    if (!v->is_string()) bad(service, field, "must be a string", *v);
    return std::string(v->get_string());
}

/// An integer field (a JSON number with no fraction), or nullopt when absent or null.
inline std::optional<std::int64_t> integer_field(boost::json::object const& o, char const* key,
                                                 std::string const& service, std::string const& field) {
    auto const* v = o.if_contains(key);
    if (!v || v->is_null()) return std::nullopt;
    if (v->is_int64()) return v->get_int64();
    if (v->is_uint64() && v->get_uint64() <= static_cast<std::uint64_t>(INT64_MAX))
        return static_cast<std::int64_t>(v->get_uint64());
    if (v->is_double() && v->get_double() == static_cast<double>(static_cast<std::int64_t>(v->get_double())))
        return static_cast<std::int64_t>(v->get_double());
    bad(service, field, "must be an integer", *v);
}

inline boost::json::object const* object_field(boost::json::object const& o, char const* key,
                                                std::string const& service, std::string const& field) {
    auto const* v = o.if_contains(key);
    if (!v || v->is_null()) return nullptr;
    if (!v->is_object()) bad(service, field, "must be an object", *v);
    return &v->get_object();
}

template <class E>
std::optional<E> enum_field(boost::json::object const& o, char const* key, std::string const& service,
                            std::string const& field, char const* allowed) {
    auto s = string_field(o, key, service, field);
    if (!s) return std::nullopt;
    if (auto e = try_parse_enum<E>(*s)) return e;
    bad(service, field, std::string("must be one of ") + allowed, o.at(key));
}

inline void check_port_number(std::int64_t p, std::string const& service, std::string const& field,
                              boost::json::value const& got) {
    if (p < 1 || p > 65535) bad(service, field, "must be a port number from 1 to 65535", got);
}

}  // namespace detail

inline runtime_service_config parse_runtime_service(boost::json::value const& entry, std::size_t index) {
    using namespace detail;
    std::string const where = "services[" + std::to_string(index) + "]";
    if (!entry.is_object())
        throw config_error(where, "", "Runtime service " + where + " must be an object, got " + shown(entry));
    auto const& o = entry.get_object();
    runtime_service_config c;
    if (auto const* v = o.if_contains("name"); v && !v->is_null()) {
        if (!v->is_string()) bad(where, "name", "must be a string", *v);
        auto const s = std::string(v->get_string());
        c.name = s.empty() ? "service" : s;
    }
    std::string const& n = c.name;
    c.command = string_field(o, "command", n, "command").value_or("");
    if (c.command.empty()) throw config_error(n, "command", "Runtime service \"" + n + "\" is missing command");
    if (auto cwd = string_field(o, "cwd", n, "cwd"); cwd && !cwd->empty()) c.cwd = *cwd;
    c.lifecycle = enum_field<runtime_service_lifecycle>(o, "lifecycle", n, "lifecycle", "shared, ephemeral")
                      .value_or(runtime_service_lifecycle::shared);
    c.reuse_scope = enum_field<runtime_service_scope_type>(o, "reuseScope", n, "reuseScope",
                                                           "project_workspace, execution_workspace, agent, run");
    // The seed's resolveServiceScopeId defaults the scope on the *given* lifecycle
    // (`service.lifecycle === "shared" ? "project_workspace" : "run"`) while its lifecycle itself
    // defaults to shared: a service that names no lifecycle is shared, but within its run.
    if (!c.reuse_scope) {
        auto const* l = o.if_contains("lifecycle");
        if (l == nullptr || l->is_null()) c.reuse_scope = runtime_service_scope_type::run;
    }
    if (auto const* p = o.if_contains("port"); p && !p->is_null()) {
        if (p->is_object()) {
            auto const& po = p->get_object();
            auto const type = string_field(po, "type", n, "port.type");
            if (auto key = string_field(po, "envKey", n, "port.envKey")) {
                if (key->empty()) bad(n, "port.envKey", "must not be empty", po.at("envKey"));
                c.port.env_key = *key;
            }
            auto const value = integer_field(po, "value", n, "port.value");
            if (type == "auto") {
                c.port.mode = port_config::kind::automatic;
            } else if (type && *type != "fixed") {
                bad(n, "port.type", "must be \"auto\" (or \"fixed\" with a value)", po.at("type"));
            } else if (value) {
                check_port_number(*value, n, "port.value", po.at("value"));
                c.port.mode = port_config::kind::fixed;
                c.port.value = *value;
            } else {
                bad(n, "port", "needs a value or type \"auto\"", *p);
            }
        } else {
            auto const value = integer_field(o, "port", n, "port");
            check_port_number(*value, n, "port", *p);
            c.port.mode = port_config::kind::fixed;
            c.port.value = *value;
        }
    }
    if (auto const* env = object_field(o, "env", n, "env")) {
        for (auto const& kv : *env) {
            if (!kv.value().is_string()) continue;  // upstream skips non-string values
            std::string const key(kv.key());
            if (key.empty() || key.find('=') != std::string::npos)
                bad(n, "env", "has an invalid variable name", boost::json::value(kv.key()));
            c.env.emplace(key, std::string(kv.value().get_string()));
        }
    }
    if (auto const* expose = object_field(o, "expose", n, "expose"))
        c.expose_url_template = string_field(*expose, "urlTemplate", n, "expose.urlTemplate");
    if (auto const* r = object_field(o, "readiness", n, "readiness")) {
        auto const type = string_field(*r, "type", n, "readiness.type");
        if (type && *type != "http") bad(n, "readiness.type", "must be \"http\"", r->at("type"));
        if (type) {
            readiness_config rc;
            rc.url_template = string_field(*r, "urlTemplate", n, "readiness.urlTemplate");
            if (auto t = integer_field(*r, "timeoutSec", n, "readiness.timeoutSec")) rc.timeout_sec = std::max<std::int64_t>(1, *t);
            else rc.timeout_sec = default_readiness_timeout_sec(c.command);
            if (auto i = integer_field(*r, "intervalMs", n, "readiness.intervalMs")) rc.interval_ms = std::max<std::int64_t>(100, *i);
            c.readiness = rc;
        }
    }
    if (auto const* sp = object_field(o, "stopPolicy", n, "stopPolicy")) {
        c.stop_policy_json = *sp;
        c.stop_policy.type =
            enum_field<stop_policy_type>(*sp, "type", n, "stopPolicy.type", "manual, on_run_finish, idle_timeout");
        if (auto s = integer_field(*sp, "idleSeconds", n, "stopPolicy.idleSeconds"))
            c.stop_policy.idle_seconds = std::max<std::int64_t>(1, *s);
    }
    c.desired_state = enum_field<runtime_desired_state>(o, "desiredState", n, "desiredState", "running, stopped, manual");
    return c;
}

inline std::int64_t default_readiness_timeout_sec(std::string_view command) {
    // Words of the command; a word is a dev-server runner when its last path part is one.
    std::vector<std::string_view> words;
    for (std::size_t i = 0; i < command.size();) {
        auto const b = command.find_first_not_of(" \t\r\n;&|()", i);
        if (b == std::string_view::npos) break;
        auto const e = command.find_first_of(" \t\r\n;&|()", b);
        words.push_back(command.substr(b, e == std::string_view::npos ? std::string_view::npos : e - b));
        i = e == std::string_view::npos ? command.size() : e;
    }
    for (std::size_t i = 0; i < words.size(); ++i) {
        auto const w = words[i].substr(words[i].rfind('/') == std::string_view::npos ? 0 : words[i].rfind('/') + 1);
        if (w != "pnpm" && w != "npm" && w != "yarn" && w != "bun") continue;
        auto j = i + 1;
        if (j < words.size() && words[j] == "run") ++j;
        if (j < words.size() && words[j] == "dev") return 90;
    }
    return 30;
}

inline std::vector<runtime_service_config> parse_runtime_services(boost::json::value const& config) {
    boost::json::value const* list = &config;
    if (config.is_object()) {
        auto const& o = config.get_object();
        if (auto const* rt = o.if_contains("workspaceRuntime"); rt && rt->is_object()) {
            auto const* s = rt->get_object().if_contains("services");
            if (!s || s->is_null()) return {};
            list = s;
        } else if (auto const* s = o.if_contains("services")) {
            list = s;
        } else {
            return {};
        }
    }
    if (!list->is_array())
        throw config_error("", "services",
                           "Workspace runtime config: \"services\" must be an array, got " + detail::shown(*list));
    std::vector<runtime_service_config> out;
    std::size_t i = 0;
    for (auto const& e : list->get_array()) out.push_back(parse_runtime_service(e, i++));
    return out;
}

}  // namespace berth::services

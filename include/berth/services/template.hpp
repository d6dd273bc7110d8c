#pragma once
//! @file
//! Template rendering for runtime service definitions: upstream's `renderTemplate`
//! (`{{ a.b.c }}` replaced by the value at that path of the template data; a missing value or a
//! path through a non-object renders as ""; numbers and booleans as text; other values as JSON)
//! and `buildTemplateData` / `renderRuntimeServiceEnv`.

#include <berth/services/config.hpp>   // runtime_service_config
#include <berth/services/context.hpp>  // service_context

#include <boost/json/object.hpp>     // boost::json::object
#include <boost/json/serialize.hpp>  // serialize
#include <boost/json/value.hpp>      // boost::json::value

#include <cstdint>      // std::int64_t
#include <map>          // std::map
#include <optional>     // std::optional
#include <string>       // std::string
#include <string_view>  // std::string_view

namespace berth::services {

/// The text of `{{ path }}`: upstream's resolvePathValue.
[[nodiscard]] inline std::string resolve_template_path(boost::json::object const& data, std::string_view path) {
    boost::json::value const* cursor = nullptr;
    boost::json::object const* obj = &data;
    while (true) {
        auto const dot = path.find('.');
        auto const part = path.substr(0, dot);
        if (!obj) return "";
        cursor = obj->if_contains(part);
        if (!cursor) return "";
        if (dot == std::string_view::npos) break;
        path.remove_prefix(dot + 1);
        obj = cursor->is_object() ? &cursor->get_object() : nullptr;
    }
    if (cursor->is_null()) return "";
    if (cursor->is_string()) return std::string(cursor->get_string());
    if (cursor->is_bool()) return cursor->get_bool() ? "true" : "false";
    return boost::json::serialize(*cursor);
}

/// `template` with every `{{ path }}` (path: letters, digits, `_`, `.`, `-`; spaces around it
/// allowed) replaced; anything else is kept as written.
[[nodiscard]] inline std::string render_template(std::string_view tpl, boost::json::object const& data) {
    auto is_path_char = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
               c == '-';
    };
    std::string out;
    out.reserve(tpl.size());
    std::size_t i = 0;
    while (i < tpl.size()) {
        auto const open = tpl.find("{{", i);
        if (open == std::string_view::npos) break;
        std::size_t j = open + 2;
        while (j < tpl.size() && (tpl[j] == ' ' || tpl[j] == '\t' || tpl[j] == '\n' || tpl[j] == '\r')) ++j;
        std::size_t const ps = j;
        while (j < tpl.size() && is_path_char(tpl[j])) ++j;
        std::size_t const pe = j;
        while (j < tpl.size() && (tpl[j] == ' ' || tpl[j] == '\t' || tpl[j] == '\n' || tpl[j] == '\r')) ++j;
        if (pe > ps && j + 1 < tpl.size() + 1 && tpl.substr(j, 2) == "}}") {
            out.append(tpl.substr(i, open - i));
            out += resolve_template_path(data, tpl.substr(ps, pe - ps));
            i = j + 2;
        } else {
            out.append(tpl.substr(i, open + 2 - i));  // not a placeholder: keep "{{" and go on after it
            i = open + 2;
        }
    }
    out.append(tpl.substr(i));
    return out;
}

/// upstream buildTemplateData: workspace{cwd, branchName, worktreePath, repoUrl, repoRef, env},
/// issue{id, identifier, title}, agent{id, name}, port (a number, or "" when there is none).
[[nodiscard]] inline boost::json::object build_template_data(service_context const& ctx,
                                                             std::optional<std::int64_t> port) {
    auto const& w = ctx.workspace;
    boost::json::object env;
    for (auto const& [k, v] : ctx.adapter_env) env[k] = v;
    boost::json::object data;
    data["workspace"] = boost::json::object{{"cwd", w.cwd},
                                            {"branchName", w.branch_name.value_or("")},
                                            {"worktreePath", w.worktree_path.value_or("")},
                                            {"repoUrl", w.repo_url.value_or("")},
                                            {"repoRef", w.repo_ref.value_or("")},
                                            {"env", std::move(env)}};
    data["issue"] = boost::json::object{{"id", ctx.issue ? ctx.issue->id : std::string()},
                                        {"identifier", ctx.issue ? ctx.issue->identifier.value_or("") : std::string()},
                                        {"title", ctx.issue ? ctx.issue->title.value_or("") : std::string()}};
    data["agent"] = boost::json::object{{"id", ctx.agent.id.value_or("")}, {"name", ctx.agent.name}};
    if (port) data["port"] = *port;
    else data["port"] = "";
    return data;
}

/// upstream renderRuntimeServiceEnv: every env template of the service, rendered.
[[nodiscard]] inline std::map<std::string, std::string> render_service_env(runtime_service_config const& service,
                                                                           boost::json::object const& data) {
    std::map<std::string, std::string> out;
    for (auto const& [k, v] : service.env) out.emplace(k, render_template(v, data));
    return out;
}

}  // namespace berth::services

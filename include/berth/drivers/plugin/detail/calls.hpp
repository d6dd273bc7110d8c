#pragma once
// The JSON of upstream's environment calls (§2.5) that the `plugin` driver and the plugin-backed
// sandbox providers both make: the lease as a worker sees it, a worker's lease reply, and
// environmentExecute's params and result. One place, so that both speak the same payloads.

#include <berth/drivers/plugin/config.hpp>  // read_string, parse_expires_at, signal_number
#include <berth/error.hpp>                  // berth::error
#include <berth/model/command.hpp>          // command, command_result, output_stream
#include <berth/model/time.hpp>             // timestamp, to_iso8601
#include <berth/plugins/worker_host.hpp>    // call_options

#include <boost/json/array.hpp>      // boost::json::array
#include <boost/json/object.hpp>     // boost::json::object
#include <boost/json/serialize.hpp>  // boost::json::serialize (error messages)
#include <boost/json/value.hpp>      // boost::json::value

#include <algorithm>    // std::min
#include <optional>     // std::optional
#include <string>       // std::string
#include <string_view>  // std::string_view

namespace berth::detail::plugin {

inline boost::json::value string_or_null(std::optional<std::string> const& s) {
    return s ? boost::json::value(*s) : boost::json::value(nullptr);
}

/// `{providerLeaseId, metadata?, expiresAt}`: a lease as the worker's execute/realize/sync see it.
inline boost::json::object worker_lease(std::optional<std::string> const& provider_lease_id,
                                        boost::json::object const* metadata, std::optional<timestamp> expires_at) {
    boost::json::object o;
    o["providerLeaseId"] = string_or_null(provider_lease_id);
    if (metadata) o["metadata"] = *metadata;
    o["expiresAt"] = expires_at ? boost::json::value(to_iso8601(*expires_at)) : boost::json::value(nullptr);
    return o;
}

/// What a worker returned as a lease: providerLeaseId (string or null), metadata, expiresAt.
struct worker_lease_reply {
    std::optional<std::string> provider_lease_id;
    boost::json::object metadata;
    std::optional<timestamp> expires_at;
};

inline worker_lease_reply read_lease_reply(boost::json::value const& v) {
    worker_lease_reply r;
    auto const* o = v.if_object();
    if (o == nullptr) return r;
    r.provider_lease_id = plugins::detail::read_string(o, "providerLeaseId");
    if (auto const* m = o->if_contains("metadata"); m && m->is_object()) r.metadata = m->get_object();
    r.expires_at = plugins::detail::parse_expires_at(o->if_contains("expiresAt"));
    return r;
}

/// Adds environmentExecute's `{command, args, cwd?, env?, stdin?, timeoutMs?}` for `cmd` to `params`.
inline void add_execute_params(boost::json::object& params, command const& cmd) {
    params["command"] = cmd.program;
    boost::json::array args;
    args.reserve(cmd.args.size());
    for (auto const& a : cmd.args) args.emplace_back(a);
    params["args"] = std::move(args);
    if (cmd.cwd) params["cwd"] = *cmd.cwd;
    if (!cmd.env.empty()) {
        boost::json::object e;
        for (auto const& [k, v] : cmd.env) e[k] = v;
        params["env"] = std::move(e);
    }
    if (cmd.stdin_data) params["stdin"] = *cmd.stdin_data;
    if (cmd.timeout.count() > 0) params["timeoutMs"] = cmd.timeout.count();
}

/// `cmd.on_output` as the call's `execute.log` sink (none when the command has no sink).
inline void stream_execute_log(plugins::call_options& options, command const& cmd) {
    if (cmd.on_output)
        options.on_log = [&cmd](std::string_view stream, std::string_view chunk) {
            cmd.on_output(stream == "stderr" ? output_stream::stderr_stream : output_stream::stdout_stream, chunk);
        };
}

/// environmentExecute's result `{exitCode|null, signal?, timedOut, stdout, stderr}` as a
/// command_result, each stream cut at `cmd.max_output_bytes`.
/// @throws berth::error `<who> returned no execute result: <reply>` when the reply is not an object.
inline command_result read_execute_result(boost::json::value const& reply, command const& cmd, std::string_view who) {
    command_result out;
    auto const* o = reply.if_object();
    if (o == nullptr)
        throw berth::error(std::string(who) + " returned no execute result: " + boost::json::serialize(reply));
    if (auto const* c = o->if_contains("exitCode"); c && c->is_number()) {
        boost::system::error_code ec;
        auto const n = c->to_number<int>(ec);
        if (!ec) out.exit_code = n;
    }
    if (auto const* s = o->if_contains("signal"); s && s->is_string())
        out.signal = plugins::detail::signal_number(s->get_string());
    if (auto const* t = o->if_contains("timedOut"); t && t->is_bool()) out.timed_out = t->get_bool();
    auto take = [&](char const* key, std::string& text, bool& truncated) {
        auto const* v = o->if_contains(key);
        if (v == nullptr || !v->is_string()) return;
        std::string_view const s = v->get_string();
        truncated = s.size() > cmd.max_output_bytes;
        text.assign(s.substr(0, std::min(s.size(), cmd.max_output_bytes)));
    };
    take("stdout", out.stdout_text, out.stdout_truncated);
    take("stderr", out.stderr_text, out.stderr_truncated);
    return out;
}

}  // namespace berth::detail::plugin

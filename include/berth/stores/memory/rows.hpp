#pragma once
//! @file
//! berth::detail::memory::lease_row / event_row — the compact records berth::memory_store keeps
//! for a lease and an activity event (compact.hpp says how), and their conversions from and to
//! the public berth::environment_lease / berth::activity_event. JSON members (a lease's metadata,
//! an event's details) are kept as their serialized text and parsed again when read: a
//! json_object of two members costs ~400 bytes of heap, its text ~50.

#include <berth/model/activity.hpp>        // activity_event
#include <berth/model/lease.hpp>           // environment_lease
#include <berth/stores/memory/compact.hpp>  // compact_text, pooled, text_pool, optional_time

#include <boost/json/parse.hpp>      // boost::json::parse
#include <boost/json/serialize.hpp>  // boost::json::serialize

#include <cstdint>   // std::int64_t, std::uint64_t
#include <optional>  // std::optional
#include <string>    // std::string

namespace berth::detail::memory {

[[nodiscard]] inline optional_time compact_time(std::optional<timestamp> t) noexcept {
    return t ? optional_time{t->micros()} : optional_time{};
}
[[nodiscard]] inline std::optional<timestamp> public_time(optional_time t) noexcept {
    if (t.micros == optional_time::none) return std::nullopt;
    return timestamp::from_micros(t.micros);
}

[[nodiscard]] inline compact_text compact_json(std::optional<json_object> const& o) {
    if (!o) return {};
    return compact_text(std::string_view(boost::json::serialize(*o)));
}
[[nodiscard]] inline json_object public_json(compact_text const& t) {
    if (!t.engaged()) return {};
    return t.view().with_text([](std::string_view s) { return boost::json::parse(s).as_object(); });
}

/// A stored lease (the members of environment_lease, compactly), plus its insertion order.
struct lease_row {
    compact_text id, execution_workspace_id, issue_id, heartbeat_run_id, provider_lease_id, failure_reason,
        metadata, reuse_scope;
    pooled company_id = nullptr, environment_id = nullptr, provider = nullptr, driver_name = nullptr,
           policy_name = nullptr, holder_host = nullptr;
    timestamp acquired_at{}, last_used_at{}, created_at{}, updated_at{};
    optional_time expires_at{}, released_at{};
    std::uint64_t epoch = 1;
    std::uint64_t seq = 0;  // insertion order: a tie-break of the recovery listing
    std::optional<std::int64_t> holder_pid{}, holder_start_time{};
    lease_status status = lease_status::active;
    lease_policy_kind lease_policy = lease_policy_kind::ephemeral;
    std::optional<berth::cleanup_status> cleanup_status{};

    [[nodiscard]] std::optional<timestamp> expires() const noexcept { return public_time(expires_at); }
};

/// The compact form of `l`; interns its repeated values in `pool` (which may then grow even if a
/// later step throws: a pooled text no row uses is harmless).
[[nodiscard]] inline lease_row compact_lease(environment_lease const& l, text_pool& pool) {
    lease_row r;
    r.id = compact_text(std::string_view(l.id));
    r.execution_workspace_id = compact_text(l.execution_workspace_id);
    r.issue_id = compact_text(l.issue_id);
    r.heartbeat_run_id = compact_text(l.heartbeat_run_id);
    r.provider_lease_id = compact_text(l.provider_lease_id);
    r.failure_reason = compact_text(l.failure_reason);
    r.metadata = compact_json(l.metadata);
    r.reuse_scope = compact_text(l.reuse_scope);
    r.company_id = pool.intern(std::string_view(l.company_id));
    r.environment_id = pool.intern(std::string_view(l.environment_id));
    r.provider = pool.intern(l.provider);
    r.driver_name = pool.intern(l.driver_name);
    r.policy_name = pool.intern(l.policy_name);
    r.holder_host = pool.intern(l.holder_host);
    r.acquired_at = l.acquired_at;
    r.last_used_at = l.last_used_at;
    r.created_at = l.created_at;
    r.updated_at = l.updated_at;
    r.expires_at = compact_time(l.expires_at);
    r.released_at = compact_time(l.released_at);
    r.epoch = l.epoch;
    r.holder_pid = l.holder_pid;
    r.holder_start_time = l.holder_start_time;
    r.status = l.status;
    r.lease_policy = l.lease_policy;
    r.cleanup_status = l.cleanup_status;
    return r;
}

[[nodiscard]] inline environment_lease public_lease(lease_row const& r) {
    environment_lease l;
    l.id = r.id.str();
    l.company_id = std::string(text_of(r.company_id));
    l.environment_id = std::string(text_of(r.environment_id));
    l.execution_workspace_id = r.execution_workspace_id.optional_str();
    l.issue_id = r.issue_id.optional_str();
    l.heartbeat_run_id = r.heartbeat_run_id.optional_str();
    l.status = r.status;
    l.lease_policy = r.lease_policy;
    l.provider = optional_of(r.provider);
    l.provider_lease_id = r.provider_lease_id.optional_str();
    l.acquired_at = r.acquired_at;
    l.last_used_at = r.last_used_at;
    l.expires_at = public_time(r.expires_at);
    l.released_at = public_time(r.released_at);
    l.failure_reason = r.failure_reason.optional_str();
    l.cleanup_status = r.cleanup_status;
    if (r.metadata.engaged()) l.metadata = public_json(r.metadata);
    l.epoch = r.epoch;
    l.created_at = r.created_at;
    l.updated_at = r.updated_at;
    l.reuse_scope = r.reuse_scope.optional_str();
    l.driver_name = optional_of(r.driver_name);
    l.policy_name = optional_of(r.policy_name);
    l.holder_host = optional_of(r.holder_host);
    l.holder_pid = r.holder_pid;
    l.holder_start_time = r.holder_start_time;
    return l;
}

/// A stored activity event (the members of activity_event, compactly).
struct event_row {
    compact_text id, entity_id, run_id, details;
    pooled company_id = nullptr, actor_type = nullptr, actor_id = nullptr, action = nullptr, entity_type = nullptr,
           agent_id = nullptr;
    timestamp created_at{};
};

[[nodiscard]] inline event_row compact_event(activity_event const& e, text_pool& pool) {
    event_row r;
    r.id = compact_text(std::string_view(e.id));
    r.entity_id = compact_text(std::string_view(e.entity_id));
    r.run_id = compact_text(e.run_id);
    r.details = compact_text(std::string_view(boost::json::serialize(e.details)));
    r.company_id = pool.intern(std::string_view(e.company_id));
    r.actor_type = pool.intern(std::string_view(e.actor_type));
    r.actor_id = pool.intern(std::string_view(e.actor_id));
    r.action = pool.intern(std::string_view(e.action));
    r.entity_type = pool.intern(std::string_view(e.entity_type));
    r.agent_id = pool.intern(e.agent_id);
    r.created_at = e.created_at;
    return r;
}

[[nodiscard]] inline activity_event public_event(event_row const& r) {
    return activity_event{.id = r.id.str(),
                          .company_id = std::string(text_of(r.company_id)),
                          .actor_type = std::string(text_of(r.actor_type)),
                          .actor_id = std::string(text_of(r.actor_id)),
                          .action = std::string(text_of(r.action)),
                          .entity_type = std::string(text_of(r.entity_type)),
                          .entity_id = r.entity_id.str(),
                          .agent_id = optional_of(r.agent_id),
                          .run_id = r.run_id.optional_str(),
                          .details = public_json(r.details),
                          .created_at = r.created_at};
}

}  // namespace berth::detail::memory

#pragma once
// berth::memory_store::tables — the memory store's rows and indexes, and the code that keeps them
// (the store's public members forward here). Only the store's definitions include this header
// (impl/memory_store.hpp): berth/stores/memory.hpp holds them by std::unique_ptr, so a TU that
// owns or uses a store parses none of the containers (Boost.Unordered, Boost.Container, the
// compact rows and their JSON text) and, under BERTH_SEPARATE_COMPILATION, compiles none of their
// code. One layout in both modes: header-only includes this through the definitions. Like them,
// not meant to be included on its own (it follows berth/stores/memory.hpp's class).

#include <berth/model/lease_transitions.hpp>       // detail::lease_status_count (the status index)
#include <berth/stores/memory/id_table.hpp>         // id_table (the environment-keyed indexes)
#include <berth/stores/memory/rows.hpp>             // lease_row, event_row (the compact records)

#include <boost/container/small_vector.hpp>        // boost::container::small_vector (a run's or entity's rows)
#include <boost/describe/enumerators.hpp>          // describe_enumerators (the status count)
#include <boost/mp11/list.hpp>                     // mp_size
#include <boost/unordered/unordered_flat_map.hpp>  // boost::unordered_flat_map (rows and indexes by id)

#include <array>          // std::array (one lease set per status)
#include <cstddef>        // std::size_t
#include <cstdint>        // std::uint64_t
#include <functional>     // std::equal_to, std::less
#include <map>            // std::map (runtime services)
#include <memory>         // std::unique_ptr (lease and event rows)
#include <set>            // std::set (the ordered indexes)
#include <shared_mutex>   // std::shared_mutex
#include <string>         // std::string
#include <string_view>    // std::string_view
#include <unordered_map>  // std::unordered_map
#include <vector>         // std::vector

namespace berth {

/// What a memory_store holds. Its members mirror memory_store's public ones (documented there),
/// which call them; the thread-safety and strong-guarantee rules are kept here, member by member.
struct memory_store::tables {
    // ---- the store's operations (memory_store's public members call these) ----
    std::vector<environment> list_environments(std::string_view company_id, environment_filter const& filter) const;
    std::optional<environment> get_environment(std::string_view id) const;
    environment create_environment(new_environment const& input, timestamp now);
    std::optional<environment> update_environment(std::string_view id, environment_patch const& patch, timestamp now);
    environment ensure_local_environment(std::string_view company_id, timestamp now);
    std::optional<environment_lease> get_lease(std::string_view id) const;
    std::vector<environment_lease> list_leases(std::string_view environment_id, lease_filter const& filter) const;
    std::vector<environment_lease> list_run_leases(std::string_view heartbeat_run_id, lease_filter const& filter) const;
    environment_lease acquire_lease(new_lease const& input, timestamp now, std::optional<activity_event> event);
    environment_lease transition_lease(lease_transition const& transition, timestamp now,
                                       std::optional<activity_event> event);
    std::optional<environment_lease> update_lease_metadata(std::string_view id, std::optional<json_object> metadata,
                                                           timestamp now);
    environment_lease renew_lease(std::string_view id, std::uint64_t expected_epoch,
                                  std::optional<timestamp> expires_at, timestamp now);
    std::vector<environment_lease> release_leases_for_run(std::string_view heartbeat_run_id, lease_status to,
                                                          timestamp now);
    std::vector<environment_lease> list_expired_leases(timestamp now) const;
    std::vector<environment_lease> list_expired_leases(timestamp now, list_page const& page) const;
    prune_result prune_history(history_retention const& r);
    std::vector<environment_lease> list_recoverable_leases(std::string_view holder_host, timestamp now) const;
    void record_activity(activity_event const& event);
    std::vector<activity_event> list_activity(activity_filter const& filter) const;
    std::optional<workspace_runtime_service> get_runtime_service(std::string_view id) const;
    workspace_runtime_service upsert_runtime_service(workspace_runtime_service const& row, timestamp now);
    std::vector<workspace_runtime_service> list_runtime_services(runtime_service_filter const& filter) const;
    std::vector<std::string> stop_runtime_services(runtime_service_filter const& filter, timestamp now);
    std::optional<execution_workspace> get_execution_workspace(std::string_view id) const;
    std::vector<execution_workspace> list_execution_workspaces(std::string_view company_id,
                                                               execution_workspace_filter const& filter) const;
    execution_workspace create_execution_workspace(new_execution_workspace const& input, timestamp now);
    std::optional<execution_workspace> update_execution_workspace(std::string_view id,
                                                                  execution_workspace_patch const& patch,
                                                                  timestamp now);
    std::optional<project_workspace> get_project_workspace(std::string_view id) const;
    std::vector<project_workspace> list_project_workspaces(std::string_view company_id,
                                                           project_workspace_filter const& filter) const;
    project_workspace create_project_workspace(new_project_workspace const& input, timestamp now);
    std::optional<project_workspace> update_project_workspace(std::string_view id, project_workspace_patch const& patch,
                                                              timestamp now);
    workspace_operation begin_operation(new_workspace_operation const& input, timestamp now);
    std::optional<workspace_operation> update_operation(std::string_view id, workspace_operation_patch const& patch,
                                                        timestamp now);
    std::optional<workspace_operation> get_operation(std::string_view id) const;
    std::vector<workspace_operation> list_operations(workspace_operation_filter const& filter) const;

    // ---- rows, indexes and the helpers that keep them ----
    struct service_row {
        workspace_runtime_service value;
        std::uint64_t seq;
    };
    std::map<std::string, service_row, std::less<>> services_;

    struct environment_row {
        environment value;
        std::uint64_t seq;  // insertion order: the last tie-break of every list
    };
    // Leases and events are kept compactly (stores/memory/rows.hpp): ids as 16-byte UUIDs,
    // repeated names pooled, JSON as text — about a third of the public records' bytes.
    using lease_row = detail::memory::lease_row;
    using event_row = detail::memory::event_row;
    /// A position in a list's order: a sort time and an id.
    struct list_key {
        timestamp at;
        detail::memory::compact_view id;
    };
    /// The lease lists' order: newest last_used_at first, then greatest id (lease_cursor's keyset).
    struct newest_lease_first {
        using is_transparent = void;
        static list_key key(lease_row const* r) noexcept { return {r->last_used_at, r->id.view()}; }
        static list_key key(list_key k) noexcept { return k; }
        template <class A, class B>
        bool operator()(A const& a, B const& b) const noexcept {
            auto const x = key(a), y = key(b);
            if (x.at != y.at) return x.at > y.at;
            return x.id > y.id;
        }
    };
    /// The activity lists' order: oldest created_at first, then smallest id (activity_cursor's keyset).
    struct oldest_event_first {
        using is_transparent = void;
        static list_key key(event_row const* r) noexcept { return {r->created_at, r->id.view()}; }
        static list_key key(list_key k) noexcept { return k; }
        template <class A, class B>
        bool operator()(A const& a, B const& b) const noexcept {
            auto const x = key(a), y = key(b);
            if (x.at != y.at) return x.at < y.at;
            return x.id < y.id;
        }
    };
    /// The expiry sweep's order: soonest expires_at first, then oldest inserted.
    struct soonest_expiry_first {
        bool operator()(lease_row const* a, lease_row const* b) const noexcept {
            if (a->expires_at.micros != b->expires_at.micros) return a->expires_at.micros < b->expires_at.micros;
            return a->seq < b->seq;
        }
    };
    using lease_set = std::set<lease_row*, newest_lease_first>;
    using expiry_set = std::set<lease_row*, soonest_expiry_first>;
    using event_set = std::set<event_row*, oldest_event_first>;
    /// An environment's leases, one set per status, each in list order.
    struct environment_leases {
        std::array<lease_set, detail::lease_status_count> by_status;
    };
    // Keyed by ids: hashed, with string_view lookups. Every list sorts its result itself, so no
    // container needs an order; hashing keeps the cost of a lookup flat as the store grows (an
    // ordered map of 10^5 UUIDs costs a cache miss per level). The lease path — rows, indexes,
    // event ids — uses detail::memory::id_table (open addressing, stored hashes); the other rows are
    // few and stay in node maps, whose addresses the company index holds.
    struct node_hash {
        using is_transparent = void;
        // Deliberately not noexcept: libstdc++ stores each node's hash only for hashers it may not
        // call freely (__cache_default), and then a rehash never hashes an id again.
        std::size_t operator()(std::string_view s) const { return detail::memory::hash_id(s); }
    };
    template <class V>
    using id_map = std::unordered_map<std::string, V, node_hash, std::equal_to<>>;
    template <class Row>
    using index = detail::memory::id_table<std::vector<Row*>>;
    /// Compact id → its rows (a run's leases or events, an entity's events: a handful, kept inline).
    template <class Row>
    using compact_index = boost::unordered_flat_map<detail::memory::compact_text, boost::container::small_vector<Row*, 2>,
                                                    detail::memory::compact_hash, detail::memory::compact_equal>;
    /// Compact id → the row (owned: its heap block never moves, and pruning frees it).
    template <class Row>
    using row_table = boost::unordered_flat_map<detail::memory::compact_text, std::unique_ptr<Row>,
                                                detail::memory::compact_hash, detail::memory::compact_equal>;

    [[nodiscard]] environment_row const* find_local(std::string_view company_id,
                                                    std::string_view except_id = {}) const;
    void check_capacity(environment const& env) const;
    void check_reuse_scope(std::string_view environment_id, std::optional<std::string> const& scope) const;
    void append_event(activity_event const& event);
    void insert_environment(environment env);
    [[nodiscard]] lease_set& status_set(lease_row const* row) noexcept;
    void erase_event(event_row* row, bool from_entity_index) noexcept;
    void erase_lease(lease_row* row, prune_result& counts) noexcept;

    mutable std::shared_mutex mutex_;
    std::uint64_t next_seq_ = 0;
    // Rows live in unordered_map nodes, whose addresses never change (rehashing moves no node), so
    // the indexes hold pointers.
    id_map<environment_row> environments_;
    index<environment_row> environments_by_company_;
    // Lease and event rows each in a heap block of their own: its address never changes (the
    // indexes hold pointers) and pruning frees it. The tables are keyed by a view of the row's id.
    detail::memory::text_pool pool_;  // the rows' repeated names (company, environment, actor, ...)
    row_table<lease_row> leases_;
    // Per environment, per status, in list order: a page of `list_leases(env, {status})` is a
    // seek and its rows; the active set is also the capacity count and the reuse-scope check.
    detail::memory::id_table<environment_leases> leases_by_environment_;
    compact_index<lease_row> leases_by_run_;
    expiry_set expiring_;  // active leases with an expires_at: the sweep reads only what is due
    row_table<event_row> events_;
    detail::memory::id_table<event_set> events_by_company_;  // in list order
    compact_index<event_row> events_by_run_;
    compact_index<event_row> events_by_entity_;  // by entity id, under any entity type
    struct workspace_row {
        execution_workspace value;
        std::uint64_t seq;
    };
    struct operation_row {
        workspace_operation value;
        std::uint64_t seq;
    };
    /// list_execution_workspaces' order: newest last_used_at first (a null last), then newest
    /// created_at, then newest inserted.
    struct newest_workspace_first {
        bool operator()(workspace_row const* a, workspace_row const* b) const noexcept {
            auto const& x = a->value;
            auto const& y = b->value;
            if (x.last_used_at != y.last_used_at) {
                if (!x.last_used_at || !y.last_used_at) return x.last_used_at.has_value();
                return *x.last_used_at > *y.last_used_at;
            }
            if (x.created_at != y.created_at) return x.created_at > y.created_at;
            return a->seq > b->seq;
        }
    };
    /// list_operations' order: oldest started_at first, then oldest inserted.
    struct oldest_operation_first {
        bool operator()(operation_row const* a, operation_row const* b) const noexcept {
            if (a->value.started_at != b->value.started_at) return a->value.started_at < b->value.started_at;
            return a->seq < b->seq;
        }
    };
    using workspace_set = std::set<workspace_row const*, newest_workspace_first>;
    using operation_set = std::set<operation_row const*, oldest_operation_first>;
    static constexpr std::size_t workspace_status_count =
        boost::mp11::mp_size<boost::describe::describe_enumerators<execution_workspace_status>>::value;
    /// A company's execution workspaces in list order, all of them and by status (issue 22: the
    /// startup restart reads the unarchived ones, a dashboard pages them).
    struct company_workspaces {
        workspace_set all;
        std::array<workspace_set, workspace_status_count> by_status;
    };
    void index_workspace(workspace_row const* row);
    void index_operation(operation_row const* row);

    id_map<workspace_row> workspaces_;
    id_map<company_workspaces> workspaces_by_company_;
    struct project_workspace_row {
        project_workspace value;
        std::uint64_t seq;
    };
    id_map<project_workspace_row> project_workspaces_;
    id_map<operation_row> operations_;
    // Operations in list order by company, by run (what recovery reads for a dead run) and by
    // execution workspace: a page is a seek and its rows.
    id_map<operation_set> operations_by_company_;
    id_map<operation_set> operations_by_run_;
    id_map<operation_set> operations_by_workspace_;
};

}  // namespace berth

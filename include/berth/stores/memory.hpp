#pragma once
//! @file
//! berth::memory_store — a persistence backend that keeps environments, leases and the activity
//! log in the process's memory: for tests, examples and one-process tools that need no history
//! after they exit. Part of the core target `berth::berth`; it links nothing.
//!
//! It has the semantics of the SQL stores, rule for rule (the same conformance kit,
//! berth/testing/store_conformance.hpp, runs on all of them):
//!   - upstream environmentService: company-scoped lists newest first, patch semantics, one local
//!     environment per company created idempotently;
//!   - berth's lease rules: a fencing `epoch` compared-and-set on every status change, the status
//!     table of model/lease_transitions.hpp, `maxActiveLeases` capacity, one active lease per
//!     reuse scope, expiry and renewal;
//!   - a lease write and its activity event commit together, and a refused or failed operation
//!     changes nothing (strong exception guarantee, std::bad_alloc included).
//!
//! @code
//! berth::memory_store store;
//! auto env = store.ensure_local_environment("company-1", clock.now());
//! @endcode

#include <berth/detail/config.hpp>                 // BERTH_DECL, BERTH_SEPARATE_COMPILATION
#include <berth/concepts/persistence_backend.hpp>  // the concept memory_store models
#include <berth/error.hpp>                         // store_error, store_errc
#include <berth/model/activity.hpp>                // activity_event, activity_filter
#include <berth/model/environment.hpp>             // environment, new_environment, environment_patch, ...
#include <berth/model/lease.hpp>                   // environment_lease, new_lease, lease_transition, lease_filter
#include <berth/model/retention.hpp>               // history_retention, prune_result
#include <berth/model/runtime_service.hpp>         // workspace_runtime_service, runtime_service_filter
#include <berth/concepts/project_workspace_store.hpp>  // project_workspace_store (issue 21)
#include <berth/model/project_workspace.hpp>       // project_workspace and its inputs
#include <berth/model/workspace.hpp>               // execution_workspace, workspace_operation and their inputs

#include <cstdint>      // std::uint64_t
#include <memory>       // std::unique_ptr (the tables)
#include <optional>     // std::optional
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <vector>       // std::vector

namespace berth {

/// A berth::persistence_backend in memory.
///
/// Growth: every lease and activity list is an index walk — leases by environment and status in
/// list order, by run and by expiry; events by company in list order, by run and by entity — so
/// a page costs its rows, not the history (docs/stores.md, "Growth, paging and retention").
///
/// Thread safety: every member function may be called from many threads at once. Reads share one
/// reader-writer lock; each write holds it exclusively for the whole read-check-modify step, so
/// the capacity count, the reuse-scope check and the epoch compare-and-set cannot interleave with
/// another write. Every list is one consistent snapshot.
///
/// Records are returned by value: changing a returned record never changes the store.
///
/// Footprint: leases and events are kept compactly (stores/memory/rows.hpp: UUID ids in 16
/// bytes, repeated names — company, environment, actor, action, driver, host — pooled once per
/// store, JSON members as text): about 1.4 KB per past lease with its two events and every index
/// (bench_store_history, history_memory_bytes_per_lease). The pool keeps each distinct name for
/// the store's life; prune_history frees the rows.
///
/// Errors: every refusal is a berth::store_error with the code the berth::environment_store and
/// berth::lease_store contracts name. After any exception the store is exactly as before the call.
///
/// Ordering: lease and activity lists break equal timestamps by id (their keyset cursors' order);
/// the other lists by insertion order (newest first where the list is newest first, oldest first
/// where it is oldest first), so equal timestamps from a coarse or manual clock still give one
/// deterministic order.
///
/// Not copyable or movable (it owns its lock); hold it by reference or in a smart pointer.
class memory_store {
public:
    // Defined with the other members (impl/memory_store.hpp), so that under
    // BERTH_SEPARATE_COMPILATION a TU that owns a store does not compile its containers' code.
    memory_store();
    ~memory_store();
    memory_store(memory_store const&) = delete;
    memory_store& operator=(memory_store const&) = delete;

    // ---- berth::environment_store ----------------------------------------------------------------

    /// The company's environments matching every engaged member of `filter`, newest `updated_at`
    /// first, then newest `created_at`, then most recently inserted.
    [[nodiscard]] std::vector<environment> list_environments(std::string_view company_id,
                                                             environment_filter const& filter) const;

    /// The environment with that id, or nullopt.
    [[nodiscard]] std::optional<environment> get_environment(std::string_view id) const;

    /// Inserts an environment with a new id; created_at = updated_at = `now`.
    /// @throws store_error invalid_argument (empty name or company id, naming the field);
    ///         conflict (the company already has a `local` environment and `input` is another).
    environment create_environment(new_environment const& input, timestamp now);

    /// Replaces each member `patch` engages; updated_at = `now`. nullopt when there is no such
    /// environment (nothing is created).
    /// @throws store_error invalid_argument (an empty name); conflict (the patch makes the
    ///         environment `local` while its company already has another local one).
    std::optional<environment> update_environment(std::string_view id, environment_patch const& patch,
                                                  timestamp now);

    /// The company's local environment, created on first call (name default_local_environment_name,
    /// description default_local_environment_description, driver local, status active, config {},
    /// metadata {"managedByBerth": true, "defaultForCompany": true}). An existing local environment
    /// is returned as it is (renamed, archived, ...). Concurrent callers get the same row.
    /// @throws store_error invalid_argument (empty company id).
    environment ensure_local_environment(std::string_view company_id, timestamp now);

    // ---- berth::lease_store ----------------------------------------------------------------------

    /// The lease with that id, or nullopt.
    [[nodiscard]] std::optional<environment_lease> get_lease(std::string_view id) const;

    /// The environment's leases matching `filter`, newest `last_used_at` first, then greatest id.
    [[nodiscard]] std::vector<environment_lease> list_leases(std::string_view environment_id,
                                                             lease_filter const& filter) const;

    /// The run's leases matching `filter`, in list_leases' order.
    [[nodiscard]] std::vector<environment_lease> list_run_leases(std::string_view heartbeat_run_id,
                                                                 lease_filter const& filter) const;

    /// Inserts an `active` lease at epoch 1 (acquired_at = last_used_at = created_at = updated_at
    /// = `now`) and, in the same critical section, `event` when engaged: both or neither. The
    /// event is kept as given (moved in, not copied).
    /// @throws store_error invalid_argument (an empty id, company id or environment id; a company
    ///         that is not the environment's; a config `maxActiveLeases` that is not a positive
    ///         integer, naming the value); not_found (unknown environment); conflict (the lease id
    ///         or the event id exists; the lease's reuse scope already has an active lease);
    ///         capacity_exceeded (the environment already has `maxActiveLeases` active leases,
    ///         naming the environment and the limit).
    environment_lease acquire_lease(new_lease const& input, timestamp now, std::optional<activity_event> event);

    /// Compare-and-set: moves lease `transition.id` to `transition.to` only when its epoch is
    /// `transition.expected_epoch` and berth::can_transition allows the move. Sets epoch + 1,
    /// last_used_at = updated_at = `now`, released_at = `now` (null when the target is `active` or
    /// `retained`), failure_reason / cleanup_status when given (else kept). Writes `event` in the
    /// same critical section.
    /// @throws store_error not_found; stale_epoch (naming the lease, the caller's and the stored
    ///         epoch); illegal_transition (naming from and to); capacity_exceeded or conflict
    ///         (resuming a `retained` lease into a full environment or a taken reuse scope);
    ///         conflict (the event id exists).
    environment_lease transition_lease(lease_transition const& transition, timestamp now,
                                       std::optional<activity_event> event);

    /// Replaces the lease's metadata; last_used_at = updated_at = `now`; epoch and status are
    /// unchanged. nullopt for an unknown lease.
    std::optional<environment_lease> update_lease_metadata(std::string_view id, std::optional<json_object> metadata,
                                                           timestamp now);

    /// Replaces expires_at of an `active` lease held at `expected_epoch`; last_used_at =
    /// updated_at = `now`; the epoch is not incremented.
    /// @throws store_error not_found; stale_epoch; illegal_transition (the lease is not active).
    environment_lease renew_lease(std::string_view id, std::uint64_t expected_epoch,
                                  std::optional<timestamp> expires_at, timestamp now);

    /// Moves every `active` lease of the run — and only those — to `to`, each with epoch + 1 and
    /// the released_at rule of transition_lease. Returns the moved leases in list_leases' order.
    /// @throws store_error illegal_transition when `to` cannot follow `active`.
    std::vector<environment_lease> release_leases_for_run(std::string_view heartbeat_run_id, lease_status to,
                                                          timestamp now);

    /// `active` leases whose expires_at <= `now`, oldest expiry first (then oldest inserted).
    [[nodiscard]] std::vector<environment_lease> list_expired_leases(timestamp now) const;
    /// A page of list_expired_leases(now): at most `page.limit`, after the lease `page.after` (a
    /// row cursor, model/paging.hpp; an unknown id gives an empty page).
    [[nodiscard]] std::vector<environment_lease> list_expired_leases(timestamp now, list_page const& page) const;

    /// Removes ended leases (released, expired, failed) whose last_used_at is before
    /// `r.ended_before`, or beyond the newest `r.keep_per_environment` of their environment, and
    /// the events whose entity is such a lease (type "environment_lease"); `r.batch` leases per
    /// hold of the write lock, so runs write between two batches.
    /// @throws store_error invalid_argument for a batch of 0. Never fails half-way through a batch.
    prune_result prune_history(history_retention const& r);

    /// What recover() (berth/recovery/recover.hpp) must look at: `active` leases held on
    /// `holder_host`, `active` leases whose expires_at <= `now` (any host), and `pending_cleanup`
    /// leases; each once, oldest inserted first.
    [[nodiscard]] std::vector<environment_lease> list_recoverable_leases(std::string_view holder_host,
                                                                       timestamp now) const;

    // ---- berth::activity_sink --------------------------------------------------------------------

    /// Appends one event.
    /// @throws store_error conflict (an event with that id exists).
    void record_activity(activity_event const& event);

    /// Events matching every engaged member of `filter`, oldest `created_at` first, then smallest id.
    [[nodiscard]] std::vector<activity_event> list_activity(activity_filter const& filter) const;

    // ---- berth::runtime_service_store -------------------------------------------------------------

    /// The runtime service row with that id, or nullopt.
    [[nodiscard]] std::optional<workspace_runtime_service> get_runtime_service(std::string_view id) const;

    /// Inserts the row (created_at = updated_at = `now`) or replaces the stored one with that id,
    /// keeping its company_id and created_at; updated_at = `now`.
    /// @throws store_error invalid_argument (empty id, company id or service name); conflict (the
    ///         stored row belongs to another company).
    workspace_runtime_service upsert_runtime_service(workspace_runtime_service const& row, timestamp now);

    /// Rows matching every engaged member of `filter`, newest `updated_at` first, then newest
    /// `created_at`, then most recently inserted.
    [[nodiscard]] std::vector<workspace_runtime_service> list_runtime_services(
        runtime_service_filter const& filter) const;

    /// Moves every matching row with a live status to `stopped` / health `unknown`, stopped_at =
    /// last_used_at = updated_at = `now`; returns their ids.
    std::vector<std::string> stop_runtime_services(runtime_service_filter const& filter, timestamp now);

    // ---- berth::execution_workspace_store --------------------------------------------------------

    /// The execution workspace with that id, or nullopt.
    [[nodiscard]] std::optional<execution_workspace> get_execution_workspace(std::string_view id) const;
    /// The company's execution workspaces matching `filter`, newest `last_used_at` first (null
    /// last), then newest `created_at`, then most recently inserted.
    [[nodiscard]] std::vector<execution_workspace> list_execution_workspaces(
        std::string_view company_id, execution_workspace_filter const& filter) const;
    /// Inserts a record with a new id (opened_at = last_used_at = created_at = updated_at = `now`).
    /// @throws store_error invalid_argument (empty company id, project id or name).
    execution_workspace create_execution_workspace(new_execution_workspace const& input, timestamp now);
    /// Patches the record; nullopt for an unknown id.
    /// @throws store_error invalid_argument (an empty name).
    std::optional<execution_workspace> update_execution_workspace(std::string_view id,
                                                                  execution_workspace_patch const& patch,
                                                                  timestamp now);

    // ---- berth::project_workspace_store ----------------------------------------------------------

    /// The project workspace with that id, or nullopt.
    [[nodiscard]] std::optional<project_workspace> get_project_workspace(std::string_view id) const;
    /// The company's project workspaces matching `filter`: primary ones first, then oldest
    /// `created_at`, then first inserted.
    [[nodiscard]] std::vector<project_workspace> list_project_workspaces(std::string_view company_id,
                                                                         project_workspace_filter const& filter) const;
    /// Inserts a record with a new id (created_at = updated_at = `now`).
    /// @throws store_error invalid_argument (an empty company id, project id, name, source type or visibility).
    project_workspace create_project_workspace(new_project_workspace const& input, timestamp now);
    /// Patches the record; nullopt for an unknown id.
    /// @throws store_error invalid_argument (an empty name).
    std::optional<project_workspace> update_project_workspace(std::string_view id, project_workspace_patch const& patch,
                                                              timestamp now);

    // ---- berth::operation_store ------------------------------------------------------------------

    /// Inserts a `running` operation with a new id, started at `now`.
    /// @throws store_error invalid_argument (empty company id).
    workspace_operation begin_operation(new_workspace_operation const& input, timestamp now);
    /// Patches the operation; nullopt for an unknown id.
    std::optional<workspace_operation> update_operation(std::string_view id, workspace_operation_patch const& patch,
                                                        timestamp now);
    /// The operation with that id, or nullopt.
    [[nodiscard]] std::optional<workspace_operation> get_operation(std::string_view id) const;
    /// Operations matching `filter`, oldest `started_at` first, then oldest inserted.
    [[nodiscard]] std::vector<workspace_operation> list_operations(workspace_operation_filter const& filter) const;

private:
    // The rows, indexes and lock (stores/memory/impl/tables.hpp), behind a pointer: a TU that
    // includes this header parses none of the containers, and under BERTH_SEPARATE_COMPILATION
    // compiles none of their code. Never null (the store is not movable).
    struct tables;
    std::unique_ptr<tables> tables_;
};

}  // namespace berth

// The members' definitions: here in header-only mode, compiled once in <berth/src.hpp> under
// BERTH_SEPARATE_COMPILATION (berth/detail/config.hpp).
#ifndef BERTH_SEPARATE_COMPILATION
#include <berth/stores/memory/impl/tables.hpp>
#include <berth/stores/memory/impl/memory_store.hpp>
#include <berth/stores/memory/impl/runtime_services.hpp>
#include <berth/stores/memory/impl/project_workspaces.hpp>
#endif

static_assert(berth::persistence_backend<berth::memory_store>);
static_assert(berth::project_workspace_store<berth::memory_store>);

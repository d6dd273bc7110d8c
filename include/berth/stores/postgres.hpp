#pragma once
//! @file
//! berth::postgres_store — environments, leases, the activity log, runtime services, execution
//! workspaces and operations in one PostgreSQL database that many orchestrator processes on many
//! hosts share (CMake target `berth::postgres`, which links libpq; the core `berth::berth` does not).
//!
//! What it guarantees:
//!   - the schema is sqlite_store's (berth/stores/schema.hpp rendered in the PostgreSQL dialect:
//!     upstream's table and column names, timestamptz and jsonb), versioned and migrated on open
//!     under an advisory lock, so hosts starting together migrate once; a newer schema is refused;
//!   - every lease write and its activity event run in one transaction and one round trip: one
//!     statement with data-modifying CTEs, or (when the environment's row must be locked first)
//!     two statements sent together in libpq's pipeline mode;
//!   - the database does the racing: one local environment per company and one active lease per
//!     reuse scope are unique indexes; capacity (`maxActiveLeases`) is counted after taking the
//!     environment's row lock, so hosts acquiring at once queue on that row; lease moves are
//!     compare-and-set on the fencing `epoch`;
//!   - a connection that breaks (server restart, pg_terminate_backend, network) is replaced and the
//!     operation tried once more on a fresh connection; a write whose commit is unknown is first
//!     checked (did it land?) so that it is neither lost nor applied twice; when the retry fails
//!     too, the operation throws store_errc::backend_failure naming the server (never a password).
//!     No operation reports success for a write that did not commit.
//!
//! Schema, connection strings, pooling and growing past one primary: docs/stores.md.
//!
//! @code
//! auto store = berth::postgres_store::open("postgresql://berth@db.internal/berth");
//! auto env = store.ensure_local_environment("company-1", clock.now());
//! @endcode

#include <berth/concepts/persistence_backend.hpp>
#include <berth/error.hpp>
#include <berth/model/activity.hpp>         // activity_event, activity_filter
#include <berth/model/environment.hpp>      // environment, new_environment, environment_patch, environment_filter
#include <berth/model/lease.hpp>            // environment_lease, new_lease, lease_transition, lease_filter
#include <berth/model/runtime_service.hpp>  // workspace_runtime_service, runtime_service_filter
#include <berth/model/retention.hpp>        // history_retention, prune_result
#include <berth/concepts/project_workspace_store.hpp>  // project_workspace_store (issue 21)
#include <berth/model/project_workspace.hpp>  // project_workspace and its inputs
#include <berth/model/workspace.hpp>        // execution_workspace, workspace_operation and their inputs
#include <berth/stores/schema.hpp>          // schema::current_version

#include <chrono>       // std::chrono::milliseconds
#include <cstddef>      // std::size_t
#include <cstdint>      // std::uint64_t
#include <functional>   // std::function
#include <memory>       // std::unique_ptr
#include <optional>     // std::optional
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <vector>       // std::vector

namespace berth {

namespace detail::postgres {
struct store_state;
}

/// How postgres_store connects.
struct postgres_options {
    /// Connections kept open between operations (each thread in an operation uses one; more are
    /// opened when needed and closed when the pool is full).
    std::size_t pool_size = 8;
    /// The server's statement_timeout for the store's sessions; 0: the server's setting. A
    /// statement that runs past it is cancelled and rolled back (store_errc::backend_failure).
    std::chrono::milliseconds statement_timeout{30000};
    /// How long to wait for a connection to the server.
    std::chrono::milliseconds connect_timeout{5000};
    /// Called for each row a list operation skipped because it could not be read
    /// (store_errc::corrupt_row). Empty: the message goes to stderr. Must not call the store.
    std::function<void(store_error const&)> on_unreadable_row{};
};

/// What postgres_store::stats counts.
struct postgres_stats {
    std::size_t idle_connections = 0;  ///< in the pool now
    std::uint64_t connects = 0;        ///< connections opened so far (first use, growth, replacements)
    std::uint64_t retries = 0;         ///< operations run a second time after a lost connection
};

/// A berth::persistence_backend over one PostgreSQL database (or one schema of it: the tables are
/// created and found through the session's search_path).
///
/// Thread safety: every member function may be called from many threads at once; each call takes
/// a connection from the pool for its duration. Processes and hosts: any number may share the
/// database; the guarantees above hold across them.
///
/// Errors: every operation throws berth::store_error with the code the concepts name;
/// store_errc::backend_failure for the server's failures (unreachable, timeout, lost twice).
/// After any exception the database is as it was before the call.
class postgres_store {
public:
    static constexpr int schema_version = schema::current_version;

    /// Connects with `conninfo` (a libpq connection string, `host=... dbname=...`, or a URL,
    /// `postgresql://user@host:port/db?sslmode=require`) and brings the schema to schema_version.
    /// @throws store_error backend_failure when the server cannot be reached; schema_mismatch for
    ///         a newer berth's schema or berth's tables without berth's version record.
    explicit postgres_store(std::string conninfo, postgres_options options = {});

    [[nodiscard]] static postgres_store open(std::string conninfo, postgres_options options = {}) {
        return postgres_store(std::move(conninfo), std::move(options));
    }

    postgres_store(postgres_store&&) noexcept;
    postgres_store& operator=(postgres_store&&) noexcept;
    postgres_store(postgres_store const&) = delete;
    postgres_store& operator=(postgres_store const&) = delete;
    ~postgres_store();

    /// Where the store connects (host, port, database; never the password).
    [[nodiscard]] std::string const& target() const noexcept;

    /// Counters of the pool, for diagnostics and tests.
    [[nodiscard]] postgres_stats stats() const;

    /// Every statement text the store prepares, for audits (the test that checks each one is keyed
    /// by company, EXPLAIN checks): generated from the record descriptions at construction.
    [[nodiscard]] std::vector<std::string> statement_texts() const;

    // ---- berth::environment_store ----------------------------------------------------------------

    /// The company's environments matching `filter`, newest `updated_at` first, then newest
    /// `created_at`, then most recently inserted.
    [[nodiscard]] std::vector<environment> list_environments(std::string_view company_id,
                                                             environment_filter const& filter);
    /// @throws store_error corrupt_row when that row cannot be read.
    [[nodiscard]] std::optional<environment> get_environment(std::string_view id);
    /// @throws store_error invalid_argument (empty name or company id); conflict (a second local
    ///         environment in the company).
    environment create_environment(new_environment const& input, timestamp now);
    /// nullopt when there is no such environment.
    /// @throws store_error invalid_argument (empty name); conflict (a second local environment).
    std::optional<environment> update_environment(std::string_view id, environment_patch const& patch,
                                                  timestamp now);
    /// The company's local environment, created once (`INSERT ... ON CONFLICT DO NOTHING` on the
    /// one-local-per-company index, so racing processes on any host get one row).
    /// @throws store_error invalid_argument (empty company id).
    environment ensure_local_environment(std::string_view company_id, timestamp now);

    // ---- berth::lease_store ----------------------------------------------------------------------

    /// @throws store_error corrupt_row when that row cannot be read.
    [[nodiscard]] std::optional<environment_lease> get_lease(std::string_view id);
    /// The environment's leases, newest `last_used_at` first, then newest `created_at`.
    [[nodiscard]] std::vector<environment_lease> list_leases(std::string_view environment_id,
                                                             lease_filter const& filter);
    /// The run's leases, in the same order as list_leases.
    [[nodiscard]] std::vector<environment_lease> list_run_leases(std::string_view heartbeat_run_id,
                                                                 lease_filter const& filter);
    /// Inserts an `active` lease at epoch 1 and, in the same transaction, `event` when engaged.
    /// @throws store_error not_found (unknown environment); capacity_exceeded (the environment's
    ///         `maxActiveLeases` is reached); conflict (duplicate lease or event id, or the lease's
    ///         reuse scope already has an active lease); invalid_argument (empty ids, a company that
    ///         is not the environment's, a `maxActiveLeases` that is not a positive integer).
    environment_lease acquire_lease(new_lease const& input, timestamp now, std::optional<activity_event> event);
    /// Compare-and-set on the epoch; writes `event` in the same transaction.
    /// @throws store_error not_found, stale_epoch, illegal_transition, conflict (a resumed lease's
    ///         reuse scope is taken), capacity_exceeded (resuming past `maxActiveLeases`).
    environment_lease transition_lease(lease_transition const& transition, timestamp now,
                                       std::optional<activity_event> event);
    /// Replaces the metadata and bumps last_used_at; nullopt for an unknown lease.
    std::optional<environment_lease> update_lease_metadata(std::string_view id, std::optional<json_object> metadata,
                                                           timestamp now);
    /// Sets expires_at of an active lease held at `expected_epoch` (the epoch is unchanged).
    /// @throws store_error not_found, stale_epoch, illegal_transition (not active).
    environment_lease renew_lease(std::string_view id, std::uint64_t expected_epoch,
                                  std::optional<timestamp> expires_at, timestamp now);
    /// Moves every active lease of the run to `to` in one transaction.
    /// @throws store_error illegal_transition when `to` cannot follow `active`.
    std::vector<environment_lease> release_leases_for_run(std::string_view heartbeat_run_id, lease_status to,
                                                          timestamp now);
    /// Active leases whose expires_at <= now, oldest expiry first. Read with `FOR UPDATE SKIP
    /// LOCKED`: a lease another host is moving at that moment is left to that host.
    [[nodiscard]] std::vector<environment_lease> list_expired_leases(timestamp now);
    /// A page of list_expired_leases(now): at most `page.limit`, after the lease `page.after`.
    [[nodiscard]] std::vector<environment_lease> list_expired_leases(timestamp now, list_page const& page);
    /// What recover() (berth/recovery/recover.hpp) must look at: `active` leases held on
    /// `holder_host`, `active` leases whose expires_at <= `now` (any host), and `pending_cleanup`
    /// leases; each once, oldest inserted first.
    [[nodiscard]] std::vector<environment_lease> list_recoverable_leases(std::string_view holder_host,
                                                                       timestamp now);
    /// Removes ended leases (released, expired, failed) and their events, by age and/or beyond a
    /// count per environment (model/retention.hpp), `r.batch` leases per statement: each batch is
    /// one statement (its rows taken `FOR UPDATE SKIP LOCKED`, so a lease another host is moving
    /// is left alone), and runs' writes go between batches.
    /// @throws store_error invalid_argument when `r.batch` is 0.
    prune_result prune_history(history_retention const& r);

    // ---- berth::activity_sink --------------------------------------------------------------------

    /// @throws store_error conflict (duplicate id).
    void record_activity(activity_event const& event);
    /// Events matching every engaged filter member, oldest first.
    [[nodiscard]] std::vector<activity_event> list_activity(activity_filter const& filter);

    // ---- berth::runtime_service_store -------------------------------------------------------------

    /// @throws store_error corrupt_row when that row cannot be read.
    [[nodiscard]] std::optional<workspace_runtime_service> get_runtime_service(std::string_view id);
    /// Insert, or replace every column but company_id and created_at, in one transaction.
    /// @throws store_error invalid_argument (empty id, company id or service name); conflict (the
    ///         stored row belongs to another company).
    workspace_runtime_service upsert_runtime_service(workspace_runtime_service const& row, timestamp now);
    /// Newest `updated_at` first, then newest `created_at`, then most recently inserted.
    [[nodiscard]] std::vector<workspace_runtime_service> list_runtime_services(runtime_service_filter const& filter);
    /// One `UPDATE ... RETURNING id` over the matching live rows.
    std::vector<std::string> stop_runtime_services(runtime_service_filter const& filter, timestamp now);

    // ---- berth::execution_workspace_store --------------------------------------------------------

    /// @throws store_error corrupt_row when that row cannot be read.
    [[nodiscard]] std::optional<execution_workspace> get_execution_workspace(std::string_view id);
    /// The company's records matching `filter`, newest `last_used_at` first (null last), then
    /// newest `created_at`, then most recently inserted.
    [[nodiscard]] std::vector<execution_workspace> list_execution_workspaces(std::string_view company_id,
                                                                             execution_workspace_filter const& filter);
    /// @throws store_error invalid_argument (empty company id, project id or name).
    execution_workspace create_execution_workspace(new_execution_workspace const& input, timestamp now);
    /// nullopt for an unknown id. @throws store_error invalid_argument (an empty name).
    std::optional<execution_workspace> update_execution_workspace(std::string_view id,
                                                                  execution_workspace_patch const& patch,
                                                                  timestamp now);

    // ---- berth::project_workspace_store ----------------------------------------------------------

    /// @throws store_error corrupt_row when that row cannot be read.
    [[nodiscard]] std::optional<project_workspace> get_project_workspace(std::string_view id);
    /// The company's records matching `filter`: primary ones first, then oldest `created_at`, then
    /// first inserted.
    [[nodiscard]] std::vector<project_workspace> list_project_workspaces(std::string_view company_id,
                                                                         project_workspace_filter const& filter);
    /// @throws store_error invalid_argument (an empty company id, project id, name, source type or visibility).
    project_workspace create_project_workspace(new_project_workspace const& input, timestamp now);
    /// nullopt for an unknown id. @throws store_error invalid_argument (an empty name).
    std::optional<project_workspace> update_project_workspace(std::string_view id, project_workspace_patch const& patch,
                                                              timestamp now);

    // ---- berth::operation_store ------------------------------------------------------------------

    /// @throws store_error invalid_argument (empty company id).
    workspace_operation begin_operation(new_workspace_operation const& input, timestamp now);
    /// nullopt for an unknown id.
    std::optional<workspace_operation> update_operation(std::string_view id, workspace_operation_patch const& patch,
                                                        timestamp now);
    /// @throws store_error corrupt_row when that row cannot be read.
    [[nodiscard]] std::optional<workspace_operation> get_operation(std::string_view id);
    /// Operations matching `filter`, oldest `started_at` first, then oldest inserted.
    [[nodiscard]] std::vector<workspace_operation> list_operations(workspace_operation_filter const& filter);

private:
    std::unique_ptr<detail::postgres::store_state> state_;
};

}  // namespace berth

#include <berth/stores/postgres/impl/postgres_store.hpp>
#include <berth/stores/postgres/impl/project_workspaces.hpp>

static_assert(berth::persistence_backend<berth::postgres_store>);
static_assert(berth::project_workspace_store<berth::postgres_store>);

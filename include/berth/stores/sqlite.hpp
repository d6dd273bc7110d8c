#pragma once
//! @file
//! berth::sqlite_store — the embedded default persistence backend: environments, leases and the
//! activity log in one SQLite file (CMake target `berth::sqlite`, which links SQLite3; the core
//! `berth::berth` does not).
//!
//! What it guarantees:
//!   - every write is one transaction (`BEGIN IMMEDIATE`), and a lease transition commits together
//!     with its activity event; a failure rolls the whole operation back;
//!   - lease transitions are compare-and-set on the fencing `epoch`, capacity (`maxActiveLeases` in
//!     the environment's config) and reuse-scope uniqueness are checked inside that transaction,
//!     so they hold across threads *and* across processes sharing the file;
//!   - the file carries its schema version; an older file is migrated on open, a newer one is
//!     refused (store_errc::schema_mismatch) rather than misread;
//!   - rows are mapped to records by their Boost.Describe descriptions; a row that cannot be read
//!     (an enum string this berth does not know, bad JSON) is reported naming table, column, value
//!     and row, and never stops the other rows from loading.
//!
//! Schema, migrations and multi-process notes: docs/stores.md.
//!
//! @code
//! auto store = berth::sqlite_store::open("berth.db");
//! auto env = store.ensure_local_environment("company-1", clock.now());
//! @endcode

#include <berth/concepts/persistence_backend.hpp>
#include <berth/error.hpp>
#include <berth/model/activity.hpp>     // activity_event, activity_filter
#include <berth/model/environment.hpp>  // environment, new_environment, environment_patch, environment_filter
#include <berth/model/lease.hpp>        // environment_lease, new_lease, lease_transition, lease_filter
#include <berth/model/retention.hpp>    // history_retention, prune_result
#include <berth/model/runtime_service.hpp>  // workspace_runtime_service, runtime_service_filter
#include <berth/concepts/project_workspace_store.hpp>  // project_workspace_store (issue 21)
#include <berth/model/project_workspace.hpp>  // project_workspace and its inputs
#include <berth/model/workspace.hpp>    // execution_workspace, workspace_operation and their inputs
#include <berth/stores/schema.hpp>      // schema::current_version

#include <chrono>      // std::chrono::milliseconds
#include <cstddef>     // std::size_t
#include <cstdint>     // std::uint64_t
#include <functional>  // std::function
#include <memory>      // std::unique_ptr
#include <optional>    // std::optional
#include <string>      // std::string
#include <string_view> // std::string_view
#include <vector>      // std::vector

namespace berth {

namespace detail::sqlite {
struct store_state;
}

/// SQLite's `synchronous` setting for the store's connections (WAL mode).
enum class sqlite_synchronous {
    /// A commit is durable against a crash of the process, not of the machine: SQLite syncs only
    /// at checkpoints. The default, and SQLite's recommendation for WAL.
    normal,
    /// Every commit syncs the WAL before returning: durable against power loss.
    full,
};

/// How sqlite_store opens its file.
struct sqlite_options {
    sqlite_synchronous synchronous = sqlite_synchronous::normal;
    /// How long an operation waits for another process's write lock before failing with
    /// store_errc::backend_failure. Writers of one store object queue on a mutex instead.
    std::chrono::milliseconds busy_timeout{5000};
    /// WAL pages after which the WAL is checkpointed into the database file (SQLite's default,
    /// 1000); 0 or less: never (the WAL grows until the last connection closes).
    int wal_autocheckpoint = 1000;
    /// true: a thread of the store runs those checkpoints, so no commit waits for one (the
    /// committing thread checkpoints only if the WAL reaches 8 × wal_autocheckpoint, i.e. the
    /// thread cannot keep up). false: SQLite's own way, in the commit that crosses the threshold.
    /// Either way the checkpoint is PASSIVE and durability is set by `synchronous` alone.
    bool checkpoint_in_background = true;
    /// true: the store's writer issues each transaction's WAL frames as one write(2) instead of two
    /// per frame (a VFS shim over the default VFS; the file format and what other processes see
    /// are unchanged, and nothing is held past the commit: docs/stores.md). false: SQLite's own
    /// writes, e.g. to compare, or on a VFS the shim should not wrap.
    bool coalesce_wal_writes = true;
    /// Called for each row a list operation skipped because it could not be read
    /// (store_errc::corrupt_row, naming table, column, value and row). Empty: the error's message
    /// is written to stderr, so that skipped rows are never silent. May be called from any thread
    /// that lists; must not call back into the store.
    std::function<void(store_error const&)> on_unreadable_row{};
};

/// What sqlite_store::statement_stats counts.
struct sqlite_statement_stats {
    std::size_t cached = 0;         ///< prepared statements held, over the store's connections
    std::uint64_t recompiled = 0;   ///< times SQLite recompiled one of them (a schema change: rare)
    /// Rows they stepped over in full scans of a table or index: a lookup that should seek an index
    /// and scans instead shows up here (an unfiltered list adds a row count).
    std::uint64_t full_scan_steps = 0;
    /// Virtual-machine steps they ran: grows with every row a statement visits, through an index or
    /// not, so a list that should cost its page and walks an environment's history instead (an
    /// index range too wide, a sort of every row) shows up here when full_scan_steps stays 0.
    std::uint64_t vm_steps = 0;
};

/// A berth::persistence_backend over one SQLite file.
///
/// Thread safety: every member function may be called from many threads at once. Reads run in
/// parallel on a pool of connections (WAL readers never wait for the writer); writes queue on one
/// connection behind a mutex, so threads of one process never spin on SQLite's lock. Processes
/// sharing the file serialise their writes on SQLite's lock, waiting up to `busy_timeout`.
///
/// Processes: several processes may open the same file (not over NFS: SQLite's WAL needs shared
/// memory on a local file system). A store object must not be used in a child after fork(); open
/// a new one there.
///
/// Errors: every operation throws berth::store_error, with the code the berth::lease_store and
/// berth::environment_store contracts name; store_errc::backend_failure for SQLite failures (I/O,
/// busy past the timeout). After any exception the database is as it was before the call.
///
/// Lists skip rows they cannot read and report them to `sqlite_options::on_unreadable_row`;
/// reading that one row by id (get_lease, get_environment) throws store_errc::corrupt_row.
class sqlite_store {
public:
    /// The schema version this berth reads and writes (see berth/stores/schema.hpp).
    static constexpr int schema_version = schema::current_version;

    /// Opens `path`, creating it when absent (":memory:" for a private in-memory database: one
    /// connection, no WAL), and brings its schema to `schema_version`.
    /// @throws store_error schema_mismatch when the file was written by a newer berth or is not a
    ///         berth database; backend_failure when SQLite cannot open it or set WAL mode.
    explicit sqlite_store(std::string path, sqlite_options options = {});

    /// Same as the constructor.
    [[nodiscard]] static sqlite_store open(std::string path, sqlite_options options = {}) {
        return sqlite_store(std::move(path), std::move(options));
    }

    /// A moved-from store may only be destroyed or assigned to.
    sqlite_store(sqlite_store&&) noexcept;
    sqlite_store& operator=(sqlite_store&&) noexcept;
    sqlite_store(sqlite_store const&) = delete;
    sqlite_store& operator=(sqlite_store const&) = delete;
    ~sqlite_store();

    /// The path the store was opened with.
    [[nodiscard]] std::string const& path() const noexcept;

    /// Counters of the store's prepared statements, for diagnostics: each statement is prepared
    /// once per connection and reused, so `recompiled` stays near zero; a count growing with the
    /// calls means a statement is compiled again on every use. Counts the writer's connection and
    /// the idle readers' (a reader in use at that moment is left out).
    [[nodiscard]] sqlite_statement_stats statement_stats() const;

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
    /// one-local-per-company index, so racing threads and processes get one row).
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
    /// Active leases whose expires_at <= now, oldest expiry first.
    [[nodiscard]] std::vector<environment_lease> list_expired_leases(timestamp now);
    /// A page of list_expired_leases(now): at most `page.limit`, after the lease `page.after`
    /// (oldest expiry first, then oldest inserted).
    [[nodiscard]] std::vector<environment_lease> list_expired_leases(timestamp now, list_page const& page);
    /// What recover() must look at: active leases held on `holder_host`, active leases whose
    /// expires_at <= now, and pending_cleanup leases, each once (one snapshot, three partial indexes).
    [[nodiscard]] std::vector<environment_lease> list_recoverable_leases(std::string_view holder_host, timestamp now);

    /// Deletes ended leases (released, expired, failed) older than `r.ended_before` or beyond the
    /// newest `r.keep_per_environment` of their environment, and their activity events, in
    /// transactions of `r.batch` leases each: runs write between two batches, so a prune of a
    /// long history never holds them back for longer than one batch. Each batch finds its leases
    /// with one seek of the (company, environment, status, last_used_at, id) index.
    /// @throws store_error invalid_argument for a batch of 0; backend_failure. Batches committed
    ///         before a failure stay committed (each is whole: a lease goes with its events).
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
    std::unique_ptr<detail::sqlite::store_state> state_;
};

}  // namespace berth

#include <berth/stores/sqlite/impl/sqlite_store.hpp>
#include <berth/stores/sqlite/impl/runtime_services.hpp>
#include <berth/stores/sqlite/impl/project_workspaces.hpp>

static_assert(berth::persistence_backend<berth::sqlite_store>);
static_assert(berth::project_workspace_store<berth::sqlite_store>);

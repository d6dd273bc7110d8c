#pragma once
//! @file
//! berth's logical database schema and its versioned migrations, written once and rendered by each
//! SQL store in its own dialect (berth::sqlite_store and berth::postgres_store).
//!
//! Table and column names are upstream's (Paperclip `environments`, `environment_leases`,
//! `activity_log`; snake_case), with `company_id` on environments as in the seed schema. What differs
//! between dialects is kept to the column *types* (`column_type` → TEXT/INTEGER in SQLite,
//! uuid/text/jsonb/timestamptz/bigint in PostgreSQL) and to the identifier of the schema version;
//! every default, constraint, index and partial-index predicate below is written in the SQL subset
//! both engines accept.
//!
//! History (each migration runs in one transaction; the version is stored in the database file):
//!   1. upstream's tables as of migration 0068 (company-scoped environments, one local environment
//!      per company, upstream's lease indexes) and the activity log;
//!   2. berth: the fencing `epoch` column, at most one active lease per reuse scope, an index for
//!      the expiry sweep, and upstream's indexes on nullable columns made partial (`WHERE x IS NOT
//!      NULL`: same names, same columns, same queries served, fewer pages written per lease).
//!   3. upstream's `workspace_runtime_services` with its indexes, plus a partial index of the
//!      live local services the startup reconcile reads.
//!   4. upstream's `execution_workspaces` and `workspace_operations` with their indexes (issue 4;
//!      docs/workspaces.md). No foreign keys: berth never deletes a workspace, and the memory store
//!      (which has none) must accept exactly what the SQL stores accept. `log_compressed` is an
//!      integer 0/1 (upstream boolean) because the logical types have no boolean.
//!   5. berth (issue 22): upstream's (company_id, environment_id, status) lease index gains the list
//!      order's columns (last_used_at, id), same name, so that a page of an environment's leases in
//!      one status — `list_leases(env, {status: active})` every dashboard and capacity check asks —
//!      is one index seek plus the rows returned, however long the environment's history.
//!   6. upstream's `project_workspaces` with its indexes (issue 21: the runtime services read a
//!      project workspace's desired states from its `metadata.runtimeConfig`). `is_primary` is an
//!      integer 0/1 (upstream boolean), as `log_compressed`.
//!   7. berth (issue 16): `environment_leases.reuse_scope`, an opaque key a lease policy chooses; one active
//!      lease per (environment, reuse_scope) replaces migration 2's per-policy reuse indexes.
//!   8. berth (issue 16): `environment_leases.driver_name` and `policy_name`, the compile-time names of the
//!      driver and the lease policy that hold a lease (recorded by the orchestrator).
//!   9. berth (issue 15): each lease's holder (holder_host, holder_pid, holder_start_time) and partial
//!      indexes of the active leases by holder host and of the pending_cleanup leases, which
//!      recovery reads (docs/reliability.md).
//!  10. berth (issue 22): the activity log in list order, whole and by entity type.
//!  11. berth (issue 22): execution workspaces and workspace operations in list order — upstream's
//!      workspace indexes gain (last_used_at, created_at), same names; a (company, status) workspace
//!      index; operations by run id alone (what recovery reads) and by company in start order; a
//!      company's runtime services in list order.
//!
//! Records map to tables by member name (berth/model/record.hpp): every described member of
//! `environment`, `environment_lease` and `activity_event` is a column of the same name.

#include <cstddef>      // std::size_t
#include <span>         // std::span
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <type_traits>  // std::is_same_v, std::remove_cvref_t
#include <variant>      // std::variant, std::visit, std::get_if
#include <vector>       // std::vector, std::erase_if

namespace berth::schema {

/// The logical type of a column; each dialect names its own physical type.
enum class column_type {
    id,         ///< a UUID in text form (SQLite TEXT; PostgreSQL uuid or text)
    text,       ///< free text, enum names (SQLite TEXT; PostgreSQL text)
    json,       ///< a JSON document (SQLite TEXT holding the serialised form; PostgreSQL jsonb)
    timestamp,  ///< an instant (SQLite TEXT holding berth::to_iso8601, which sorts; PostgreSQL timestamptz)
    integer,    ///< a 64-bit integer (SQLite INTEGER; PostgreSQL bigint)
};

struct column {
    std::string_view name;
    column_type type;
    bool not_null = false;
    std::string_view default_sql{};  ///< a literal both dialects accept ('active', '{}', 1), or empty
    std::string_view references{};  ///< e.g. "environments(id) ON DELETE CASCADE", or empty
    bool primary_key = false;
};

struct create_table {
    std::string_view name;
    std::vector<column> columns;
};

struct add_column {
    std::string_view table;
    column col;
};

struct create_index {
    std::string_view name;
    std::string_view table;
    std::string_view columns;  ///< "company_id, environment_id, status"
    bool unique = false;
    std::string_view where{};  ///< partial-index predicate, or empty
    /// The dialect (dialect::name) this index is for, or empty for every dialect: an order only
    /// one engine can store (PostgreSQL's `DESC NULLS LAST`; SQLite has no NULLS in CREATE INDEX).
    std::string_view only_in{};
};

struct drop_index {
    std::string_view name;
    std::string_view only_in{};  ///< as create_index::only_in
};

/// Rewrites existing rows (`UPDATE table SET set WHERE where`), so that data written under an
/// older version keeps its meaning under the new one. Both expressions must be SQL that every
/// dialect accepts.
struct update_rows {
    std::string_view table;
    std::string_view set;    ///< "reuse_scope = 'environment'"
    std::string_view where;  ///< a predicate; never empty (no migration rewrites a whole table by accident)
};

/// One step of a migration.
using step = std::variant<create_table, add_column, create_index, drop_index, update_rows>;

struct migration {
    int version;               ///< the schema version this migration produces
    std::string_view summary;  ///< one line, for error messages and docs
    std::vector<step> steps;
};

/// The physical names a dialect gives to the logical column types.
struct dialect {
    std::string_view name;
    std::string_view id_type, text_type, json_type, timestamp_type, integer_type;
    /// The column that orders a table's rows by insertion (list orders break ties with it), and
    /// its definition when the engine has none of its own: SQLite's implicit `rowid` needs none;
    /// PostgreSQL gets an identity column added to every table it creates.
    std::string_view insertion_order = "rowid";
    std::string_view insertion_order_ddl{};
};

inline constexpr dialect sqlite_dialect{"sqlite", "TEXT", "TEXT", "TEXT", "TEXT", "INTEGER"};
// Ids are text, not upstream's uuid: berth takes ids from its callers (leases, runs, events), and
// those need not be UUIDs (the conformance kit's are not). Timestamps and documents are upstream's
// timestamptz and jsonb.
inline constexpr dialect postgres_dialect{"postgres", "text",    "text", "jsonb", "timestamptz",
                                          "bigint",   "row_seq", "row_seq bigint GENERATED ALWAYS AS IDENTITY"};

/// The predicate of `workspace_runtime_services_live_idx`: the statuses in which a service may
/// still have a process (berth::is_live_status). A query uses that partial index only if its WHERE
/// clause states this very expression, so the stores write it from here.
inline constexpr std::string_view live_runtime_services_predicate = "status IN ('provisioning', 'starting', 'running')";

/// Every migration, oldest first. The last one's version is `current_version`.
[[nodiscard]] inline std::span<migration const> migrations() {
    using ct = column_type;
    static std::vector<migration> const all = {
        migration{
            1,
            "upstream tables: environments (company-scoped), environment_leases, activity_log",
            {
                create_table{"environments",
                             {
                                 {"id", ct::id, true, {}, {}, true},
                                 {"company_id", ct::id, true},
                                 {"name", ct::text, true},
                                 {"description", ct::text},
                                 {"driver", ct::text, true, "'local'"},
                                 {"status", ct::text, true, "'active'"},
                                 {"config", ct::json, true, "'{}'"},
                                 {"metadata", ct::json},
                                 {"created_at", ct::timestamp, true},
                                 {"updated_at", ct::timestamp, true},
                             }},
                create_index{"environments_company_status_idx", "environments", "company_id, status"},
                // Upstream 0068: at most one local environment per company.
                create_index{"environments_company_driver_idx", "environments", "company_id, driver", true,
                             "driver = 'local'"},
                create_index{"environments_company_name_idx", "environments", "company_id, name"},
                create_table{"environment_leases",
                             {
                                 {"id", ct::id, true, {}, {}, true},
                                 {"company_id", ct::id, true},
                                 {"environment_id", ct::id, true, {}, "environments(id) ON DELETE CASCADE"},
                                 {"execution_workspace_id", ct::id},
                                 {"issue_id", ct::id},
                                 {"heartbeat_run_id", ct::id},
                                 {"status", ct::text, true, "'active'"},
                                 {"lease_policy", ct::text, true, "'ephemeral'"},
                                 {"provider", ct::text},
                                 {"provider_lease_id", ct::text},
                                 {"acquired_at", ct::timestamp, true},
                                 {"last_used_at", ct::timestamp, true},
                                 {"expires_at", ct::timestamp},
                                 {"released_at", ct::timestamp},
                                 {"failure_reason", ct::text},
                                 {"cleanup_status", ct::text},
                                 {"metadata", ct::json},
                                 {"created_at", ct::timestamp, true},
                                 {"updated_at", ct::timestamp, true},
                             }},
                create_index{"environment_leases_company_environment_status_idx", "environment_leases",
                             "company_id, environment_id, status"},
                create_index{"environment_leases_company_execution_workspace_idx", "environment_leases",
                             "company_id, execution_workspace_id"},
                create_index{"environment_leases_company_issue_idx", "environment_leases", "company_id, issue_id"},
                create_index{"environment_leases_heartbeat_run_idx", "environment_leases", "heartbeat_run_id"},
                create_index{"environment_leases_company_last_used_idx", "environment_leases",
                             "company_id, last_used_at"},
                create_index{"environment_leases_provider_lease_idx", "environment_leases", "provider_lease_id"},
                create_table{"activity_log",
                             {
                                 {"id", ct::id, true, {}, {}, true},
                                 {"company_id", ct::id, true},
                                 {"actor_type", ct::text, true, "'system'"},
                                 {"actor_id", ct::text, true},
                                 {"action", ct::text, true},
                                 {"entity_type", ct::text, true},
                                 {"entity_id", ct::text, true},
                                 {"agent_id", ct::id},
                                 {"run_id", ct::id},
                                 {"details", ct::json},
                                 {"created_at", ct::timestamp, true},
                             }},
                create_index{"activity_log_company_created_idx", "activity_log", "company_id, created_at"},
                create_index{"activity_log_run_id_idx", "activity_log", "run_id"},
                create_index{"activity_log_entity_type_id_idx", "activity_log", "entity_type, entity_id"},
            },
        },
        migration{
            2,
            "berth: lease fencing epoch, one active lease per reuse scope, expiry index, partial nullable indexes",
            {
                add_column{"environment_leases", {"epoch", ct::integer, true, "1"}},
                // Reuse scopes (docs/stores.md): a reuse_by_environment lease holds its environment; a
                // reuse_by_execution_workspace lease holds (environment, execution workspace). Ephemeral
                // and retain_on_failure leases have no scope: capacity (maxActiveLeases) bounds them.
                create_index{"environment_leases_reuse_by_environment_active_idx", "environment_leases",
                             "environment_id", true,
                             "status = 'active' AND lease_policy = 'reuse_by_environment'"},
                create_index{"environment_leases_reuse_by_execution_workspace_active_idx", "environment_leases",
                             "environment_id, execution_workspace_id", true,
                             "status = 'active' AND lease_policy = 'reuse_by_execution_workspace'"},
                // The expiry sweep reads active leases by expiry; only leases that can expire are indexed.
                create_index{"environment_leases_active_expires_idx", "environment_leases", "expires_at", false,
                             "status = 'active' AND expires_at IS NOT NULL"},
                // Upstream's indexes on nullable columns, made partial: a lookup by `x = ?` implies
                // `x IS NOT NULL`, so both engines still use them, and a lease without an issue, a
                // workspace or a provider lease id writes no entry (each entry is a page in the WAL).
                drop_index{"environment_leases_company_execution_workspace_idx"},
                create_index{"environment_leases_company_execution_workspace_idx", "environment_leases",
                             "company_id, execution_workspace_id", false, "execution_workspace_id IS NOT NULL"},
                drop_index{"environment_leases_company_issue_idx"},
                create_index{"environment_leases_company_issue_idx", "environment_leases", "company_id, issue_id",
                             false, "issue_id IS NOT NULL"},
                drop_index{"environment_leases_heartbeat_run_idx"},
                create_index{"environment_leases_heartbeat_run_idx", "environment_leases", "heartbeat_run_id",
                             false, "heartbeat_run_id IS NOT NULL"},
                drop_index{"environment_leases_provider_lease_idx"},
                create_index{"environment_leases_provider_lease_idx", "environment_leases", "provider_lease_id",
                             false, "provider_lease_id IS NOT NULL"},
                drop_index{"activity_log_run_id_idx"},
                create_index{"activity_log_run_id_idx", "activity_log", "run_id", false, "run_id IS NOT NULL"},
            },
        },
        migration{
            3,
            "upstream workspace_runtime_services and its indexes; live-service index for the startup reconcile",
            {
                create_table{"workspace_runtime_services",
                             {
                                 {"id", ct::id, true, {}, {}, true},
                                 {"company_id", ct::id, true},
                                 {"project_id", ct::id},
                                 {"project_workspace_id", ct::id},
                                 {"execution_workspace_id", ct::id},
                                 {"issue_id", ct::id},
                                 {"scope_type", ct::text, true},
                                 {"scope_id", ct::text},
                                 {"service_name", ct::text, true},
                                 {"status", ct::text, true},
                                 {"lifecycle", ct::text, true},
                                 {"reuse_key", ct::text},
                                 {"command", ct::text},
                                 {"cwd", ct::text},
                                 {"port", ct::integer},
                                 {"url", ct::text},
                                 {"provider", ct::text, true},
                                 {"provider_ref", ct::text},
                                 {"owner_agent_id", ct::id},
                                 {"started_by_run_id", ct::id},
                                 {"last_used_at", ct::timestamp},
                                 {"started_at", ct::timestamp, true},
                                 {"stopped_at", ct::timestamp},
                                 {"stop_policy", ct::json},
                                 {"health_status", ct::text, true, "'unknown'"},
                                 {"created_at", ct::timestamp, true},
                                 {"updated_at", ct::timestamp, true},
                             }},
                create_index{"workspace_runtime_services_company_workspace_status_idx", "workspace_runtime_services",
                             "company_id, project_workspace_id, status"},
                create_index{"workspace_runtime_services_company_execution_workspace_status_idx",
                             "workspace_runtime_services", "company_id, execution_workspace_id, status"},
                create_index{"workspace_runtime_services_company_project_status_idx", "workspace_runtime_services",
                             "company_id, project_id, status"},
                create_index{"workspace_runtime_services_run_idx", "workspace_runtime_services", "started_by_run_id"},
                create_index{"workspace_runtime_services_company_updated_idx", "workspace_runtime_services",
                             "company_id, updated_at"},
                // berth: the reconcile's `provider = 'local_process' AND status IN (live)` reads only these.
                create_index{"workspace_runtime_services_live_idx", "workspace_runtime_services", "provider, status",
                             false, live_runtime_services_predicate},
            },
        },
        migration{
            4,
            "upstream tables: execution_workspaces, workspace_operations",
            {
                create_table{"execution_workspaces",
                             {
                                 {"id", ct::id, true, {}, {}, true},
                                 {"company_id", ct::id, true},
                                 {"project_id", ct::text, true},
                                 {"project_workspace_id", ct::text},
                                 {"source_issue_id", ct::text},
                                 {"mode", ct::text, true},
                                 {"strategy_type", ct::text, true},
                                 {"name", ct::text, true},
                                 {"status", ct::text, true, "'active'"},
                                 {"cwd", ct::text},
                                 {"repo_url", ct::text},
                                 {"base_ref", ct::text},
                                 {"branch_name", ct::text},
                                 {"provider_type", ct::text, true, "'local_fs'"},
                                 {"provider_ref", ct::text},
                                 {"derived_from_execution_workspace_id", ct::id},
                                 {"last_used_at", ct::timestamp},
                                 {"opened_at", ct::timestamp, true},
                                 {"closed_at", ct::timestamp},
                                 {"cleanup_eligible_at", ct::timestamp},
                                 {"cleanup_reason", ct::text},
                                 {"metadata", ct::json},
                                 {"created_at", ct::timestamp, true},
                                 {"updated_at", ct::timestamp, true},
                             }},
                create_index{"execution_workspaces_company_project_status_idx", "execution_workspaces",
                             "company_id, project_id, status"},
                create_index{"execution_workspaces_company_project_workspace_status_idx", "execution_workspaces",
                             "company_id, project_workspace_id, status"},
                create_index{"execution_workspaces_company_source_issue_idx", "execution_workspaces",
                             "company_id, source_issue_id"},
                create_index{"execution_workspaces_company_last_used_idx", "execution_workspaces",
                             "company_id, last_used_at"},
                create_index{"execution_workspaces_company_branch_idx", "execution_workspaces",
                             "company_id, branch_name"},
                create_table{"workspace_operations",
                             {
                                 {"id", ct::id, true, {}, {}, true},
                                 {"company_id", ct::id, true},
                                 {"execution_workspace_id", ct::id},
                                 {"heartbeat_run_id", ct::id},
                                 {"issue_id", ct::id},
                                 {"phase", ct::text, true},
                                 {"command", ct::text},
                                 {"cwd", ct::text},
                                 {"status", ct::text, true, "'running'"},
                                 {"exit_code", ct::integer},
                                 {"log_store", ct::text},
                                 {"log_ref", ct::text},
                                 {"log_bytes", ct::integer},
                                 {"log_sha256", ct::text},
                                 {"log_compressed", ct::integer, true, "0"},
                                 {"stdout_excerpt", ct::text},
                                 {"stderr_excerpt", ct::text},
                                 {"metadata", ct::json},
                                 {"started_at", ct::timestamp, true},
                                 {"finished_at", ct::timestamp},
                                 {"created_at", ct::timestamp, true},
                                 {"updated_at", ct::timestamp, true},
                             }},
                create_index{"workspace_operations_company_run_started_idx", "workspace_operations",
                             "company_id, heartbeat_run_id, started_at"},
                create_index{"workspace_operations_company_workspace_started_idx", "workspace_operations",
                             "company_id, execution_workspace_id, started_at"},
                create_index{"workspace_operations_company_workspace_issue_started_idx", "workspace_operations",
                             "company_id, execution_workspace_id, issue_id, started_at"},
            },
        },
        migration{
            5,
            "berth: the (company, environment, status) lease index ends with the list order (last_used_at, id)",
            {
                // Without the order's columns, SQLite satisfied `ORDER BY last_used_at` with the
                // company's last-used index and tested environment and status row by row: 226 ms at
                // 1M leases to return none (issue 22). A prefix of the new index serves every query
                // the old one did (the capacity count among them).
                drop_index{"environment_leases_company_environment_status_idx"},
                create_index{"environment_leases_company_environment_status_idx", "environment_leases",
                             "company_id, environment_id, status, last_used_at, id"},
            },
        },
        migration{
            6,
            "upstream table: project_workspaces",
            {
                create_table{"project_workspaces",
                             {
                                 {"id", ct::id, true, {}, {}, true},
                                 {"company_id", ct::id, true},
                                 {"project_id", ct::text, true},
                                 {"repository_id", ct::text},
                                 {"name", ct::text, true},
                                 {"source_type", ct::text, true, "'local_path'"},
                                 {"cwd", ct::text},
                                 {"repo_url", ct::text},
                                 {"repo_ref", ct::text},
                                 {"default_ref", ct::text},
                                 {"visibility", ct::text, true, "'default'"},
                                 {"setup_command", ct::text},
                                 {"cleanup_command", ct::text},
                                 {"remote_provider", ct::text},
                                 {"remote_workspace_ref", ct::text},
                                 {"shared_workspace_key", ct::text},
                                 {"metadata", ct::json},
                                 {"is_primary", ct::integer, true, "0"},
                                 {"created_at", ct::timestamp, true},
                                 {"updated_at", ct::timestamp, true},
                             }},
                create_index{"project_workspaces_company_project_idx", "project_workspaces", "company_id, project_id"},
                create_index{"project_workspaces_company_repository_idx", "project_workspaces",
                             "company_id, repository_id"},
                create_index{"project_workspaces_project_primary_idx", "project_workspaces", "project_id, is_primary"},
                create_index{"project_workspaces_project_source_type_idx", "project_workspaces",
                             "project_id, source_type"},
                create_index{"project_workspaces_company_shared_key_idx", "project_workspaces",
                             "company_id, shared_workspace_key"},
                create_index{"project_workspaces_project_remote_ref_idx", "project_workspaces",
                             "project_id, remote_provider, remote_workspace_ref", true},
            },
        },
        migration{
            7,
            "berth: reuse scopes are opaque keys chosen by lease policies (environment_leases.reuse_scope)",
            {
                add_column{"environment_leases", {"reuse_scope", ct::text}},
                // The active leases of the reuse policies keep the scope the old indexes gave them
                // (the keys are those the policies choose: policies/reuse_by_*.hpp).
                update_rows{"environment_leases", "reuse_scope = 'environment'",
                            "status = 'active' AND lease_policy = 'reuse_by_environment'"},
                update_rows{"environment_leases", "reuse_scope = 'execution_workspace:' || execution_workspace_id",
                            "status = 'active' AND lease_policy = 'reuse_by_execution_workspace' AND "
                            "execution_workspace_id IS NOT NULL"},
                // The stores no longer know what a policy's scope means: one active lease per
                // (environment, reuse_scope) key replaces the two per-policy indexes of migration 2.
                drop_index{"environment_leases_reuse_by_environment_active_idx"},
                drop_index{"environment_leases_reuse_by_execution_workspace_active_idx"},
                create_index{"environment_leases_reuse_scope_active_idx", "environment_leases",
                             "environment_id, reuse_scope", true,
                             "status = 'active' AND reuse_scope IS NOT NULL"},
            },
        },
        migration{
            8,
            "berth: the lease records the names of the driver and the policy that hold it",
            {
                add_column{"environment_leases", {"driver_name", ct::text}},
                add_column{"environment_leases", {"policy_name", ct::text}},
            },
        },
        migration{
            9,
            "berth: lease holders (host, pid, pid start time) and the indexes recovery reads",
            {
                add_column{"environment_leases", {"holder_host", ct::text}},
                add_column{"environment_leases", {"holder_pid", ct::integer}},
                add_column{"environment_leases", {"holder_start_time", ct::integer}},
                // recover() reads the active leases held on its own host, and the leases whose
                // cleanup failed (pending_cleanup), without scanning the history.
                create_index{"environment_leases_active_holder_idx", "environment_leases", "holder_host", false,
                             "status = 'active' AND holder_host IS NOT NULL"},
                create_index{"environment_leases_pending_cleanup_idx", "environment_leases", "updated_at", false,
                             "status = 'pending_cleanup'"},
            },
        },
        migration{
            10,
            "berth: the activity log in list order, whole and by entity type (paging without a company)",
            {
                // list_activity({}) and list_activity({entity_type}) page in (created_at, id) order:
                // without these a page sorted the whole log (or every event of the type).
                create_index{"activity_log_created_idx", "activity_log", "created_at, id"},
                create_index{"activity_log_entity_type_created_idx", "activity_log", "entity_type, created_at, id"},
            },
        },
        migration{
            11,
            "berth: execution workspaces and workspace operations in list order (paging without a sort)",
            {
                // list_execution_workspaces pages newest last_used_at first, then created_at: upstream's
                // (company_id, last_used_at) index gave the first key only, so a page sorted every
                // row of the company; with a status (the startup restart reads the unarchived ones)
                // it walked them all. Upstream's indexes keep their names and gain the order.
                drop_index{"execution_workspaces_company_last_used_idx"},
                create_index{"execution_workspaces_company_last_used_idx", "execution_workspaces",
                             "company_id, last_used_at, created_at"},
                drop_index{"execution_workspaces_company_project_status_idx"},
                create_index{"execution_workspaces_company_project_status_idx", "execution_workspaces",
                             "company_id, project_id, status, last_used_at, created_at"},
                create_index{"execution_workspaces_company_status_last_used_idx", "execution_workspaces",
                             "company_id, status, last_used_at, created_at"},
                // recover() reads a dead run's operations by its run id alone (upstream's index
                // starts with the company: every operation was read); a dashboard pages a company's.
                create_index{"workspace_operations_run_started_idx", "workspace_operations", "heartbeat_run_id, started_at",
                             false, "heartbeat_run_id IS NOT NULL"},
                create_index{"workspace_operations_company_started_idx", "workspace_operations", "company_id, started_at"},
                // A company's runtime services page newest updated_at, then created_at, first.
                drop_index{"workspace_runtime_services_company_updated_idx"},
                create_index{"workspace_runtime_services_company_updated_idx", "workspace_runtime_services",
                             "company_id, updated_at, created_at"},
            },
        },
        migration{
            12,
            "berth: execution workspaces in list order on PostgreSQL (NULLS LAST, then insertion order)",
            {
                // The list orders by last_used_at DESC NULLS LAST (a workspace never used last), then
                // created_at, then insertion order. A PostgreSQL btree read backwards gives DESC NULLS
                // FIRST, so version 11's indexes served the filter but every page sorted the company's
                // rows; these are stored in the list's own order, row_seq included. SQLite orders a
                // NULL as the least value (DESC puts it last) and ends every index with the rowid:
                // version 11's indexes already give its order.
                drop_index{"execution_workspaces_company_last_used_idx", "postgres"},
                create_index{"execution_workspaces_company_last_used_idx", "execution_workspaces",
                             "company_id, last_used_at DESC NULLS LAST, created_at DESC, row_seq DESC", false, {},
                             "postgres"},
                drop_index{"execution_workspaces_company_project_status_idx", "postgres"},
                create_index{"execution_workspaces_company_project_status_idx", "execution_workspaces",
                             "company_id, project_id, status, last_used_at DESC NULLS LAST, created_at DESC, row_seq DESC",
                             false, {}, "postgres"},
                drop_index{"execution_workspaces_company_status_last_used_idx", "postgres"},
                create_index{"execution_workspaces_company_status_last_used_idx", "execution_workspaces",
                             "company_id, status, last_used_at DESC NULLS LAST, created_at DESC, row_seq DESC", false,
                             {}, "postgres"},
            },
        },
    };
    return all;
}

/// The schema version this berth writes and reads.
inline constexpr int current_version = 12;

/// The physical type of a column in a dialect.
[[nodiscard]] constexpr std::string_view type_name(column_type t, dialect const& d) noexcept {
    switch (t) {
        case column_type::id: return d.id_type;
        case column_type::text: return d.text_type;
        case column_type::json: return d.json_type;
        case column_type::timestamp: return d.timestamp_type;
        case column_type::integer: return d.integer_type;
    }
    return d.text_type;
}

/// One column definition: `name TYPE [PRIMARY KEY] [NOT NULL] [DEFAULT x] [REFERENCES ...]`.
[[nodiscard]] inline std::string render_column(column const& c, dialect const& d) {
    std::string s{c.name};
    s += ' ';
    s += type_name(c.type, d);
    if (c.primary_key) s += " PRIMARY KEY";
    if (c.not_null) s += " NOT NULL";
    if (!c.default_sql.empty()) (s += " DEFAULT ") += c.default_sql;
    if (!c.references.empty()) (s += " REFERENCES ") += c.references;
    return s;
}

/// Whether a migration step applies to a dialect (create_index::only_in, drop_index::only_in).
[[nodiscard]] inline bool applies_to(step const& st, dialect const& d) {
    if (auto const* i = std::get_if<create_index>(&st)) return i->only_in.empty() || i->only_in == d.name;
    if (auto const* i = std::get_if<drop_index>(&st)) return i->only_in.empty() || i->only_in == d.name;
    return true;
}

/// The DDL statement of one migration step in a dialect; empty for a step of another dialect
/// (applies_to), which a migration skips.
[[nodiscard]] inline std::string render(step const& st, dialect const& d) {
    if (!applies_to(st, d)) return {};
    return std::visit(
        [&](auto const& s) -> std::string {
            using S = std::remove_cvref_t<decltype(s)>;
            std::string out;
            if constexpr (std::is_same_v<S, create_table>) {
                ((out += "CREATE TABLE ") += s.name) += " (\n";
                for (std::size_t i = 0; i < s.columns.size(); ++i)
                    ((out += "  ") += render_column(s.columns[i], d)) +=
                        i + 1 < s.columns.size() || !d.insertion_order_ddl.empty() ? ",\n" : "\n";
                if (!d.insertion_order_ddl.empty()) ((out += "  ") += d.insertion_order_ddl) += "\n";
                out += ")";
            } else if constexpr (std::is_same_v<S, add_column>) {
                ((out += "ALTER TABLE ") += s.table) += " ADD COLUMN " + render_column(s.col, d);
            } else if constexpr (std::is_same_v<S, create_index>) {
                out += s.unique ? "CREATE UNIQUE INDEX " : "CREATE INDEX ";
                ((((out += s.name) += " ON ") += s.table) += " (") += s.columns;
                out += ")";
                if (!s.where.empty()) (out += " WHERE ") += s.where;
            } else if constexpr (std::is_same_v<S, drop_index>) {
                (out += "DROP INDEX ") += s.name;
            } else {
                static_assert(std::is_same_v<S, update_rows>);
                ((((out += "UPDATE ") += s.table) += " SET ") += s.set) += " WHERE ";
                out += s.where;
            }
            return out;
        },
        st);
}

/// The columns of `table` once every migration up to `version` has run, in order.
[[nodiscard]] inline std::vector<column> columns_of(std::string_view table, int version = current_version) {
    std::vector<column> cols;
    for (auto const& m : migrations()) {
        if (m.version > version) break;
        for (auto const& st : m.steps) {
            if (auto const* t = std::get_if<create_table>(&st); t && t->name == table) cols = t->columns;
            if (auto const* a = std::get_if<add_column>(&st); a && a->table == table) cols.push_back(a->col);
        }
    }
    return cols;
}

/// The index definitions in force in a dialect once every migration up to `version` has run.
[[nodiscard]] inline std::vector<create_index> indexes(dialect const& d, int version = current_version) {
    std::vector<create_index> out;
    for (auto const& m : migrations()) {
        if (m.version > version) break;
        for (auto const& st : m.steps) {
            if (!applies_to(st, d)) continue;
            if (auto const* i = std::get_if<create_index>(&st)) out.push_back(*i);
            if (auto const* di = std::get_if<drop_index>(&st))
                std::erase_if(out, [&](create_index const& x) { return x.name == di->name; });
        }
    }
    return out;
}

}  // namespace berth::schema

#pragma once
// Definitions of berth::sqlite_store (declared and documented in berth/stores/sqlite.hpp, which
// includes this file at its end; not meant to be included on its own).

#include <berth/error.hpp>
#include <berth/model/ids.hpp>                // new_id
#include <berth/model/lease_rules.hpp>        // every lease rule and refusal
#include <berth/model/lease_transitions.hpp>  // can_transition
#include <berth/stores/schema.hpp>            // schema::migrations, render, sqlite_dialect
#include <berth/stores/sqlite/checkpointer.hpp>
#include <berth/stores/sqlite/connection.hpp>
#include <berth/stores/sqlite/row.hpp>
#include <berth/stores/sqlite/wal_coalescing_vfs.hpp>

#include <boost/json/parse.hpp>      // parse (environment config)
#include <boost/json/serialize.hpp>  // serialize (error messages)

#include <sqlite3.h>  // sqlite3_changes

#include <sys/stat.h>  // ::stat (the file's identity, for file_write_lock)

#include <algorithm>    // std::sort
#include <array>        // std::array
#include <cstdint>      // std::int64_t
#include <cstdio>       // std::fputs
#include <map>          // std::map (file_write_lock's registry)
#include <memory>       // std::shared_ptr, std::weak_ptr
#include <mutex>        // std::mutex, std::lock_guard
#include <string>       // std::string, std::to_string
#include <type_traits>  // std::is_void_v
#include <utility>      // std::move

namespace berth::detail::sqlite {

/// PRAGMA application_id of a berth database ("bert"), so that berth refuses other programs' files.
inline constexpr std::int64_t application_id = 0x62657274;

inline constexpr table_ref environments_table{"environments", "environment"};
inline constexpr table_ref leases_table{"environment_leases", "lease"};
inline constexpr table_ref activity_table{"activity_log", "activity event"};
inline constexpr table_ref workspaces_table{"execution_workspaces", "execution workspace"};
inline constexpr table_ref operations_table{"workspace_operations", "workspace operation"};

/// Lease list texts by [status index + 1, or 0 for any status][1 when a cursor is given].
using lease_list_queries = std::array<std::array<std::string, 2>, detail::lease_status_count + 1>;

/// Every statement the store runs, generated once per store from the record descriptions.
struct statements {
    std::string env_cols = column_list<environment>();
    std::string lease_cols = column_list<environment_lease>();
    std::string activity_cols = column_list<activity_event>();

    std::string get_env = "SELECT " + env_cols + " FROM environments WHERE id = ?1";
    std::string insert_env =
        "INSERT INTO environments (" + env_cols + ") VALUES (" + placeholder_list<environment>() + ")";
    std::string update_env = "UPDATE environments SET " + assignment_list<environment>() + " WHERE id = ?1";
    // The conflict target names the partial unique index (company_id, driver) WHERE driver = 'local'.
    std::string ensure_local = insert_env + " ON CONFLICT (company_id, driver) WHERE driver = 'local' DO NOTHING";
    std::string get_local_env =
        "SELECT " + env_cols + " FROM environments WHERE company_id = ?1 AND driver = 'local'";
    // ORDER BY ... rowid DESC: among equal timestamps, the most recently inserted first.
    std::string list_env_order = " ORDER BY updated_at DESC, created_at DESC, rowid DESC";

    std::string get_lease = "SELECT " + lease_cols + " FROM environment_leases WHERE id = ?1";
    std::string insert_lease = "INSERT INTO environment_leases (" + lease_cols + ") VALUES (" +
                               placeholder_list<environment_lease>() + ")";
    std::string insert_activity =
        "INSERT INTO activity_log (" + activity_cols + ") VALUES (" + placeholder_list<activity_event>() + ")";
    // Leases of an environment are found through upstream's (company_id, environment_id, status)
    // index, which since schema 5 ends with the list order (last_used_at, id): a lease always has
    // its environment's company (acquire_lease checks it).
    std::string list_env_leases = "SELECT " + lease_cols +
                                  " FROM environment_leases WHERE company_id = (SELECT company_id FROM environments "
                                  "WHERE id = ?1) AND environment_id = ?1";
    std::string list_run_leases = "SELECT " + lease_cols + " FROM environment_leases WHERE heartbeat_run_id = ?1";
    /// The keyset cursor of lease lists, written so that its first term is a range of the index
    /// (a row-value comparison is not split into one by every engine).
    std::string lease_after = " AND last_used_at <= ?4 AND (last_used_at < ?4 OR id < ?5)";
    std::string list_lease_order = " ORDER BY last_used_at DESC, id DESC LIMIT ?3";
    /// env_leases[s][c]: an environment's leases in status s - 1 (s = 0: any), c = 1 after a cursor.
    lease_list_queries env_leases = make_env_lease_queries(list_env_leases, lease_after, list_lease_order, lease_cols);
    /// run_leases[s][c]: a run's leases, the same way. Every release_for_run reads them, so the
    /// texts are built once.
    lease_list_queries run_leases = make_run_lease_queries(list_run_leases, lease_after, list_lease_order);
    std::string env_for_lease = "SELECT id, company_id, name, config FROM environments WHERE id = ?1";
    std::string count_active = "SELECT count(*) FROM environment_leases WHERE company_id = ?1 AND "
                               "environment_id = ?2 AND status = 'active'";
    std::string reuse_scope_holder = "SELECT id FROM environment_leases WHERE environment_id = ?1 AND "
                                     "reuse_scope = ?2 AND status = 'active'";
    std::string lease_state = "SELECT id, status, epoch, company_id, environment_id, reuse_scope "
                              "FROM environment_leases WHERE id = ?1";
    /// transition[to]: compare-and-set on the epoch, and only from a status the table allows.
    std::array<std::string, detail::lease_status_count> transition = make_transitions(lease_cols);
    std::string renew = "UPDATE environment_leases SET expires_at = ?2, last_used_at = ?3, updated_at = ?3 "
                        "WHERE id = ?1 AND epoch = ?4 AND status = 'active' RETURNING " + lease_cols;
    std::string update_metadata = "UPDATE environment_leases SET metadata = ?2, last_used_at = ?3, updated_at = ?3 "
                                  "WHERE id = ?1 RETURNING " + lease_cols;
    std::string release_run = "UPDATE environment_leases SET status = ?2, epoch = epoch + 1, released_at = ?3, "
                              "last_used_at = ?4, updated_at = ?4 WHERE heartbeat_run_id = ?1 AND "
                              "status = 'active' RETURNING " + lease_cols;
    std::string expired_where = " FROM environment_leases WHERE status = 'active' AND expires_at IS NOT NULL AND "
                                "expires_at <= ?1";
    std::string expired_order = " ORDER BY expires_at ASC, rowid ASC LIMIT ?31";
    std::string expired = "SELECT " + lease_cols + expired_where + expired_order;
    /// A page after the lease ?30 (row cursor): the sweep's next page after it reaped the previous.
    std::string expired_after = "SELECT " + lease_cols + expired_where +
                                " AND (expires_at, rowid) > (SELECT expires_at, rowid FROM environment_leases "
                                "WHERE id = ?30)" + expired_order;
    // Each arm states its partial index's predicate, so that each reads only its index.
    // The rows once each, oldest inserted first (a UNION of whole rows would order them by id).
    // The pending_cleanup arm names its index: without statistics the planner scanned the
    // environment index (all history, ~300k VM steps on 100k leases) instead of the partial index.
    std::string recoverable = "SELECT " + lease_cols +
                              " FROM environment_leases WHERE rowid IN (SELECT rowid FROM environment_leases WHERE "
                              "status = 'active' AND holder_host IS NOT NULL AND holder_host = ?1 UNION SELECT rowid "
                              "FROM environment_leases WHERE status = 'active' AND expires_at IS NOT NULL AND "
                              "expires_at <= ?2 UNION SELECT rowid FROM environment_leases INDEXED BY "
                              "environment_leases_pending_cleanup_idx WHERE status = 'pending_cleanup') ORDER BY rowid";
    std::string list_activity = "SELECT " + activity_cols + " FROM activity_log";
    // prune_history: the environments, one batch of an environment's ended leases in one status
    // (oldest first, by the environment index), and a lease's deletion with its events.
    std::string all_environments = "SELECT company_id, id FROM environments ORDER BY rowid";
    std::array<std::array<std::string, detail::lease_status_count>, 2> prunable = make_prunable();
    std::string nth_newest_ended = make_nth_newest_ended();
    std::string delete_lease_events = "DELETE FROM activity_log WHERE entity_type = ?2 AND entity_id = ?1";
    std::string delete_lease = "DELETE FROM environment_leases WHERE id = ?1";
    // upstream's entity index is (entity_type, entity_id): an id without its type cannot seek it,
    // and the planner scans the whole index instead (11 ms at 200k events, against 25 µs). The
    // types present are few, so an id alone is looked up under each of them, the types found one
    // by one with a seek each: a skip-scan written out, in SQL PostgreSQL accepts too.
    std::string activity_entity_types =
        "entity_type IN (WITH RECURSIVE types(t) AS (SELECT min(entity_type) FROM activity_log UNION ALL "
        "SELECT (SELECT min(entity_type) FROM activity_log WHERE entity_type > types.t) FROM types "
        "WHERE types.t IS NOT NULL) SELECT t FROM types WHERE t IS NOT NULL)";

    std::string ew_cols = column_list<execution_workspace>();
    std::string get_ew = "SELECT " + ew_cols + " FROM execution_workspaces WHERE id = ?1";
    std::string insert_ew = "INSERT INTO execution_workspaces (" + ew_cols + ") VALUES (" +
                            placeholder_list<execution_workspace>() + ")";
    std::string update_ew =
        "UPDATE execution_workspaces SET " + assignment_list<execution_workspace>() + " WHERE id = ?1";
    std::string op_cols = column_list<workspace_operation>();
    std::string get_op = "SELECT " + op_cols + " FROM workspace_operations WHERE id = ?1";
    std::string insert_op = "INSERT INTO workspace_operations (" + op_cols + ") VALUES (" +
                            placeholder_list<workspace_operation>() + ")";
    std::string update_op =
        "UPDATE workspace_operations SET " + assignment_list<workspace_operation>() + " WHERE id = ?1";

    /// The terminal statuses as a list of literals: 'released', 'expired', 'failed'.
    static std::vector<std::string> ended_literals() {
        std::vector<std::string> out;
        for (std::size_t st = 0; st < detail::lease_status_count; ++st)
            if (is_terminal(static_cast<lease_status>(st))) out.push_back(sql_literal(static_cast<lease_status>(st)));
        return out;
    }

    // prunable[0][s]: leases in status s ended before ?4; prunable[1][s]: those at or past the
    // position (?4, ?5) in list order. ?1 company, ?2 environment, ?6 the batch. The status is a
    // literal (see sql_literal).
    static std::array<std::array<std::string, detail::lease_status_count>, 2> make_prunable() {
        std::array<std::array<std::string, detail::lease_status_count>, 2> out;
        for (std::size_t st = 0; st < detail::lease_status_count; ++st) {
            std::string const head = "SELECT id FROM environment_leases WHERE company_id = ?1 AND environment_id = "
                                     "?2 AND status = " + sql_literal(static_cast<lease_status>(st)) + " AND ";
            std::string const order = " ORDER BY last_used_at ASC, id ASC LIMIT ?6";
            out[0][st] = head + "last_used_at < ?4" + order;
            out[1][st] = head + "last_used_at <= ?4 AND (last_used_at < ?4 OR id <= ?5)" + order;
        }
        return out;
    }

    // The (?3 + 1)-th newest ended lease of an environment (?1 company, ?2 environment): each
    // terminal status's newest ?3 + 1 by the index, merged.
    static std::string make_nth_newest_ended() {
        std::string out;
        for (auto const& lit : ended_literals()) {
            if (!out.empty()) out += " UNION ALL ";
            out += "SELECT last_used_at, id FROM (SELECT last_used_at, id FROM environment_leases WHERE company_id "
                   "= ?1 AND environment_id = ?2 AND status = " + lit +
                   " ORDER BY last_used_at DESC, id DESC LIMIT ?3 + 1)";
        }
        return out + " ORDER BY last_used_at DESC, id DESC LIMIT 1 OFFSET ?3";
    }

    static std::string status_term(std::size_t s) {
        return s == 0 ? std::string() : " AND status = " + sql_literal(static_cast<lease_status>(s - 1));
    }

    static lease_list_queries make_run_lease_queries(std::string const& select, std::string const& after,
                                                     std::string const& order) {
        lease_list_queries out;
        for (std::size_t st = 0; st < out.size(); ++st)
            for (std::size_t c = 0; c < 2; ++c) out[st][c] = select + status_term(st) + (c ? after : "") + order;
        return out;
    }

    // An environment's leases in any status: one index range per status, each already in list
    // order and cut at the limit, merged. The index (company_id, environment_id, status,
    // last_used_at, id) gives one status's leases in order; over all statuses SQLite would read
    // the environment's whole history and sort it. There are six statuses, so a page costs six
    // seeks plus at most six times the rows returned.
    static lease_list_queries make_env_lease_queries(std::string const& select, std::string const& after,
                                                     std::string const& order, std::string const& cols) {
        lease_list_queries out;
        for (std::size_t c = 0; c < 2; ++c) {
            std::string any;
            for (std::size_t st = 1; st < out.size(); ++st) {
                if (!any.empty()) any += " UNION ALL ";
                any += "SELECT " + cols + " FROM (" + select + status_term(st) + (c ? after : "") + order + ")";
            }
            out[0][c] = any + order;
            for (std::size_t st = 1; st < out.size(); ++st) out[st][c] = select + status_term(st) + (c ? after : "") + order;
        }
        return out;
    }

    static std::array<std::string, detail::lease_status_count> make_transitions(std::string const& cols) {
        std::array<std::string, detail::lease_status_count> out;
        for (std::size_t to = 0; to < out.size(); ++to) {
            std::string from;
            for (std::size_t f = 0; f < out.size(); ++f)
                if (can_transition(static_cast<lease_status>(f), static_cast<lease_status>(to)))
                    ((from += from.empty() ? "'" : ", '") += to_string(static_cast<lease_status>(f))) += "'";
            out[to] = "UPDATE environment_leases SET status = ?2, epoch = epoch + 1, last_used_at = ?3, "
                      "updated_at = ?3, released_at = ?4, failure_reason = coalesce(?5, failure_reason), "
                      "cleanup_status = coalesce(?6, cleanup_status) WHERE id = ?1 AND epoch = ?7 AND " +
                      (from.empty() ? std::string("0") : "status IN (" + from + ")") + " RETURNING " + cols;
        }
        return out;
    }
};

/// The mutex every store object of this process on the file at `path` shares (keyed by device and
/// inode, so that two spellings of one path share it too); a private one for an in-memory database
/// or a file that cannot be stat'ed.
[[nodiscard]] inline std::shared_ptr<std::mutex> file_write_lock(std::string const& path, bool in_memory) {
    struct ::stat st {};
    if (in_memory || ::stat(path.c_str(), &st) != 0) return std::make_shared<std::mutex>();
    static std::mutex registry_mutex;
    static std::map<std::pair<dev_t, ino_t>, std::weak_ptr<std::mutex>> registry;
    std::lock_guard lock(registry_mutex);
    std::erase_if(registry, [](auto const& entry) { return entry.second.expired(); });
    auto& slot = registry[{st.st_dev, st.st_ino}];
    if (auto shared = slot.lock()) return shared;
    auto fresh = std::make_shared<std::mutex>();
    slot = fresh;
    return fresh;
}

struct store_state {
    std::string path;
    sqlite_options options;
    bool in_memory = false;
    statements sql;

    std::mutex write_mutex;  // one writer per store object
    // Shared by every store object of this process on the same file (file_write_lock), taken
    // after write_mutex and before BEGIN IMMEDIATE: writers in one process queue here, in memory,
    // and only other processes meet SQLite's lock and its busy handler.
    std::shared_ptr<std::mutex> file_write_mutex;
    // Before the writer, so it is destroyed after it: the writer's WAL hook points here.
    std::unique_ptr<checkpointer> background_checkpoints;
    std::unique_ptr<connection> writer;  // guarded by write_mutex (also the only connection in memory)

    std::mutex pool_mutex;
    std::vector<std::unique_ptr<connection>> idle_readers;  // guarded by pool_mutex

    void report(store_error const& e) const {
        if (options.on_unreadable_row) {
            options.on_unreadable_row(e);
        } else {
            std::string line = "berth sqlite_store: skipped a row it cannot read: ";
            line += e.what();
            line += '\n';
            std::fputs(line.c_str(), stderr);
        }
    }
};

/// Runs `f(connection&)` in one write transaction; commits when it returns, rolls back when it throws.
template <class F>
auto with_writer(store_state& s, F&& f) {
    std::lock_guard lock(s.write_mutex);
    std::lock_guard file_lock(*s.file_write_mutex);
    write_transaction tx(*s.writer);
    if constexpr (std::is_void_v<decltype(f(*s.writer))>) {
        f(*s.writer);
        tx.commit();
    } else {
        auto r = f(*s.writer);
        tx.commit();
        return r;
    }
}

/// Runs `f(connection&)` on a reader connection from the pool (each statement is its own snapshot).
template <class F>
auto with_reader(store_state& s, F&& f) {
    if (s.in_memory) {
        std::lock_guard lock(s.write_mutex);
        return f(*s.writer);
    }
    std::unique_ptr<connection> c;
    {
        std::lock_guard lock(s.pool_mutex);
        if (!s.idle_readers.empty()) {
            c = std::move(s.idle_readers.back());
            s.idle_readers.pop_back();
        }
    }
    if (!c) c = std::make_unique<connection>(s.path, false, s.options.busy_timeout);
    struct give_back {
        store_state& s;
        std::unique_ptr<connection>& c;
        ~give_back() {
            std::lock_guard lock(s.pool_mutex);
            try {
                s.idle_readers.push_back(std::move(c));
            } catch (...) {
                // Out of memory for the pool's slot: close this connection instead of keeping it.
            }
        }
    } guard{s, c};
    return f(*c);
}

/// Runs a lookup of a few rows: on the writer's connection when no write is running, else as
/// with_reader. Why: a connection drops its whole page cache when it sees that another connection
/// changed the database, so a pooled reader after each commit re-reads every page of its lookup
/// (a pread each), where the writer's cache holds what it just wrote. Only for short lookups: a
/// long list on the writer's connection would hold writes back.
template <class F>
auto with_point_reader(store_state& s, F&& f) {
    if (!s.in_memory) {
        std::unique_lock lock(s.write_mutex, std::try_to_lock);
        if (lock.owns_lock()) return f(*s.writer);
    }
    return with_reader(s, std::forward<F>(f));
}

/// Every row of a statement, skipping (and reporting) rows that cannot be read.
template <record R>
std::vector<R> read_all(store_state const& s, statement_scope& st, table_ref const& from, std::string_view doing) {
    std::vector<R> out;
    while (st.step(doing)) {
        try {
            out.push_back(read_record<R>(st.get(), from));
        } catch (store_error const& e) {
            if (e.code() != store_errc::corrupt_row) throw;
            s.report(e);
        }
    }
    return out;
}

/// The one row of a statement, if any.
template <record R>
std::optional<R> read_one(statement_scope& st, table_ref const& from, std::string_view doing) {
    std::optional<R> out;
    if (st.step(doing)) {
        out = read_record<R>(st.get(), from);
        while (st.step(doing)) {
        }
    }
    return out;
}

/// Refuses, before anything is written (not even the switch to WAL), a file that another program
/// owns: another application_id, or none and tables of its own. SQLite files of other programs
/// usually have an application_id of 0, so the tables decide: berth adds its tables only to an
/// empty file (or one whose application_id is berth's).
inline void refuse_foreign_database(connection& c, std::string const& path) {
    auto const app = c.pragma_int("application_id");
    if (app == application_id) return;
    if (app != 0)
        throw store_error(store_errc::schema_mismatch,
                          "Database \"" + path + "\" is not a berth database (its application_id is " +
                              std::to_string(app) + ", berth's is " + std::to_string(application_id) +
                              "); berth left it unchanged.");
    auto st = c.statement("SELECT count(*), min(name) FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'");
    st.step("inspecting the schema");
    auto const objects = sqlite3_column_int64(st.get(), 0);
    if (objects == 0) return;
    std::string const first(column_text(st.get(), 1));
    throw store_error(store_errc::schema_mismatch,
                      "Database \"" + path + "\" is not a berth database: it has " + std::to_string(objects) +
                          " schema object" + (objects == 1 ? "" : "s") + " of its own (e.g. \"" + first +
                          "\") and no berth application_id; berth left it unchanged. Give --db / the store a "
                          "path of its own.");
}

/// Brings the file's schema to schema::current_version in one transaction.
inline void migrate(connection& c, std::string const& path) {
    write_transaction tx(c);
    auto const app = c.pragma_int("application_id");
    auto const version = c.pragma_int("user_version");
    if (app != 0 && app != application_id)
        throw store_error(store_errc::schema_mismatch,
                          "Database \"" + path + "\" is not a berth database (its application_id is " +
                              std::to_string(app) + ").");
    if (version > schema::current_version)
        throw store_error(store_errc::schema_mismatch,
                          "Database \"" + path + "\" has schema version " + std::to_string(version) +
                              ", written by a newer berth; this berth reads schema versions up to " +
                              std::to_string(schema::current_version) + ". Upgrade berth to open it.");
    if (version == schema::current_version && app == application_id) return;  // tx rolls back: nothing written
    if (version == 0) {
        auto st = c.statement("SELECT count(*) FROM sqlite_master WHERE name IN ('environments', "
                              "'environment_leases', 'activity_log')");
        st.step("inspecting the schema");
        if (sqlite3_column_int64(st.get(), 0) != 0)
            throw store_error(store_errc::schema_mismatch,
                              "Database \"" + path + "\" has berth's tables but no berth schema version; it was "
                              "not written by berth.");
    }
    for (auto const& m : schema::migrations()) {
        if (m.version <= version) continue;
        for (auto const& step : m.steps) {
            auto const ddl = schema::render(step, schema::sqlite_dialect);
            if (ddl.empty()) continue;  // a step of another dialect
            c.exec(ddl, "migrating to schema version " + std::to_string(m.version) + " (" + std::string(m.summary) +
                            "): " + ddl);
        }
    }
    c.exec("PRAGMA user_version = " + std::to_string(schema::current_version), "setting the schema version");
    c.exec("PRAGMA application_id = " + std::to_string(application_id), "setting the application id");
    tx.commit();
}

[[nodiscard]] inline std::string dquoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

/// A list's `limit` as SQLite's LIMIT takes it (no_limit and anything past INT64_MAX: no limit).
[[nodiscard]] inline std::int64_t sql_limit(std::size_t limit) noexcept {
    return limit > static_cast<std::size_t>(INT64_MAX) ? -1 : static_cast<std::int64_t>(limit);
}

/// A row-cursor page (model/paging.hpp): the condition "after the row with id ?30 in the order
/// `key` (`cmp` "<" for a newest-first list, ">" for an oldest-first one)" and the LIMIT ?31. An
/// id the table does not hold compares with NULL: no row, an empty page.
[[nodiscard]] inline std::string row_after(std::string_view table, std::string_view key, std::string_view cmp) {
    return "(" + std::string(key) + ") " + std::string(cmp) + " (SELECT " + std::string(key) + " FROM " +
           std::string(table) + " WHERE id = ?30)";
}
inline constexpr char const* row_page_limit = " LIMIT ?31";
/// Binds a row-cursor page's ?30 and ?31.
inline void bind_row_page(sqlite3_stmt* st, std::size_t limit, std::optional<std::string> const& after) {
    if (after) bind_text(st, 30, *after);
    bind_int(st, 31, sql_limit(limit));
}

/// The first index of statements::env_leases / run_leases for a filter.
[[nodiscard]] inline std::size_t lease_query_status(lease_filter const& f) noexcept {
    return f.status ? detail::index(*f.status) + 1 : 0;
}

/// Binds a lease list's page: ?3 the limit, ?4 and ?5 the cursor when there is one.
inline void bind_page(sqlite3_stmt* st, lease_filter const& f) {
    bind_int(st, 3, sql_limit(f.limit));
    if (f.after) {
        bind_value(st, 4, f.after->last_used_at);
        bind_text(st, 5, f.after->id);
    }
}

/// The text of list_activity for `filter`. Bound: ?1 company, ?2 run, ?3 entity id, ?4 entity type,
/// ?5 and ?6 the cursor, ?7 the limit.
[[nodiscard]] inline std::string activity_list_sql(statements const& sql_text, activity_filter const& filter) {
    std::string sql = sql_text.list_activity;
    // An entity has a handful of events: its (entity_type, entity_id) index. Named, because since
    // schema 10 the (entity_type, created_at, id) index also serves the filter and gives the
    // order, and without statistics the planner prefers it — a walk of every event of the type.
    if (filter.entity_id) sql += " INDEXED BY activity_log_entity_type_id_idx";
    char const* glue = " WHERE ";
    // A unary + keeps a term out of index selection. Without statistics SQLite's planner prefers
    // the company index, which also gives the order, over the far narrower run or entity index,
    // and then reads every event of the company; an entity or a run has a handful.
    if (filter.company_id)
        (sql += std::exchange(glue, " AND ")) +=
            filter.run_id || filter.entity_id ? "+company_id = ?1" : "company_id = ?1";
    if (filter.run_id) (sql += std::exchange(glue, " AND ")) += filter.entity_id ? "+run_id = ?2" : "run_id = ?2";
    if (filter.entity_type) (sql += std::exchange(glue, " AND ")) += "entity_type = ?4";
    else if (filter.entity_id) (sql += std::exchange(glue, " AND ")) += sql_text.activity_entity_types;
    if (filter.entity_id) (sql += std::exchange(glue, " AND ")) += "entity_id = ?3";
    // The keyset cursor; its first term is a range of the company index.
    if (filter.after) (sql += std::exchange(glue, " AND ")) += "created_at >= ?5 AND (created_at > ?5 OR id > ?6)";
    sql += " ORDER BY created_at ASC, id ASC LIMIT ?7";
    return sql;
}

/// The text of one part of list_execution_workspaces for `filter` (see there): the rows with a
/// last_used_at (`nulls` false) or without one (`nulls` true); `after` adds the keyset condition
/// on the cursor row ?30. Bound: ?1 company, ?2 project, ?3 status, ?4 source issue, ?5 branch,
/// ?30 the cursor's id, ?31 the limit.
[[nodiscard]] inline std::string execution_workspace_list_sql(statements const& sql_text,
                                                              execution_workspace_filter const& filter, bool nulls,
                                                              bool after) {
    std::string sql = "SELECT " + sql_text.ew_cols + " FROM execution_workspaces WHERE company_id = ?1";
    if (filter.project_id) sql += " AND project_id = ?2";
    if (filter.status) sql += " AND status = ?3";
    if (filter.source_issue_id) sql += " AND source_issue_id = ?4";
    if (filter.branch_name) sql += " AND branch_name = ?5";
    if (!nulls) {
        sql += " AND last_used_at IS NOT NULL";
        if (after)
            sql += " AND (last_used_at, created_at, rowid) < (SELECT last_used_at, created_at, rowid FROM "
                   "execution_workspaces WHERE id = ?30)";
        sql += " ORDER BY last_used_at DESC, created_at DESC, rowid DESC";
    } else {
        sql += " AND last_used_at IS NULL";
        if (after) sql += " AND (created_at, rowid) < (SELECT created_at, rowid FROM execution_workspaces WHERE id = ?30)";
        sql += " ORDER BY created_at DESC, rowid DESC";
    }
    return sql + " LIMIT ?31";
}

/// The text of list_operations for `filter`. Bound: ?1 company, ?2 execution workspace, ?3 run,
/// ?4 issue, ?30 the cursor's id, ?31 the limit.
[[nodiscard]] inline std::string operation_list_sql(statements const& sql_text, workspace_operation_filter const& filter) {
    std::string sql = "SELECT " + sql_text.op_cols + " FROM workspace_operations";
    char const* glue = " WHERE ";
    if (filter.company_id) (sql += std::exchange(glue, " AND ")) += "company_id = ?1";
    if (filter.execution_workspace_id) (sql += std::exchange(glue, " AND ")) += "execution_workspace_id = ?2";
    if (filter.heartbeat_run_id) (sql += std::exchange(glue, " AND ")) += "heartbeat_run_id = ?3";
    if (filter.issue_id) (sql += std::exchange(glue, " AND ")) += "issue_id = ?4";
    if (filter.after)
        (sql += std::exchange(glue, " AND ")) += row_after("workspace_operations", "started_at, rowid", ">");
    return sql + " ORDER BY started_at ASC, rowid ASC LIMIT ?31";
}

/// The facts of an environment a lease write needs: its company, its name, its lease limit.
struct environment_facts {
    std::string company_id;
    std::string name;
    std::optional<std::int64_t> max_active_leases;
};

/// @throws store_error not_found; invalid_argument for a maxActiveLeases that is not a positive
///         integer; corrupt_row for a config that is not a JSON object.
inline environment_facts facts_of(connection& c, statements const& sql, std::string_view environment_id) {
    auto st = c.statement(sql.env_for_lease);
    bind_text(st.get(), 1, environment_id);
    if (!st.step("reading the environment")) throw lease_rules::environment_not_found(environment_id);
    environment_facts f{std::string(column_text(st.get(), 1)), std::string(column_text(st.get(), 2)), std::nullopt};
    json_object config;
    read_value(st.get(), 3, config, column_ref{environments_table, "config", st.get()});
    f.max_active_leases = lease_rules::max_active_leases(config, f.name, environment_id);
    return f;
}

/// Refuses when one more active lease would exceed the environment's maxActiveLeases.
inline void check_capacity(connection& c, statements const& sql, environment_facts const& env,
                           std::string_view environment_id) {
    if (!env.max_active_leases) return;
    auto st = c.statement(sql.count_active);
    bind_text(st.get(), 1, env.company_id);
    bind_text(st.get(), 2, environment_id);
    st.step("counting active leases");
    lease_rules::check_capacity(env.name, environment_id, env.max_active_leases, sqlite3_column_int64(st.get(), 0));
}

/// Refuses when the lease's reuse scope already has an active lease (the unique partial index
/// environment_leases_reuse_scope_active_idx enforces the same rule; this check names the holder).
inline void check_reuse_scope(connection& c, statements const& sql, std::string_view environment_id,
                              std::optional<std::string> const& scope) {
    if (!scope) return;
    auto st = c.statement(sql.reuse_scope_holder);
    bind_text(st.get(), 1, environment_id);
    bind_text(st.get(), 2, *scope);
    if (st.step("checking the reuse scope"))
        lease_rules::check_reuse_scope(environment_id, scope, column_text(st.get(), 0));
}

inline void insert_event(connection& c, statements const& sql, activity_event const& e) {
    auto st = c.statement(sql.insert_activity);
    bind_record(st.get(), e);
    try {
        st.step("recording activity");
    } catch (store_error const& err) {
        if (err.code() == store_errc::conflict)
            throw store_error(store_errc::conflict, "Activity event " + detail::sqlite::dquoted(e.id) + " already exists.");
        throw;
    }
}

/// Why a lease compare-and-set matched no row: not_found, stale_epoch or illegal_transition.
[[nodiscard]] inline store_error cas_failure(connection& c, statements const& sql, std::string_view id,
                                             std::uint64_t expected_epoch, lease_status to, bool renewing) {
    auto st = c.statement(sql.lease_state);
    bind_text(st.get(), 1, id);
    if (!st.step("reading the lease")) return lease_rules::lease_not_found(id);
    auto const status_text = std::string(column_text(st.get(), 1));
    auto const epoch = static_cast<std::uint64_t>(sqlite3_column_int64(st.get(), 2));
    auto const status = try_parse_enum<lease_status>(status_text);
    if (!status)
        return corrupt(column_ref{leases_table, "status", st.get()},
                       parse_error(enum_label<lease_status>, status_text).what());
    try {
        if (renewing) lease_rules::check_renewal(id, *status, epoch, expected_epoch);
        else lease_rules::check_transition(id, *status, epoch, expected_epoch, to);
    } catch (store_error const& e) {
        return e;
    }
    return store_error(store_errc::backend_failure,
                       "Lease " + detail::sqlite::dquoted(id) + ": the compare-and-set matched no row, yet the stored "
                       "lease allows it (a concurrent writer outside berth's transactions?).");
}

/// Read-patch-write of one row in one write transaction: nullopt when there is no row `id`.
/// `what` names the row in errors ("an execution workspace").
template <record R, class Patch>
std::optional<R> patch_row(store_state& s, std::string const& get_sql, std::string const& update_sql,
                           table_ref table, std::string_view id, Patch const& patch, timestamp now,
                           std::string const& what) {
    return with_writer(s, [&](connection& c) -> std::optional<R> {
        std::optional<R> row;
        {
            auto st = c.statement(get_sql);
            bind_text(st.get(), 1, id);
            row = read_one<R>(st, table, "reading " + what);
        }
        if (!row) return std::nullopt;
        apply_patch(*row, patch, now);
        auto st = c.statement(update_sql);
        bind_record(st.get(), *row);
        st.step("updating " + what);
        return row;
    });
}

}  // namespace berth::detail::sqlite

namespace berth {

inline sqlite_store::sqlite_store(std::string path, sqlite_options options)
    : state_(std::make_unique<detail::sqlite::store_state>()) {
    using namespace detail::sqlite;
    auto& s = *state_;
    s.path = std::move(path);
    s.options = std::move(options);
    s.in_memory = s.path.empty() || s.path == ":memory:";
    // Only the writer writes the WAL; readers and the checkpointer use the default VFS as it is.
    s.writer = std::make_unique<connection>(
        s.path, true, s.options.busy_timeout,
        !s.in_memory && s.options.coalesce_wal_writes ? wal_coalescing_vfs() : nullptr);
    auto& c = *s.writer;
    s.file_write_mutex = file_write_lock(s.path, s.in_memory);  // the file exists now
    refuse_foreign_database(c, s.path);
    if (!s.in_memory) {
        auto const mode = c.pragma_text("journal_mode = WAL");
        if (mode != "wal")
            throw store_error(store_errc::backend_failure,
                              "SQLite store: cannot put \"" + s.path + "\" in WAL mode (journal_mode is " + mode +
                                  "); is it on a local file system?");
    }
    c.exec(s.options.synchronous == sqlite_synchronous::full ? "PRAGMA synchronous = FULL"
                                                             : "PRAGMA synchronous = NORMAL",
           "setting synchronous");
    c.exec("PRAGMA foreign_keys = ON", "enabling foreign keys");
    c.exec("PRAGMA wal_autocheckpoint = " + std::to_string(s.options.wal_autocheckpoint), "setting wal_autocheckpoint");
    migrate(c, s.path);
    if (!s.in_memory && s.options.checkpoint_in_background && s.options.wal_autocheckpoint > 0) {
        s.background_checkpoints =
            std::make_unique<checkpointer>(s.path, s.options.busy_timeout, s.options.wal_autocheckpoint);
        s.background_checkpoints->install(c.handle());  // replaces SQLite's in-commit autocheckpoint
    }
}

inline sqlite_store::sqlite_store(sqlite_store&&) noexcept = default;
inline sqlite_store& sqlite_store::operator=(sqlite_store&&) noexcept = default;
inline sqlite_store::~sqlite_store() = default;

inline std::string const& sqlite_store::path() const noexcept { return state_->path; }

inline sqlite_statement_stats sqlite_store::statement_stats() const {
    auto& s = *state_;
    sqlite_statement_stats out;
    auto add = [&](detail::sqlite::connection const& c) {
        out.cached += c.cached_statements();
        out.recompiled += c.recompilations();
        out.full_scan_steps += c.full_scan_steps();
        out.vm_steps += c.vm_steps();
    };
    {
        std::lock_guard lock(s.write_mutex);
        add(*s.writer);
    }
    std::lock_guard lock(s.pool_mutex);
    for (auto const& c : s.idle_readers) add(*c);
    return out;
}

// ---- environments ------------------------------------------------------------------------------

inline std::vector<environment> sqlite_store::list_environments(std::string_view company_id,
                                                                environment_filter const& filter) {
    using namespace detail::sqlite;
    auto& s = *state_;
    std::string sql = "SELECT " + s.sql.env_cols + " FROM environments WHERE company_id = ?1";
    // Enum filters are literals, not parameters: see sql_literal.
    if (filter.status) sql += " AND status = " + sql_literal(*filter.status);
    if (filter.driver) sql += " AND driver = " + sql_literal(*filter.driver);
    if (filter.after) sql += " AND " + row_after("environments", "updated_at, created_at, rowid", "<");
    sql += s.sql.list_env_order + row_page_limit;
    return with_reader(s, [&](connection& c) {
        auto st = c.statement(sql);
        bind_text(st.get(), 1, company_id);
        bind_row_page(st.get(), filter.limit, filter.after);
        return read_all<environment>(s, st, environments_table, "listing environments");
    });
}

inline std::optional<environment> sqlite_store::get_environment(std::string_view id) {
    using namespace detail::sqlite;
    auto& s = *state_;
    return with_point_reader(s, [&](connection& c) {
        auto st = c.statement(s.sql.get_env);
        bind_text(st.get(), 1, id);
        return read_one<environment>(st, environments_table, "reading an environment");
    });
}

inline environment sqlite_store::create_environment(new_environment const& input, timestamp now) {
    using namespace detail::sqlite;
    if (input.company_id.empty())
        throw store_error(store_errc::invalid_argument, "An environment needs a company id.");
    if (input.name.empty()) throw store_error(store_errc::invalid_argument, "An environment needs a name.");
    environment const env{.id = new_id(),
                          .company_id = input.company_id,
                          .name = input.name,
                          .description = input.description,
                          .driver = input.driver,
                          .status = input.status,
                          .config = input.config,
                          .metadata = input.metadata,
                          .created_at = now,
                          .updated_at = now};
    auto& s = *state_;
    with_writer(s, [&](connection& c) {
        auto st = c.statement(s.sql.insert_env);
        bind_record(st.get(), env);
        try {
            st.step("creating an environment");
        } catch (store_error const& e) {
            if (e.code() == store_errc::conflict)
                throw store_error(store_errc::conflict,
                                  "Company " + detail::sqlite::dquoted(env.company_id) + " already has a local environment.");
            throw;
        }
    });
    return env;
}

inline std::optional<environment> sqlite_store::update_environment(std::string_view id,
                                                                   environment_patch const& patch, timestamp now) {
    using namespace detail::sqlite;
    if (patch.name && patch.name->empty())
        throw store_error(store_errc::invalid_argument, "An environment needs a name.");
    auto& s = *state_;
    return with_writer(s, [&](connection& c) -> std::optional<environment> {
        std::optional<environment> env;
        {
            auto st = c.statement(s.sql.get_env);
            bind_text(st.get(), 1, id);
            env = read_one<environment>(st, environments_table, "reading an environment");
        }
        if (!env) return std::nullopt;
        if (patch.name) env->name = *patch.name;
        if (patch.description) env->description = *patch.description;
        if (patch.driver) env->driver = *patch.driver;
        if (patch.status) env->status = *patch.status;
        if (patch.config) env->config = *patch.config;
        if (patch.metadata) env->metadata = *patch.metadata;
        env->updated_at = now;
        auto st = c.statement(s.sql.update_env);
        bind_record(st.get(), *env);
        try {
            st.step("updating an environment");
        } catch (store_error const& e) {
            if (e.code() == store_errc::conflict)
                throw store_error(store_errc::conflict,
                                  "Company " + detail::sqlite::dquoted(env->company_id) + " already has a local environment.");
            throw;
        }
        return env;
    });
}

inline environment sqlite_store::ensure_local_environment(std::string_view company_id, timestamp now) {
    using namespace detail::sqlite;
    if (company_id.empty()) throw store_error(store_errc::invalid_argument, "An environment needs a company id.");
    auto& s = *state_;
    // Every run resolves its environment, and after the first the row exists: a read (no write
    // lock, no transaction to commit) finds it. Only a company's first run takes the writer.
    auto found = with_point_reader(s, [&](connection& c) {
        auto st = c.statement(s.sql.get_local_env);
        bind_text(st.get(), 1, company_id);
        return read_one<environment>(st, environments_table, "reading the local environment");
    });
    if (found) return std::move(*found);
    environment const fresh{.id = new_id(),
                            .company_id = std::string(company_id),
                            .name = default_local_environment_name,
                            .description = std::string(default_local_environment_description),
                            .driver = driver_kind::local,
                            .status = environment_status::active,
                            .config = {},
                            .metadata = json_object{{"managedByBerth", true}, {"defaultForCompany", true}},
                            .created_at = now,
                            .updated_at = now};
    return with_writer(s, [&](connection& c) {
        {
            auto st = c.statement(s.sql.ensure_local);
            bind_record(st.get(), fresh);
            st.step("ensuring the local environment");
        }
        if (sqlite3_changes(c.handle()) == 1) return fresh;
        auto st = c.statement(s.sql.get_local_env);
        bind_text(st.get(), 1, company_id);
        auto existing = read_one<environment>(st, environments_table, "reading the local environment");
        if (!existing)
            throw store_error(store_errc::backend_failure,
                              "SQLite store: failed to ensure the local environment of company " + detail::sqlite::dquoted(company_id));
        return std::move(*existing);
    });
}

// ---- leases ------------------------------------------------------------------------------------

inline std::optional<environment_lease> sqlite_store::get_lease(std::string_view id) {
    using namespace detail::sqlite;
    auto& s = *state_;
    return with_point_reader(s, [&](connection& c) {
        auto st = c.statement(s.sql.get_lease);
        bind_text(st.get(), 1, id);
        return read_one<environment_lease>(st, leases_table, "reading a lease");
    });
}

inline std::vector<environment_lease> sqlite_store::list_leases(std::string_view environment_id,
                                                                lease_filter const& filter) {
    using namespace detail::sqlite;
    auto& s = *state_;
    // The status is a literal, not a parameter: see sql_literal.
    std::string const& sql = s.sql.env_leases[lease_query_status(filter)][filter.after ? 1 : 0];
    return with_reader(s, [&](connection& c) {
        auto st = c.statement(sql);
        bind_text(st.get(), 1, environment_id);
        bind_page(st.get(), filter);
        return read_all<environment_lease>(s, st, leases_table, "listing leases");
    });
}

inline std::vector<environment_lease> sqlite_store::list_run_leases(std::string_view heartbeat_run_id,
                                                                    lease_filter const& filter) {
    using namespace detail::sqlite;
    auto& s = *state_;
    std::string const& sql = s.sql.run_leases[lease_query_status(filter)][filter.after ? 1 : 0];
    return with_point_reader(s, [&](connection& c) {
        auto st = c.statement(sql);
        bind_text(st.get(), 1, heartbeat_run_id);
        bind_page(st.get(), filter);
        return read_all<environment_lease>(s, st, leases_table, "listing a run's leases");
    });
}

inline environment_lease sqlite_store::acquire_lease(new_lease const& input, timestamp now,
                                                     std::optional<activity_event> event) {
    using namespace detail::sqlite;
    lease_rules::validate(input);
    environment_lease const lease = lease_rules::make_lease(input, now);
    auto& s = *state_;
    with_writer(s, [&](connection& c) {
        auto const env = facts_of(c, s.sql, lease.environment_id);
        lease_rules::check_company(input, env.company_id);
        check_capacity(c, s.sql, env, lease.environment_id);
        check_reuse_scope(c, s.sql, lease.environment_id, lease.reuse_scope);
        {
            auto st = c.statement(s.sql.insert_lease);
            bind_record(st.get(), lease);
            try {
                st.step("acquiring a lease");
            } catch (store_error const& e) {
                if (e.code() == store_errc::conflict) throw lease_rules::lease_exists(lease.id);
                throw;
            }
        }
        if (event) insert_event(c, s.sql, *event);
    });
    return lease;
}

inline environment_lease sqlite_store::transition_lease(lease_transition const& t, timestamp now,
                                                        std::optional<activity_event> event) {
    using namespace detail::sqlite;
    auto& s = *state_;
    return with_writer(s, [&](connection& c) {
        if (t.to == lease_status::active) {
            // Resuming a retained lease makes it count against capacity and hold its reuse scope
            // again; the fence and the table come first, as in every store (lease_rules).
            auto st = c.statement(s.sql.lease_state);
            bind_text(st.get(), 1, t.id);
            if (st.step("reading the lease")) {
                auto const from = try_parse_enum<lease_status>(column_text(st.get(), 1));
                if (from && lease_rules::reactivates(*from, t.to)) {
                    lease_rules::check_transition(t.id, *from, static_cast<std::uint64_t>(sqlite3_column_int64(st.get(), 2)),
                                                  t.expected_epoch, t.to);
                    std::string const environment_id(column_text(st.get(), 4));
                    std::optional<std::string> scope;
                    if (sqlite3_column_type(st.get(), 5) != SQLITE_NULL) scope = std::string(column_text(st.get(), 5));
                    auto const env = facts_of(c, s.sql, environment_id);
                    check_capacity(c, s.sql, env, environment_id);
                    check_reuse_scope(c, s.sql, environment_id, scope);
                }
            }
        }
        std::optional<environment_lease> lease;
        {
            auto st = c.statement(s.sql.transition[detail::index(t.to)]);
            bind_text(st.get(), 1, t.id);
            bind_value(st.get(), 2, t.to);
            bind_value(st.get(), 3, now);
            if (t.to == lease_status::active || t.to == lease_status::retained) bind_null(st.get(), 4);
            else bind_value(st.get(), 4, now);
            bind_value(st.get(), 5, t.failure_reason);
            bind_value(st.get(), 6, t.cleanup_status);
            bind_value(st.get(), 7, t.expected_epoch);
            try {
                lease = read_one<environment_lease>(st, leases_table, "moving a lease");
            } catch (store_error const& e) {
                if (e.code() == store_errc::conflict)
                    throw store_error(store_errc::conflict, "Lease " + lease_rules::dquoted(t.id) +
                                                                " cannot become active: its reuse scope already has "
                                                                "an active lease.");
                throw;
            }
        }
        if (!lease) throw cas_failure(c, s.sql, t.id, t.expected_epoch, t.to, false);
        if (event) insert_event(c, s.sql, *event);
        return std::move(*lease);
    });
}

inline std::optional<environment_lease> sqlite_store::update_lease_metadata(std::string_view id,
                                                                            std::optional<json_object> metadata,
                                                                            timestamp now) {
    using namespace detail::sqlite;
    auto& s = *state_;
    return with_writer(s, [&](connection& c) {
        auto st = c.statement(s.sql.update_metadata);
        bind_text(st.get(), 1, id);
        bind_value(st.get(), 2, metadata);
        bind_value(st.get(), 3, now);
        return read_one<environment_lease>(st, leases_table, "updating lease metadata");
    });
}

inline environment_lease sqlite_store::renew_lease(std::string_view id, std::uint64_t expected_epoch,
                                                   std::optional<timestamp> expires_at, timestamp now) {
    using namespace detail::sqlite;
    auto& s = *state_;
    return with_writer(s, [&](connection& c) {
        std::optional<environment_lease> lease;
        {
            auto st = c.statement(s.sql.renew);
            bind_text(st.get(), 1, id);
            bind_value(st.get(), 2, expires_at);
            bind_value(st.get(), 3, now);
            bind_value(st.get(), 4, expected_epoch);
            lease = read_one<environment_lease>(st, leases_table, "renewing a lease");
        }
        if (!lease) throw cas_failure(c, s.sql, id, expected_epoch, lease_status::active, true);
        return std::move(*lease);
    });
}

inline std::vector<environment_lease> sqlite_store::release_leases_for_run(std::string_view heartbeat_run_id,
                                                                           lease_status to, timestamp now) {
    using namespace detail::sqlite;
    lease_rules::check_release_target(to);
    auto& s = *state_;
    auto leases = with_writer(s, [&](connection& c) {
        auto st = c.statement(s.sql.release_run);
        bind_text(st.get(), 1, heartbeat_run_id);
        bind_value(st.get(), 2, to);
        if (to == lease_status::retained) bind_null(st.get(), 3);
        else bind_value(st.get(), 3, now);
        bind_value(st.get(), 4, now);
        return read_all<environment_lease>(s, st, leases_table, "releasing a run's leases");
    });
    // RETURNING yields rows in no defined order; give them list_run_leases' order.
    std::sort(leases.begin(), leases.end(), [](environment_lease const& a, environment_lease const& b) {
        if (a.last_used_at != b.last_used_at) return a.last_used_at > b.last_used_at;
        return a.id > b.id;
    });
    return leases;
}

inline std::vector<environment_lease> sqlite_store::list_expired_leases(timestamp now) {
    return list_expired_leases(now, list_page{.limit = no_limit});
}

inline std::vector<environment_lease> sqlite_store::list_expired_leases(timestamp now, list_page const& page) {
    using namespace detail::sqlite;
    auto& s = *state_;
    return with_reader(s, [&](connection& c) {
        auto st = c.statement(page.after ? s.sql.expired_after : s.sql.expired);
        bind_value(st.get(), 1, now);
        bind_row_page(st.get(), page.limit, page.after);
        return read_all<environment_lease>(s, st, leases_table, "listing expired leases");
    });
}

inline prune_result sqlite_store::prune_history(history_retention const& r) {
    using namespace detail::sqlite;
    if (r.batch == 0) throw store_error(store_errc::invalid_argument, "prune_history: batch is 0; it must be positive.");
    auto& s = *state_;
    prune_result total;
    if (!r.ended_before && !r.keep_per_environment) return total;
    auto const environments = with_reader(s, [&](connection& c) {
        std::vector<std::pair<std::string, std::string>> out;
        auto st = c.statement(s.sql.all_environments);
        while (st.step("listing environments to prune"))
            out.emplace_back(std::string(column_text(st.get(), 0)), std::string(column_text(st.get(), 1)));
        return out;
    });
    // One pass per bound: by age, then by count (its boundary read first: leases that end while
    // the pass runs are newer, so the boundary only moves further from what it deletes).
    auto prune_pass = [&](std::string const& company, std::string const& environment, std::size_t which,
                          timestamp bound, std::string const& bound_id) {
        for (std::size_t st_index = 0; st_index < detail::lease_status_count; ++st_index) {
            if (!is_terminal(static_cast<lease_status>(st_index))) continue;
            for (;;) {
                auto const done = with_writer(s, [&](connection& c) {
                    std::vector<std::string> ids;
                    {
                        auto st = c.statement(s.sql.prunable[which][st_index]);
                        bind_text(st.get(), 1, company);
                        bind_text(st.get(), 2, environment);
                        bind_value(st.get(), 4, bound);
                        if (which == 1) bind_text(st.get(), 5, bound_id);
                        bind_int(st.get(), 6, sql_limit(r.batch));
                        while (st.step("finding leases to prune")) ids.emplace_back(column_text(st.get(), 0));
                    }
                    for (auto const& id : ids) {
                        {
                            auto st = c.statement(s.sql.delete_lease_events);
                            bind_text(st.get(), 1, id);
                            bind_text(st.get(), 2, lease_entity_type);
                            st.step("pruning a lease's events");
                            total.events += static_cast<std::size_t>(sqlite3_changes(c.handle()));
                        }
                        auto st = c.statement(s.sql.delete_lease);
                        bind_text(st.get(), 1, id);
                        st.step("pruning a lease");
                        total.leases += static_cast<std::size_t>(sqlite3_changes(c.handle()));
                    }
                    return ids.size() < r.batch;
                });
                if (done) break;
            }
        }
    };
    for (auto const& [company, environment] : environments) {
        if (r.ended_before) prune_pass(company, environment, 0, *r.ended_before, {});
        if (r.keep_per_environment) {
            auto const boundary = with_reader(s, [&](connection& c) -> std::optional<std::pair<timestamp, std::string>> {
                auto st = c.statement(s.sql.nth_newest_ended);
                bind_text(st.get(), 1, company);
                bind_text(st.get(), 2, environment);
                bind_int(st.get(), 3, sql_limit(*r.keep_per_environment));
                if (!st.step("finding the oldest ended lease to keep")) return std::nullopt;
                timestamp at;
                read_value(st.get(), 0, at, column_ref{leases_table, "last_used_at", st.get()});
                return std::pair{at, std::string(column_text(st.get(), 1))};
            });
            if (boundary) prune_pass(company, environment, 1, boundary->first, boundary->second);
        }
    }
    return total;
}

inline std::vector<environment_lease> sqlite_store::list_recoverable_leases(std::string_view holder_host,
                                                                           timestamp now) {
    using namespace detail::sqlite;
    auto& s = *state_;
    return with_reader(s, [&](connection& c) {
        auto st = c.statement(s.sql.recoverable);
        bind_text(st.get(), 1, holder_host);
        bind_value(st.get(), 2, now);
        return read_all<environment_lease>(s, st, leases_table, "listing leases to recover");
    });
}

// ---- activity ----------------------------------------------------------------------------------

inline void sqlite_store::record_activity(activity_event const& event) {
    using namespace detail::sqlite;
    auto& s = *state_;
    with_writer(s, [&](connection& c) { insert_event(c, s.sql, event); });
}

inline std::vector<activity_event> sqlite_store::list_activity(activity_filter const& filter) {
    using namespace detail::sqlite;
    auto& s = *state_;
    std::string const sql = activity_list_sql(s.sql, filter);
    return with_reader(s, [&](connection& c) {
        auto st = c.statement(sql);
        if (filter.company_id) bind_text(st.get(), 1, *filter.company_id);
        if (filter.run_id) bind_text(st.get(), 2, *filter.run_id);
        if (filter.entity_id) bind_text(st.get(), 3, *filter.entity_id);
        if (filter.entity_type) bind_text(st.get(), 4, *filter.entity_type);
        if (filter.after) {
            bind_value(st.get(), 5, filter.after->created_at);
            bind_text(st.get(), 6, filter.after->id);
        }
        bind_int(st.get(), 7, sql_limit(filter.limit));
        return read_all<activity_event>(s, st, activity_table, "listing activity");
    });
}

// ---- execution workspaces ----------------------------------------------------------------------

inline std::optional<execution_workspace> sqlite_store::get_execution_workspace(std::string_view id) {
    using namespace detail::sqlite;
    auto& s = *state_;
    return with_point_reader(s, [&](connection& c) {
        auto st = c.statement(s.sql.get_ew);
        bind_text(st.get(), 1, id);
        return read_one<execution_workspace>(st, workspaces_table, "reading an execution workspace");
    });
}

inline std::vector<execution_workspace> sqlite_store::list_execution_workspaces(
    std::string_view company_id, execution_workspace_filter const& filter) {
    using namespace detail::sqlite;
    auto& s = *state_;
    // The order is last_used_at newest first with a null last, then created_at, then rowid, all
    // descending. SQLite sorts NULL below every value, so a descending walk of an index ending in
    // (last_used_at, created_at) — and rowid, which every index ends with — yields exactly that
    // order. A keyset condition on last_used_at excludes the nulls, though, so a page is read in
    // two parts: the rows with a last_used_at after the cursor, then, while the page is not full,
    // the rows without one. Each part is an index seek plus its rows (issue 22).
    return with_reader(s, [&](connection& c) {
        std::vector<execution_workspace> out;
        bool cursor_in_nulls = false;  // the cursor row has no last_used_at: only the second part remains
        if (filter.after) {
            auto cursor = c.statement("SELECT last_used_at IS NULL FROM execution_workspaces WHERE id = ?1");
            bind_text(cursor.get(), 1, *filter.after);
            if (!cursor.step("reading an execution workspace cursor")) return out;  // unknown id: an empty page
            cursor_in_nulls = sqlite3_column_int(cursor.get(), 0) != 0;
        }
        auto read = [&](bool nulls, std::size_t limit) {
            auto st = c.statement(execution_workspace_list_sql(s.sql, filter, nulls, filter.after && nulls == cursor_in_nulls));
            bind_text(st.get(), 1, company_id);
            bind_row_page(st.get(), limit, filter.after);
            if (filter.project_id) bind_text(st.get(), 2, *filter.project_id);
            if (filter.status) bind_value(st.get(), 3, *filter.status);
            if (filter.source_issue_id) bind_text(st.get(), 4, *filter.source_issue_id);
            if (filter.branch_name) bind_text(st.get(), 5, *filter.branch_name);
            auto rows = read_all<execution_workspace>(s, st, workspaces_table, "listing execution workspaces");
            out.insert(out.end(), std::make_move_iterator(rows.begin()), std::make_move_iterator(rows.end()));
        };
        if (!cursor_in_nulls) read(false, filter.limit);
        if (out.size() < filter.limit) read(true, filter.limit - out.size());
        return out;
    });
}

inline execution_workspace sqlite_store::create_execution_workspace(new_execution_workspace const& input,
                                                                    timestamp now) {
    using namespace detail::sqlite;
    auto const w = make_execution_workspace(input, new_id(), now);
    auto& s = *state_;
    with_writer(s, [&](connection& c) {
        auto st = c.statement(s.sql.insert_ew);
        bind_record(st.get(), w);
        st.step("creating an execution workspace");
    });
    return w;
}

inline std::optional<execution_workspace> sqlite_store::update_execution_workspace(
    std::string_view id, execution_workspace_patch const& patch, timestamp now) {
    auto& s = *state_;
    return detail::sqlite::patch_row<execution_workspace>(s, s.sql.get_ew, s.sql.update_ew,
                                                          detail::sqlite::workspaces_table, id, patch, now,
                                                          "an execution workspace");
}

// ---- workspace operations ----------------------------------------------------------------------

inline workspace_operation sqlite_store::begin_operation(new_workspace_operation const& input, timestamp now) {
    using namespace detail::sqlite;
    auto const op = make_operation(input, new_id(), now);
    auto& s = *state_;
    with_writer(s, [&](connection& c) {
        auto st = c.statement(s.sql.insert_op);
        bind_record(st.get(), op);
        st.step("recording a workspace operation");
    });
    return op;
}

inline std::optional<workspace_operation> sqlite_store::update_operation(std::string_view id,
                                                                         workspace_operation_patch const& patch,
                                                                         timestamp now) {
    auto& s = *state_;
    return detail::sqlite::patch_row<workspace_operation>(s, s.sql.get_op, s.sql.update_op,
                                                          detail::sqlite::operations_table, id, patch, now,
                                                          "a workspace operation");
}

inline std::optional<workspace_operation> sqlite_store::get_operation(std::string_view id) {
    using namespace detail::sqlite;
    auto& s = *state_;
    return with_point_reader(s, [&](connection& c) {
        auto st = c.statement(s.sql.get_op);
        bind_text(st.get(), 1, id);
        return read_one<workspace_operation>(st, operations_table, "reading a workspace operation");
    });
}

inline std::vector<workspace_operation> sqlite_store::list_operations(workspace_operation_filter const& filter) {
    using namespace detail::sqlite;
    auto& s = *state_;
    std::string const sql = operation_list_sql(s.sql, filter);
    return with_reader(s, [&](connection& c) {
        auto st = c.statement(sql);
        bind_row_page(st.get(), filter.limit, filter.after);
        if (filter.company_id) bind_text(st.get(), 1, *filter.company_id);
        if (filter.execution_workspace_id) bind_text(st.get(), 2, *filter.execution_workspace_id);
        if (filter.heartbeat_run_id) bind_text(st.get(), 3, *filter.heartbeat_run_id);
        if (filter.issue_id) bind_text(st.get(), 4, *filter.issue_id);
        return read_all<workspace_operation>(s, st, operations_table, "listing workspace operations");
    });
}

}  // namespace berth

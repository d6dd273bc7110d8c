#pragma once
// Definitions of berth::postgres_store (declared and documented in berth/stores/postgres.hpp, which
// includes this file at its end; not meant to be included on its own).

#include <berth/error.hpp>
#include <berth/model/ids.hpp>                // new_id
#include <berth/model/lease_rules.hpp>        // every lease rule and refusal
#include <berth/model/lease_transitions.hpp>  // can_transition (the transition statements' WHERE)
#include <berth/stores/postgres/connection.hpp>
#include <berth/stores/postgres/row.hpp>
#include <berth/stores/schema.hpp>  // schema::migrations, render, postgres_dialect

#include <boost/json/parse.hpp>      // parse (environment config)
#include <boost/json/serialize.hpp>  // serialize (error messages)

#include <algorithm>    // std::sort, std::ranges::all_of
#include <array>        // std::array
#include <atomic>       // std::atomic
#include <cstdint>      // std::int64_t
#include <cstdio>       // std::fputs
#include <mutex>        // std::mutex, std::lock_guard
#include <string>       // std::string, std::to_string
#include <type_traits>  // std::is_void_v
#include <utility>      // std::move, std::exchange

namespace berth::detail::postgres {

inline constexpr table_ref environments_table{"environments", "environment"};
inline constexpr table_ref leases_table{"environment_leases", "lease"};
inline constexpr table_ref activity_table{"activity_log", "activity event"};
inline constexpr table_ref services_table{"workspace_runtime_services", "runtime service"};
inline constexpr table_ref workspaces_table{"execution_workspaces", "execution workspace"};
inline constexpr table_ref operations_table{"workspace_operations", "workspace operation"};

/// The column list orders break ties with (insertion order: the dialect's identity column).
inline constexpr std::string_view seq = schema::postgres_dialect.insertion_order;

[[nodiscard]] inline std::string dquoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

/// An enum value as an SQL literal (filters on enums are written into the text, as sqlite_store
/// does, so that a partial index whose predicate names the value can serve the statement).
template <described_enum E>
[[nodiscard]] std::string sql_literal(E v) {
    std::string out = "'";
    for (char const ch : std::string_view(to_string(v))) {
        out += ch;
        if (ch == '\'') out += '\'';
    }
    return out += '\'';
}

/// A text[] literal: `{"a","b"}`, each element quoted and escaped.
[[nodiscard]] inline std::string text_array(std::vector<std::string> const& items) {
    std::string out = "{";
    for (auto const& s : items) {
        if (out.size() > 1) out += ',';
        out += '"';
        for (char const ch : s) {
            if (ch == '"' || ch == '\\') out += '\\';
            out += ch;
        }
        out += '"';
    }
    return out += '}';
}

// maxActiveLeases in SQL: the same rule as the C++ one (a positive integer, or absent / null for
// no limit), written so that a statement can refuse past the limit without a round trip back.
#define BERTH_PG_MAX "config->'maxActiveLeases'"
inline constexpr char const* limit_ok_sql =
    "(" BERTH_PG_MAX " IS NULL OR jsonb_typeof(" BERTH_PG_MAX ") = 'null' OR (jsonb_typeof(" BERTH_PG_MAX
    ") = 'number' AND (" BERTH_PG_MAX ")::text ~ '^[1-9][0-9]{0,17}$'))";
inline constexpr char const* limit_sql = "CASE WHEN jsonb_typeof(" BERTH_PG_MAX ") = 'number' AND (" BERTH_PG_MAX
                                         ")::text ~ '^[1-9][0-9]{0,17}$' THEN ((" BERTH_PG_MAX ")::text)::bigint END";
/// The environment has a limit to keep (or a malformed one, refused under the same lock).
inline constexpr char const* has_limit_sql = "coalesce(jsonb_typeof(" BERTH_PG_MAX "), 'null') <> 'null'";
#undef BERTH_PG_MAX

/// Every statement the store runs with fixed text, generated once per store.
struct statements {
    std::string env_cols = column_list<environment>();
    std::string lease_cols = column_list<environment_lease>();
    std::string activity_cols = column_list<activity_event>();
    int lease_n = member_count<environment_lease>();
    int activity_n = member_count<activity_event>();

    std::string get_env = "SELECT " + env_cols + " FROM environments WHERE id = $1::text";
    std::string insert_env =
        "INSERT INTO environments (" + env_cols + ") VALUES (" + placeholder_list<environment>() + ")";
    std::string lock_env_for_update = "SELECT " + env_cols + " FROM environments WHERE id = $1::text FOR UPDATE";
    std::string update_env = "UPDATE environments SET " + assignment_list<environment>() + " WHERE id = $1::text";
    std::string ensure_local = insert_env + " ON CONFLICT (company_id, driver) WHERE driver = 'local' DO NOTHING";
    std::string get_local_env =
        "SELECT " + env_cols + " FROM environments WHERE company_id = $1::text AND driver = 'local'";
    std::string list_env_order = " ORDER BY updated_at DESC, created_at DESC, " + std::string(seq) + " DESC";

    std::string get_lease = "SELECT " + lease_cols + " FROM environment_leases WHERE id = $1::text";
    std::string insert_activity =
        "INSERT INTO activity_log (" + activity_cols + ") VALUES (" + placeholder_list<activity_event>() + ")";
    std::string list_env_leases = "SELECT " + lease_cols +
                                  " FROM environment_leases WHERE company_id = (SELECT company_id FROM environments "
                                  "WHERE id = $1::text) AND environment_id = $1::text";
    std::string list_run_leases =
        "SELECT " + lease_cols + " FROM environment_leases WHERE heartbeat_run_id = $1::text";
    // Ties are ordered by id in bytes (COLLATE "C"), as every store orders them, so that a keyset
    // cursor (last_used_at, id) continues a list whatever the server's collation.
    std::string list_lease_order = " ORDER BY last_used_at DESC, id COLLATE \"C\" DESC";
    std::string run_leases = list_run_leases + list_lease_order;
    std::array<std::string, detail::lease_status_count> run_leases_with_status = [&] {
        std::array<std::string, detail::lease_status_count> out;
        for (std::size_t st = 0; st < out.size(); ++st)
            out[st] = list_run_leases + " AND status = " + sql_literal(static_cast<lease_status>(st)) + list_lease_order;
        return out;
    }();

    // The environment's row lock: every acquire (and resume) on an environment with a lease limit
    // takes it first, in its own statement, so that the count of active leases the next statement
    // reads (with a snapshot taken after the lock was granted) includes every lease committed
    // before it. An environment without a limit is not locked (a row the WHERE filters out is not
    // locked), so acquires on it run in parallel: there is no count to keep exact.
    std::string lock_env = "SELECT 1 FROM environments WHERE id = $1::text AND " + std::string(has_limit_sql) +
                           " FOR NO KEY UPDATE";
    std::string lock_lease_env = "SELECT 1 FROM environments WHERE id = (SELECT environment_id FROM "
                                 "environment_leases WHERE id = $1::text) AND " + std::string(has_limit_sql) +
                                 " FOR NO KEY UPDATE";
    /// acquire[0]: without an event; acquire[1]: with one. Parameters: the lease's members, then
    /// environment id and company id, then the event's members.
    std::array<std::string, 2> acquire = [&] {
        auto const e = "$" + std::to_string(lease_n + 1) + "::text";
        auto const c = "$" + std::to_string(lease_n + 2) + "::text";
        std::string const head =
            "WITH env AS (SELECT company_id, name, config::text AS config, " + std::string(limit_ok_sql) +
            " AS limit_ok, " + limit_sql + " AS lim FROM environments WHERE id = " + e +
            "), n AS (SELECT count(*) AS active FROM environment_leases WHERE company_id = " + c +
            " AND environment_id = " + e + " AND status = 'active' AND EXISTS (SELECT 1 FROM env WHERE lim IS NOT "
            "NULL)), ins AS (INSERT INTO environment_leases (" +
            lease_cols + ") SELECT " + placeholder_list<environment_lease>() + " FROM env, n WHERE env.company_id = " +
            c + " AND env.limit_ok AND (env.lim IS NULL OR n.active < env.lim) RETURNING id)";
        // Only a refused insert needs the environment's facts (for its error); without a limit the
        // active leases are not counted (EXISTS is a one-time filter: no index scan) and read as 0.
        std::string const tail =
            " SELECT (SELECT count(*) FROM ins) AS inserted, env.company_id, env.name, CASE WHEN NOT EXISTS (SELECT 1 "
            "FROM ins) THEN env.config END, n.active FROM n LEFT JOIN env ON true";
        return std::array<std::string, 2>{
            head + tail, head + ", ev AS (INSERT INTO activity_log (" + activity_cols + ") SELECT " +
                             placeholder_list<activity_event>(lease_n + 3) + " FROM ins)" + tail};
    }();

    /// transition[to][with event]: compare-and-set on the epoch, only from a status the table
    /// allows; to `active` also only while the environment is under its limit.
    std::array<std::array<std::string, 2>, detail::lease_status_count> transition = [&] {
        std::array<std::array<std::string, 2>, detail::lease_status_count> out;
        for (std::size_t to = 0; to < out.size(); ++to) {
            std::string from;
            for (std::size_t f = 0; f < detail::lease_status_count; ++f)
                if (can_transition(static_cast<lease_status>(f), static_cast<lease_status>(to)))
                    from += (from.empty() ? "'" : ", '") + std::string(to_string(static_cast<lease_status>(f))) + "'";
            bool const resume = static_cast<lease_status>(to) == lease_status::active;
            std::string head = "WITH ";
            if (resume)
                head += "cur AS (SELECT company_id, environment_id FROM environment_leases WHERE id = $1::text), "
                        "env AS (SELECT " + std::string(limit_ok_sql) + " AS limit_ok, " + limit_sql +
                        " AS lim FROM environments WHERE id = (SELECT environment_id FROM cur)), "
                        "n AS (SELECT count(*) AS active FROM environment_leases WHERE company_id = (SELECT "
                        "company_id FROM cur) AND environment_id = (SELECT environment_id FROM cur) AND status = "
                        "'active'), ";
            head += "upd AS (UPDATE environment_leases SET status = $2::text, epoch = epoch + 1, last_used_at = "
                    "$3::timestamptz, updated_at = $3::timestamptz, released_at = $4::timestamptz, failure_reason = "
                    "coalesce($5::text, failure_reason), cleanup_status = coalesce($6::text, cleanup_status) WHERE "
                    "id = $1::text AND epoch = $7::bigint AND " +
                    (from.empty() ? std::string("false") : "status IN (" + from + ")") +
                    (resume ? " AND EXISTS (SELECT 1 FROM env, n WHERE env.limit_ok AND (env.lim IS NULL OR n.active "
                              "< env.lim))"
                            : "") +
                    " RETURNING " + lease_cols + ")";
            std::string const tail = " SELECT " + lease_cols + " FROM upd";
            out[to][0] = head + tail;
            out[to][1] = head + ", ev AS (INSERT INTO activity_log (" + activity_cols + ") SELECT " +
                         placeholder_list<activity_event>(8) + " FROM upd)" + tail;
        }
        return out;
    }();
    std::string lease_state = "SELECT id, status, epoch, company_id, environment_id, reuse_scope FROM "
                              "environment_leases WHERE id = $1::text";
    std::string env_facts = "SELECT e.company_id, e.name, e.config::text, (SELECT count(*) FROM environment_leases l "
                            "WHERE l.company_id = e.company_id AND l.environment_id = e.id AND l.status = 'active') "
                            "FROM environments e WHERE e.id = $1::text";
    /// The active lease that holds a reuse scope (environment_leases_reuse_scope_active_idx).
    std::string reuse_scope_holder = "SELECT id FROM environment_leases WHERE environment_id = $1::text AND "
                                     "reuse_scope = $2::text AND status = 'active'";
    std::string renew = "UPDATE environment_leases SET expires_at = $2::timestamptz, last_used_at = $3::timestamptz, "
                        "updated_at = $3::timestamptz WHERE id = $1::text AND epoch = $4::bigint AND status = "
                        "'active' RETURNING " + lease_cols;
    std::string update_metadata = "UPDATE environment_leases SET metadata = $2::jsonb, last_used_at = $3::timestamptz, "
                                  "updated_at = $3::timestamptz WHERE id = $1::text RETURNING " + lease_cols;
    std::string release_run = "UPDATE environment_leases SET status = $2::text, epoch = epoch + 1, released_at = "
                              "$3::timestamptz, last_used_at = $4::timestamptz, updated_at = $4::timestamptz WHERE "
                              "heartbeat_run_id = $1::text AND status = 'active' RETURNING " + lease_cols;
    /// What a release of a run already did, when its commit's fate was unknown (see release_leases_for_run).
    std::string released_run = "SELECT " + lease_cols +
                               " FROM environment_leases WHERE heartbeat_run_id = $1::text AND status = $2::text AND "
                               "updated_at = $3::timestamptz";
    std::string expired_where = "SELECT " + lease_cols +
                                " FROM environment_leases WHERE status = 'active' AND expires_at IS NOT NULL AND "
                                "expires_at <= $1::timestamptz";
    std::string expired_order = " ORDER BY expires_at ASC, " + std::string(seq) + " ASC";
    std::string expired = expired_where + expired_order + " FOR UPDATE SKIP LOCKED";
    // recover(): the active leases held on this host, the active leases whose TTL passed (any
    // host), and the pending_cleanup ones; each arm is one of the partial indexes' predicates.
    std::string recoverable = "SELECT " + lease_cols +
                              " FROM environment_leases WHERE (status = 'active' AND holder_host IS NOT NULL AND "
                              "holder_host = $1::text) OR (status = 'active' AND expires_at IS NOT NULL AND "
                              "expires_at <= $2::timestamptz) OR status = 'pending_cleanup' ORDER BY " +
                              std::string(seq) + " ASC";
    std::string get_activity = "SELECT " + activity_cols + " FROM activity_log WHERE id = $1::text";
    std::string list_activity = "SELECT " + activity_cols + " FROM activity_log";
    // upstream's entity index is (entity_type, entity_id): an id without its type cannot seek it
    // (PostgreSQL 15 has no skip scan), so an id alone is looked up under each type present, the
    // types found one by one with a seek each (the same SQL as sqlite_store's).
    std::string activity_entity_types =
        "entity_type IN (WITH RECURSIVE types(t) AS (SELECT min(entity_type) FROM activity_log UNION ALL "
        "SELECT (SELECT min(entity_type) FROM activity_log WHERE entity_type > types.t) FROM types "
        "WHERE types.t IS NOT NULL) SELECT t FROM types WHERE t IS NOT NULL)";

    std::string svc_cols = column_list<workspace_runtime_service>();
    std::string get_svc = "SELECT " + svc_cols + " FROM workspace_runtime_services WHERE id = $1::text";
    /// Insert, or replace every column but company_id and created_at when the stored row has the
    /// same company: one statement. No row back: the id belongs to another company.
    std::string upsert_svc = [&] {
        std::string set;
        boost::mp11::mp_for_each<record_members<workspace_runtime_service>>([&](auto D) {
            std::string_view const name = D.name;
            if (name == "id" || name == "company_id" || name == "created_at") return;
            if (!set.empty()) set += ", ";
            ((set += name) += " = EXCLUDED.") += name;
        });
        return "INSERT INTO workspace_runtime_services AS s (" + svc_cols + ") VALUES (" +
               placeholder_list<workspace_runtime_service>() + ") ON CONFLICT (id) DO UPDATE SET " + set +
               " WHERE s.company_id = EXCLUDED.company_id RETURNING " + column_list<workspace_runtime_service>("s.");
    }();
    std::string svc_owner = "SELECT company_id FROM workspace_runtime_services WHERE id = $1::text";

    std::string ew_cols = column_list<execution_workspace>();
    std::string get_ew = "SELECT " + ew_cols + " FROM execution_workspaces WHERE id = $1::text";
    std::string lock_ew = get_ew + " FOR UPDATE";
    std::string insert_ew = "INSERT INTO execution_workspaces (" + ew_cols + ") VALUES (" +
                            placeholder_list<execution_workspace>() + ")";
    std::string update_ew =
        "UPDATE execution_workspaces SET " + assignment_list<execution_workspace>() + " WHERE id = $1::text";
    std::string pw_cols = column_list<project_workspace>();
    std::string get_pw = "SELECT " + pw_cols + " FROM project_workspaces WHERE id = $1::text";
    std::string lock_pw = get_pw + " FOR UPDATE";
    std::string insert_pw = "INSERT INTO project_workspaces (" + pw_cols + ") VALUES (" +
                            placeholder_list<project_workspace>() + ")";
    std::string update_pw =
        "UPDATE project_workspaces SET " + assignment_list<project_workspace>() + " WHERE id = $1::text";
    std::string op_cols = column_list<workspace_operation>();
    std::string get_op = "SELECT " + op_cols + " FROM workspace_operations WHERE id = $1::text";
    std::string lock_op = get_op + " FOR UPDATE";
    std::string insert_op = "INSERT INTO workspace_operations (" + op_cols + ") VALUES (" +
                            placeholder_list<workspace_operation>() + ")";
    std::string update_op =
        "UPDATE workspace_operations SET " + assignment_list<workspace_operation>() + " WHERE id = $1::text";

    std::string begin = "BEGIN";
    std::string commit = "COMMIT";
    std::string rollback = "ROLLBACK";
};

struct store_state {
    std::string conninfo;
    std::string target;
    postgres_options options;
    statements sql;

    mutable std::mutex pool_mutex;
    std::vector<std::unique_ptr<connection>> idle;  // guarded by pool_mutex
    std::atomic<std::uint64_t> connects{0};
    std::atomic<std::uint64_t> retries{0};
    /// Dynamic statement texts seen so far (list filters), for statement_texts().
    mutable std::mutex texts_mutex;
    std::vector<std::string> dynamic_texts;

    std::unique_ptr<connection> connect() {
        auto c = std::make_unique<connection>(conninfo, options.statement_timeout, options.connect_timeout);
        ++connects;
        return c;
    }
    std::unique_ptr<connection> take() {
        {
            std::lock_guard lock(pool_mutex);
            if (!idle.empty()) {
                auto c = std::move(idle.back());
                idle.pop_back();
                return c;
            }
        }
        return connect();
    }
    void give_back(std::unique_ptr<connection> c) {
        if (!c || !c->healthy()) return;
        std::lock_guard lock(pool_mutex);
        if (idle.size() < options.pool_size) idle.push_back(std::move(c));
    }
    /// Closes every idle connection: after one was found broken, the others (same server) likely are.
    void drain() {
        std::vector<std::unique_ptr<connection>> gone;
        std::lock_guard lock(pool_mutex);
        gone.swap(idle);
    }
    void note_text(std::string const& sql) {
        std::lock_guard lock(texts_mutex);
        if (std::find(dynamic_texts.begin(), dynamic_texts.end(), sql) == dynamic_texts.end())
            dynamic_texts.push_back(sql);
    }

    void report(store_error const& e) const {
        if (options.on_unreadable_row) {
            options.on_unreadable_row(e);
        } else {
            std::string line = "berth postgres_store: skipped a row it cannot read: ";
            line += e.what();
            line += '\n';
            std::fputs(line.c_str(), stderr);
        }
    }
};

/// An operation that may simply run again after a lost connection: it reads, or it writes the
/// same values whether or not the first try committed.
struct idempotent {};

/// Runs `f(connection&)` on a pooled connection. When the connection breaks (or the server rolled
/// the transaction back for a serialization failure or deadlock), runs it once more on a new
/// connection; for a write whose first try may have committed, `landed(connection&)` is asked
/// first and its value (when engaged) is the result. A second failure is thrown, naming both.
template <class F, class Landed = idempotent>
auto call(store_state& s, F&& f, Landed&& landed = {}) -> decltype(f(std::declval<connection&>())) {
    using R = decltype(f(std::declval<connection&>()));
    std::string first_error;
    {
        auto c = s.take();
        try {
            if constexpr (std::is_void_v<R>) {
                f(*c);
                s.give_back(std::move(c));
                return;
            } else {
                R r = f(*c);
                s.give_back(std::move(c));
                return r;
            }
        } catch (failure const& e) {
            if (!e.retryable()) {
                s.give_back(std::move(c));
                throw;
            }
            if (e.lost()) s.drain();
            first_error = e.what();
        } catch (...) {
            s.give_back(std::move(c));
            throw;
        }
    }
    ++s.retries;
    try {
        auto c = s.connect();
        if constexpr (!std::is_same_v<std::remove_cvref_t<Landed>, idempotent>) {
            if (auto done = landed(*c)) {
                s.give_back(std::move(c));
                return std::move(*done);
            }
        }
        if constexpr (std::is_void_v<R>) {
            f(*c);
            s.give_back(std::move(c));
        } else {
            R r = f(*c);
            s.give_back(std::move(c));
            return r;
        }
    } catch (failure const& e) {
        if (e.lost()) s.drain();
        if (!e.retryable()) throw;
        throw store_error(store_errc::backend_failure,
                          first_error + "; tried once more on a new connection, which failed too: " + e.what() +
                              ". Nothing this call wrote is reported as done; a lease it touched keeps its "
                              "stored state (recovery and the expiry sweep find it).");
    }
}

/// Runs `batch` and returns its results (one round trip, one transaction).
inline std::vector<result> run(connection& c, std::initializer_list<query> batch, std::string_view doing) {
    return c.run(std::span<query const>(batch.begin(), batch.size()), doing);
}

/// Every row of `r`, skipping (and reporting) rows that cannot be read.
template <record R>
std::vector<R> read_all(store_state const& s, result const& r, table_ref const& from) {
    std::vector<R> out;
    out.reserve(static_cast<std::size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i) {
        try {
            out.push_back(read_record<R>(r, i, from));
        } catch (store_error const& e) {
            if (e.code() != store_errc::corrupt_row) throw;
            s.report(e);
        }
    }
    return out;
}

template <record R>
std::optional<R> read_first(result const& r, table_ref const& from) {
    if (r.rows() == 0) return std::nullopt;
    return read_record<R>(r, 0, from);
}

/// Brings the schema to schema::current_version in one transaction, under an advisory lock so that
/// processes opening one database at once migrate it once.
inline void migrate(connection& c, std::string const& target) {
    c.simple("BEGIN", "starting the migration");
    try {
        // The key: this schema's name, so that stores in separate schemas do not wait on each other.
        c.simple("SELECT pg_advisory_xact_lock(1650815604, hashtext(current_schema()))", "locking the schema");
        auto r = c.simple_query("SELECT to_regclass('berth_schema') IS NOT NULL, to_regclass('environments') IS NOT "
                                "NULL OR to_regclass('environment_leases') IS NOT NULL OR "
                                "to_regclass('activity_log') IS NOT NULL, current_schema()",
                                "inspecting the schema");
        bool const has_version = r.text(0, 0) == "t";
        bool const has_tables = r.text(0, 1) == "t";
        std::string const where = std::string(r.text(0, 2)) + " at " + target;
        int version = 0;
        if (has_version) {
            auto v = c.simple_query("SELECT version FROM berth_schema", "reading the schema version");
            if (v.rows() != 1)
                throw store_error(store_errc::schema_mismatch,
                                  "Schema " + dquoted(where) + " has a berth_schema table without one version row; "
                                  "it was not written by berth.");
            version = std::stoi(std::string(v.text(0, 0)));
        } else if (has_tables) {
            throw store_error(store_errc::schema_mismatch,
                              "Schema " + dquoted(where) + " has berth's tables but no berth schema version; it was "
                              "not written by berth.");
        }
        if (version > schema::current_version)
            throw store_error(store_errc::schema_mismatch,
                              "Schema " + dquoted(where) + " has schema version " + std::to_string(version) +
                                  ", written by a newer berth; this berth reads schema versions up to " +
                                  std::to_string(schema::current_version) + ". Upgrade berth to open it.");
        if (version < schema::current_version) {
            if (!has_version)
                c.simple("CREATE TABLE berth_schema (version integer NOT NULL); INSERT INTO berth_schema VALUES (0)",
                         "creating the schema version record");
            for (auto const& m : schema::migrations()) {
                if (m.version <= version) continue;
                for (auto const& step : m.steps) {
                    auto const ddl = schema::render(step, schema::postgres_dialect);
                    if (ddl.empty()) continue;  // a step of another dialect
                    c.simple(ddl, "migrating to schema version " + std::to_string(m.version) + " (" +
                                      std::string(m.summary) + "): " + ddl);
                }
            }
            c.simple("UPDATE berth_schema SET version = " + std::to_string(schema::current_version),
                     "setting the schema version");
        }
        c.simple("COMMIT", "committing the migration");
    } catch (...) {
        if (PQtransactionStatus(c.handle()) != PQTRANS_IDLE) PQclear(PQexec(c.handle(), "ROLLBACK"));
        throw;
    }
}

/// The environment's lease limit, by the rule of every store (lease_rules::max_active_leases),
/// from the config as the statements return it (text).
/// @throws store_error invalid_argument naming the environment and the value.
inline std::optional<std::int64_t> max_active_leases(std::string_view config_text, std::string_view name,
                                                     std::string_view environment_id) {
    boost::system::error_code ec;
    auto const doc = boost::json::parse(config_text, ec);
    if (ec || !doc.is_object()) return std::nullopt;
    return lease_rules::max_active_leases(doc.get_object(), name, environment_id);
}

/// The lease that holds `scope` in `environment_id`, to name it in the refusal ("?" when it has
/// ended since the write was refused).
[[nodiscard]] inline store_error reuse_scope_conflict(connection& c, statements const& sql,
                                                      std::string_view environment_id, std::string_view scope) {
    std::string holder = "?";
    try {
        auto r = c.run_one(sql.reuse_scope_holder, {std::string(environment_id), std::string(scope)},
                           "naming the reuse scope's holder");
        if (r.rows() > 0) holder = std::string(r.text(0, 0));
    } catch (store_error const&) {
    }
    return lease_rules::reuse_scope_taken(environment_id, scope, holder);
}

/// Whether a write was refused by the unique index of the active leases' reuse scopes.
[[nodiscard]] inline bool is_reuse_scope_violation(failure const& e) {
    return e.code() == store_errc::conflict && e.constraint() == "environment_leases_reuse_scope_active_idx";
}

/// The conflict of a write refused by a unique index, named by what the index stands for.
[[nodiscard]] inline store_error conflict_of(connection& c, statements const& sql, failure const& e,
                                             new_lease const& lease, std::string_view event_id) {
    auto const& k = e.constraint();
    if (k == "environment_leases_pkey") return lease_rules::lease_exists(lease.id);
    if (k == "activity_log_pkey")
        return store_error(store_errc::conflict, "Activity event " + dquoted(event_id) + " already exists.");
    if (is_reuse_scope_violation(e) && lease.reuse_scope)
        return reuse_scope_conflict(c, sql, lease.environment_id, *lease.reuse_scope);
    return e;
}

/// Why a lease compare-and-set matched no row: not_found, stale_epoch, illegal_transition, or for
/// a resume, the environment's limit. Read afresh (its own statement, its own snapshot).
[[nodiscard]] inline store_error cas_failure(connection& c, statements const& sql, std::string_view id,
                                             std::uint64_t expected_epoch, lease_status to, bool renewing) {
    auto r = c.run_one(sql.lease_state, {std::string(id)}, "reading the lease");
    if (r.rows() == 0) return lease_rules::lease_not_found(id);
    auto const status = std::string(r.text(0, 1));
    auto const epoch = std::string(r.text(0, 2));
    auto const parsed = try_parse_enum<lease_status>(status);
    if (!parsed) return corrupt(leases_table, "status", r, 0, parse_error(enum_label<lease_status>, status).what());
    auto const stored_epoch = static_cast<std::uint64_t>(std::stoull(epoch));
    auto const refused = lease_rules::refusal_of([&] {
        if (renewing) lease_rules::check_renewal(id, *parsed, stored_epoch, expected_epoch);
        else lease_rules::check_transition(id, *parsed, stored_epoch, expected_epoch, to);
    });
    if (refused) return *refused;
    if (lease_rules::reactivates(*parsed, to)) {
        std::string const environment_id(r.text(0, 4));
        auto f = c.run_one(sql.env_facts, {environment_id}, "reading the environment");
        if (f.rows() > 0) {
            auto const name = std::string(f.text(0, 1));
            auto const limit = max_active_leases(f.text(0, 2), name, environment_id);
            auto const active = std::stoll(std::string(f.text(0, 3)));
            if (limit && active >= *limit) return lease_rules::capacity_exceeded(name, environment_id, *limit, active);
        }
    }
    // The row matched when read again: another holder moved it and moved it back between the two
    // reads is impossible (epochs only grow), so the only way here is a concurrent move in flight.
    return store_error(store_errc::stale_epoch, "Lease " + dquoted(id) + " was being moved by another holder at epoch " +
                                                    epoch + ". Nothing was changed.");
}

/// Read-patch-write of one row in one transaction (its row locked from the read to the commit):
/// nullopt when there is no row `id`. Two round trips: the patch is applied here, between them.
template <record R, class Patch>
std::optional<R> patch_row(store_state& s, std::string const& lock_sql, std::string const& update_sql,
                           table_ref table, std::string_view id, Patch&& patch, std::string const& what) {
    return call(s, [&](connection& c) -> std::optional<R> {
        try {
            auto r = run(c, {{&s.sql.begin, {}}, {&lock_sql, {std::string(id)}}}, "reading " + what);
            auto row = read_first<R>(r[1], table);
            if (!row) {
                c.run_one(s.sql.commit, {}, "ending the transaction");
                return std::nullopt;
            }
            patch(*row);
            run(c, {{&update_sql, record_params(*row)}, {&s.sql.commit, {}}}, "updating " + what);
            return row;
        } catch (...) {
            if (PQstatus(c.handle()) == CONNECTION_OK && PQtransactionStatus(c.handle()) != PQTRANS_IDLE) {
                try {
                    c.run_one(s.sql.rollback, {}, "rolling back");
                } catch (...) {
                }
            }
            throw;
        }
    });
}

}  // namespace berth::detail::postgres

namespace berth {

inline postgres_store::postgres_store(std::string conninfo, postgres_options options)
    : state_(std::make_unique<detail::postgres::store_state>()) {
    using namespace detail::postgres;
    auto& s = *state_;
    s.conninfo = std::move(conninfo);
    s.options = std::move(options);
    auto c = s.connect();
    s.target = describe_target(c->handle());
    migrate(*c, s.target);
    s.give_back(std::move(c));
}

inline postgres_store::postgres_store(postgres_store&&) noexcept = default;
inline postgres_store& postgres_store::operator=(postgres_store&&) noexcept = default;
inline postgres_store::~postgres_store() = default;

inline std::string const& postgres_store::target() const noexcept { return state_->target; }

inline postgres_stats postgres_store::stats() const {
    auto& s = *state_;
    postgres_stats out;
    {
        std::lock_guard lock(s.pool_mutex);
        out.idle_connections = s.idle.size();
    }
    out.connects = s.connects.load();
    out.retries = s.retries.load();
    return out;
}

inline std::vector<std::string> postgres_store::statement_texts() const {
    auto const& q = state_->sql;
    std::vector<std::string> out{q.get_env, q.insert_env, q.lock_env_for_update, q.update_env, q.ensure_local,
                                 q.get_local_env, q.get_lease, q.insert_activity, q.list_env_leases + q.list_lease_order,
                                 q.run_leases, q.lock_env, q.lock_lease_env, q.acquire[0], q.acquire[1],
                                 q.lease_state, q.env_facts, q.reuse_scope_holder, q.renew,
                                 q.update_metadata, q.release_run, q.released_run, q.expired, q.get_activity,
                                 q.get_svc, q.upsert_svc, q.svc_owner, q.get_ew, q.lock_ew, q.insert_ew, q.update_ew,
                                 q.get_op, q.lock_op, q.insert_op, q.update_op, q.get_pw, q.lock_pw, q.insert_pw,
                                 q.update_pw};
    for (auto const& t : q.run_leases_with_status) out.push_back(t);
    for (auto const& t : q.transition) out.insert(out.end(), t.begin(), t.end());
    std::lock_guard lock(state_->texts_mutex);
    out.insert(out.end(), state_->dynamic_texts.begin(), state_->dynamic_texts.end());
    return out;
}

namespace detail::postgres {
/// ` LIMIT n`, or nothing for no_limit (and anything past what a bigint holds).
[[nodiscard]] inline std::string limit_clause(std::size_t limit) {
    if (limit > static_cast<std::size_t>(INT64_MAX)) return {};
    return " LIMIT " + std::to_string(limit);
}
/// A row-cursor page's condition (model/paging.hpp): after the row with id `after` in the order
/// `key` (`cmp` "<" for a newest-first list, ">" for an oldest-first one); the id is the next
/// parameter. An id the table does not hold compares with NULL: no row, an empty page.
[[nodiscard]] inline std::string row_after(std::string_view table, std::string const& key, std::string_view cmp,
                                           std::string const& after, params& args) {
    args.push_back(after);
    return "(" + key + ") " + std::string(cmp) + " (SELECT " + key + " FROM " + std::string(table) +
           " WHERE id = $" + std::to_string(args.size()) + "::text)";
}
}  // namespace detail::postgres

// ---- environments ------------------------------------------------------------------------------

inline std::vector<environment> postgres_store::list_environments(std::string_view company_id,
                                                                  environment_filter const& filter) {
    using namespace detail::postgres;
    auto& s = *state_;
    std::string sql = "SELECT " + s.sql.env_cols + " FROM environments WHERE company_id = $1::text";
    if (filter.status) sql += " AND status = " + sql_literal(*filter.status);
    if (filter.driver) sql += " AND driver = " + sql_literal(*filter.driver);
    params args{std::string(company_id)};
    if (filter.after)
        sql += " AND " + row_after("environments", "updated_at, created_at, " + std::string(seq), "<", *filter.after, args);
    sql += s.sql.list_env_order + limit_clause(filter.limit);
    s.note_text(sql);
    return call(s, [&](connection& c) {
        auto r = c.run_one(sql, args, "listing environments");
        return read_all<environment>(s, r, environments_table);
    });
}

inline std::optional<environment> postgres_store::get_environment(std::string_view id) {
    using namespace detail::postgres;
    auto& s = *state_;
    return call(s, [&](connection& c) {
        return read_first<environment>(c.run_one(s.sql.get_env, {std::string(id)}, "reading an environment"),
                                       environments_table);
    });
}

inline environment postgres_store::create_environment(new_environment const& input, timestamp now) {
    using namespace detail::postgres;
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
    call(
        s,
        [&](connection& c) {
            try {
                c.run_one(s.sql.insert_env, record_params(env), "creating an environment");
            } catch (failure const& e) {
                if (e.code() == store_errc::conflict)
                    throw store_error(store_errc::conflict,
                                      "Company " + dquoted(env.company_id) + " already has a local environment.");
                throw;
            }
            return true;
        },
        [&](connection& c) -> std::optional<bool> {
            if (c.run_one(s.sql.get_env, {env.id}, "checking an environment").rows() > 0) return true;
            return std::nullopt;
        });
    return env;
}

inline std::optional<environment> postgres_store::update_environment(std::string_view id,
                                                                     environment_patch const& patch, timestamp now) {
    using namespace detail::postgres;
    if (patch.name && patch.name->empty())
        throw store_error(store_errc::invalid_argument, "An environment needs a name.");
    auto& s = *state_;
    try {
        return patch_row<environment>(s, s.sql.lock_env_for_update, s.sql.update_env, environments_table, id,
                                      [&](environment& env) {
                                          if (patch.name) env.name = *patch.name;
                                          if (patch.description) env.description = *patch.description;
                                          if (patch.driver) env.driver = *patch.driver;
                                          if (patch.status) env.status = *patch.status;
                                          if (patch.config) env.config = *patch.config;
                                          if (patch.metadata) env.metadata = *patch.metadata;
                                          env.updated_at = now;
                                      },
                                      "an environment");
    } catch (failure const& e) {
        if (e.code() == store_errc::conflict)
            throw store_error(store_errc::conflict, "Environment " + dquoted(id) +
                                                        " cannot become local: its company already has a local "
                                                        "environment.");
        throw;
    }
}

inline environment postgres_store::ensure_local_environment(std::string_view company_id, timestamp now) {
    using namespace detail::postgres;
    if (company_id.empty()) throw store_error(store_errc::invalid_argument, "An environment needs a company id.");
    auto& s = *state_;
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
    // After a company's first run the row exists and a read finds it; the insert (ON CONFLICT DO
    // NOTHING on the one-local-per-company index) runs only when it is absent, and a read after it
    // returns whichever racing host's row won.
    return call(s, [&](connection& c) {
        std::string const company(company_id);
        if (auto found = read_first<environment>(c.run_one(s.sql.get_local_env, {company}, "reading the local environment"),
                                                 environments_table))
            return std::move(*found);
        auto r = run(c, {{&s.sql.ensure_local, record_params(fresh)}}, "ensuring the local environment");
        if (r[0].affected() == 1) return fresh;
        auto existing = read_first<environment>(
            c.run_one(s.sql.get_local_env, {company}, "reading the local environment"), environments_table);
        if (!existing)
            throw store_error(store_errc::backend_failure,
                              "PostgreSQL store: failed to ensure the local environment of company " + dquoted(company_id));
        return std::move(*existing);
    });
}

// ---- leases ------------------------------------------------------------------------------------

inline std::optional<environment_lease> postgres_store::get_lease(std::string_view id) {
    using namespace detail::postgres;
    auto& s = *state_;
    return call(s, [&](connection& c) {
        return read_first<environment_lease>(c.run_one(s.sql.get_lease, {std::string(id)}, "reading a lease"),
                                             leases_table);
    });
}

namespace detail::postgres {
/// A lease list's keyset condition after `filter.after` (newest last_used_at first, then greatest
/// id), its values appended to `args`; nothing without a cursor.
[[nodiscard]] inline std::string lease_page(lease_filter const& filter, params& args) {
    if (!filter.after) return {};
    args.push_back(to_param(filter.after->last_used_at));
    auto const at = "$" + std::to_string(args.size()) + "::timestamptz";
    args.push_back(filter.after->id);
    auto const id = "$" + std::to_string(args.size()) + "::text";
    return " AND last_used_at <= " + at + " AND (last_used_at < " + at + " OR id COLLATE \"C\" < " + id + ")";
}
}  // namespace detail::postgres

inline std::vector<environment_lease> postgres_store::list_leases(std::string_view environment_id,
                                                                  lease_filter const& filter) {
    using namespace detail::postgres;
    auto& s = *state_;
    params args{std::string(environment_id)};
    std::string const sql = s.sql.list_env_leases +
                            (filter.status ? " AND status = " + sql_literal(*filter.status) : std::string()) +
                            lease_page(filter, args) + s.sql.list_lease_order + limit_clause(filter.limit);
    s.note_text(sql);
    return call(s, [&](connection& c) {
        return read_all<environment_lease>(s, c.run_one(sql, args, "listing leases"), leases_table);
    });
}

inline std::vector<environment_lease> postgres_store::list_run_leases(std::string_view heartbeat_run_id,
                                                                      lease_filter const& filter) {
    using namespace detail::postgres;
    auto& s = *state_;
    if (!filter.after && filter.limit == no_limit) {
        std::string const& sql =
            filter.status ? s.sql.run_leases_with_status[detail::index(*filter.status)] : s.sql.run_leases;
        return call(s, [&](connection& c) {
            return read_all<environment_lease>(
                s, c.run_one(sql, {std::string(heartbeat_run_id)}, "listing a run's leases"), leases_table);
        });
    }
    params args{std::string(heartbeat_run_id)};
    std::string const sql = s.sql.list_run_leases +
                            (filter.status ? " AND status = " + sql_literal(*filter.status) : std::string()) +
                            lease_page(filter, args) + s.sql.list_lease_order + limit_clause(filter.limit);
    s.note_text(sql);
    return call(s, [&](connection& c) {
        return read_all<environment_lease>(s, c.run_one(sql, args, "listing a run's leases"), leases_table);
    });
}

inline environment_lease postgres_store::acquire_lease(new_lease const& input, timestamp now,
                                                       std::optional<activity_event> event) {
    using namespace detail::postgres;
    lease_rules::validate(input);
    environment_lease const lease = lease_rules::make_lease(input, now);
    auto& s = *state_;
    params args = record_params(lease);
    args.push_back(lease.environment_id);
    args.push_back(lease.company_id);
    if (event) append_record(args, *event);
    auto const& sql = s.sql.acquire[event ? 1 : 0];
    call(
        s,
        [&](connection& c) {
            std::vector<result> r;
            try {
                r = run(c, {{&s.sql.lock_env, {lease.environment_id}}, {&sql, args}}, "acquiring a lease");
            } catch (failure const& e) {
                if (e.code() != store_errc::conflict) throw;
                throw conflict_of(c, s.sql, e, input, event ? std::string_view(event->id) : "");
            }
            auto const& row = r[1];
            if (row.text(0, 0) == "1") return true;
            if (row.is_null(0, 1)) throw lease_rules::environment_not_found(lease.environment_id);
            lease_rules::check_company(input, row.text(0, 1));
            auto const name = std::string(row.text(0, 2));
            auto const limit = max_active_leases(row.text(0, 3), name, lease.environment_id);
            auto const active = std::stoll(std::string(row.text(0, 4)));
            lease_rules::check_capacity(name, lease.environment_id, limit, active);
            throw store_error(store_errc::backend_failure,
                              "PostgreSQL store: lease " + dquoted(lease.id) + " was not inserted, for no reason found.");
        },
        [&](connection& c) -> std::optional<bool> {
            // Did the lost try commit? Its row, as written (acquired_at is this call's `now`).
            auto got = read_first<environment_lease>(c.run_one(s.sql.get_lease, {lease.id}, "checking a lease"),
                                                     leases_table);
            if (got && got->acquired_at == now && got->environment_id == lease.environment_id) return true;
            return std::nullopt;
        });
    return lease;
}

inline environment_lease postgres_store::transition_lease(lease_transition const& t, timestamp now,
                                                          std::optional<activity_event> event) {
    using namespace detail::postgres;
    auto& s = *state_;
    params args{t.id, std::string(to_string(t.to)), to_param(now),
                to_param(lease_rules::released_at_for(t.to, now)),
                to_param(t.failure_reason), to_param(t.cleanup_status), to_param(t.expected_epoch)};
    if (event) append_record(args, *event);
    auto const& sql = s.sql.transition[detail::index(t.to)][event ? 1 : 0];
    return call(
        s,
        [&](connection& c) {
            std::vector<result> r;
            try {
                if (t.to == lease_status::active)
                    r = run(c, {{&s.sql.lock_lease_env, {t.id}}, {&sql, args}}, "moving a lease");
                else
                    r = run(c, {{&sql, args}}, "moving a lease");
            } catch (failure const& e) {
                if (is_reuse_scope_violation(e)) {
                    // The resumed lease's scope is taken: name it and its holder, as every store does.
                    auto st = c.run_one(s.sql.lease_state, {t.id}, "reading the lease");
                    if (st.rows() > 0 && !st.is_null(0, 5))
                        throw reuse_scope_conflict(c, s.sql, st.text(0, 4), st.text(0, 5));
                    throw store_error(store_errc::conflict, "Lease " + dquoted(t.id) +
                                                                " cannot become active: its reuse scope already has "
                                                                "an active lease.");
                }
                if (e.code() == store_errc::conflict && event && e.constraint() == "activity_log_pkey")
                    throw store_error(store_errc::conflict, "Activity event " + dquoted(event->id) + " already exists.");
                throw;
            }
            auto lease = read_first<environment_lease>(r.back(), leases_table);
            if (!lease) throw cas_failure(c, s.sql, t.id, t.expected_epoch, t.to, false);
            return std::move(*lease);
        },
        [&](connection& c) -> std::optional<environment_lease> {
            auto got = read_first<environment_lease>(c.run_one(s.sql.get_lease, {t.id}, "checking a lease"),
                                                     leases_table);
            if (got && got->epoch == t.expected_epoch + 1 && got->status == t.to && got->updated_at == now)
                return got;
            return std::nullopt;
        });
}

inline std::optional<environment_lease> postgres_store::update_lease_metadata(std::string_view id,
                                                                              std::optional<json_object> metadata,
                                                                              timestamp now) {
    using namespace detail::postgres;
    auto& s = *state_;
    return call(s, [&](connection& c) {
        return read_first<environment_lease>(
            c.run_one(s.sql.update_metadata, {std::string(id), to_param(metadata), to_param(now)},
                      "updating lease metadata"),
            leases_table);
    });
}

inline environment_lease postgres_store::renew_lease(std::string_view id, std::uint64_t expected_epoch,
                                                     std::optional<timestamp> expires_at, timestamp now) {
    using namespace detail::postgres;
    auto& s = *state_;
    // Idempotent: the epoch does not move, so a second try writes the same values.
    return call(s, [&](connection& c) {
        auto lease = read_first<environment_lease>(
            c.run_one(s.sql.renew, {std::string(id), to_param(expires_at), to_param(now), to_param(expected_epoch)},
                      "renewing a lease"),
            leases_table);
        if (!lease) throw cas_failure(c, s.sql, id, expected_epoch, lease_status::active, true);
        return std::move(*lease);
    });
}

inline std::vector<environment_lease> postgres_store::release_leases_for_run(std::string_view heartbeat_run_id,
                                                                             lease_status to, timestamp now) {
    using namespace detail::postgres;
    lease_rules::check_release_target(to);
    auto& s = *state_;
    std::string const run_id(heartbeat_run_id);
    auto const retries_before = s.retries.load();
    auto leases = call(s, [&](connection& c) {
        // After a lost connection the second try moves what is still active; the leases the
        // first try moved (if it committed) are found by this call's timestamp and returned too.
        auto r = run(c,
                     {{&s.sql.release_run,
                       {run_id, std::string(to_string(to)), to_param(lease_rules::released_at_for(to, now)),
                        to_param(now)}}},
                     "releasing a run's leases");
        return read_all<environment_lease>(s, r[0], leases_table);
    });
    if (s.retries.load() != retries_before) {
        // Cheap only in the rare case: merge what an earlier, unconfirmed try of this call moved.
        auto earlier = call(s, [&](connection& c) {
            return read_all<environment_lease>(
                s, c.run_one(s.sql.released_run, {run_id, std::string(to_string(to)), to_param(now)}, "checking a release"),
                leases_table);
        });
        for (auto& l : earlier)
            if (std::none_of(leases.begin(), leases.end(), [&](environment_lease const& x) { return x.id == l.id; }))
                leases.push_back(std::move(l));
    }
    std::sort(leases.begin(), leases.end(), [](environment_lease const& a, environment_lease const& b) {
        if (a.last_used_at != b.last_used_at) return a.last_used_at > b.last_used_at;
        if (a.created_at != b.created_at) return a.created_at > b.created_at;
        return a.id < b.id;
    });
    return leases;
}

inline std::vector<environment_lease> postgres_store::list_expired_leases(timestamp now) {
    using namespace detail::postgres;
    auto& s = *state_;
    return call(s, [&](connection& c) {
        return read_all<environment_lease>(s, c.run_one(s.sql.expired, {to_param(now)}, "listing expired leases"),
                                           leases_table);
    });
}

inline std::vector<environment_lease> postgres_store::list_expired_leases(timestamp now, list_page const& page) {
    using namespace detail::postgres;
    auto& s = *state_;
    params args{to_param(now)};
    std::string sql = s.sql.expired_where;
    if (page.after)
        sql += " AND " + row_after("environment_leases", "expires_at, " + std::string(seq), ">", *page.after, args);
    sql += s.sql.expired_order + limit_clause(page.limit) + " FOR UPDATE SKIP LOCKED";
    s.note_text(sql);
    return call(s, [&](connection& c) {
        return read_all<environment_lease>(s, c.run_one(sql, args, "listing expired leases"), leases_table);
    });
}

inline std::vector<environment_lease> postgres_store::list_recoverable_leases(std::string_view holder_host,
                                                                              timestamp now) {
    using namespace detail::postgres;
    auto& s = *state_;
    return call(s, [&](connection& c) {
        return read_all<environment_lease>(
            s, c.run_one(s.sql.recoverable, {std::string(holder_host), to_param(now)}, "listing leases to recover"),
            leases_table);
    });
}

inline prune_result postgres_store::prune_history(history_retention const& r) {
    using namespace detail::postgres;
    if (r.batch == 0) throw store_error(store_errc::invalid_argument, "prune_history: batch is 0; it must be positive.");
    prune_result total;
    if (!r.ended_before && !r.keep_per_environment) return total;
    auto& s = *state_;
    // One batch: the leases `doomed` selects (oldest first, in list order: last_used_at, then id),
    // their events, then them, in one statement. $1 company, $2 environment, $3 the bound, $4 the
    // batch, $5 the events' entity type.
    static constexpr char const* ended = "status IN ('released', 'expired', 'failed')";
    auto const batch_sql = [](std::string const& doomed) {
        return "WITH " + doomed +
               ", ev AS (DELETE FROM activity_log WHERE entity_type = $5::text AND entity_id IN (SELECT id FROM "
               "doomed) RETURNING 1), gone AS (DELETE FROM environment_leases WHERE id IN (SELECT id FROM doomed) "
               "RETURNING 1) SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM ev)";
    };
    static std::string const by_age = batch_sql(
        std::string("doomed AS (SELECT id FROM environment_leases WHERE company_id = $1::text AND environment_id = "
                    "$2::text AND ") +
        ended + " AND last_used_at < $3::timestamptz ORDER BY last_used_at, id LIMIT $4::bigint FOR UPDATE SKIP LOCKED)");
    // By count: the boundary is the newest ended lease beyond the `keep` newest, read again by each
    // batch (what the batch before removed is gone; leases that ended since are newer).
    static std::string const by_count = batch_sql(
        std::string("b AS (SELECT last_used_at, id FROM environment_leases WHERE company_id = $1::text AND "
                    "environment_id = $2::text AND ") +
        ended + " ORDER BY last_used_at DESC, id DESC OFFSET $3::bigint LIMIT 1), doomed AS (SELECT l.id FROM "
                "environment_leases l, b WHERE l.company_id = $1::text AND l.environment_id = $2::text AND l." +
        ended + " AND (l.last_used_at, l.id) <= (b.last_used_at, b.id) ORDER BY l.last_used_at, l.id LIMIT "
                "$4::bigint FOR UPDATE OF l SKIP LOCKED)");
    s.note_text(by_age);
    s.note_text(by_count);
    auto const environments = call(s, [&](connection& c) {
        auto const res = c.run_one("SELECT company_id, id FROM environments", {}, "listing environments to prune");
        std::vector<std::pair<std::string, std::string>> out;
        for (int i = 0; i < res.rows(); ++i) out.emplace_back(std::string(res.text(i, 0)), std::string(res.text(i, 1)));
        return out;
    });
    auto const pass = [&](std::string const& sql, std::string const& company, std::string const& environment,
                          std::optional<std::string> const& bound) {
        for (;;) {
            auto const [leases, events] = call(s, [&](connection& c) {
                auto const res = c.run_one(sql,
                                           {company, environment, bound, std::to_string(r.batch),
                                            std::string(lease_entity_type)},
                                           "pruning ended leases");
                return std::pair{static_cast<std::size_t>(std::stoull(std::string(res.text(0, 0)))),
                                 static_cast<std::size_t>(std::stoull(std::string(res.text(0, 1))))};
            });
            total.leases += leases;
            total.events += events;
            if (leases < r.batch) break;
        }
    };
    for (auto const& [company, environment] : environments) {
        if (r.ended_before) pass(by_age, company, environment, to_param(*r.ended_before));
        if (r.keep_per_environment) pass(by_count, company, environment, std::to_string(*r.keep_per_environment));
    }
    return total;
}

// ---- activity ----------------------------------------------------------------------------------

inline void postgres_store::record_activity(activity_event const& event) {
    using namespace detail::postgres;
    auto& s = *state_;
    call(
        s,
        [&](connection& c) {
            try {
                c.run_one(s.sql.insert_activity, record_params(event), "recording activity");
            } catch (failure const& e) {
                if (e.code() == store_errc::conflict)
                    throw store_error(store_errc::conflict, "Activity event " + dquoted(event.id) + " already exists.");
                throw;
            }
            return true;
        },
        [&](connection& c) -> std::optional<bool> {
            if (c.run_one(s.sql.get_activity, {event.id}, "checking an event").rows() > 0) return true;
            return std::nullopt;
        });
}

inline std::vector<activity_event> postgres_store::list_activity(activity_filter const& filter) {
    using namespace detail::postgres;
    auto& s = *state_;
    std::string sql = s.sql.list_activity;
    char const* glue = " WHERE ";
    params args;
    auto add = [&](std::string_view column, std::string const& value) {
        args.push_back(value);
        (((sql += std::exchange(glue, " AND ")) += column) += " = $") += std::to_string(args.size()) + "::text";
    };
    if (filter.company_id) add("company_id", *filter.company_id);
    if (filter.run_id) add("run_id", *filter.run_id);
    if (filter.entity_type) add("entity_type", *filter.entity_type);
    else if (filter.entity_id) (sql += std::exchange(glue, " AND ")) += s.sql.activity_entity_types;
    if (filter.entity_id) add("entity_id", *filter.entity_id);
    if (filter.after) {
        args.push_back(to_param(filter.after->created_at));
        auto const at = "$" + std::to_string(args.size()) + "::timestamptz";
        args.push_back(filter.after->id);
        auto const id = "$" + std::to_string(args.size()) + "::text";
        (sql += std::exchange(glue, " AND ")) +=
            "created_at >= " + at + " AND (created_at > " + at + " OR id COLLATE \"C\" > " + id + ")";
    }
    sql += " ORDER BY created_at ASC, id COLLATE \"C\" ASC" + limit_clause(filter.limit);
    s.note_text(sql);
    return call(s, [&](connection& c) {
        return read_all<activity_event>(s, c.run_one(sql, args, "listing activity"), activity_table);
    });
}

// ---- runtime services --------------------------------------------------------------------------

inline std::optional<workspace_runtime_service> postgres_store::get_runtime_service(std::string_view id) {
    using namespace detail::postgres;
    auto& s = *state_;
    return call(s, [&](connection& c) {
        return read_first<workspace_runtime_service>(
            c.run_one(s.sql.get_svc, {std::string(id)}, "reading a runtime service"), services_table);
    });
}

inline workspace_runtime_service postgres_store::upsert_runtime_service(workspace_runtime_service const& row,
                                                                        timestamp now) {
    using namespace detail::postgres;
    if (row.id.empty()) throw store_error(store_errc::invalid_argument, "A runtime service needs an id.");
    if (row.company_id.empty())
        throw store_error(store_errc::invalid_argument, "Runtime service \"" + row.id + "\" needs a company id.");
    if (row.service_name.empty())
        throw store_error(store_errc::invalid_argument, "Runtime service \"" + row.id + "\" needs a service name.");
    auto& s = *state_;
    workspace_runtime_service stored = row;
    stored.updated_at = now;
    stored.created_at = now;
    return call(s, [&](connection& c) {
        auto r = c.run_one(s.sql.upsert_svc, record_params(stored), "storing a runtime service");
        if (auto got = read_first<workspace_runtime_service>(r, services_table)) return std::move(*got);
        auto owner = c.run_one(s.sql.svc_owner, {row.id}, "reading a runtime service");
        std::string const company = owner.rows() > 0 ? std::string(owner.text(0, 0)) : "?";
        throw store_error(store_errc::conflict, "Runtime service \"" + row.id + "\" belongs to company \"" + company +
                                                    "\", not \"" + row.company_id + "\".");
    });
}

namespace detail::postgres {
/// ` WHERE ...` for a runtime service filter, and its parameters.
inline std::string service_where(runtime_service_filter const& f, bool live_only, params& args) {
    std::string w;
    auto add = [&](std::string_view cond) { (w += w.empty() ? " WHERE " : " AND ") += cond; };
    auto param = [&](std::optional<std::string> v, std::string_view type) {
        args.push_back(std::move(v));
        return "$" + std::to_string(args.size()) + "::" + std::string(type);
    };
    if (f.company_id) add("company_id = " + param(*f.company_id, "text"));
    if (f.provider) add("provider = " + param(to_param(*f.provider), "text"));
    if (!f.statuses.empty()) {
        std::vector<std::string> names;
        for (auto st : f.statuses) names.emplace_back(to_string(st));
        add("status = ANY(" + param(text_array(names), "text[]") + ")");
    }
    bool const live = live_only || (!f.statuses.empty() && std::ranges::all_of(f.statuses, is_live_status));
    if (f.execution_workspace_id) add("execution_workspace_id = " + param(*f.execution_workspace_id, "text"));
    if (f.project_workspace_id) add("project_workspace_id = " + param(*f.project_workspace_id, "text"));
    if (f.scope_type) add("scope_type = " + param(to_param(*f.scope_type), "text"));
    if (!f.ids.empty()) add("id = ANY(" + param(text_array(f.ids), "text[]") + ")");
    // The live-service index serves the statement only when its predicate is stated word for word.
    if (live) add(schema::live_runtime_services_predicate);
    return w;
}
}  // namespace detail::postgres

inline std::vector<workspace_runtime_service> postgres_store::list_runtime_services(
    runtime_service_filter const& filter) {
    using namespace detail::postgres;
    auto& s = *state_;
    params args;
    std::string where = service_where(filter, false, args);
    if (filter.after)
        (where += where.empty() ? " WHERE " : " AND ") +=
            row_after("workspace_runtime_services", "updated_at, created_at, " + std::string(seq), "<", *filter.after,
                      args);
    std::string const sql = "SELECT " + s.sql.svc_cols + " FROM workspace_runtime_services" + where +
                            " ORDER BY updated_at DESC, created_at DESC, " + std::string(seq) + " DESC" +
                            limit_clause(filter.limit);
    s.note_text(sql);
    return call(s, [&](connection& c) {
        return read_all<workspace_runtime_service>(s, c.run_one(sql, args, "listing runtime services"),
                                                   services_table);
    });
}

inline std::vector<std::string> postgres_store::stop_runtime_services(runtime_service_filter const& filter,
                                                                      timestamp now) {
    using namespace detail::postgres;
    auto& s = *state_;
    params args;
    auto const where = service_where(filter, true, args);
    args.push_back(to_param(now));
    std::string const sql = "UPDATE workspace_runtime_services SET status = 'stopped', health_status = 'unknown', "
                            "stopped_at = $" + std::to_string(args.size()) + "::timestamptz, last_used_at = $" +
                            std::to_string(args.size()) + "::timestamptz, updated_at = $" +
                            std::to_string(args.size()) + "::timestamptz" + where + " RETURNING id";
    s.note_text(sql);
    return call(s, [&](connection& c) {
        auto r = c.run_one(sql, args, "stopping runtime services");
        std::vector<std::string> ids;
        for (int i = 0; i < r.rows(); ++i) ids.emplace_back(r.text(i, 0));
        return ids;
    });
}

// ---- execution workspaces ----------------------------------------------------------------------

inline std::optional<execution_workspace> postgres_store::get_execution_workspace(std::string_view id) {
    using namespace detail::postgres;
    auto& s = *state_;
    return call(s, [&](connection& c) {
        return read_first<execution_workspace>(
            c.run_one(s.sql.get_ew, {std::string(id)}, "reading an execution workspace"), workspaces_table);
    });
}

inline std::vector<execution_workspace> postgres_store::list_execution_workspaces(
    std::string_view company_id, execution_workspace_filter const& filter) {
    using namespace detail::postgres;
    auto& s = *state_;
    params args{std::string(company_id)};
    std::string sql = "SELECT " + s.sql.ew_cols + " FROM execution_workspaces WHERE company_id = $1::text";
    auto add = [&](std::string_view column, std::optional<std::string> value) {
        args.push_back(std::move(value));
        ((sql += " AND ") += column) += " = $" + std::to_string(args.size()) + "::text";
    };
    if (filter.project_id) add("project_id", *filter.project_id);
    if (filter.status) add("status", to_param(*filter.status));
    if (filter.source_issue_id) add("source_issue_id", *filter.source_issue_id);
    if (filter.branch_name) add("branch_name", *filter.branch_name);
    // NULLS LAST in a descending order: a null last_used_at as the least instant.
    if (filter.after)
        sql += " AND " + row_after("execution_workspaces",
                                   "COALESCE(last_used_at, '-infinity'::timestamptz), created_at, " + std::string(seq),
                                   "<", *filter.after, args);
    sql += " ORDER BY last_used_at DESC NULLS LAST, created_at DESC, " + std::string(seq) + " DESC" +
           limit_clause(filter.limit);
    s.note_text(sql);
    return call(s, [&](connection& c) {
        return read_all<execution_workspace>(s, c.run_one(sql, args, "listing execution workspaces"),
                                             workspaces_table);
    });
}

inline execution_workspace postgres_store::create_execution_workspace(new_execution_workspace const& input,
                                                                      timestamp now) {
    using namespace detail::postgres;
    auto const w = make_execution_workspace(input, new_id(), now);
    auto& s = *state_;
    call(
        s,
        [&](connection& c) {
            c.run_one(s.sql.insert_ew, record_params(w), "creating an execution workspace");
            return true;
        },
        [&](connection& c) -> std::optional<bool> {
            if (c.run_one(s.sql.get_ew, {w.id}, "checking an execution workspace").rows() > 0) return true;
            return std::nullopt;
        });
    return w;
}

inline std::optional<execution_workspace> postgres_store::update_execution_workspace(
    std::string_view id, execution_workspace_patch const& patch, timestamp now) {
    using namespace detail::postgres;
    auto& s = *state_;
    return patch_row<execution_workspace>(s, s.sql.lock_ew, s.sql.update_ew, workspaces_table, id,
                                          [&](execution_workspace& w) { apply_patch(w, patch, now); },
                                          "an execution workspace");
}

// ---- workspace operations ----------------------------------------------------------------------

inline workspace_operation postgres_store::begin_operation(new_workspace_operation const& input, timestamp now) {
    using namespace detail::postgres;
    auto const op = make_operation(input, new_id(), now);
    auto& s = *state_;
    call(
        s,
        [&](connection& c) {
            c.run_one(s.sql.insert_op, record_params(op), "recording a workspace operation");
            return true;
        },
        [&](connection& c) -> std::optional<bool> {
            if (c.run_one(s.sql.get_op, {op.id}, "checking a workspace operation").rows() > 0) return true;
            return std::nullopt;
        });
    return op;
}

inline std::optional<workspace_operation> postgres_store::update_operation(std::string_view id,
                                                                           workspace_operation_patch const& patch,
                                                                           timestamp now) {
    using namespace detail::postgres;
    auto& s = *state_;
    return patch_row<workspace_operation>(s, s.sql.lock_op, s.sql.update_op, operations_table, id,
                                          [&](workspace_operation& op) { apply_patch(op, patch, now); },
                                          "a workspace operation");
}

inline std::optional<workspace_operation> postgres_store::get_operation(std::string_view id) {
    using namespace detail::postgres;
    auto& s = *state_;
    return call(s, [&](connection& c) {
        return read_first<workspace_operation>(
            c.run_one(s.sql.get_op, {std::string(id)}, "reading a workspace operation"), operations_table);
    });
}

inline std::vector<workspace_operation> postgres_store::list_operations(workspace_operation_filter const& filter) {
    using namespace detail::postgres;
    auto& s = *state_;
    params args;
    std::string sql = "SELECT " + s.sql.op_cols + " FROM workspace_operations";
    char const* glue = " WHERE ";
    auto add = [&](std::string_view column, std::string const& value) {
        args.push_back(value);
        (((sql += std::exchange(glue, " AND ")) += column) += " = $") += std::to_string(args.size()) + "::text";
    };
    if (filter.company_id) add("company_id", *filter.company_id);
    if (filter.execution_workspace_id) add("execution_workspace_id", *filter.execution_workspace_id);
    if (filter.heartbeat_run_id) add("heartbeat_run_id", *filter.heartbeat_run_id);
    if (filter.issue_id) add("issue_id", *filter.issue_id);
    if (filter.after)
        (sql += std::exchange(glue, " AND ")) +=
            row_after("workspace_operations", "started_at, " + std::string(seq), ">", *filter.after, args);
    sql += " ORDER BY started_at ASC, " + std::string(seq) + " ASC" + limit_clause(filter.limit);
    s.note_text(sql);
    return call(s, [&](connection& c) {
        return read_all<workspace_operation>(s, c.run_one(sql, args, "listing workspace operations"),
                                             operations_table);
    });
}

}  // namespace berth

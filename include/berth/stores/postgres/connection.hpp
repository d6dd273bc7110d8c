#pragma once
// berth::detail::postgres — a thin RAII layer over libpq for postgres_store: one connection with
// its prepared statements, every batch of statements sent in pipeline mode (one round trip, one
// implicit transaction up to the Sync), results owned by RAII, and the mapping of SQLSTATEs to
// berth::store_error. Not a public API.

#include <berth/error.hpp>

#include <libpq-fe.h>  // PQ*, PGconn, PGresult

#include <chrono>         // std::chrono::milliseconds
#include <cstddef>        // std::size_t
#include <cstring>        // std::strncmp
#include <memory>         // std::unique_ptr
#include <optional>       // std::optional
#include <span>           // std::span
#include <string>         // std::string
#include <string_view>    // std::string_view
#include <unordered_map>  // std::unordered_map
#include <utility>        // std::move
#include <vector>         // std::vector

namespace berth::detail::postgres {

/// A statement's parameters in text form; nullopt is SQL NULL.
using params = std::vector<std::optional<std::string>>;

/// One statement of a batch: its text (owned by the store's statement table, so it outlives the
/// batch) and its parameters.
struct query {
    std::string const* sql;
    params args;
};

/// What failed, beyond the message: the SQLSTATE and constraint let the store name the rule that
/// refused a write; `lost` says the connection is gone, so whether a write committed is unknown.
class failure : public store_error {
public:
    failure(store_errc code, std::string const& message, std::string sqlstate, std::string constraint, bool lost)
        : store_error(code, message), sqlstate_(std::move(sqlstate)), constraint_(std::move(constraint)), lost_(lost) {}
    [[nodiscard]] std::string const& sqlstate() const noexcept { return sqlstate_; }
    [[nodiscard]] std::string const& constraint() const noexcept { return constraint_; }
    /// The connection broke (server stopped or restarted, backend terminated, network).
    [[nodiscard]] bool lost() const noexcept { return lost_; }
    /// The server rolled the transaction back for a reason a second try may not meet
    /// (serialization failure, deadlock), or the connection broke.
    [[nodiscard]] bool retryable() const noexcept {
        return lost_ || sqlstate_ == "40001" || sqlstate_ == "40P01";
    }

private:
    std::string sqlstate_;
    std::string constraint_;
    bool lost_;
};

/// The store_errc a SQLSTATE stands for.
[[nodiscard]] inline store_errc errc_of(std::string_view sqlstate) noexcept {
    if (sqlstate == "23505") return store_errc::conflict;      // unique_violation
    if (sqlstate == "23503") return store_errc::not_found;     // foreign_key_violation
    if (sqlstate == "23502" || sqlstate == "23514") return store_errc::invalid_argument;  // not null, check
    if (sqlstate.starts_with("22")) return store_errc::invalid_argument;  // data exception (bad text for a type)
    return store_errc::backend_failure;
}

/// True for the SQLSTATEs of a connection that is gone: class 08 and the admin shutdowns.
[[nodiscard]] inline bool is_lost(std::string_view sqlstate) noexcept {
    return sqlstate.starts_with("08") || sqlstate == "57P01" || sqlstate == "57P02" || sqlstate == "57P03";
}

struct result_deleter {
    void operator()(PGresult* r) const noexcept { PQclear(r); }
};

/// The rows of one statement, read in text form.
class result {
public:
    result() = default;
    explicit result(PGresult* r) noexcept : r_(r) {}
    [[nodiscard]] int rows() const noexcept { return r_ ? PQntuples(r_.get()) : 0; }
    [[nodiscard]] int columns() const noexcept { return r_ ? PQnfields(r_.get()) : 0; }
    [[nodiscard]] bool is_null(int row, int col) const noexcept { return PQgetisnull(r_.get(), row, col) != 0; }
    [[nodiscard]] std::string_view text(int row, int col) const noexcept {
        return {PQgetvalue(r_.get(), row, col), static_cast<std::size_t>(PQgetlength(r_.get(), row, col))};
    }
    /// Rows an INSERT / UPDATE / DELETE touched.
    [[nodiscard]] long affected() const noexcept {
        char const* n = r_ ? PQcmdTuples(r_.get()) : "";
        return *n ? std::strtol(n, nullptr, 10) : 0;
    }
    [[nodiscard]] PGresult* get() const noexcept { return r_.get(); }

private:
    std::unique_ptr<PGresult, result_deleter> r_;
};

/// Where a store connects, for messages: host, port and database, never the password.
[[nodiscard]] inline std::string describe_target(PGconn* c) {
    std::string s;
    char const* host = PQhost(c);
    char const* port = PQport(c);
    char const* db = PQdb(c);
    (s += "host=") += host ? host : "?";
    (s += " port=") += port ? port : "?";
    (s += " dbname=") += db ? db : "?";
    return s;
}

/// One libpq connection: its prepared statements and, once the first batch ran, pipeline mode.
/// Used by one thread at a time (the store's pool sees to that).
class connection {
public:
    /// Connects and sets the session up (UTC timestamps in ISO form, the statement timeout).
    /// @throws failure backend_failure (lost) naming the server, never the password.
    connection(std::string const& conninfo, std::chrono::milliseconds statement_timeout,
               std::chrono::milliseconds connect_timeout) {
        // Keywords after the user's string override it: timeouts are the store's options.
        auto const timeout_s = std::to_string(std::max<long long>(1, (connect_timeout.count() + 999) / 1000));
        char const* keys[] = {"dbname", "connect_timeout", "application_name", nullptr};
        char const* values[] = {conninfo.c_str(), timeout_s.c_str(), "berth", nullptr};
        conn_.reset(PQconnectdbParams(keys, values, 1));
        if (!conn_ || PQstatus(conn_.get()) != CONNECTION_OK) {
            std::string msg = "PostgreSQL store: cannot connect";
            if (conn_) {
                msg += " to " + describe_target(conn_.get());
                msg += ": ";
                msg += trimmed(PQerrorMessage(conn_.get()));
            }
            throw failure(store_errc::backend_failure, msg, "08001", {}, true);
        }
        // client_min_messages: PostgreSQL truncates identifiers to 63 bytes and says so in a NOTICE
        // (upstream's longest index name is 65); libpq would print each one on stderr.
        std::string setup = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET client_min_messages = warning; "
                            "SET statement_timeout = " + std::to_string(statement_timeout.count());
        simple(setup, "setting the session up");
    }

    [[nodiscard]] PGconn* handle() const noexcept { return conn_.get(); }
    [[nodiscard]] bool healthy() const noexcept {
        return PQstatus(conn_.get()) == CONNECTION_OK && PQtransactionStatus(conn_.get()) == PQTRANS_IDLE;
    }
    [[nodiscard]] std::size_t prepared_count() const noexcept { return prepared_.size(); }
    /// The server process of this connection (for pg_terminate_backend in tests).
    [[nodiscard]] int backend_pid() const noexcept { return PQbackendPID(conn_.get()); }

    /// Runs `sql` with the simple query protocol (several statements allowed, no parameters):
    /// migrations and session setup. Leaves pipeline mode first.
    void simple(std::string const& sql, std::string_view doing) {
        if (PQpipelineStatus(conn_.get()) != PQ_PIPELINE_OFF) PQexitPipelineMode(conn_.get());
        // PQexec returns the last statement's result; an earlier failure stops the string there.
        result r(PQexec(conn_.get(), sql.c_str()));
        auto const st = r.get() ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) throw error_of(r.get(), doing);
    }

    /// Runs `sql` (simple protocol) and returns its rows.
    result simple_query(std::string const& sql, std::string_view doing) {
        if (PQpipelineStatus(conn_.get()) != PQ_PIPELINE_OFF) PQexitPipelineMode(conn_.get());
        result r(PQexec(conn_.get(), sql.c_str()));
        auto const st = r.get() ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) throw error_of(r.get(), doing);
        return r;
    }

    /// Sends every statement of `batch` and one Sync, then reads every result: one round trip,
    /// and one implicit transaction (the server commits at the Sync, or rolls everything back at
    /// the first error and skips the rest). A statement is prepared the first time this
    /// connection sends it, inside the same batch.
    /// @throws failure for the first statement that failed (the whole batch was rolled back).
    std::vector<result> run(std::span<query const> batch, std::string_view doing) {
        PGconn* c = conn_.get();
        if (PQstatus(c) != CONNECTION_OK) throw lost_error(doing);
        if (PQpipelineStatus(c) == PQ_PIPELINE_OFF && PQenterPipelineMode(c) != 1) throw lost_error(doing);
        struct sent {
            bool is_prepare;
            std::string const* sql;
            std::string name;
        };
        std::vector<sent> order;
        order.reserve(batch.size() * 2);
        std::vector<char const*> values;
        for (auto const& q : batch) {
            auto it = prepared_.find(*q.sql);
            std::string name;
            if (it == prepared_.end()) {
                name = "b" + std::to_string(next_name_++);
                if (PQsendPrepare(c, name.c_str(), q.sql->c_str(), 0, nullptr) != 1) throw lost_error(doing);
                order.push_back({true, q.sql, name});
            } else {
                name = it->second;
            }
            values.clear();
            for (auto const& a : q.args) values.push_back(a ? a->c_str() : nullptr);
            if (PQsendQueryPrepared(c, name.c_str(), static_cast<int>(values.size()), values.data(), nullptr,
                                    nullptr, 0) != 1)
                throw lost_error(doing);
            order.push_back({false, q.sql, name});
        }
        if (PQpipelineSync(c) != 1) throw lost_error(doing);

        std::vector<result> out;
        out.reserve(batch.size());
        std::optional<failure> first;
        for (auto const& s : order) {
            // Each command yields its result(s), then a null.
            result r(PQgetResult(c));
            if (!r.get()) {
                if (PQstatus(c) != CONNECTION_OK) throw lost_error(doing);
                continue;
            }
            auto const st = PQresultStatus(r.get());
            if (st == PGRES_FATAL_ERROR) {
                if (!first) first = error_of(r.get(), doing);
            } else if (st == PGRES_PIPELINE_ABORTED) {
                // skipped after an earlier error
            } else if (s.is_prepare) {
                prepared_.emplace(*s.sql, s.name);
            }
            if (!s.is_prepare) out.push_back(std::move(r));
            while (PQstatus(c) == CONNECTION_OK) {
                PGresult* extra = PQgetResult(c);
                if (!extra) break;
                PQclear(extra);
            }
            if (PQstatus(c) != CONNECTION_OK) throw first ? *first : lost_error(doing);
        }
        // The Sync's own result.
        for (int nulls = 0;;) {
            result r(PQgetResult(c));
            if (!r.get()) {
                if (PQstatus(c) != CONNECTION_OK || ++nulls > 2) throw first ? *first : lost_error(doing);
                continue;
            }
            auto const st = PQresultStatus(r.get());
            if (st == PGRES_PIPELINE_SYNC) break;
            if (st == PGRES_FATAL_ERROR && !first) first = error_of(r.get(), doing);
            if (PQstatus(c) != CONNECTION_OK) throw first ? *first : lost_error(doing);
        }
        if (first) throw *first;
        return out;
    }

    /// One statement, one round trip.
    result run_one(std::string const& sql, params args, std::string_view doing) {
        query const q{&sql, std::move(args)};
        auto r = run(std::span<query const>(&q, 1), doing);
        return std::move(r.front());
    }

private:
    static std::string trimmed(char const* s) {
        std::string out = s ? s : "";
        while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
        return out;
    }

    failure lost_error(std::string_view doing) const {
        std::string msg = "PostgreSQL store: lost the connection to " + describe_target(conn_.get()) + " while ";
        msg += doing;
        msg += ": " + trimmed(PQerrorMessage(conn_.get()));
        return failure(store_errc::backend_failure, msg, "08006", {}, true);
    }

    failure error_of(PGresult* r, std::string_view doing) const {
        if (!r) return lost_error(doing);
        char const* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        char const* constraint = PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME);
        std::string const sqlstate = state ? state : "";
        bool const lost = is_lost(sqlstate) || PQstatus(conn_.get()) != CONNECTION_OK;
        std::string msg = "PostgreSQL store: ";
        msg += doing;
        msg += ": ";
        msg += trimmed(PQresultErrorMessage(r));
        if (sqlstate == "57014") msg += " (the statement ran past the store's statement_timeout; nothing was changed)";
        if (lost) msg += " (the connection to " + describe_target(conn_.get()) + " is lost)";
        return failure(lost ? store_errc::backend_failure : errc_of(sqlstate), msg, sqlstate,
                       constraint ? constraint : "", lost);
    }

    struct conn_deleter {
        void operator()(PGconn* c) const noexcept { PQfinish(c); }
    };
    std::unique_ptr<PGconn, conn_deleter> conn_;
    std::unordered_map<std::string, std::string> prepared_;
    unsigned long next_name_ = 0;
};

}  // namespace berth::detail::postgres

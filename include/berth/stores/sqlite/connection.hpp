#pragma once
// berth::detail::sqlite — a thin RAII layer over the SQLite C API for sqlite_store: one connection
// with its cache of prepared statements, statement scopes that reset on exit, a write transaction
// guard, and the mapping of SQLite result codes to berth::store_error. Not a public API.

#include <berth/error.hpp>

#include <sqlite3.h>  // sqlite3_*, SQLITE_*

#include <algorithm>      // std::min
#include <chrono>         // std::chrono::milliseconds, steady_clock
#include <random>         // std::minstd_rand (backoff jitter)
#include <thread>         // std::this_thread::sleep_for
#include <cstddef>        // std::size_t
#include <cstdint>        // std::int64_t, std::uint64_t
#include <functional>     // std::equal_to
#include <memory>         // std::unique_ptr
#include <string>         // std::string
#include <string_view>    // std::string_view
#include <unordered_map>  // std::unordered_map
#include <utility>        // std::exchange

namespace berth::detail::sqlite {

/// The store_errc a SQLite (extended) result code stands for.
[[nodiscard]] inline store_errc errc_of(int rc) noexcept {
    switch (rc) {
        case SQLITE_CONSTRAINT_UNIQUE:
        case SQLITE_CONSTRAINT_PRIMARYKEY: return store_errc::conflict;
        case SQLITE_CONSTRAINT_FOREIGNKEY: return store_errc::not_found;
        case SQLITE_CONSTRAINT_NOTNULL:
        case SQLITE_CONSTRAINT_CHECK: return store_errc::invalid_argument;
        default: return store_errc::backend_failure;
    }
}

/// The error for a failed call on `db`: what berth was doing, SQLite's message, and for a busy
/// database how long berth waited.
[[nodiscard]] inline store_error error_of(sqlite3* db, int rc, std::string_view doing) {
    std::string msg = "SQLite store: ";
    msg += doing;
    msg += ": ";
    msg += db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
        msg += " (another connection or process held the database past the busy timeout)";
    return store_error(errc_of(rc), msg);
}

/// Transparent hashing so that the statement cache is searched by string_view without allocating.
struct string_hash {
    using is_transparent = void;
    [[nodiscard]] std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

/// Resets a prepared statement and clears its bindings when the scope ends, so that a cached
/// statement never keeps a read transaction open or a stale binding.
class statement_scope {
public:
    explicit statement_scope(sqlite3_stmt* s) noexcept : stmt_(s) {}
    statement_scope(statement_scope const&) = delete;
    statement_scope& operator=(statement_scope const&) = delete;
    ~statement_scope() {
        sqlite3_reset(stmt_);
        sqlite3_clear_bindings(stmt_);
    }
    [[nodiscard]] sqlite3_stmt* get() const noexcept { return stmt_; }

    /// Advances the statement. True when a row is available, false when it is done.
    /// @throws store_error mapped from the result code, naming `doing`.
    bool step(std::string_view doing) {
        int const rc = sqlite3_step(stmt_);
        if (rc == SQLITE_ROW) return true;
        if (rc == SQLITE_DONE) return false;
        throw error_of(sqlite3_db_handle(stmt_), rc, doing);  // extended codes are on: rc is one
    }

private:
    sqlite3_stmt* stmt_;
};

/// berth's busy handler: retries a locked database after a short sleep that starts at 50 µs and
/// doubles up to 2 ms (each with random jitter), until `timeout` has passed since the first retry.
///
/// Why not sqlite3_busy_timeout: SQLite's own handler sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50,
/// 50, 100 ms in turn. A write lock is held for a transaction's ~100 µs, so a writer that met it
/// once then slept for tens of milliseconds while other processes took the lock again and again:
/// the pair's p99 under 8 processes was 90 ms and its worst 2.3 s (issue 22). With sleeps of the
/// order of a transaction, a waiter looks again about as often as the lock changes hands.
class busy_backoff {
public:
    explicit busy_backoff(std::chrono::milliseconds timeout) noexcept : timeout_(timeout) {}

    /// sqlite3_busy_handler's callback: nonzero to retry, 0 to give up (SQLITE_BUSY).
    static int on_busy(void* self, int attempt) noexcept {
        return static_cast<busy_backoff*>(self)->wait(attempt) ? 1 : 0;
    }

private:
    bool wait(int attempt) noexcept {
        using namespace std::chrono;
        auto const now = steady_clock::now();
        if (attempt == 0) started_ = now;  // a new wait: SQLite counts attempts per busy event
        else if (now - started_ >= timeout_) return false;
        auto const base = microseconds(50L << std::min(attempt, 5));  // 50 µs .. 1.6 ms
        auto const cap = std::min<microseconds>(base, microseconds(2000));
        // Jitter: processes that met the lock together do not retry together.
        std::uniform_int_distribution<long> jitter(cap.count() / 2, cap.count());
        auto const sleep = microseconds(jitter(rng_));
        auto const left = duration_cast<microseconds>(timeout_ - (now - started_));
        std::this_thread::sleep_for(std::min(sleep, std::max(left, microseconds(1))));
        return true;
    }

    std::chrono::microseconds timeout_;
    std::chrono::steady_clock::time_point started_{};
    // Seeded by address and time, which differ between the processes and connections that wait.
    std::minstd_rand rng_{static_cast<std::minstd_rand::result_type>(
        reinterpret_cast<std::uintptr_t>(this) ^
        static_cast<std::uintptr_t>(std::chrono::steady_clock::now().time_since_epoch().count()))};
};

/// One SQLite connection and its prepared statements. Used by one thread at a time (the store's
/// pool and write mutex see to that), so it is opened with SQLITE_OPEN_NOMUTEX.
class connection {
public:
    /// Opens (creating when `create`) the database at `path`, through the VFS named `vfs`
    /// (nullptr: the default one).
    /// @throws store_error backend_failure when SQLite cannot open it.
    connection(std::string const& path, bool create, std::chrono::milliseconds busy_timeout,
               char const* vfs = nullptr) {
        int const flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX;
        sqlite3* db = nullptr;
        int const rc = sqlite3_open_v2(path.c_str(), &db, flags, vfs);
        db_.reset(db);  // sqlite3_open_v2 may return a handle even on failure; it must be closed
        if (rc != SQLITE_OK) throw error_of(db, rc, "cannot open database \"" + path + "\"");
        sqlite3_extended_result_codes(db, 1);
        busy_ = std::make_unique<busy_backoff>(busy_timeout);
        sqlite3_busy_handler(db, &busy_backoff::on_busy, busy_.get());
    }

    connection(connection const&) = delete;
    connection& operator=(connection const&) = delete;

    ~connection() {
        for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
    }

    [[nodiscard]] sqlite3* handle() const noexcept { return db_.get(); }

    /// The cached prepared statement for `sql`, preparing it on first use.
    /// @throws store_error backend_failure when the SQL does not compile (a berth bug or a schema
    ///         that is not berth's).
    [[nodiscard]] statement_scope statement(std::string_view sql) { return statement_scope(prepared(sql)); }

    /// The cached prepared statement for `sql` itself; wrap it in a statement_scope to run it.
    [[nodiscard]] sqlite3_stmt* prepared(std::string_view sql) {
        auto it = cache_.find(sql);
        if (it == cache_.end()) {
            sqlite3_stmt* stmt = nullptr;
            int const rc = sqlite3_prepare_v3(db_.get(), sql.data(), static_cast<int>(sql.size()),
                                              SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
            if (rc != SQLITE_OK) throw error_of(db_.get(), rc, "cannot prepare \"" + std::string(sql) + "\"");
            it = cache_.emplace(std::string(sql), stmt).first;
        }
        return it->second;
    }

    /// Statements in this connection's cache.
    [[nodiscard]] std::size_t cached_statements() const noexcept { return cache_.size(); }

    /// Times SQLite recompiled one of the cached statements since it was prepared.
    [[nodiscard]] std::uint64_t recompilations() const noexcept { return cached_status(SQLITE_STMTSTATUS_REPREPARE); }

    /// Rows the cached statements stepped over in full scans of a table or index, since each was
    /// prepared: a lookup that should use an index and does not shows up here.
    [[nodiscard]] std::uint64_t full_scan_steps() const noexcept {
        return cached_status(SQLITE_STMTSTATUS_FULLSCAN_STEP);
    }

    /// Virtual-machine steps the cached statements ran since each was prepared: grows with the
    /// rows a statement visits, index range scans included (which full_scan_steps does not count).
    [[nodiscard]] std::uint64_t vm_steps() const noexcept { return cached_status(SQLITE_STMTSTATUS_VM_STEP); }

    /// Runs SQL without caching it (pragmas, DDL, transaction control on rare paths).
    /// @throws store_error mapped from the result code.
    void exec(std::string const& sql, std::string_view doing) {
        char* err = nullptr;
        int const rc = sqlite3_exec(db_.get(), sql.c_str(), nullptr, nullptr, &err);
        std::unique_ptr<char, decltype(&sqlite3_free)> guard(err, &sqlite3_free);
        if (rc != SQLITE_OK) throw error_of(db_.get(), sqlite3_extended_errcode(db_.get()), doing);
    }

    /// The single integer (or text) a pragma query returns.
    [[nodiscard]] std::int64_t pragma_int(std::string const& pragma) {
        auto st = statement("PRAGMA " + pragma);
        if (!st.step("reading PRAGMA " + pragma)) return 0;
        auto const v = sqlite3_column_int64(st.get(), 0);
        while (st.step("reading PRAGMA " + pragma)) {
        }
        return v;
    }
    [[nodiscard]] std::string pragma_text(std::string const& pragma) {
        auto st = statement("PRAGMA " + pragma);
        std::string v;
        if (st.step("reading PRAGMA " + pragma)) {
            if (auto const* t = sqlite3_column_text(st.get(), 0)) v = reinterpret_cast<char const*>(t);
            while (st.step("reading PRAGMA " + pragma)) {
            }
        }
        return v;
    }

private:
    /// sqlite3_stmt_status counter `op`, summed over the cached statements.
    [[nodiscard]] std::uint64_t cached_status(int op) const noexcept {
        std::uint64_t n = 0;
        for (auto const& [sql, stmt] : cache_) n += static_cast<std::uint64_t>(sqlite3_stmt_status(stmt, op, 0));
        return n;
    }

    struct closer {
        void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
    };
    // Declared before db_, so destroyed after it: the handler must outlive the connection.
    std::unique_ptr<busy_backoff> busy_;
    std::unique_ptr<sqlite3, closer> db_;
    std::unordered_map<std::string, sqlite3_stmt*, string_hash, std::equal_to<>> cache_;
};

/// A write transaction: `BEGIN IMMEDIATE` takes SQLite's write lock at once, so a read-modify-write
/// (capacity count, epoch compare-and-set) cannot interleave with another process's. Rolls back
/// unless commit() ran, so every failure leaves the database unchanged.
class write_transaction {
public:
    /// @throws store_error backend_failure when the lock is not obtained within the busy timeout.
    explicit write_transaction(connection& c) : conn_(&c) {
        auto st = conn_->statement("BEGIN IMMEDIATE");
        st.step("beginning a write transaction");
    }
    write_transaction(write_transaction const&) = delete;
    write_transaction& operator=(write_transaction const&) = delete;
    ~write_transaction() {
        if (conn_) rollback();
    }

    /// @throws store_error when the commit fails; the transaction is then rolled back.
    void commit() {
        auto* c = std::exchange(conn_, nullptr);
        try {
            auto st = c->statement("COMMIT");
            st.step("committing");
        } catch (...) {
            conn_ = c;
            throw;
        }
    }

private:
    void rollback() noexcept {
        // ROLLBACK fails only when no transaction is open (SQLite already rolled back on an I/O
        // error); either way the database holds no part of this transaction.
        if (sqlite3_get_autocommit(conn_->handle()) == 0)
            sqlite3_exec(conn_->handle(), "ROLLBACK", nullptr, nullptr, nullptr);
    }
    connection* conn_;
};

}  // namespace berth::detail::sqlite

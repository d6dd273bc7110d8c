#pragma once
// Row <-> record mapping for sqlite_store, derived from the records' Boost.Describe descriptions:
// a record's columns are its described members, in order, and each member is bound and read by
// its type (string, optional, described enum (strict), timestamp, JSON object, integer). No
// record has per-column code. Not a public API.

#include <berth/error.hpp>
#include <berth/model/enum_string.hpp>  // described_enum, to_string, try_parse_enum, enum_label
#include <berth/model/record.hpp>       // record, record_members, json_object
#include <berth/model/time.hpp>         // timestamp, to_iso8601, parse_iso8601
#include <berth/stores/sqlite/connection.hpp>

#include <boost/json/parse.hpp>      // boost::json::parse (JSON columns)
#include <boost/json/serialize.hpp>  // boost::json::serialize (JSON columns)
#include <boost/mp11/algorithm.hpp>  // mp_for_each

#include <sqlite3.h>  // sqlite3_bind_*, sqlite3_column_*

#include <cstdint>      // std::int64_t, std::uint64_t
#include <limits>       // std::numeric_limits
#include <optional>     // std::optional
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <type_traits>  // std::is_same_v, std::is_integral_v
#include <utility>      // std::in_range, std::move

namespace berth::detail::sqlite {

template <class T> struct is_optional : std::false_type {};
template <class T> struct is_optional<std::optional<T>> : std::true_type {};

/// Where a row comes from, for error messages: `environment_leases` and the noun `lease`.
struct table_ref {
    std::string_view table;
    std::string_view noun;
};

// ---- binding --------------------------------------------------------------------------------

inline void check_bind(sqlite3_stmt* s, int rc) {
    if (rc != SQLITE_OK) throw error_of(sqlite3_db_handle(s), rc, "binding a parameter");
}

/// Binds text that outlives the statement's execution (the caller's argument or record member).
inline void bind_text(sqlite3_stmt* s, int i, std::string_view v) {
    check_bind(s, sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC));
}
inline void bind_null(sqlite3_stmt* s, int i) { check_bind(s, sqlite3_bind_null(s, i)); }
inline void bind_int(sqlite3_stmt* s, int i, std::int64_t v) { check_bind(s, sqlite3_bind_int64(s, i, v)); }

/// An enum value as an SQL string literal, for a filter written into a statement's text instead of
/// bound. Why: to decide whether a partial index applies (`WHERE driver = 'local'`, `WHERE status =
/// 'active' AND ...`), SQLite's planner reads the value bound to a `column = ?N` term on the same
/// column, and then recompiles the statement whenever that parameter is bound again: on every call.
/// An enum has a handful of values, so the statement cache holds one statement per value instead.
template <described_enum E>
[[nodiscard]] std::string sql_literal(E v) {
    std::string out = "'";
    for (char const ch : std::string_view(to_string(v))) {
        out += ch;
        if (ch == '\'') out += '\'';  // SQL doubles a quote inside a literal
    }
    return out += '\'';
}

/// Binds a value of any type a record member may have. Strings are bound without copying, so the
/// value must stay alive until the statement has run (callers bind lvalues they hold).
template <class T>
void bind_value(sqlite3_stmt* s, int i, T const& v) {
    if constexpr (is_optional<T>::value) {
        if (v) bind_value(s, i, *v);
        else bind_null(s, i);
    } else if constexpr (std::is_same_v<T, std::string>) {
        bind_text(s, i, v);
    } else if constexpr (described_enum<T>) {
        bind_text(s, i, to_string(v));  // a static string
    } else if constexpr (std::is_same_v<T, timestamp>) {
        auto const text = to_iso8601(v);
        check_bind(s, sqlite3_bind_text(s, i, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT));
    } else if constexpr (std::is_same_v<T, json_object>) {
        auto const text = boost::json::serialize(v);
        check_bind(s, sqlite3_bind_text(s, i, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT));
    } else if constexpr (std::is_same_v<T, bool>) {
        bind_int(s, i, v ? 1 : 0);
    } else if constexpr (std::is_integral_v<T>) {
        if constexpr (std::is_unsigned_v<T> && sizeof(T) >= sizeof(std::int64_t)) {
            if (v > static_cast<T>(std::numeric_limits<std::int64_t>::max()))
                throw store_error(store_errc::invalid_argument,
                                  "SQLite store: integer " + std::to_string(v) + " does not fit in a column");
        }
        bind_int(s, i, static_cast<std::int64_t>(v));
    } else {
        static_assert(sizeof(T) == 0, "sqlite_store: no column mapping for this member type");
    }
}

/// Binds every described member of `r` to parameters first, first + 1, ...
template <record R>
void bind_record(sqlite3_stmt* s, R const& r, int first = 1) {
    int i = first;
    boost::mp11::mp_for_each<record_members<R>>([&](auto D) { bind_value(s, i++, r.*D.pointer); });
}

// ---- reading --------------------------------------------------------------------------------

/// The column being read, for error messages.
struct column_ref {
    table_ref const& from;
    std::string_view column;
    sqlite3_stmt* stmt;
};

/// `environment_leases.status: <what> (lease <id>)`, with the row's id read from column 0.
[[nodiscard]] inline store_error corrupt(column_ref const& c, std::string_view what) {
    auto const* id = sqlite3_column_text(c.stmt, 0);
    std::string msg;
    ((((msg += c.from.table) += '.') += c.column) += ": ") += what;
    ((((msg += " (") += c.from.noun) += ' ') += id ? reinterpret_cast<char const*>(id) : "(no id)") += ')';
    return store_error(store_errc::corrupt_row, msg);
}

[[nodiscard]] inline std::string_view column_text(sqlite3_stmt* s, int i) {
    auto const* p = reinterpret_cast<char const*>(sqlite3_column_text(s, i));
    return p ? std::string_view(p, static_cast<std::size_t>(sqlite3_column_bytes(s, i))) : std::string_view();
}

/// Reads column `i` into `out` by the member's type.
/// @throws store_error corrupt_row naming table, column, value and row when the value is not one
///         the member accepts (an unknown enum string, text that is not a timestamp, bad JSON, ...).
template <class T>
void read_value(sqlite3_stmt* s, int i, T& out, column_ref const& c) {
    bool const is_null = sqlite3_column_type(s, i) == SQLITE_NULL;
    if constexpr (is_optional<T>::value) {
        if (is_null) {
            out.reset();
        } else {
            typename T::value_type v{};
            read_value(s, i, v, c);
            out = std::move(v);
        }
    } else if constexpr (std::is_same_v<T, json_object>) {
        // A NULL document reads as {} (upstream's toEnvironment does the same for config).
        if (is_null) {
            out = {};
            return;
        }
        auto const text = column_text(s, i);
        boost::system::error_code ec;
        auto v = boost::json::parse(text, ec);
        if (ec)
            throw corrupt(c, "Unexpected JSON value: " + std::string(text.substr(0, 200)) + " (" + ec.message() + ")");
        if (!v.is_object())
            throw corrupt(c, "Unexpected JSON value: " + std::string(text.substr(0, 200)) + " (expected an object)");
        out = std::move(v.get_object());
    } else {
        if (is_null) throw corrupt(c, "Unexpected NULL value");
        if constexpr (std::is_same_v<T, std::string>) {
            out = std::string(column_text(s, i));
        } else if constexpr (described_enum<T>) {
            auto const text = column_text(s, i);
            if (auto e = try_parse_enum<T>(text)) out = *e;
            else throw corrupt(c, parse_error(enum_label<T>, std::string(text)).what());
        } else if constexpr (std::is_same_v<T, timestamp>) {
            try {
                out = parse_iso8601(column_text(s, i), c.column);
            } catch (parse_error const& e) {
                throw corrupt(c, e.what());
            }
        } else if constexpr (std::is_same_v<T, bool>) {
            if (sqlite3_column_type(s, i) != SQLITE_INTEGER)
                throw corrupt(c, "Unexpected non-integer value: " + std::string(column_text(s, i)));
            auto const v = sqlite3_column_int64(s, i);
            if (v != 0 && v != 1) throw corrupt(c, "Unexpected boolean value: " + std::to_string(v));
            out = v == 1;
        } else if constexpr (std::is_integral_v<T>) {
            if (sqlite3_column_type(s, i) != SQLITE_INTEGER)
                throw corrupt(c, "Unexpected non-integer value: " + std::string(column_text(s, i)));
            auto const v = sqlite3_column_int64(s, i);
            if (!std::in_range<T>(v)) throw corrupt(c, "Unexpected out-of-range value: " + std::to_string(v));
            out = static_cast<T>(v);
        } else {
            static_assert(sizeof(T) == 0, "sqlite_store: no column mapping for this member type");
        }
    }
}

/// Reads a whole record from the current row, whose columns are the record's members in order
/// (as `column_list<R>()` selects them).
/// @throws store_error corrupt_row (see read_value).
template <record R>
[[nodiscard]] R read_record(sqlite3_stmt* s, table_ref const& from) {
    R r{};
    int i = 0;
    boost::mp11::mp_for_each<record_members<R>>([&](auto D) {
        read_value(s, i, r.*D.pointer, column_ref{from, D.name, s});
        ++i;
    });
    return r;
}

/// `id, company_id, ...`: the record's members as a column list.
template <record R>
[[nodiscard]] std::string column_list() {
    std::string out;
    boost::mp11::mp_for_each<record_members<R>>([&](auto D) {
        if (!out.empty()) out += ", ";
        out += D.name;
    });
    return out;
}

/// `?1, ?2, ...` for the record's members, starting at `first`.
template <record R>
[[nodiscard]] std::string placeholder_list(int first = 1) {
    std::string out;
    int i = first;
    boost::mp11::mp_for_each<record_members<R>>([&](auto) {
        if (!out.empty()) out += ", ";
        (out += '?') += std::to_string(i++);
    });
    return out;
}

/// `company_id = ?2, name = ?3, ...`: every member but the first (the id) assigned from its
/// parameter, for an `UPDATE ... WHERE id = ?1`.
template <record R>
[[nodiscard]] std::string assignment_list() {
    std::string out;
    int i = 0;
    boost::mp11::mp_for_each<record_members<R>>([&](auto D) {
        ++i;
        if (i == 1) return;
        if (!out.empty()) out += ", ";
        ((out += D.name) += " = ?") += std::to_string(i);
    });
    return out;
}

}  // namespace berth::detail::sqlite

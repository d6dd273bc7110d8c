#pragma once
// Row <-> record mapping for postgres_store, derived from the records' Boost.Describe descriptions
// as sqlite_store's is: a record's columns are its described members, in order; each member is
// sent as a text parameter with an explicit cast to its column's type, and read back from the
// text form (timestamps in the session's UTC ISO style, jsonb as JSON text). Not a public API.

#include <berth/error.hpp>
#include <berth/model/enum_string.hpp>  // described_enum, to_string, try_parse_enum, enum_label
#include <berth/model/record.hpp>       // record, record_members, json_object
#include <berth/model/time.hpp>         // timestamp, to_iso8601, parse_iso8601
#include <berth/stores/postgres/connection.hpp>

#include <boost/json/parse.hpp>      // boost::json::parse (jsonb columns)
#include <boost/json/serialize.hpp>  // boost::json::serialize (jsonb columns)
#include <boost/mp11/algorithm.hpp>  // mp_for_each

#include <charconv>     // std::from_chars
#include <cstdint>      // std::int64_t, std::uint64_t
#include <optional>     // std::optional
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <type_traits>  // std::is_same_v, std::is_integral_v

namespace berth::detail::postgres {

template <class T> struct is_optional : std::false_type {};
template <class T> struct is_optional<std::optional<T>> : std::true_type {};

/// Where a row comes from, for error messages: `environment_leases` and the noun `lease`.
struct table_ref {
    std::string_view table;
    std::string_view noun;
};

/// The PostgreSQL type a member of type T is sent as (its column's type in postgres_dialect).
template <class T>
[[nodiscard]] constexpr std::string_view pg_type() {
    if constexpr (is_optional<T>::value) return pg_type<typename T::value_type>();
    else if constexpr (std::is_same_v<T, timestamp>) return "timestamptz";
    else if constexpr (std::is_same_v<T, json_object>) return "jsonb";
    else if constexpr (std::is_integral_v<T>) return "bigint";  // bool too: upstream booleans are 0/1 here
    else return "text";
}

/// A value in the text form PostgreSQL reads; nullopt for NULL.
template <class T>
[[nodiscard]] std::optional<std::string> to_param(T const& v) {
    if constexpr (is_optional<T>::value) {
        if (v) return to_param(*v);
        return std::nullopt;
    } else if constexpr (std::is_same_v<T, std::string>) {
        return v;
    } else if constexpr (described_enum<T>) {
        return std::string(to_string(v));
    } else if constexpr (std::is_same_v<T, timestamp>) {
        return to_iso8601(v);
    } else if constexpr (std::is_same_v<T, json_object>) {
        return boost::json::serialize(v);
    } else if constexpr (std::is_same_v<T, bool>) {
        return std::string(v ? "1" : "0");
    } else if constexpr (std::is_integral_v<T>) {
        if constexpr (std::is_unsigned_v<T> && sizeof(T) >= sizeof(std::int64_t)) {
            if (v > static_cast<T>(INT64_MAX))
                throw store_error(store_errc::invalid_argument,
                                  "PostgreSQL store: integer " + std::to_string(v) + " does not fit in a bigint column");
        }
        return std::to_string(v);
    } else {
        static_assert(sizeof(T) == 0, "postgres_store: no column mapping for this member type");
    }
}

/// Appends every described member of `r` to `out`, in order.
template <record R>
void append_record(params& out, R const& r) {
    boost::mp11::mp_for_each<record_members<R>>([&](auto D) { out.push_back(to_param(r.*D.pointer)); });
}

template <record R>
[[nodiscard]] params record_params(R const& r) {
    params out;
    append_record(out, r);
    return out;
}

/// `id, company_id, ...`: the record's members as a column list.
template <record R>
[[nodiscard]] std::string column_list(std::string_view prefix = {}) {
    std::string out;
    boost::mp11::mp_for_each<record_members<R>>([&](auto D) {
        if (!out.empty()) out += ", ";
        (out += prefix) += D.name;
    });
    return out;
}

/// `$1::text, $2::text, ...` for the record's members, starting at `first`.
template <record R>
[[nodiscard]] std::string placeholder_list(int first = 1) {
    std::string out;
    int i = first;
    boost::mp11::mp_for_each<record_members<R>>([&](auto D) {
        using M = std::remove_cvref_t<decltype(std::declval<R const&>().*D.pointer)>;
        if (!out.empty()) out += ", ";
        ((out += '$') += std::to_string(i++)) += "::";
        out += pg_type<M>();
    });
    return out;
}

/// `company_id = $2::text, ...`: every member but the first (the id), for `UPDATE ... WHERE id = $1`.
template <record R>
[[nodiscard]] std::string assignment_list() {
    std::string out;
    int i = 0;
    boost::mp11::mp_for_each<record_members<R>>([&](auto D) {
        using M = std::remove_cvref_t<decltype(std::declval<R const&>().*D.pointer)>;
        ++i;
        if (i == 1) return;
        if (!out.empty()) out += ", ";
        ((((out += D.name) += " = $") += std::to_string(i)) += "::") += pg_type<M>();
    });
    return out;
}

/// The number of described members of R.
template <record R>
[[nodiscard]] constexpr int member_count() {
    return static_cast<int>(boost::mp11::mp_size<record_members<R>>::value);
}

// ---- reading --------------------------------------------------------------------------------

/// `environment_leases.status: <what> (lease <id>)`, with the row's id read from column 0.
[[nodiscard]] inline store_error corrupt(table_ref const& from, std::string_view column, result const& r, int row,
                                         std::string_view what) {
    std::string msg;
    ((((msg += from.table) += '.') += column) += ": ") += what;
    ((((msg += " (") += from.noun) += ' ') += r.is_null(row, 0) ? std::string_view("(no id)") : r.text(row, 0)) += ')';
    return store_error(store_errc::corrupt_row, msg);
}

/// Reads column `col` of `row` into `out` by the member's type.
/// @throws store_error corrupt_row naming table, column, value and row.
template <class T>
void read_value(result const& r, int row, int col, T& out, table_ref const& from, std::string_view column) {
    bool const is_null = r.is_null(row, col);
    if constexpr (is_optional<T>::value) {
        if (is_null) {
            out.reset();
        } else {
            typename T::value_type v{};
            read_value(r, row, col, v, from, column);
            out = std::move(v);
        }
    } else if constexpr (std::is_same_v<T, json_object>) {
        if (is_null) {
            out = {};
            return;
        }
        auto const text = r.text(row, col);
        boost::system::error_code ec;
        auto v = boost::json::parse(text, ec);
        if (ec || !v.is_object())
            throw corrupt(from, column, r, row,
                          "Unexpected JSON value: " + std::string(text.substr(0, 200)) +
                              (ec ? " (" + ec.message() + ")" : std::string(" (expected an object)")));
        out = std::move(v.get_object());
    } else {
        if (is_null) throw corrupt(from, column, r, row, "Unexpected NULL value");
        auto const text = r.text(row, col);
        if constexpr (std::is_same_v<T, std::string>) {
            out = std::string(text);
        } else if constexpr (described_enum<T>) {
            if (auto e = try_parse_enum<T>(text)) out = *e;
            else throw corrupt(from, column, r, row, parse_error(enum_label<T>, std::string(text)).what());
        } else if constexpr (std::is_same_v<T, timestamp>) {
            try {
                out = parse_iso8601(text, column);
            } catch (parse_error const& e) {
                throw corrupt(from, column, r, row, e.what());
            }
        } else if constexpr (std::is_integral_v<T>) {
            std::int64_t v = 0;
            auto const [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
            if (ec != std::errc{} || p != text.data() + text.size())
                throw corrupt(from, column, r, row, "Unexpected non-integer value: " + std::string(text));
            if constexpr (std::is_same_v<T, bool>) {
                if (v != 0 && v != 1) throw corrupt(from, column, r, row, "Unexpected boolean value: " + std::string(text));
                out = v == 1;
            } else {
                if (!std::in_range<T>(v)) throw corrupt(from, column, r, row, "Unexpected out-of-range value: " + std::string(text));
                out = static_cast<T>(v);
            }
        } else {
            static_assert(sizeof(T) == 0, "postgres_store: no column mapping for this member type");
        }
    }
}

/// Reads a whole record from `row`, whose first columns are the record's members in order.
template <record R>
[[nodiscard]] R read_record(result const& r, int row, table_ref const& from) {
    R out{};
    int i = 0;
    boost::mp11::mp_for_each<record_members<R>>([&](auto D) {
        read_value(r, row, i, out.*D.pointer, from, D.name);
        ++i;
    });
    return out;
}

}  // namespace berth::detail::postgres

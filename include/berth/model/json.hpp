#pragma once
// Boost.JSON conversion for every berth record, derived from its Boost.Describe description.
//
// We do not use Boost 1.81's built-in described-class conversion because (a) it reports an
// unknown enum string as "unknown name" without naming the field or the value, and (b) it demands
// every key, even for optional members. Ours: absent optional members read as nullopt, unknown
// keys are ignored, and every failure is a berth::parse_error naming `record.field` and the value.
//
// Requires Boost.JSON's implementation in exactly one TU of the program: include <berth/src.hpp>.

#include <berth/error.hpp>
#include <berth/model/enum_string.hpp>
#include <berth/model/record.hpp>
#include <berth/model/time.hpp>

#include <boost/json/conversion.hpp>  // value_from_tag, value_to_tag
#include <boost/json/serialize.hpp>   // serialize (for error messages)
#include <boost/json/value.hpp>       // boost::json::value
#include <boost/json/value_from.hpp>  // value_from (so that callers of this header can use it)
#include <boost/json/value_to.hpp>    // value_to
#include <boost/mp11/algorithm.hpp>   // mp_for_each

#include <cstdint>      // std::int64_t, std::uint64_t
#include <limits>       // std::numeric_limits
#include <map>          // std::map
#include <optional>     // std::optional
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <type_traits>  // std::is_same_v
#include <vector>       // std::vector

namespace berth {

namespace detail {
template <class T> struct is_optional : std::false_type {};
template <class T> struct is_optional<std::optional<T>> : std::true_type {};
template <class T> struct is_vector : std::false_type {};
template <class T> struct is_vector<std::vector<T>> : std::true_type {};
template <class T> struct is_string_map : std::false_type {};
template <class T> struct is_string_map<std::map<std::string, T>> : std::true_type {};

inline std::string shown(boost::json::value const& v) {
    auto s = boost::json::serialize(v);
    if (s.size() > 200) s = s.substr(0, 200) + "...";
    return s;
}
}  // namespace detail

/// The JSON form of a value of any type a record may hold.
template <class T>
[[nodiscard]] boost::json::value to_json(T const& v) {
    if constexpr (record<T>) {
        boost::json::object o;
        boost::mp11::mp_for_each<record_members<T>>([&](auto D) { o[D.name] = to_json(v.*D.pointer); });
        return o;
    } else if constexpr (detail::is_optional<T>::value) {
        return v ? to_json(*v) : boost::json::value(nullptr);
    } else if constexpr (detail::is_vector<T>::value) {
        boost::json::array a;
        for (auto const& e : v) a.push_back(to_json(e));
        return a;
    } else if constexpr (detail::is_string_map<T>::value) {
        boost::json::object o;
        for (auto const& [k, e] : v) o[k] = to_json(e);
        return o;
    } else if constexpr (described_enum<T>) {
        return boost::json::value(to_string(v));
    } else if constexpr (std::is_same_v<T, timestamp>) {
        return boost::json::value(to_iso8601(v));
    } else if constexpr (std::is_same_v<T, std::string>) {
        return boost::json::value(v);
    } else if constexpr (std::is_same_v<T, json_object>) {
        return boost::json::value(v);
    } else if constexpr (std::is_same_v<T, boost::json::value>) {
        return v;
    } else if constexpr (std::is_same_v<T, bool>) {
        return boost::json::value(v);
    } else if constexpr (std::is_integral_v<T> || std::is_floating_point_v<T>) {
        return boost::json::value(v);
    } else {
        static_assert(sizeof(T) == 0, "berth::to_json: unsupported member type");
    }
}

/// Reads a T from JSON. `where` names the value in errors ("environment_lease.status").
/// @throws berth::parse_error naming `where` and the offending value.
template <class T>
[[nodiscard]] T from_json(boost::json::value const& v, std::string_view where = {}) {
    auto const field = std::string(where.empty() ? std::string_view("value") : where);
    if constexpr (record<T>) {
        auto const* o = v.if_object();
        if (!o) throw parse_error(field, detail::shown(v), "expected an object");
        T r{};
        std::string const prefix = where.empty() ? std::string(record_name<T>) : std::string(where);
        boost::mp11::mp_for_each<record_members<T>>([&](auto D) {
            using M = std::remove_cvref_t<decltype(r.*D.pointer)>;
            auto const path = prefix + "." + D.name;
            if (auto const* m = o->if_contains(D.name)) {
                r.*D.pointer = from_json<M>(*m, path);
            } else if constexpr (!detail::is_optional<M>::value) {
                throw parse_error(path, "(missing)", "the field is required");
            }
        });
        return r;
    } else if constexpr (detail::is_optional<T>::value) {
        if (v.is_null()) return std::nullopt;
        return from_json<typename T::value_type>(v, where);
    } else if constexpr (detail::is_vector<T>::value) {
        auto const* a = v.if_array();
        if (!a) throw parse_error(field, detail::shown(v), "expected an array");
        T r;
        r.reserve(a->size());
        for (std::size_t i = 0; i < a->size(); ++i)
            r.push_back(from_json<typename T::value_type>((*a)[i], field + "[" + std::to_string(i) + "]"));
        return r;
    } else if constexpr (detail::is_string_map<T>::value) {
        auto const* o = v.if_object();
        if (!o) throw parse_error(field, detail::shown(v), "expected an object");
        T r;
        for (auto const& kv : *o)
            r.emplace(std::string(kv.key()),
                      from_json<typename T::mapped_type>(kv.value(), field + "." + std::string(kv.key())));
        return r;
    } else if constexpr (described_enum<T>) {
        auto const* s = v.if_string();
        if (!s) throw parse_error(field, detail::shown(v), "expected a string");
        if (auto e = try_parse_enum<T>(std::string_view(*s))) return *e;
        throw parse_error(enum_label<T>, std::string(*s), "field " + field);
    } else if constexpr (std::is_same_v<T, timestamp>) {
        auto const* s = v.if_string();
        if (!s) throw parse_error(field, detail::shown(v), "expected an ISO-8601 UTC timestamp");
        return parse_iso8601(std::string_view(*s), field);
    } else if constexpr (std::is_same_v<T, std::string>) {
        auto const* s = v.if_string();
        if (!s) throw parse_error(field, detail::shown(v), "expected a string");
        return std::string(*s);
    } else if constexpr (std::is_same_v<T, json_object>) {
        auto const* o = v.if_object();
        if (!o) throw parse_error(field, detail::shown(v), "expected an object");
        return *o;
    } else if constexpr (std::is_same_v<T, boost::json::value>) {
        return v;
    } else if constexpr (std::is_same_v<T, bool>) {
        if (!v.is_bool()) throw parse_error(field, detail::shown(v), "expected true or false");
        return v.get_bool();
    } else if constexpr (std::is_integral_v<T>) {
        boost::system::error_code ec;
        auto const n = v.to_number<T>(ec);
        if (ec) throw parse_error(field, detail::shown(v), "expected an integer in range");
        return n;
    } else if constexpr (std::is_floating_point_v<T>) {
        boost::system::error_code ec;
        auto const n = v.to_number<T>(ec);
        if (ec) throw parse_error(field, detail::shown(v), "expected a number");
        return n;
    } else {
        static_assert(sizeof(T) == 0, "berth::from_json: unsupported member type");
    }
}

// Hooks so that boost::json::value_from / value_to use the conversions above (found by ADL).
template <record T>
void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, T const& r) {
    jv = to_json(r);
}
template <record T>
T tag_invoke(boost::json::value_to_tag<T>, boost::json::value const& jv) {
    return from_json<T>(jv);
}
inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, timestamp t) { jv = to_iso8601(t); }
inline timestamp tag_invoke(boost::json::value_to_tag<timestamp>, boost::json::value const& jv) {
    return from_json<timestamp>(jv);
}

}  // namespace berth

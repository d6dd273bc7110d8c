#pragma once
// fmt formatters for described enums, timestamps and records, derived from the descriptions.
// Records print as `environment_lease{id: "…", status: active, …}`; JSON members print compactly.
// Requires Boost.JSON's implementation in one TU (<berth/src.hpp>) because JSON members are serialised.

#include <berth/model/enum_string.hpp>
#include <berth/model/record.hpp>
#include <berth/model/time.hpp>

#include <boost/json/serialize.hpp>  // serialize
#include <boost/mp11/algorithm.hpp>  // mp_for_each

#include <fmt/format.h>  // fmt::formatter

#include <optional>     // std::optional
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <type_traits>  // std::enable_if_t

namespace berth::detail {
template <class T>
void format_member(fmt::memory_buffer& out, T const& v) {
    if constexpr (requires { v.has_value(); *v; }) {
        if (v) format_member(out, *v);
        else fmt::format_to(std::back_inserter(out), "null");
    } else if constexpr (described_enum<T>) {
        fmt::format_to(std::back_inserter(out), "{}", to_string(v));
    } else if constexpr (std::is_same_v<T, timestamp>) {
        fmt::format_to(std::back_inserter(out), "{}", to_iso8601(v));
    } else if constexpr (std::is_same_v<T, std::string>) {
        fmt::format_to(std::back_inserter(out), "\"{}\"", v);
    } else if constexpr (std::is_same_v<T, json_object>) {
        fmt::format_to(std::back_inserter(out), "{}", boost::json::serialize(v));
    } else {
        fmt::format_to(std::back_inserter(out), "{}", v);
    }
}
}  // namespace berth::detail

template <class E>
struct fmt::formatter<E, char, std::enable_if_t<berth::described_enum<E>>> : fmt::formatter<std::string_view> {
    template <class Ctx>
    auto format(E e, Ctx& ctx) const {
        return fmt::formatter<std::string_view>::format(berth::to_string(e), ctx);
    }
};

template <>
struct fmt::formatter<berth::timestamp> : fmt::formatter<std::string_view> {
    template <class Ctx>
    auto format(berth::timestamp t, Ctx& ctx) const {
        return fmt::formatter<std::string_view>::format(berth::to_iso8601(t), ctx);
    }
};

template <class R>
struct fmt::formatter<R, char, std::enable_if_t<berth::record<R>>> : fmt::formatter<std::string_view> {
    template <class Ctx>
    auto format(R const& r, Ctx& ctx) const {
        fmt::memory_buffer out;
        fmt::format_to(std::back_inserter(out), "{}{{", berth::record_name<R>);
        bool first = true;
        boost::mp11::mp_for_each<berth::record_members<R>>([&](auto D) {
            fmt::format_to(std::back_inserter(out), "{}{}: ", first ? "" : ", ", D.name);
            berth::detail::format_member(out, r.*D.pointer);
            first = false;
        });
        out.push_back('}');
        return fmt::formatter<std::string_view>::format(std::string_view(out.data(), out.size()), ctx);
    }
};

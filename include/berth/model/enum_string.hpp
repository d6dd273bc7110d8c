#pragma once
// Strict string <-> enum conversion for every Boost.Describe'd enum.
// Boost 1.81's enum_from_string takes only `char const*`, so the string_view form is ours.

#include <berth/error.hpp>

#include <boost/describe/enum.hpp>           // BOOST_DESCRIBE_ENUM
#include <boost/describe/enumerators.hpp>    // describe_enumerators
#include <boost/mp11/algorithm.hpp>          // mp_for_each

#include <optional>     // std::optional
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <type_traits>  // std::is_enum_v

namespace berth {

/// True for enums described with Boost.Describe.
template <class E>
concept described_enum = std::is_enum_v<E> && boost::describe::has_describe_enumerators<E>::value;

/// The human name of an enum used in parse errors ("environment lease status"); specialised per enum.
template <described_enum E>
inline constexpr char const* enum_label = "enum";

/// The enumerator's name; never fails for a described value, "(invalid)" for an undescribed one.
template <described_enum E>
[[nodiscard]] constexpr char const* to_string(E e) noexcept {
    char const* r = "(invalid)";
    boost::mp11::mp_for_each<boost::describe::describe_enumerators<E>>([&](auto D) {
        if (e == D.value) r = D.name;
    });
    return r;
}

/// The enumerator named `s`, or nullopt. Exact, case-sensitive match.
template <described_enum E>
[[nodiscard]] constexpr std::optional<E> try_parse_enum(std::string_view s) noexcept {
    std::optional<E> r;
    boost::mp11::mp_for_each<boost::describe::describe_enumerators<E>>([&](auto D) {
        if (!r && s == D.name) r = D.value;
    });
    return r;
}

/// The enumerator named `s`.
/// @throws berth::parse_error `Unexpected <enum_label<E>> value: <s>` when there is none.
template <described_enum E>
[[nodiscard]] E parse_enum(std::string_view s) {
    if (auto r = try_parse_enum<E>(s)) return *r;
    throw parse_error(enum_label<E>, std::string(s));
}

}  // namespace berth

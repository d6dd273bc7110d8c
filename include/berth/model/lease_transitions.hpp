#pragma once
// The lease status machine as a constexpr table. Every store consults it before writing a new
// status, so an illegal move is refused in one place for all backends.
//
//   active          -> released | expired | failed | retained | pending_cleanup
//   retained        -> active (resume) | released | expired | pending_cleanup
//   pending_cleanup -> expired | failed
//   released, expired, failed: terminal

#include <berth/model/enums.hpp>

#include <boost/mp11/algorithm.hpp>  // mp_size

#include <array>    // std::array
#include <cstddef>  // std::size_t

namespace berth {

namespace detail {
inline constexpr std::size_t lease_status_count = 6;
constexpr std::size_t index(lease_status s) noexcept { return static_cast<std::size_t>(s); }

// transitions[from][to]
inline constexpr std::array<std::array<bool, lease_status_count>, lease_status_count> lease_transitions = [] {
    std::array<std::array<bool, lease_status_count>, lease_status_count> t{};
    using enum lease_status;
    for (auto to : {released, expired, failed, retained, pending_cleanup}) t[index(active)][index(to)] = true;
    for (auto to : {active, released, expired, pending_cleanup}) t[index(retained)][index(to)] = true;
    for (auto to : {expired, failed}) t[index(pending_cleanup)][index(to)] = true;
    return t;
}();
}  // namespace detail

/// True when a lease may move from `from` to `to`.
[[nodiscard]] constexpr bool can_transition(lease_status from, lease_status to) noexcept {
    return detail::lease_transitions[detail::index(from)][detail::index(to)];
}

/// True when no transition leaves `s`.
[[nodiscard]] constexpr bool is_terminal(lease_status s) noexcept {
    for (bool b : detail::lease_transitions[detail::index(s)])
        if (b) return false;
    return true;
}

/// True when the lease still holds (or may again hold) a resource: the statuses a sweep must look at.
[[nodiscard]] constexpr bool is_live(lease_status s) noexcept { return !is_terminal(s); }

/// True when a terminal status can be reached from `s` through the table.
[[nodiscard]] constexpr bool reaches_terminal(lease_status s) noexcept {
    std::array<bool, detail::lease_status_count> seen{};
    seen[detail::index(s)] = true;
    for (std::size_t round = 0; round < detail::lease_status_count; ++round)
        for (std::size_t from = 0; from < detail::lease_status_count; ++from)
            if (seen[from])
                for (std::size_t to = 0; to < detail::lease_status_count; ++to)
                    if (detail::lease_transitions[from][to]) seen[to] = true;
    for (std::size_t i = 0; i < detail::lease_status_count; ++i)
        if (seen[i] && is_terminal(static_cast<lease_status>(i))) return true;
    return false;
}

static_assert(boost::mp11::mp_size<boost::describe::describe_enumerators<lease_status>>::value ==
                  detail::lease_status_count,
              "the transition table must cover every lease status");

namespace detail {
constexpr bool every_status_reaches_terminal() noexcept {
    for (std::size_t i = 0; i < lease_status_count; ++i)
        if (!reaches_terminal(static_cast<lease_status>(i))) return false;
    return true;
}
}  // namespace detail

static_assert(detail::every_status_reaches_terminal(), "every lease status must be able to end");
static_assert(is_terminal(lease_status::released) && is_terminal(lease_status::expired) &&
              is_terminal(lease_status::failed));
static_assert(!is_terminal(lease_status::active) && !is_terminal(lease_status::retained) &&
              !is_terminal(lease_status::pending_cleanup));
static_assert(can_transition(lease_status::retained, lease_status::active), "a retained lease can be resumed");
static_assert(!can_transition(lease_status::released, lease_status::active), "a released lease stays released");

}  // namespace berth

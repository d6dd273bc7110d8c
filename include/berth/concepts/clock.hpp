#pragma once
//! @file
//! The clock concept: where berth reads "now" for every timestamp it writes.
//!
//! Required: `timestamp now() const` — monotonic enough that a later call never returns an
//! earlier instant within one process. Must be thread-safe.
//! Shipped: berth::system_clock (below), berth::testing::manual_clock (testing/manual_clock.hpp).

#include <berth/model/time.hpp>

#include <chrono>    // std::chrono::system_clock
#include <concepts>  // std::same_as

namespace berth {

template <class C>
concept clock = requires(C const& c) {
    { c.now() } -> std::same_as<timestamp>;
};

/// The wall clock, at microsecond resolution.
struct system_clock {
    [[nodiscard]] timestamp now() const noexcept {
        return timestamp{std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now())};
    }
};

namespace archetypes {
struct clock {
    timestamp now() const { return {}; }
};
}  // namespace archetypes

static_assert(berth::clock<archetypes::clock>);
static_assert(berth::clock<system_clock>);

}  // namespace berth

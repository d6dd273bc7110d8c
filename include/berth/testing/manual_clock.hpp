#pragma once
// berth::testing::manual_clock — a clock that moves only when told: deterministic expiry tests.

#include <berth/concepts/clock.hpp>

#include <atomic>  // std::atomic
#include <chrono>  // std::chrono::microseconds

namespace berth::testing {

class manual_clock {
public:
    /// Starts at 2026-01-01T00:00:00Z unless told otherwise.
    explicit manual_clock(timestamp start = timestamp::from_micros(1767225600000000)) noexcept
        : now_us_(start.micros()) {}
    manual_clock(manual_clock const& other) noexcept : now_us_(other.now_us_.load()) {}

    [[nodiscard]] timestamp now() const noexcept { return timestamp::from_micros(now_us_.load()); }
    void advance(std::chrono::microseconds d) noexcept { now_us_ += d.count(); }
    void set(timestamp t) noexcept { now_us_ = t.micros(); }

private:
    std::atomic<std::int64_t> now_us_;
};

static_assert(berth::clock<manual_clock>);

}  // namespace berth::testing

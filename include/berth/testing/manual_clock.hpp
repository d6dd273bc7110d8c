#pragma once
// berth::testing::manual_clock — a clock that moves only when told: deterministic expiry tests.
//
// Copies share one time: the orchestrator takes its clock by value, so the test's own copy must
// keep steering the orchestrator's.
//
//   berth::testing::manual_clock clock;
//   berth::run_orchestrator<stack> orch{store, clock, drivers...};
//   clock.advance(std::chrono::minutes(5));   // orch.clock().now() moved too

#include <berth/concepts/clock.hpp>

#include <atomic>  // std::atomic
#include <chrono>  // std::chrono::microseconds
#include <memory>  // std::shared_ptr, std::make_shared

namespace berth::testing {

class manual_clock {
public:
    /// Starts at 2026-01-01T00:00:00Z unless told otherwise.
    explicit manual_clock(timestamp start = timestamp::from_micros(1767225600000000))
        : now_us_(std::make_shared<std::atomic<std::int64_t>>(start.micros())) {}

    [[nodiscard]] timestamp now() const noexcept { return timestamp::from_micros(now_us_->load()); }
    void advance(std::chrono::microseconds d) const noexcept { *now_us_ += d.count(); }
    void set(timestamp t) const noexcept { *now_us_ = t.micros(); }

private:
    std::shared_ptr<std::atomic<std::int64_t>> now_us_;
};

static_assert(berth::clock<manual_clock>);

}  // namespace berth::testing

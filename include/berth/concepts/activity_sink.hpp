#pragma once
//! @file
//! The activity sink concept: where berth records what it did (upstream activity_log).
//!
//! Required (berth::activity_sink<S>), thread-safe:
//!   - `void record_activity(activity_event const&)`            append one event
//!   - `std::vector<activity_event> list_activity(activity_filter const&)`  oldest `created_at`
//!        first, then smallest `id`; at most `filter.limit` events, starting just after
//!        `filter.after` in that order (keyset paging: model/paging.hpp)

#include <berth/model/activity.hpp>

#include <concepts>  // std::same_as
#include <vector>    // std::vector

namespace berth {

template <class S>
concept activity_sink = requires(S& s, activity_event const& e, activity_filter const& f) {
    { s.record_activity(e) } -> std::same_as<void>;
    { s.list_activity(f) } -> std::same_as<std::vector<activity_event>>;
};

namespace archetypes {
struct activity_sink {
    void record_activity(activity_event const&) {}
    std::vector<activity_event> list_activity(activity_filter const&) { return {}; }
};
}  // namespace archetypes

static_assert(berth::activity_sink<archetypes::activity_sink>);

}  // namespace berth

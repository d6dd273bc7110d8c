#pragma once
// An activity event (upstream table `activity_log`): the audit trail of what berth did for a run.

#include <berth/model/paging.hpp>
#include <berth/model/record.hpp>
#include <berth/model/time.hpp>

#include <cstddef>   // std::size_t
#include <optional>  // std::optional
#include <string>    // std::string

namespace berth {

struct activity_event {
    std::string id{};
    std::string company_id{};
    std::string actor_type{};  ///< "agent", "system", "user"
    std::string actor_id{};
    std::string action{};       ///< "environment.lease_acquired", "environment.lease_released", ...
    std::string entity_type{};  ///< "environment_lease", ...
    std::string entity_id{};
    std::optional<std::string> agent_id{};
    std::optional<std::string> run_id{};
    json_object details{};
    timestamp created_at{};
};
BOOST_DESCRIBE_STRUCT(activity_event, (),
                      (id, company_id, actor_type, actor_id, action, entity_type, entity_id, agent_id, run_id,
                       details, created_at))
template <> inline constexpr char const* record_name<activity_event> = "activity_event";

/// Where a page of events starts: just after the event with this sort key. Activity lists are
/// ordered oldest `created_at` first, then smallest `id` first; a cursor is the key of the last
/// event of the previous page (activity_cursor_of).
struct activity_cursor {
    timestamp created_at{};
    std::string id{};
};

/// The cursor that continues an activity list after `event`.
[[nodiscard]] inline activity_cursor activity_cursor_of(activity_event const& event) {
    return activity_cursor{.created_at = event.created_at, .id = event.id};
}

/// Filter of activity_sink::list_activity: the events matching every member that is set, at most
/// `limit` of them, starting after `after` (from the first when nullopt).
struct activity_filter {
    std::optional<std::string> company_id{};
    std::optional<std::string> run_id{};
    /// An entity is named by type and id, as upstream's (entity_type, entity_id) index keys it;
    /// an id alone matches that id under any type.
    std::optional<std::string> entity_type{};
    std::optional<std::string> entity_id{};
    std::size_t limit = default_list_limit;
    std::optional<activity_cursor> after{};
};

/// The actions berth records.
namespace actions {
inline constexpr char const* lease_acquired = "environment.lease_acquired";
inline constexpr char const* lease_released = "environment.lease_released";
inline constexpr char const* lease_expired = "environment.lease_expired";
}  // namespace actions

}  // namespace berth

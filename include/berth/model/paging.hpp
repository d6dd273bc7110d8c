#pragma once
// How list calls page: every list a store offers takes a `limit` (default_list_limit when the
// caller does not say) and a keyset cursor `after` — the sort key of the last row of the previous
// page — so that a caller walks a history of any length one bounded page at a time, and each page
// costs an index seek plus the rows it returns (docs/stores.md, "Growth, paging and retention").

#include <cstddef>  // std::size_t
#include <limits>   // std::numeric_limits
#include <optional>  // std::optional
#include <string>    // std::string

namespace berth {

/// Rows a list call returns when its filter's `limit` is left as it is.
inline constexpr std::size_t default_list_limit = 500;

/// A `limit` that does not limit: for a caller that must see every row of a set it knows is small
/// (a run's own active leases, which the orchestrator releases).
inline constexpr std::size_t no_limit = std::numeric_limits<std::size_t>::max();

// Row cursors. Leases and events page on a key the caller holds (lease_cursor, activity_cursor).
// The other lists — environments, runtime services, execution workspaces, operations, expired
// leases — sort on columns that tie often (equal timestamps from a coarse clock), broken by
// insertion order, which a caller cannot see; their cursor is the id of the previous page's last
// row, and the store continues after that row's place in the order (its sort columns and
// insertion order). A page is a seek plus its rows either way. Like any keyset, a row whose sort
// key changes between two pages may be seen twice or not at all.

/// A page of a list that takes no filter (list_expired_leases): at most `limit` rows, after the
/// row with id `after` (from the first when nullopt).
struct list_page {
    std::size_t limit = default_list_limit;
    std::optional<std::string> after{};
};

}  // namespace berth

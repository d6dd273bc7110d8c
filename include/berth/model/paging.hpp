#pragma once
// How list calls page: every list a store offers takes a `limit` (default_list_limit when the
// caller does not say) and a keyset cursor `after` — the sort key of the last row of the previous
// page — so that a caller walks a history of any length one bounded page at a time, and each page
// costs an index seek plus the rows it returns (docs/stores.md, "Growth, paging and retention").

#include <cstddef>  // std::size_t
#include <limits>   // std::numeric_limits

namespace berth {

/// Rows a list call returns when its filter's `limit` is left as it is.
inline constexpr std::size_t default_list_limit = 500;

/// A `limit` that does not limit: for a caller that must see every row of a set it knows is small
/// (a run's own active leases, which the orchestrator releases).
inline constexpr std::size_t no_limit = std::numeric_limits<std::size_t>::max();

}  // namespace berth

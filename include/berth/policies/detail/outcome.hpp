#pragma once
// What the shipped lease policies share: upstream's run-status → lease-status mapping
// (heartbeat.ts leaseReleaseStatusForRunStatus) and the optional TTL read from the environment.

#include <berth/error.hpp>
#include <berth/model/enums.hpp>
#include <berth/model/environment.hpp>
#include <berth/model/time.hpp>

#include <boost/json/value.hpp>  // boost::json::value

#include <chrono>    // std::chrono::seconds
#include <cstdint>   // std::int64_t
#include <optional>  // std::optional
#include <string>    // std::string

namespace berth::detail {

/// cancelled → expired; failed, timed_out → failed; succeeded → released.
[[nodiscard]] constexpr lease_status upstream_status_for(run_outcome o) noexcept {
    switch (o) {
        case run_outcome::cancelled: return lease_status::expired;
        case run_outcome::failed:
        case run_outcome::timed_out: return lease_status::failed;
        case run_outcome::succeeded: return lease_status::released;
    }
    return lease_status::failed;
}

/// A lease's life when the environment does not set `leaseTtlSeconds`: long enough that renewal
/// (run_scope renews at a third of it) costs nothing, short enough that a holder on another host
/// that died strands its lease for minutes, not forever (docs/reliability.md).
inline constexpr std::int64_t default_lease_ttl_seconds = 600;

/// now + config `leaseTtlSeconds`; now + default_lease_ttl_seconds when the environment does not
/// set it; nullopt when it sets it to null (leases that never expire: only a holder's death on
/// this host, seen by recover(), ends them).
/// @throws berth::parse_error when the value is not a positive integer (naming it).
[[nodiscard]] inline std::optional<timestamp> ttl_expiry(environment const& env, timestamp now) {
    auto const* v = env.config.if_contains("leaseTtlSeconds");
    if (!v) return now + std::chrono::seconds(default_lease_ttl_seconds);
    if (v->is_null()) return std::nullopt;
    if (v->is_int64() && v->get_int64() > 0) return now + std::chrono::seconds(v->get_int64());
    if (v->is_uint64() && v->get_uint64() > 0 && v->get_uint64() <= 100ull * 365 * 24 * 3600)
        return now + std::chrono::seconds(static_cast<std::int64_t>(v->get_uint64()));
    throw parse_error("environment config leaseTtlSeconds", v->is_string() ? std::string(v->get_string()) : "(non-integer)",
                      "expected a positive integer number of seconds, environment " + env.id);
}

}  // namespace berth::detail

#pragma once
//! @file
//! The orchestrator's non-template helpers: they depend on no stack, so they are compiled once per
//! program under BERTH_SEPARATE_COMPILATION (berth/detail/config.hpp) instead of once per TU.

#include <berth/detail/config.hpp>
#include <berth/model/activity.hpp>  // activity_event
#include <berth/model/command.hpp>   // command_result
#include <berth/model/time.hpp>      // timestamp
#include <berth/model/nullable.hpp>  // nullable

#include <boost/json/object.hpp>  // boost::json::object (details documents)
#include <boost/json/value.hpp>   // boost::json::value

#include <optional>     // std::optional
#include <string>       // std::string
#include <string_view>  // std::string_view

namespace berth::detail {

/// `text` without leading and trailing blanks (space, tab, CR, LF): the one trim of the orchestrator.
[[nodiscard]] BERTH_DECL std::string_view trim(std::string_view text) noexcept;

[[nodiscard]] BERTH_DECL boost::json::value json_or_null(std::optional<std::string> const& s);

[[nodiscard]] BERTH_DECL std::string first_non_empty_line(std::string_view text);

/// Upstream formatProvisionFailureDetail, with the LAST lines of stderr (else of stdout) where
/// upstream shows the first one: a login shell's profile noise comes first, the error last.
[[nodiscard]] BERTH_DECL std::string provision_failure_detail(command_result const& r);

/// The earlier of two optional deadlines (nullopt: none).
[[nodiscard]] BERTH_DECL std::optional<timestamp> earliest(std::optional<timestamp> a, std::optional<timestamp> b);

/// An activity event about a lease (`environment.lease_*`), by the agent when there is one, else
/// by berth itself.
[[nodiscard]] BERTH_DECL activity_event make_lease_event(char const* action, std::string const& lease_id,
                                                         std::string const& company_id,
                                                         nullable<std::string> const& agent_id,
                                                         std::optional<std::string> const& run_id,
                                                         boost::json::object details, timestamp now);

}  // namespace berth::detail

#ifndef BERTH_SEPARATE_COMPILATION
#include <berth/orchestrator/detail/impl/run_support.hpp>
#endif

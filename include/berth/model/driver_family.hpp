#pragma once
//! @file
//! What berth knows about each driver family (upstream's `environments.driver` values), in one
//! place, so that the orchestrator's code names no family: the config key that selects a driver
//! within a family, and whether upstream realizes workspaces for it.

#include <berth/model/enums.hpp>  // driver_kind

#include <string_view>  // std::string_view

namespace berth {

/// The config key that names a driver within `family`: upstream's `provider` for sandboxes (its
/// sandbox config already carries it), berth's `driver` for the other families.
[[nodiscard]] constexpr std::string_view driver_selector_key(driver_kind family) noexcept {
    return family == driver_kind::sandbox ? "provider" : "driver";
}

/// Whether upstream realizes a workspace for environments of `family` (local, ssh and sandbox do;
/// plugin drivers realize on their side). A driver of such a family must model
/// berth::driver_with_realize_workspace (berth::stack checks it when the stack is named).
[[nodiscard]] constexpr bool family_realizes_workspace(driver_kind family) noexcept {
    return family != driver_kind::plugin;
}

}  // namespace berth

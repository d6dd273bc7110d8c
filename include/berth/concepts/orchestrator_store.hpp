#pragma once
//! @file
//! What berth::run_orchestrator requires of its store, and nothing more:
//!
//! berth::orchestrator_store<S> = environment_source<S> && lease_store<S> && activity_sink<S>
//!
//! That is 13 members: `get_environment`, `ensure_local_environment` (concepts/environment_store.hpp),
//! the nine of concepts/lease_store.hpp, `record_activity` and `list_activity`
//! (concepts/activity_sink.hpp). The other slices are asked for only where they are used:
//!   - `execution_workspace_store` + `operation_store` (berth::workspace_store<S>) by the drivers
//!     that manage execution workspaces (the local driver's git worktrees and provisioning) — a
//!     stack whose drivers do not need them does not require them;
//!   - `runtime_service_store` by berth::services::supervisor only;
//!   - the whole `environment_store` by code that creates and lists environments (berth-run).
//! berth's own stores model all of them (berth::persistence_backend).
//!
//! The lease rules every lease_store applies (validation, capacity, reuse scopes, the transition
//! table, the epoch fence, the refusal messages) are functions in model/lease_rules.hpp, so a new
//! store reads its facts its own way and refuses exactly as the shipped ones do.

#include <berth/concepts/activity_sink.hpp>
#include <berth/concepts/environment_store.hpp>
#include <berth/concepts/execution_workspace_store.hpp>
#include <berth/concepts/lease_store.hpp>
#include <berth/concepts/operation_store.hpp>

namespace berth {

template <class S>
concept orchestrator_store = environment_source<S> && lease_store<S> && activity_sink<S>;

/// The slices of a store that keeps execution workspaces and the operations run in them.
template <class S>
concept workspace_store = execution_workspace_store<S> && operation_store<S>;

namespace archetypes {
/// The smallest store an orchestrator accepts: start a custom store from here.
struct orchestrator_store : environment_source, lease_store, activity_sink {};
}  // namespace archetypes

static_assert(berth::orchestrator_store<archetypes::orchestrator_store>);
static_assert(!berth::workspace_store<archetypes::orchestrator_store>, "the archetype must be minimal");

}  // namespace berth

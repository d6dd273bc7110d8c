#pragma once
//! @file
//! A persistence backend is one object that is every store berth needs at once, so that a lease
//! transition and its activity event can commit together. berth's shipped stores model it; the
//! orchestrator asks for less (concepts/orchestrator_store.hpp).
//!
//! berth::persistence_backend<S> = environment_store<S> && lease_store<S> && activity_sink<S>
//!                                 && runtime_service_store<S> && execution_workspace_store<S>
//!                                 && operation_store<S>.

#include <berth/concepts/activity_sink.hpp>
#include <berth/concepts/environment_store.hpp>
#include <berth/concepts/execution_workspace_store.hpp>
#include <berth/concepts/lease_store.hpp>
#include <berth/concepts/operation_store.hpp>
#include <berth/concepts/orchestrator_store.hpp>
#include <berth/concepts/runtime_service_store.hpp>

namespace berth {

template <class S>
concept persistence_backend = orchestrator_store<S> && environment_store<S> && runtime_service_store<S> &&
                              workspace_store<S>;

namespace archetypes {
struct persistence_backend : environment_store, lease_store, activity_sink, runtime_service_store,
                             execution_workspace_store, operation_store {};
}  // namespace archetypes

static_assert(berth::persistence_backend<archetypes::persistence_backend>);

}  // namespace berth

#pragma once
//! @file
//! The environment store concept: durable environment records (upstream environmentService).
//!
//! Two levels. What a run needs (berth::environment_source<S>, all the orchestrator requires):
//!   - `std::optional<environment> get_environment(std::string_view id)`
//!   - `environment ensure_local_environment(std::string_view company_id, timestamp now)`
//!        (both as below). A store that serves environments from elsewhere (a config file, another
//!        service) implements these two and nothing else of this header.
//!
//! The whole slice (berth::environment_store<S>), all safe to call from many threads:
//!   - `std::vector<environment> list_environments(std::string_view company_id, environment_filter const&)`
//!        that company's environments matching the filter, newest `updated_at` first, then newest `created_at`
//!   - `std::optional<environment> get_environment(std::string_view id)`
//!   - `environment create_environment(new_environment const&, timestamp now)`
//!        new id; `store_errc::invalid_argument` for an empty name or company id;
//!        `store_errc::conflict` for a second `local` environment in one company
//!   - `std::optional<environment> update_environment(std::string_view id, environment_patch const&, timestamp now)`
//!        nullopt when there is no such environment; `updated_at = now`
//!   - `environment ensure_local_environment(std::string_view company_id, timestamp now)`
//!        the company's local environment, created once (name "Local", the default description,
//!        metadata {managedByBerth: true, defaultForCompany: true}); concurrent callers get one row.
//!        An existing local environment is returned as it is, even archived.
//!
//! Shipped: memory_store, sqlite_store. Contract tests: berth/testing/store_conformance.hpp.

#include <berth/model/environment.hpp>

#include <concepts>     // std::same_as
#include <optional>     // std::optional
#include <string_view>  // std::string_view
#include <vector>       // std::vector

namespace berth {

/// What a run needs of environments: look one up, or ensure the company's local one.
template <class S>
concept environment_source = requires(S& s, std::string_view id, timestamp now) {
    { s.get_environment(id) } -> std::same_as<std::optional<environment>>;
    { s.ensure_local_environment(id, now) } -> std::same_as<environment>;
};

/// The whole environment slice: a source that also lists, creates and updates environments.
template <class S>
concept environment_store = environment_source<S> && requires(S& s, std::string_view id, environment_filter const& f,
                                                              new_environment const& ne, environment_patch const& p,
                                                              timestamp now) {
    { s.list_environments(id, f) } -> std::same_as<std::vector<environment>>;
    { s.create_environment(ne, now) } -> std::same_as<environment>;
    { s.update_environment(id, p, now) } -> std::same_as<std::optional<environment>>;
};

namespace archetypes {
struct environment_source {
    std::optional<environment> get_environment(std::string_view) { return {}; }
    environment ensure_local_environment(std::string_view, timestamp) { return {}; }
};
struct environment_store {
    std::vector<environment> list_environments(std::string_view, environment_filter const&) { return {}; }
    std::optional<environment> get_environment(std::string_view) { return {}; }
    environment create_environment(new_environment const&, timestamp) { return {}; }
    std::optional<environment> update_environment(std::string_view, environment_patch const&, timestamp) {
        return {};
    }
    environment ensure_local_environment(std::string_view, timestamp) { return {}; }
};
}  // namespace archetypes

static_assert(berth::environment_source<archetypes::environment_source>);
static_assert(!berth::environment_store<archetypes::environment_source>, "the source archetype must be minimal");
static_assert(berth::environment_store<archetypes::environment_store>);

}  // namespace berth

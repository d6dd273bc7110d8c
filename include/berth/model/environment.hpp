#pragma once
// The environment record: where runs execute (upstream table `environments`, company-scoped as in
// the seed), and the inputs that create and patch it.

#include <berth/model/enums.hpp>
#include <berth/model/paging.hpp>
#include <berth/model/record.hpp>
#include <berth/model/time.hpp>

#include <optional>  // std::optional
#include <string>    // std::string

namespace berth {

struct environment {
    std::string id{};
    std::string company_id{};
    std::string name{};
    std::optional<std::string> description{};
    driver_kind driver = driver_kind::local;
    environment_status status = environment_status::active;
    json_object config{};                   ///< driver configuration (never secrets in clear: see docs)
    std::optional<json_object> metadata{};  ///< free-form; `managedByBerth`, `defaultForCompany` on the local one
    timestamp created_at{};
    timestamp updated_at{};
};
BOOST_DESCRIBE_STRUCT(environment, (),
                      (id, company_id, name, description, driver, status, config, metadata, created_at, updated_at))
template <> inline constexpr char const* record_name<environment> = "environment";

/// Input of environment_store::create_environment (upstream createEnvironmentSchema).
struct new_environment {
    std::string company_id{};
    std::string name{};  ///< required, non-empty
    std::optional<std::string> description{};
    driver_kind driver = driver_kind::local;
    environment_status status = environment_status::active;
    json_object config{};
    std::optional<json_object> metadata{};
};
BOOST_DESCRIBE_STRUCT(new_environment, (), (company_id, name, description, driver, status, config, metadata))
template <> inline constexpr char const* record_name<new_environment> = "new_environment";

/// Input of environment_store::update_environment: each engaged member replaces the stored one.
/// `description` and `metadata` are nullable columns, so "set to null" is an engaged nullopt.
struct environment_patch {
    std::optional<std::string> name{};
    std::optional<std::optional<std::string>> description{};
    std::optional<driver_kind> driver{};
    std::optional<environment_status> status{};
    std::optional<json_object> config{};
    std::optional<std::optional<json_object>> metadata{};
};

/// Filter of environment_store::list_environments (upstream list filters).
struct environment_filter {
    std::optional<environment_status> status{};
    std::optional<driver_kind> driver{};
    /// At most this many rows (paging.hpp).
    std::size_t limit = default_list_limit;
    /// The id of the last row of the previous page: the page starts just after that row's place
    /// in the list's order (paging.hpp, "row cursors"). An id the store does not hold gives an empty page.
    std::optional<std::string> after{};
};

/// Name and description of the default local environment (upstream's, with our product name).
inline constexpr char const* default_local_environment_name = "Local";
inline constexpr char const* default_local_environment_description =
    "Default execution environment for runs on this machine.";

}  // namespace berth

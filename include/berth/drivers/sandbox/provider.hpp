#pragma once
//! @file
//! The sandbox provider concept: what the sandbox driver (berth::sandbox_driver, drivers/sandbox/
//! driver.hpp) hosts. A provider knows one kind of sandbox (a bubblewrap jail on this machine, a
//! cloud VM, a container service); the driver owns everything upstream's sandbox driver does
//! around it (config envelope, lease metadata, the reuse gate and its scope record, realization
//! records, execution targets). The members mirror upstream's plugin protocol (§2.5:
//! environmentAcquireLease, ...ResumeLease, ...ReleaseLease, ...DestroyLease, ...RealizeWorkspace,
//! ...Execute, ...Probe, ...SyncIn/Out) with C++ types.
//!
//! Required (berth::sandbox_provider<P>):
//!   - `using sandbox_provider_concept = berth::sandbox_provider_tag;`   opt-in tag
//!   - `static constexpr std::string_view name`        the config's `provider` value ("bubblewrap")
//!   - `static constexpr bool supports_reusable_leases` upstream's capability flag; true also
//!                                                       requires resume and destroy (#11463)
//!   - `sandbox_lease acquire(sandbox_acquire_params const&) const`   create a sandbox
//!   - `void release(sandbox_lease_params const&) const`              end a run on it; a lease
//!                                                       with `reusable` set keeps its sandbox
//! Optional, each detected by a narrower concept:
//!   - validate_config `json_object validate_config(json_object const& config) const` — throws
//!                     berth::sandbox_config_error naming the field; returns the normalized config
//!   - resume          `sandbox_lease resume(sandbox_lease_params const&) const`
//!   - destroy         `void destroy(sandbox_lease_params const&) const`      delete the sandbox
//!   - realize         `sandbox_realized realize(sandbox_realize_params const&) const`
//!   - execute         `command_result execute(sandbox_lease_params const&, command const&) const`
//!   - probe           `probe_result probe(json_object const& config) const noexcept`
//!   - sync            `sandbox_sync_result sync_in(sandbox_lease_params const&, std::string const& local_dir) const`
//!                     and `sync_out(...)` with the same signature (both or neither)
//!   - kept leases     `static constexpr bool releases_kept_leases = true;` — release is called for
//!                     a `retained` lease too (a plugin keeps the sandbox itself); its failure is
//!                     cleanup `failed`, the lease stays `retained`
//!   - reuse check     `bool reusable_leases() const` — for a provider whose offer of reuse is
//!                     known only at run time (a plugin's manifest says it): with
//!                     `supports_reusable_leases = true` ("may offer"), the driver treats a
//!                     lease as reusable only when this also says so
//!   - probe in its environment `probe_result probe(json_object const& config, environment const& env) const noexcept`
//!                     preferred to the one-argument probe when present (a plugin's probe names
//!                     the company and environment)
//!
//! Semantics: every member is const and safe to call from many threads at once. Errors are
//! exceptions (the driver turns release/destroy failures into cleanup status `failed`). A
//! provider never writes lease records: it creates and deletes sandboxes and reports facts.
//!
//! Example: berth::bubblewrap (drivers/sandbox/bubblewrap.hpp), berth::testing::fake_sandbox_provider.

#include <berth/error.hpp>           // berth::error
#include <berth/model/command.hpp>   // command, command_result
#include <berth/model/driver_io.hpp> // probe_result
#include <berth/model/environment.hpp>  // environment (probe in its environment)
#include <berth/model/record.hpp>    // json_object
#include <berth/model/time.hpp>      // timestamp

#include <concepts>     // std::same_as, std::derived_from, std::convertible_to
#include <cstddef>      // std::size_t
#include <optional>     // std::optional
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <utility>      // std::move

namespace berth {

/// Tag a provider names as `sandbox_provider_concept` to opt in.
struct sandbox_provider_tag {};

/// A sandbox environment config the driver or a provider does not accept. The message is
/// upstream's where it has one; `field()` names the offending key.
class sandbox_config_error : public error {
public:
    sandbox_config_error(std::string field, std::string const& message) : error(message), field_(std::move(field)) {}
    [[nodiscard]] std::string const& field() const noexcept { return field_; }

private:
    std::string field_;
};

/// Input of a provider's acquire (upstream PluginEnvironmentDriver acquire params).
struct sandbox_acquire_params {
    std::string company_id{};
    std::string environment_id{};
    std::optional<std::string> issue_id{};
    json_object config{};  ///< the provider's config: the environment's, normalized, `provider` stripped
    std::string run_id{};  ///< the heartbeat run, or a fresh id for ad-hoc leases (probes)
    std::optional<std::string> workspace_mode{};
    std::optional<std::string> agent_id{};
    std::optional<std::string> execution_workspace_id{};
    std::optional<std::string> adapter_type{};
    /// The lease passed the reuse gate: its sandbox must survive release until destroy.
    bool reusable = false;
};

/// A provider's lease (upstream PluginEnvironmentLease): its handle, facts to keep in the lease
/// metadata (spread at the top level, as upstream does: `remoteCwd`, `shellCommand`, ...), and an
/// expiry the provider imposes.
struct sandbox_lease {
    std::optional<std::string> provider_lease_id{};
    json_object metadata{};
    std::optional<timestamp> expires_at{};
};

/// Which lease a call is about (upstream `{providerLeaseId, leaseMetadata}` plus the config, which
/// the driver rebuilds from the lease metadata so that a lease outlives config edits).
struct sandbox_lease_params {
    std::optional<std::string> provider_lease_id{};
    json_object lease_metadata{};
    json_object config{};
    std::string lease_id{};  ///< berth's lease id (for names and logs)
    bool reusable = false;   ///< the lease is kept for reuse: release must not delete the sandbox
    // The lease's context, which upstream's plugin protocol sends with every lease call
    // (`{companyId, environmentId, issueId}`, and the lease's `expiresAt` with execute/realize).
    std::string company_id{};
    std::string environment_id{};
    std::optional<std::string> issue_id{};
    std::optional<timestamp> expires_at{};
};

/// Input of realize (upstream environmentRealizeWorkspace: `{lease, workspace}`).
struct sandbox_realize_params {
    sandbox_lease_params lease{};
    std::optional<std::string> local_path{};   ///< the workspace on this machine
    std::optional<std::string> remote_path{};  ///< the lease's remoteCwd, if any
    std::optional<std::string> mode{};
    json_object metadata{};
};

/// What realize returns: the cwd inside the sandbox, and provider facts for the record.
struct sandbox_realized {
    std::string cwd{};
    json_object metadata{};
};

/// What a workspace sync moved.
struct sandbox_sync_result {
    std::size_t files = 0;
    std::size_t bytes = 0;
};

namespace detail {
template <class P>
concept provider_opted_in = requires { typename P::sandbox_provider_concept; } &&
                            std::derived_from<typename P::sandbox_provider_concept, sandbox_provider_tag>;
template <class P>
concept provider_names_itself = requires {
    { P::name } -> std::convertible_to<std::string_view>;
};
template <class P>
concept provider_states_reuse = requires {
    { P::supports_reusable_leases } -> std::convertible_to<bool>;
};
template <class P>
concept provider_acquires = requires(P const& p, sandbox_acquire_params const& a) {
    { p.acquire(a) } -> std::same_as<sandbox_lease>;
};
template <class P>
concept provider_releases = requires(P const& p, sandbox_lease_params const& l) {
    { p.release(l) } -> std::same_as<void>;
};
}  // namespace detail

/// A type the sandbox driver can host as the provider named `P::name`.
template <class P>
concept sandbox_provider = detail::provider_opted_in<P> && detail::provider_names_itself<P> &&
                           detail::provider_states_reuse<P> && detail::provider_acquires<P> &&
                           detail::provider_releases<P>;

template <class P>
concept provider_with_validate_config = sandbox_provider<P> && requires(P const& p, json_object const& c) {
    { p.validate_config(c) } -> std::same_as<json_object>;
};

template <class P>
concept provider_with_resume = sandbox_provider<P> && requires(P const& p, sandbox_lease_params const& l) {
    { p.resume(l) } -> std::same_as<sandbox_lease>;
};

/// A provider that is told of a kept (`retained`) lease's end of run: its release is called with
/// `reusable` set as for any release (`static constexpr bool releases_kept_leases = true;`). Others
/// are not called for a kept lease.
template <class P>
concept provider_releasing_kept_leases = sandbox_provider<P> && requires {
    requires P::releases_kept_leases;
};

template <class P>
concept provider_with_destroy = sandbox_provider<P> && requires(P const& p, sandbox_lease_params const& l) {
    { p.destroy(l) } -> std::same_as<void>;
};

template <class P>
concept provider_with_realize = sandbox_provider<P> && requires(P const& p, sandbox_realize_params const& r) {
    { p.realize(r) } -> std::same_as<sandbox_realized>;
};

template <class P>
concept provider_with_execute = sandbox_provider<P> && requires(P const& p, sandbox_lease_params const& l,
                                                                command const& c) {
    { p.execute(l, c) } -> std::same_as<command_result>;
};

template <class P>
concept provider_with_probe = sandbox_provider<P> && requires(P const& p, json_object const& c) {
    { p.probe(c) } noexcept -> std::same_as<probe_result>;
};

template <class P>
concept provider_with_sync = sandbox_provider<P> && requires(P const& p, sandbox_lease_params const& l,
                                                             std::string const& dir) {
    { p.sync_in(l, dir) } -> std::same_as<sandbox_sync_result>;
    { p.sync_out(l, dir) } -> std::same_as<sandbox_sync_result>;
};

template <class P>
concept provider_with_reuse_check = sandbox_provider<P> && requires(P const& p) {
    { p.reusable_leases() } -> std::convertible_to<bool>;
};

template <class P>
concept provider_with_environment_probe = sandbox_provider<P> && requires(P const& p, json_object const& c,
                                                                          environment const& e) {
    { p.probe(c, e) } noexcept -> std::same_as<probe_result>;
};

/// Whether `p` offers reusable leases now: its static capability, narrowed by its run-time check.
template <sandbox_provider P>
[[nodiscard]] bool provider_offers_reuse(P const& p) {
    if constexpr (!P::supports_reusable_leases) {
        (void)p;
        return false;
    } else if constexpr (provider_with_reuse_check<P>) {
        return static_cast<bool>(p.reusable_leases());
    } else {
        (void)p;
        return true;
    }
}

/// Upstream #11463: a provider may offer reusable leases only if it can also resume and destroy
/// them (release keeps the sandbox, so something else must end it).
template <class P>
concept provider_reuse_is_complete =
    sandbox_provider<P> && (!P::supports_reusable_leases || (provider_with_resume<P> && provider_with_destroy<P>));

namespace archetypes {
/// The smallest sandbox provider: the required members only. Start a custom provider from here.
struct sandbox_provider {
    using sandbox_provider_concept = sandbox_provider_tag;
    static constexpr std::string_view name = "archetype";
    static constexpr bool supports_reusable_leases = false;
    sandbox_lease acquire(sandbox_acquire_params const&) const { return {}; }
    void release(sandbox_lease_params const&) const {}
};
}  // namespace archetypes

static_assert(sandbox_provider<archetypes::sandbox_provider>);
static_assert(provider_reuse_is_complete<archetypes::sandbox_provider>);
static_assert(!provider_with_resume<archetypes::sandbox_provider> && !provider_with_execute<archetypes::sandbox_provider> &&
                  !provider_with_probe<archetypes::sandbox_provider> && !provider_with_sync<archetypes::sandbox_provider>,
              "the archetype must be minimal");

}  // namespace berth

#pragma once
//! @file
//! berth::sandbox_driver<Providers...> — the environment driver for sandboxes (upstream §2.3),
//! hosting a compile-time set of sandbox providers (drivers/sandbox/provider.hpp) and dispatching
//! on the environment config's `provider` key.
//!
//! @code
//! berth::sandbox_driver<berth::bubblewrap> sandbox{berth::bubblewrap{{.state_root = "/var/lib/berth/sandboxes"}}};
//! // an environment with driver "sandbox" and config {"provider": "bubblewrap", "reuseLease": true}
//! auto grant = sandbox.acquire(request);              // provider "bubblewrap", its lease id, metadata
//! auto r = sandbox.execute(env, lease, {.program = "make", .args = {"test"}, .cwd = "/workspace"});
//! @endcode
//!
//! What the driver does around its providers, as upstream does:
//! - **config**: an environment whose driver is not `sandbox` is refused with
//!   `Expected sandbox environment config for driver "<d>".`; the envelope is parsed
//!   (drivers/sandbox/config.hpp), the provider's part validated by the provider; an unknown
//!   provider is `Sandbox provider "<p>" is not registered as a built-in provider and no matching
//!   plugin is available.`
//! - **lease**: provider = the provider key, provider lease id and `expiresAt` from the provider,
//!   metadata `{agentId (when known), driver: "sandbox", executionWorkspaceMode, provider,
//!   sandboxConfig (the stored config, from which release/resume/destroy rebuild it, so a lease
//!   outlives config edits), ...the provider's metadata, reusableSandboxLease (reusable leases)}`;
//! - **reuse**: a lease is reusable when the reuse gate holds (drivers/sandbox/reuse.hpp) and the
//!   lease's policy keeps sandboxes (reuse_by_environment / reuse_by_execution_workspace); its
//!   release keeps the sandbox, a release to `expired` destroys it (`lease_expired`), and so
//!   does one to `failed` (beyond upstream, which keeps a sandbox nothing can resume any more);
//! - **release**: the provider's release, cleanup `success` (or an exception: the orchestrator
//!   records cleanup `failed`); a lease released `failed` gets failure reason
//!   `adapter_or_run_failure`; a `retained` lease keeps its sandbox for inspection;
//! - **realization**: the provider's realize when it has one; cwd = the lease's `remoteCwd` ??
//!   remote path ?? local path otherwise; metadata `{...provider facts, workspaceRealization}`;
//! - **execution target**: `{kind: "remote", transport: "sandbox", remote_cwd, spec: {providerKey,
//!   shellCommand, remoteCwd, timeoutMs, streamRunLogs, streamAgentSessionOutput}}`;
//! - **probe**: the provider's, else ready without calls (upstream's built-in fake); never throws.
//!
//! Identity (concepts/environment_driver.hpp): name `sandbox`, family `sandbox`; it claims its
//! providers' names, so the config's `provider` selects it among the stack's sandbox drivers.
//! Models environment_driver and every optional driver capability. Copies share the providers'
//! state (providers keep it behind shared_ptr); every member is const and thread-safe.

#include <berth/concepts/environment_driver.hpp>  // driver_tag, the driver concepts
#include <berth/drivers/sandbox/config.hpp>       // sandbox_config, parse_sandbox_config
#include <berth/drivers/sandbox/provider.hpp>     // sandbox_provider and its capabilities
#include <berth/drivers/sandbox/reuse.hpp>        // sandbox_reuse_gate, sandbox_reuse_scope
#include <berth/model/driver_io.hpp>              // acquire_request, lease_grant, ...

#include <string>       // std::string
#include <string_view>  // std::string_view
#include <tuple>        // std::tuple

namespace berth {

/// Where a sandbox's workspace is when the provider does not say (upstream DEFAULT_SANDBOX_REMOTE_CWD).
inline constexpr char const* default_sandbox_remote_cwd = "/workspace";

namespace detail {
template <class... Ps>
constexpr bool sandbox_provider_names_distinct() noexcept {
    std::string_view const names[] = {Ps::name...};
    for (std::size_t i = 0; i < sizeof...(Ps); ++i)
        for (std::size_t j = i + 1; j < sizeof...(Ps); ++j)
            if (names[i] == names[j]) return false;
    return true;
}
}  // namespace detail

template <sandbox_provider... Ps>
class sandbox_driver {
    static_assert(sizeof...(Ps) > 0, "berth::sandbox_driver<> needs at least one provider");
    static_assert(detail::sandbox_provider_names_distinct<Ps...>(),
                  "berth::sandbox_driver<...>: two providers have the same name");
    static_assert((provider_reuse_is_complete<Ps> && ...),
                  "berth::sandbox_driver<...>: a provider with supports_reusable_leases = true must also have "
                  "resume and destroy (upstream #11463)");

public:
    using driver_concept = driver_tag;
    /// The host of sandbox providers: family `sandbox`, and the stack selects it for an
    /// environment whose config `provider` names one of its providers (claims_name), as a stack
    /// selects a sandbox-family driver that names itself (e.g. `bubblewrap`).
    static constexpr std::string_view name = "sandbox";
    static constexpr driver_kind family = driver_kind::sandbox;

    sandbox_driver()
        requires(std::default_initializable<Ps> && ...)
    = default;
    explicit sandbox_driver(Ps... providers) : providers_(std::move(providers)...) {}

    /// The hosted provider of type P.
    template <class P>
    [[nodiscard]] P const& provider() const noexcept {
        return std::get<P>(providers_);
    }

    /// Whether the driver hosts a provider named `provider`.
    [[nodiscard]] static constexpr bool hosts(std::string_view provider) noexcept {
        return ((Ps::name == provider) || ...);
    }
    /// The names it answers for within its family: its providers' (berth::driver_with_name_claim).
    [[nodiscard]] static constexpr bool claims_name(std::string_view provider) noexcept { return hosts(provider); }

    /// Creates a sandbox through the config's provider (see the file comment for the lease).
    /// @throws berth::error `Expected sandbox environment config for driver "<d>".`;
    ///         sandbox_config_error for a bad config or an unknown provider; the provider's errors.
    [[nodiscard]] lease_grant acquire(acquire_request const& request) const;

    /// Ends a run on the lease's sandbox (see the file comment). Never deletes a reusable lease's
    /// sandbox unless `to` is `expired`.
    /// @throws whatever the provider's release/destroy throws (the orchestrator records cleanup
    ///         `failed` and still moves the lease).
    [[nodiscard]] release_outcome release(environment const& env, environment_lease const& lease,
                                          lease_status to) const;

    /// Resumes a reusable lease's sandbox; the grant keeps the lease's metadata, updated with the
    /// provider's.
    /// @throws berth::error when the provider cannot resume or returns no provider lease id (the
    ///         caller then destroys the lease as `resume_failed` and acquires anew).
    [[nodiscard]] lease_grant resume(environment const& env, environment_lease const& lease) const;

    /// Deletes the lease's sandbox (upstream destroyReusableSandboxLease): cleanup `success`.
    /// @throws whatever the provider's destroy throws (cleanup `failed`: the lease goes to
    ///         `pending_cleanup` and recovery retries).
    [[nodiscard]] release_outcome destroy(environment const& env, environment_lease const& lease) const;

    /// See the file comment. @throws the provider's errors.
    [[nodiscard]] workspace_realization realize_workspace(realize_request const& request) const;

    /// Runs `cmd` in the lease's sandbox (its cwd is a path inside the sandbox).
    /// @throws berth::error when the provider cannot execute; the provider's errors.
    [[nodiscard]] command_result execute(environment const& env, environment_lease const& lease,
                                         command const& cmd) const;

    /// The provider's probe, else ready. Never throws: a bad config is `ok = false`.
    [[nodiscard]] probe_result probe(environment const& env) const noexcept;

    /// See the file comment. @throws sandbox_config_error for a lease without a usable provider.
    [[nodiscard]] berth::execution_target execution_target(environment const& env,
                                                           environment_lease const& lease) const;

    /// Whether the lease's provider syncs files natively (upstream supportsSync).
    [[nodiscard]] bool supports_sync(environment const& env, environment_lease const& lease) const;
    /// Pushes `local_dir` into the sandbox. @throws berth::error when the provider has no sync.
    sandbox_sync_result sync_in(environment const& env, environment_lease const& lease,
                                std::string const& local_dir) const;
    /// Pulls the sandbox's workspace back into `local_dir`. @throws as sync_in.
    sandbox_sync_result sync_out(environment const& env, environment_lease const& lease,
                                 std::string const& local_dir) const;

    /// The scope record a reusable lease acquired by `request` would carry, or nullopt when the
    /// request does not pass the reuse gate (or its policy does not keep sandboxes). Reuse
    /// policies compare candidates against it (judge_sandbox_reuse_candidate).
    /// @throws as acquire for a bad config.
    [[nodiscard]] std::optional<json_object> reuse_scope(acquire_request const& request) const;

private:
    struct lease_view {
        std::string provider;
        json_object config;  ///< the whole stored config (envelope + provider part)
        sandbox_lease_params params;
    };
    [[nodiscard]] lease_view view_of(environment const& env, environment_lease const& lease) const;

    /// Calls `f(provider)` with the provider named `name`.
    /// @throws sandbox_config_error (field `provider`) when no hosted provider has that name.
    template <class F>
    void with_provider(std::string_view name, F&& f) const;

    std::tuple<Ps...> providers_;
};

}  // namespace berth

#include <berth/drivers/sandbox/impl/driver.hpp>

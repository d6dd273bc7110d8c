#pragma once
//! @file
//! berth::plugin_sandbox_provider<"key"> — a sandbox provider (drivers/sandbox/provider.hpp) that
//! lives in a plugin worker: upstream's plugin-backed sandbox providers (§2.3 steps 2 and 8). A
//! Paperclip plugin whose manifest declares `environmentDrivers: [{driverKey: "<key>", kind:
//! "sandbox_provider", ...}]` runs unchanged under berth's worker host (berth::plugins), and
//! environments of driver `sandbox` with config `{"provider": "<key>", ...}` reach it.
//!
//! @code
//! auto plugins = std::make_shared<berth::plugins::registry>();
//! plugins->add({.command = {.program = "node", .args = {"/opt/acme/dist/worker.js"}},
//!               .plugin_id = "acme.sandbox", .manifest = manifest});  // declares sandbox provider "acme-vm"
//! using acme_vm = berth::plugin_sandbox_provider<"acme-vm">;
//! berth::sandbox_driver<berth::bubblewrap, acme_vm> sandbox{berth::bubblewrap{...}, acme_vm{plugins}};
//! // an environment {driver: "sandbox", config: {"provider": "acme-vm", "region": "eu"}}
//! @endcode
//!
//! The provider key is a template argument because the sandbox driver dispatches on its
//! providers' names at compile time (it also lets a stack select the driver by that name); which
//! plugin serves it is found at run time, in the registry, as upstream finds it.
//!
//! As upstream's sandbox driver does for a provider that is not built in:
//! - **Resolution** (every call): the registry's plugin whose manifest declares the key as a
//!   `sandbox_provider` (lease calls: the plugin the lease's `pluginId` / `pluginKey` name first),
//!   in one of upstream's four states —
//!   - missing: `Sandbox provider "<p>" is not registered as a built-in provider and no matching
//!     plugin is available.` (a berth::sandbox_config_error on field `provider`);
//!   - not ready: `Sandbox provider "<p>" is installed via plugin "<k>", but that plugin is
//!     currently <status>.`;
//!   - worker unavailable: `Sandbox provider "<p>" is installed via plugin "<k>", but its worker is
//!     not running.` with the worker host's error nested. berth starts workers on demand, so where
//!     upstream polls its worker manager, acquire tries to start the worker every
//!     `worker_ready_poll` (100 ms) until `worker_ready_timeout` (5000 ms) has passed; lease calls
//!     try once. Each attempt is bounded by the host's `initialize_timeout`;
//!   - no plugin host (a provider built without a registry): `Sandbox provider "<p>" is installed,
//!     but sandbox plugin workers are unavailable in this server process.`
//! - **acquire** calls `environmentAcquireLease` with `{driverKey, companyId, environmentId,
//!   issueId, config (the provider's part: `provider` stripped), runId, workspaceMode?, agentId?,
//!   executionWorkspaceId?, adapterType?}` — the optional ones omitted when null, as the `plugin`
//!   driver does. The lease metadata gets the worker's metadata plus `pluginId`, `pluginKey` and
//!   `sandboxProviderPlugin: true`; `expiresAt` is parsed (an invalid one is dropped).
//! - **reuse**: `supports_reusable_leases` is true ("may"), and reusable_leases() reads the
//!   manifest: `sandboxCapabilities.reusableLeases` when present, else `supportsReusableLeases`.
//!   Resume calls `environmentResumeLease` `{..., providerLeaseId, leaseMetadata}`; a throw or an
//!   empty providerLeaseId makes the orchestrator destroy the old lease (`resume_failed`) and
//!   acquire anew (upstream's resume-then-acquire fallback).
//! - **release / destroy**: `environmentReleaseLease` / `environmentDestroyLease` with
//!   `{..., providerLeaseId, leaseMetadata}`; a worker that throws, or cannot be started, makes the
//!   call throw, and the orchestrator records cleanup status `failed` (upstream's rule); destroy
//!   ends the lease `expired` or, failing, `pending_cleanup` (the sandbox driver's rule).
//! - **execute** calls `environmentExecute` with `{..., lease: {providerLeaseId, metadata,
//!   expiresAt}, command, args, cwd?, env?, stdin?, timeoutMs}`; the worker's `execute.log` chunks
//!   reach `command::on_output` as they come.
//! - **realize** calls `environmentRealizeWorkspace` `{..., lease, workspace: {localPath?,
//!   remotePath?, mode?, metadata?}}`; the driver builds the realization record from its `{cwd, metadata}`.
//! - **probe** calls `environmentProbe` `{driverKey, companyId, environmentId, issueId: null, config}`.
//! - RPC timeouts (upstream resolvePluginSandboxRpcTimeoutMs): the larger of `config.timeoutMs` and
//!   `config.bridgeRequestTimeoutMs` plus 30 s, else the worker host's; an execute waits for the
//!   command's own timeout plus 30 s.
//!
//! Not modelled: validate_config (upstream validates plugin configs when they are saved, not at
//! acquire; call the worker's `environmentValidateConfig` yourself) and native sync (upstream's
//! sync operations are not the provider concept's directory sync; berth::plugin_driver has them).
//!
//! Copies share the registry; every member is const and safe to call from many threads at once.

#include <berth/drivers/sandbox/config.hpp>    // valid_sandbox_provider_name
#include <berth/drivers/sandbox/provider.hpp>  // the sandbox provider concept and its types
#include <berth/plugins/registry.hpp>          // registry, installed_plugin

#include <boost/json/object.hpp>  // boost::json::object

#include <algorithm>    // std::copy_n
#include <chrono>       // std::chrono::milliseconds
#include <cstddef>      // std::size_t
#include <memory>       // std::shared_ptr
#include <optional>     // std::optional
#include <string>       // std::string
#include <string_view>  // std::string_view

namespace berth {

/// A provider key as a template argument: `plugin_sandbox_provider<"acme-vm">`.
template <std::size_t N>
struct sandbox_provider_key {
    char value[N]{};
    constexpr sandbox_provider_key(char const (&s)[N]) noexcept { std::copy_n(s, N, value); }  // NOLINT: implicit by design
    [[nodiscard]] constexpr std::string_view view() const noexcept { return {value, N - 1}; }
};

/// Upstream's defaults for a plugin-backed provider's worker readiness (§2.3 step 2).
struct plugin_sandbox_options {
    /// How long acquire waits for the provider's worker to come up (pluginWorkerReadyTimeoutMs).
    std::chrono::milliseconds worker_ready_timeout{5'000};
    /// How often it tries meanwhile (pluginWorkerReadyPollMs).
    std::chrono::milliseconds worker_ready_poll{100};
};

/// The extra time an RPC waits beyond the timeout it carries (upstream RPC_OVERHEAD_BUFFER_MS).
inline constexpr std::chrono::milliseconds plugin_rpc_overhead{30'000};

namespace detail::plugin {
/// The part of plugin_sandbox_provider that does not depend on the key (one copy of the code for
/// every key).
class sandbox_provider_core {
public:
    sandbox_provider_core(std::string_view key, std::shared_ptr<plugins::registry> plugins,
                          plugin_sandbox_options options)
        : key_(key), plugins_(std::move(plugins)), options_(options) {}

    [[nodiscard]] bool reusable_leases() const;
    [[nodiscard]] sandbox_lease acquire(sandbox_acquire_params const& a) const;
    void release(sandbox_lease_params const& l) const;
    [[nodiscard]] sandbox_lease resume(sandbox_lease_params const& l) const;
    void destroy(sandbox_lease_params const& l) const;
    [[nodiscard]] sandbox_realized realize(sandbox_realize_params const& r) const;
    [[nodiscard]] command_result execute(sandbox_lease_params const& l, command const& cmd) const;
    [[nodiscard]] probe_result probe(json_object const& config, environment const& env) const noexcept;

    [[nodiscard]] std::shared_ptr<plugins::registry> const& plugins() const noexcept { return plugins_; }
    [[nodiscard]] plugin_sandbox_options const& options() const noexcept { return options_; }

private:
    [[nodiscard]] std::string message(std::string_view what) const;
    [[nodiscard]] std::shared_ptr<plugins::registry> const& registry_or_throw() const;
    /// upstream's resolveSandboxProviderPlugin: the plugin declaring the key, ready, its worker up.
    [[nodiscard]] plugins::installed_plugin resolve_for_acquire() const;
    /// The plugin of a lease: its metadata's pluginId, then pluginKey, then the one declaring the key.
    [[nodiscard]] plugins::installed_plugin resolve_for_lease(json_object const& lease_metadata) const;
    void check_ready(plugins::installed_plugin const& p) const;
    [[nodiscard]] boost::json::object base_params(std::string const& company_id, std::string const& environment_id,
                                                  std::optional<std::string> const& issue_id,
                                                  json_object const& config) const;
    [[nodiscard]] boost::json::object lease_call_params(sandbox_lease_params const& l) const;

    std::string_view key_;  ///< the template argument's text: static storage
    std::shared_ptr<plugins::registry> plugins_;
    plugin_sandbox_options options_;
};
}  // namespace detail::plugin

/// The sandbox provider `Key`, served by the plugin worker that declares it (see the file comment).
template <sandbox_provider_key Key>
class plugin_sandbox_provider {
public:
    using sandbox_provider_concept = sandbox_provider_tag;
    static constexpr std::string_view name = Key.view();
    /// "May offer": reusable_leases() says whether the plugin does (its manifest).
    static constexpr bool supports_reusable_leases = true;
    /// Upstream's plugin path calls environmentReleaseLease at the end of every run, a kept
    /// (`retained`) lease's too, and leaves keeping the sandbox to the plugin (the lease's
    /// `reusable` and metadata say it is kept).
    static constexpr bool releases_kept_leases = true;
    static_assert(valid_sandbox_provider_name(name),
                  "berth::plugin_sandbox_provider<Key>: Key must match ^[a-z0-9][a-z0-9._-]*$ (upstream's provider keys)");

    /// `plugins` may be null: every call then fails with upstream's "workers are unavailable" message.
    explicit plugin_sandbox_provider(std::shared_ptr<plugins::registry> plugins, plugin_sandbox_options options = {})
        : core_(name, std::move(plugins), options) {}

    /// Whether the declaring plugin's manifest offers reusable leases (false when none declares the key).
    [[nodiscard]] bool reusable_leases() const { return core_.reusable_leases(); }
    /// @throws sandbox_config_error / berth::error with upstream's resolution messages;
    ///         plugins::rpc_error from the worker.
    [[nodiscard]] sandbox_lease acquire(sandbox_acquire_params const& a) const { return core_.acquire(a); }
    /// @throws as acquire (the orchestrator records cleanup `failed`).
    void release(sandbox_lease_params const& l) const { core_.release(l); }
    /// @throws as acquire (the orchestrator then destroys the lease and acquires anew).
    [[nodiscard]] sandbox_lease resume(sandbox_lease_params const& l) const { return core_.resume(l); }
    /// @throws as acquire.
    void destroy(sandbox_lease_params const& l) const { core_.destroy(l); }
    /// @throws as acquire.
    [[nodiscard]] sandbox_realized realize(sandbox_realize_params const& r) const { return core_.realize(r); }
    /// @throws as acquire; berth::error when the worker's reply is not an execute result.
    [[nodiscard]] command_result execute(sandbox_lease_params const& l, command const& cmd) const {
        return core_.execute(l, cmd);
    }
    /// The worker's probe. Never throws: a failure is `ok = false` with its message.
    [[nodiscard]] probe_result probe(json_object const& config, environment const& env) const noexcept {
        return core_.probe(config, env);
    }

    [[nodiscard]] std::shared_ptr<plugins::registry> const& plugins() const noexcept { return core_.plugins(); }

private:
    detail::plugin::sandbox_provider_core core_;
};

namespace detail::plugin {
using sandbox_provider_archetype = plugin_sandbox_provider<"archetype">;
}
static_assert(sandbox_provider<detail::plugin::sandbox_provider_archetype>);
static_assert(provider_with_resume<detail::plugin::sandbox_provider_archetype> &&
              provider_with_destroy<detail::plugin::sandbox_provider_archetype> &&
              provider_with_realize<detail::plugin::sandbox_provider_archetype> &&
              provider_with_execute<detail::plugin::sandbox_provider_archetype> &&
              provider_with_environment_probe<detail::plugin::sandbox_provider_archetype> &&
              provider_with_reuse_check<detail::plugin::sandbox_provider_archetype> &&
              provider_reuse_is_complete<detail::plugin::sandbox_provider_archetype>);
static_assert(!provider_with_validate_config<detail::plugin::sandbox_provider_archetype> &&
              !provider_with_sync<detail::plugin::sandbox_provider_archetype>);

}  // namespace berth

#include <berth/drivers/sandbox/impl/plugin_provider.hpp>

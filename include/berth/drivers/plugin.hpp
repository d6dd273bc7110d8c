#pragma once
//! @file
//! berth::plugin_driver — environments of driver `plugin` (upstream §2.4): the lease lives in a
//! plugin worker (a Paperclip plugin, unchanged), reached through berth::plugins::worker_host.
//!
//! @code
//! auto plugins = std::make_shared<berth::plugins::registry>();
//! plugins->add({.command = {.program = "node", .args = {"dist/worker.js"}}, .plugin_id = "acme.cloud",
//!               .manifest = manifest});   // manifest.environmentDrivers: [{driverKey: "vm", ...}]
//! berth::run_orchestrator<stack> orch{store, berth::plugin_driver{plugins}};
//! // an environment {driver: "plugin", config: {pluginKey: "acme.cloud", driverKey: "vm", driverConfig: {...}}}
//! @endcode
//!
//! As upstream's createPluginEnvironmentDriver:
//! - **Resolution** by `pluginKey` then `driverKey`: `Plugin environment driver "<pk>:<dk>" is not
//!   ready.` (unknown plugin, or status not "ready"), `Plugin "<pk>" does not declare environment
//!   driver "<dk>".`, `Plugin environment driver "<pk>:<dk>" has no running worker.` (berth starts
//!   the worker on demand; this is when it cannot; the cause is nested).
//! - **acquire** calls `environmentAcquireLease` with `{driverKey, companyId, environmentId,
//!   issueId, config: driverConfig, runId, workspaceMode?, agentId?, executionWorkspaceId?}`:
//!   `runId` is the heartbeat run id or a fresh UUID; `agentId` and `executionWorkspaceId` are
//!   **omitted** when null. The lease: policy ephemeral, provider `plugin:<pk>:<dk>`, the worker's
//!   providerLeaseId, `expiresAt` parsed (an invalid one becomes null), metadata `{providerMetadata,
//!   driver, executionWorkspaceMode, pluginId, pluginKey, driverKey, agentId?}`.
//! - **release, resume, destroy, execute** resolve the plugin from the lease's metadata (`pluginId`,
//!   then `pluginKey`, then the environment's current config); the driver config is the current
//!   one only if it still names the same plugin and driver, else `{}`. Messages: `Plugin
//!   environment driver "<pk>:unknown" is missing a driver key.`, `Plugin environment lease "<id>"
//!   does not have a provider lease id to resume.`
//! - **destroy** tells the worker (`environmentDestroyLease`) and reports failure reason
//!   `lease_destroyed`: upstream then marks the lease `failed`, not `expired` as sandboxes do.
//! - **No realize_workspace**: the orchestrator does not realize plugin workspaces (upstream
//!   realizes for local, ssh and sandbox only). realize_on_worker() is there for applications that
//!   want the worker's `environmentRealizeWorkspace` themselves.
//! - **sync**: supports_sync() when the worker advertises both `environmentSyncIn` and
//!   `environmentSyncOut` and the lease says neither `nativeFileSyncUnsupported: true` nor
//!   `backend: "job"`; sync_in/sync_out pass upstream's operations through.
//! - RPC timeouts: `driverConfig.timeoutMs` when set, else the worker host's; an execute waits for
//!   the command's own timeout plus 5 s.
//!
//! Models environment_driver, driver_with_resume, driver_with_destroy, driver_with_execute,
//! driver_with_probe and driver_with_execution_target. Copies share the registry; every member is
//! const and safe to call from many threads at once.

#include <berth/concepts/environment_driver.hpp>  // driver_tag, the driver concepts
#include <berth/drivers/plugin/config.hpp>        // plugin_environment_config, parse helpers
#include <berth/model/driver_io.hpp>              // acquire_request, lease_grant, command, ...
#include <berth/model/ids.hpp>                    // new_id (a fresh runId)
#include <berth/plugins/registry.hpp>             // registry, installed_plugin, worker_host

#include <boost/json/array.hpp>   // boost::json::array
#include <boost/json/object.hpp>  // boost::json::object

#include <memory>  // std::shared_ptr
#include <string>  // std::string

namespace berth {

class plugin_driver {
public:
    using driver_concept = driver_tag;
    /// Identity (concepts/environment_driver.hpp): the host of plugin workers, name `plugin` in
    /// family `plugin` (the plugin and its driver are chosen by the config's pluginKey/driverKey).
    static constexpr std::string_view name = "plugin";
    static constexpr driver_kind family = driver_kind::plugin;

    explicit plugin_driver(std::shared_ptr<plugins::registry> plugins) : plugins_(std::move(plugins)) {}

    /// @throws berth::error with upstream's resolution messages; plugins::rpc_error from the worker.
    [[nodiscard]] lease_grant acquire(acquire_request const& r) const;
    /// Tells the worker (`environmentReleaseLease`). @throws as acquire().
    [[nodiscard]] release_outcome release(environment const& env, environment_lease const& lease, lease_status to) const;
    /// `environmentResumeLease`. @throws berth::error when the lease has no provider lease id.
    [[nodiscard]] lease_grant resume(environment const& env, environment_lease const& lease) const;
    /// `environmentDestroyLease`; the outcome's failure reason is `lease_destroyed`.
    [[nodiscard]] release_outcome destroy(environment const& env, environment_lease const& lease) const;
    /// `environmentExecute`; the worker's `execute.log` chunks reach `cmd.on_output` as they come.
    [[nodiscard]] command_result execute(environment const& env, environment_lease const& lease,
                                         command const& cmd) const;
    /// `environmentProbe`. Never throws: a failure is `ok = false` with the message.
    [[nodiscard]] probe_result probe(environment const& env) const noexcept;
    /// `{kind: "remote", transport: "plugin", ...}`, the provider lease in `spec`.
    [[nodiscard]] berth::execution_target execution_target(environment const& env,
                                                           environment_lease const& lease) const;

    /// `environmentRealizeWorkspace` (the orchestrator never calls it, see above).
    [[nodiscard]] workspace_realization realize_on_worker(realize_request const& r) const;
    /// Whether the worker syncs files natively for this lease (see above).
    [[nodiscard]] bool supports_sync(environment const& env, environment_lease const& lease) const;
    /// `environmentSyncIn` / `environmentSyncOut` with upstream's `operations`; returns the result.
    [[nodiscard]] boost::json::value sync_in(environment const& env, environment_lease const& lease,
                                             boost::json::array const& operations) const;
    [[nodiscard]] boost::json::value sync_out(environment const& env, environment_lease const& lease,
                                              boost::json::array const& operations) const;

private:
    struct resolved {
        plugins::installed_plugin plugin;
        std::string plugin_key;
        std::string driver_key;
        boost::json::object driver_config;
    };
    [[nodiscard]] plugins::installed_plugin resolve(plugins::plugin_environment_config const& c) const;
    [[nodiscard]] resolved resolve_for_lease(environment const& env, environment_lease const& lease) const;
    [[nodiscard]] boost::json::object base_params(resolved const& r, environment const& env,
                                                  environment_lease const& lease) const;
    [[nodiscard]] boost::json::value call(resolved const& r, std::string_view method,
                                          boost::json::object const& params) const;

    std::shared_ptr<plugins::registry> plugins_;
};

static_assert(environment_driver<plugin_driver>);
static_assert(driver_with_resume<plugin_driver> && driver_with_destroy<plugin_driver> &&
              driver_with_execute<plugin_driver> && driver_with_probe<plugin_driver> &&
              driver_with_execution_target<plugin_driver>);
static_assert(!driver_with_realize_workspace<plugin_driver>,
              "upstream's orchestrator does not realize plugin workspaces");

}  // namespace berth

#include <berth/drivers/plugin/impl/plugin_driver.hpp>

#pragma once
//! @file
//! Upstream's reusable sandbox leases (§2.3 steps 3–6), as data and pure functions: the reuse
//! gate, the scope record the driver stores in a reusable lease's metadata
//! (`reusableSandboxLease`), its two fingerprints, and the verdict on a candidate lease (reuse it,
//! skip it, or destroy it as `lease_fingerprint_mismatch`). The sandbox driver writes the record;
//! the reuse policies (policies/reuse_by_environment.hpp) judge candidates with it.
//!
//! Fingerprints are SHA-256 (OpenSSL libcrypto) over upstream's stable serialisation:
//! - `runtimeFingerprint` = sha256(stable({provider, adapterType, config}));
//! - `leaseFingerprint`   = sha256(stable({companyId, environmentId, driver, executionWorkspaceId,
//!   agentId, adapterType, provider, providerConfig})) — upstream's effective-run-config fingerprint
//!   without the plugin identity and secret versions, which built-in providers do not have.
//! A candidate matches when the scope fields are equal and the lease fingerprints are equal; the
//! legacy runtime fingerprint is accepted only for an active lease of the same run (upstream).

#include <berth/drivers/sandbox/config.hpp>  // sandbox_config
#include <berth/model/driver_io.hpp>         // acquire_request
#include <berth/model/lease.hpp>             // environment_lease
#include <berth/services/identity.hpp>       // services::sha256_hex, services::stable_stringify

#include <boost/json/value.hpp>  // boost::json::value

#include <optional>     // std::optional
#include <string>       // std::string
#include <string_view>  // std::string_view

namespace berth {

/// The metadata key of the scope record.
inline constexpr char const* reusable_sandbox_lease_key = "reusableSandboxLease";

/// Upstream step 3: every condition for a reusable lease — the provider offers reuse, the config
/// asks for it (`reuseLease`), and the lease belongs to a heartbeat run with an execution
/// workspace and an agent. Ad-hoc leases (probes: no run) never reuse.
[[nodiscard]] inline bool sandbox_reuse_gate(bool provider_supports_reuse, sandbox_config const& config,
                                             acquire_request const& request) noexcept {
    return provider_supports_reuse && config.reuse_lease && request.heartbeat_run_id.has_value() &&
           !request.heartbeat_run_id->empty() && request.execution_workspace_id.has_value() &&
           request.agent_id.has_value();
}

/// Whether a lease policy keeps sandboxes for reuse.
[[nodiscard]] constexpr bool reuses_sandboxes(lease_policy_kind k) noexcept {
    return k == lease_policy_kind::reuse_by_environment || k == lease_policy_kind::reuse_by_execution_workspace;
}

namespace detail {
inline boost::json::value json_or_null_of(std::optional<std::string> const& s) {
    return s ? boost::json::value(*s) : boost::json::value(nullptr);
}
}  // namespace detail

/// sha256(stable({provider, adapterType, config})).
[[nodiscard]] inline std::string sandbox_runtime_fingerprint(std::string_view provider,
                                                             std::optional<std::string> const& adapter_type,
                                                             json_object const& config) {
    json_object o{{"provider", provider}, {"adapterType", detail::json_or_null_of(adapter_type)}, {"config", config}};
    return services::sha256_hex(services::stable_stringify(o));
}

/// The scope record `reusableSandboxLease` (upstream `{version: 1, companyId, environmentId,
/// executionWorkspaceId, agentId, adapterType, provider, runtimeFingerprint, leaseFingerprint}`)
/// for a lease acquired by `request` on `provider` with the provider config `provider_config`.
/// berth adds `leasePolicy`: under reuse_by_execution_workspace the agent is not part of the
/// scope (every agent of the workspace shares the sandbox), so it is left out of the lease
/// fingerprint and not compared.
[[nodiscard]] inline json_object sandbox_reuse_scope(acquire_request const& request, std::string_view provider,
                                                     json_object const& provider_config,
                                                     std::optional<std::string> const& adapter_type = std::nullopt) {
    bool const by_agent = request.lease_policy != lease_policy_kind::reuse_by_execution_workspace;
    json_object lease_key{
        {"companyId", request.company_id},
        {"environmentId", request.env.id},
        {"driver", to_string(request.env.driver)},
        {"executionWorkspaceId", detail::json_or_null_of(request.execution_workspace_id)},
        {"agentId", by_agent ? detail::json_or_null_of(request.agent_id.get()) : boost::json::value(nullptr)},
        {"adapterType", detail::json_or_null_of(adapter_type)},
        {"provider", provider},
        {"providerConfig", provider_config},
    };
    return json_object{
        {"version", 1},
        {"companyId", request.company_id},
        {"environmentId", request.env.id},
        {"executionWorkspaceId", detail::json_or_null_of(request.execution_workspace_id)},
        {"agentId", detail::json_or_null_of(request.agent_id.get())},
        {"adapterType", detail::json_or_null_of(adapter_type)},
        {"provider", provider},
        {"leasePolicy", to_string(request.lease_policy)},
        {"runtimeFingerprint", sandbox_runtime_fingerprint(provider, adapter_type, provider_config)},
        {"leaseFingerprint", services::sha256_hex(services::stable_stringify(lease_key))},
    };
}

/// What to do with a lease found while looking for one to reuse.
enum class sandbox_reuse_verdict {
    skip,     ///< not a candidate (another agent, workspace or policy; not resumable) — leave it alone
    reuse,    ///< resume it
    destroy,  ///< a released/retained lease of this scope whose record does not match: destroy it
              ///< with failure reason `lease_fingerprint_mismatch`
};

/// Upstream steps 4–6: judges `candidate` for a run (`run_id`) that expects the scope record
/// `expected` (sandbox_reuse_scope of its request).
/// - a candidate has the expected lease policy (upstream: reuse_by_environment), is resumable
///   (released or retained, or active for the same run), has the same execution workspace and —
///   unless the policy is reuse_by_execution_workspace — the same `metadata.agentId`; anything
///   else is `skip`;
/// - it matches when its record's companyId, environmentId, executionWorkspaceId, agentId (same
///   exception), adapterType and provider equal the expected ones and its leaseFingerprint does
///   (or, for a legacy record without one, its runtimeFingerprint, for an active lease of the same
///   run only);
/// - a candidate that does not match is `destroy` when released or retained, else `skip`.
[[nodiscard]] inline sandbox_reuse_verdict judge_sandbox_reuse_candidate(json_object const& expected,
                                                                         std::optional<std::string> const& run_id,
                                                                         environment_lease const& candidate) {
    auto const policy = expected.if_contains("leasePolicy");
    bool const by_agent = !(policy && policy->is_string() && policy->get_string() == "reuse_by_execution_workspace");
    auto const wanted_policy = by_agent ? lease_policy_kind::reuse_by_environment
                                        : lease_policy_kind::reuse_by_execution_workspace;
    if (candidate.lease_policy != wanted_policy) return sandbox_reuse_verdict::skip;
    bool const same_run = run_id && candidate.heartbeat_run_id == run_id;
    bool const resumable = candidate.status == lease_status::released || candidate.status == lease_status::retained ||
                           (candidate.status == lease_status::active && same_run);
    if (!resumable) return sandbox_reuse_verdict::skip;
    auto const* want_ew = expected.if_contains("executionWorkspaceId");
    auto const ew = detail::json_or_null_of(candidate.execution_workspace_id);
    if (want_ew == nullptr || want_ew->is_null() || *want_ew != ew) return sandbox_reuse_verdict::skip;
    if (!candidate.metadata) return sandbox_reuse_verdict::skip;
    if (by_agent) {
        auto const* want_agent = expected.if_contains("agentId");
        auto const* agent = candidate.metadata->if_contains("agentId");
        if (want_agent == nullptr || agent == nullptr || want_agent->is_null() || *agent != *want_agent)
            return sandbox_reuse_verdict::skip;
    }

    auto const mismatch = (candidate.status == lease_status::released || candidate.status == lease_status::retained)
                              ? sandbox_reuse_verdict::destroy
                              : sandbox_reuse_verdict::skip;
    auto const* rec_v = candidate.metadata->if_contains(reusable_sandbox_lease_key);
    if (rec_v == nullptr || !rec_v->is_object()) return mismatch;
    auto const& rec = rec_v->get_object();
    boost::json::value const null;
    for (char const* key : {"companyId", "environmentId", "executionWorkspaceId", "agentId", "adapterType", "provider"}) {
        if (!by_agent && std::string_view(key) == "agentId") continue;
        auto const* a = rec.if_contains(key);
        auto const* b = expected.if_contains(key);
        if ((a ? *a : null) != (b ? *b : null)) return mismatch;
    }
    auto same = [&](char const* key) {
        auto const* a = rec.if_contains(key);
        auto const* b = expected.if_contains(key);
        return a && b && a->is_string() && *a == *b;
    };
    if (same("leaseFingerprint")) return sandbox_reuse_verdict::reuse;
    if (rec.if_contains("leaseFingerprint") == nullptr && candidate.status == lease_status::active && same_run &&
        same("runtimeFingerprint"))
        return sandbox_reuse_verdict::reuse;
    return mismatch;
}

}  // namespace berth

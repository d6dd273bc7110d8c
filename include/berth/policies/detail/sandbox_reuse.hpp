#pragma once
// The acquire-side reuse hooks (concepts/lease_policy.hpp) that reuse_by_environment and
// reuse_by_execution_workspace share, written on the sandbox driver's reuse records
// (drivers/sandbox/reuse.hpp): upstream §2.3 steps 3–6 and its release rule, as policy members.
//
// - find_reusable: when the request passes the request's half of the reuse gate (a sandbox
//   environment whose config says `reuseLease`, a heartbeat run, an execution workspace and an
//   agent: ad-hoc probes never reuse), the newest lease of the environment, not `released`, that
//   judge_sandbox_reuse_candidate does not skip — one to resume, or one whose record does not match
//   (which the orchestrator then destroys as `lease_fingerprint_mismatch`). The provider's half
//   of the gate (supports_reusable_leases) is the driver's: only it writes the record a candidate
//   needs, and only for a provider that offers reuse.
// - matches: the verdict is `reuse`.
// - stamp: a grant the driver made reusable (it carries the record) gets the record and agentId
//   of this request (a resumed sandbox keeps the earlier lease's metadata otherwise).
// - status_for(outcome, lease): a run that succeeded on a lease whose sandbox was kept for reuse
//   ends it `retained` (berth's resumable status: upstream ends it `released`, which berth's
//   status table makes terminal); any other lease ends as upstream (cancelled → expired, which
//   destroys a kept sandbox: `lease_expired`; failed, timed_out → failed; succeeded → released).
//
// The scope record's fingerprints cover the provider's part of the config as stored (not as the
// provider normalises it), so that the policy computes the same record as the driver without it.

#include <berth/drivers/sandbox/config.hpp>  // parse_sandbox_config
#include <berth/drivers/sandbox/reuse.hpp>   // sandbox_reuse_gate, sandbox_reuse_scope, judge_sandbox_reuse_candidate
#include <berth/model/driver_io.hpp>         // acquire_request, lease_grant
#include <berth/model/lease.hpp>             // environment_lease
#include <berth/policies/detail/outcome.hpp>

#include <optional>  // std::optional
#include <vector>    // std::vector

namespace berth::detail {

/// The scope record a reusable lease acquired by `r` carries, or nullopt when `r` does not pass
/// the request's half of the reuse gate.
/// @throws berth::sandbox_config_error for a bad sandbox config (as the driver's acquire would).
[[nodiscard]] inline std::optional<json_object> expected_sandbox_scope(acquire_request const& r) {
    if (r.env.driver != driver_kind::sandbox) return std::nullopt;
    auto cfg = parse_sandbox_config(r.env.config);
    if (!sandbox_reuse_gate(true, cfg, r)) return std::nullopt;
    return sandbox_reuse_scope(r, cfg.provider, cfg.provider_config);
}

/// Whether the driver kept the lease's sandbox for reuse (it wrote the scope record).
[[nodiscard]] inline bool keeps_sandbox(json_object const& metadata) noexcept {
    auto const* v = metadata.if_contains(reusable_sandbox_lease_key);
    return v != nullptr && v->is_object();
}

/// The hooks, for a policy whose `r.lease_policy` the orchestrator sets to its kind (the record and
/// the verdict read it: the agent is part of the scope unless it is reuse_by_execution_workspace).
struct sandbox_reuse_hooks {
    /// Upstream also resumes `released` leases; in berth a kept sandbox's lease is `retained`, and a
    /// `released` one is over: its sandbox went with it, or was handed over to a later lease that
    /// may hold it now — neither to resume nor to destroy.
    [[nodiscard]] static bool kept(environment_lease const& l) noexcept { return l.status != lease_status::released; }
    [[nodiscard]] static std::optional<environment_lease> find_reusable(acquire_request const& r,
                                                                        std::vector<environment_lease> const& leases) {
        auto const expected = expected_sandbox_scope(r);
        if (!expected) return std::nullopt;
        for (auto const& l : leases)  // newest first: the most recent sandbox of the scope wins
            if (kept(l) && judge_sandbox_reuse_candidate(*expected, r.heartbeat_run_id, l) != sandbox_reuse_verdict::skip)
                return l;
        return std::nullopt;
    }
    [[nodiscard]] static bool matches(acquire_request const& r, environment_lease const& candidate) {
        auto const expected = expected_sandbox_scope(r);
        return expected && kept(candidate) &&
               judge_sandbox_reuse_candidate(*expected, r.heartbeat_run_id, candidate) == sandbox_reuse_verdict::reuse;
    }
    static void stamp(acquire_request const& r, lease_grant& grant) {
        if (!keeps_sandbox(grant.metadata)) return;
        auto expected = expected_sandbox_scope(r);
        if (!expected) return;
        grant.metadata[reusable_sandbox_lease_key] = std::move(*expected);
        if (r.agent_id.has_value()) grant.metadata["agentId"] = *r.agent_id;
    }
    [[nodiscard]] static lease_status status_for(run_outcome o, environment_lease const& lease) noexcept {
        if (o == run_outcome::succeeded && lease.metadata && keeps_sandbox(*lease.metadata))
            return lease_status::retained;
        return upstream_status_for(o);
    }
};

}  // namespace berth::detail

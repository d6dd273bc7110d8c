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
[[nodiscard]] inline std::optional<json_object> compute_sandbox_scope(acquire_request const& r) {
    if (r.env.driver != driver_kind::sandbox) return std::nullopt;
    auto cfg = parse_sandbox_config(r.env.config);
    if (!sandbox_reuse_gate(true, cfg, r)) return std::nullopt;
    return sandbox_reuse_scope(r, cfg.provider, cfg.provider_config, r.adapter_type);
}

/// What of the run id the scope record depends on (sandbox_reuse_gate): whether there is one.
[[nodiscard]] inline bool has_run_id(acquire_request const& r) noexcept {
    return r.heartbeat_run_id.has_value() && !r.heartbeat_run_id->empty();
}

/// compute_sandbox_scope(r), remembered: the orchestrator asks find_reusable, matches and stamp in
/// turn with one request, and each would otherwise build the record again (two stable
/// serialisations, two SHA-256); the next run of the same agent in the same workspace asks for the
/// same record again. The record is a pure function of the fields compared here (of the run id only
/// whether there is one), so a request equal in them gets the remembered one; one entry per thread.
[[nodiscard]] inline std::optional<json_object> const& expected_sandbox_scope(acquire_request const& r) {
    struct memo {
        bool filled = false;
        std::string company_id, env_id;
        driver_kind driver{};
        json_object config;
        bool has_run = false;
        std::optional<std::string> execution_workspace_id, agent_id, adapter_type;
        lease_policy_kind policy{};
        std::optional<json_object> scope;
        [[nodiscard]] bool same(acquire_request const& q) const {
            return filled && q.lease_policy == policy && q.env.driver == driver && q.env.id == env_id &&
                   q.company_id == company_id && q.execution_workspace_id == execution_workspace_id &&
                   q.agent_id.get() == agent_id && has_run_id(q) == has_run && q.adapter_type == adapter_type &&
                   q.env.config == config;
        }
    };
    thread_local memo m;
    if (m.same(r)) return m.scope;
    m.filled = false;  // a compute that throws leaves nothing half-remembered
    m.scope = compute_sandbox_scope(r);
    m.company_id = r.company_id;
    m.env_id = r.env.id;
    m.driver = r.env.driver;
    m.config = r.env.config;
    m.has_run = has_run_id(r);
    m.execution_workspace_id = r.execution_workspace_id;
    m.agent_id = r.agent_id.get();
    m.adapter_type = r.adapter_type;
    m.policy = r.lease_policy;
    m.filled = true;
    return m.scope;
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
        auto const& expected = expected_sandbox_scope(r);
        if (!expected) return std::nullopt;
        for (auto const& l : leases)  // newest first: the most recent sandbox of the scope wins
            if (kept(l) && judge_sandbox_reuse_candidate(*expected, r.heartbeat_run_id, l) != sandbox_reuse_verdict::skip)
                return l;
        return std::nullopt;
    }
    [[nodiscard]] static bool matches(acquire_request const& r, environment_lease const& candidate) {
        auto const& expected = expected_sandbox_scope(r);
        return expected && kept(candidate) &&
               judge_sandbox_reuse_candidate(*expected, r.heartbeat_run_id, candidate) == sandbox_reuse_verdict::reuse;
    }
    static void stamp(acquire_request const& r, lease_grant& grant) {
        if (!keeps_sandbox(grant.metadata)) return;
        auto const& expected = expected_sandbox_scope(r);
        if (!expected) return;
        // A resumed grant usually carries this very record already: compared, not copied again.
        if (auto* rec = grant.metadata.if_contains(reusable_sandbox_lease_key); !rec || *rec != *expected)
            grant.metadata[reusable_sandbox_lease_key] = *expected;
        if (r.agent_id.has_value())
            if (auto* a = grant.metadata.if_contains("agentId"); !a || !a->is_string() || a->get_string() != *r.agent_id)
                grant.metadata["agentId"] = *r.agent_id;
    }
    [[nodiscard]] static lease_status status_for(run_outcome o, environment_lease const& lease) noexcept {
        if (o == run_outcome::succeeded && lease.metadata && keeps_sandbox(*lease.metadata))
            return lease_status::retained;
        return upstream_status_for(o);
    }
};

}  // namespace berth::detail

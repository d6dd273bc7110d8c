// berth-run — run one command through berth's whole lifecycle:
//   resolve → acquire → realize (worktree, provisioning, services) → execute → release → cleanup
// saying on stderr what each step is about to do and how it ended (so stdout stays the command's),
// then the environment's leases and the company's activity as tables — read back from the SQLite
// file (--db, default ./berth.db), so a second run shows the first one's lease and events too.
// --json prints one JSON document on stdout instead; --quiet prints nothing of berth's own. The
// exit code is the command's (124 on timeout, 128+N on signal N, 125 when berth itself failed,
// 2 for a usage error).
//
//   berth-run [options] -- COMMAND [ARGS...]
//
// Layout: options.hpp (the command line), progress.hpp (the step lines), report.hpp (tables and
// the JSON document), services.hpp (--services), ssh.hpp (--ssh), plugin.hpp (--plugin),
// sandbox.hpp (--sandbox), interrupts.hpp (signals, and output that cannot stall the run); here,
// one function per step, called in order by run_command().
//
// Interrupted runs (docs/reliability.md): every berth-run first recovers what earlier runs on the
// same store left when they were killed; SIGINT, SIGTERM, SIGHUP and SIGPIPE end the run
// `cancelled` (command's group signalled, then killed after a grace; services stopped; worktree
// removed unless --keep; lease `expired`) with exit 128 + the signal; a run whose lease was lost
// or could not be released never exits 0.

#include <berth/berth.hpp>
#include <berth/drivers/local.hpp>
#include <berth/process/signal_name.hpp>  // signals by name, as the library prints them
#include <berth/recovery/recover.hpp>
#include <berth/src.hpp>
#include <berth/stores/sqlite.hpp>
#ifdef BERTH_RUN_WITH_POSTGRES
#include <berth/stores/postgres.hpp>  // --db postgresql://...
#endif

#include "interrupts.hpp"
#include "options.hpp"
#include "plugin.hpp"  // --plugin: the run's plugin environment
#include "progress.hpp"
#include "report.hpp"
#if BERTH_RUN_WITH_SERVICES
#include "services.hpp"  // --services FILE: the run's runtime services
#endif
#ifdef BERTH_RUN_WITH_SSH
#include "ssh.hpp"  // --ssh: the run's SSH environment
#endif
#ifdef BERTH_RUN_WITH_SANDBOX
#include "sandbox.hpp"  // --sandbox: the run's sandbox environment
#define BERTH_RUN_SANDBOX_DRIVER , berth_run::sandbox_driver
#define BERTH_RUN_SANDBOX_INSTANCE , berth_run::sandbox_driver{}
#define BERTH_RUN_SANDBOX_POLICY , berth::reuse_by_environment
#else
#define BERTH_RUN_SANDBOX_DRIVER
#define BERTH_RUN_SANDBOX_INSTANCE
#define BERTH_RUN_SANDBOX_POLICY
#endif

#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

namespace berth_run {
namespace {

/// Runs `f` as the reporter's current long step: a failure is recorded on the step, then rethrown.
template <class F>
decltype(auto) reported(reporter& rep, F&& f) {
    try {
        return std::forward<F>(f)();
    } catch (std::exception const& e) {
        rep.fail(e.what());
        throw;
    }
}

int exit_code_of(berth::command_result const& r) {
    if (r.timed_out) return 124;
    if (r.exit_code) return *r.exit_code;
    if (r.signal) return 128 + *r.signal;
    return 125;
}

std::string ended_text(berth::command_result const& r) {
    if (r.cancelled) return "cancelled";
    if (r.timed_out) return "timed out";
    if (r.exit_code) return fmt::format("exit {}", *r.exit_code);
    return r.signal ? "signal " + berth::process::signal_name(*r.signal) : std::string("signal -");
}

/// Options that depend on the drivers this berth-run was built with; checked before --db is
/// opened, so that a usage error never creates the store file.
void validate_drivers(options const& o) {
#ifdef BERTH_RUN_WITH_SSH
    if (o.ssh) (void)ssh_config_of(*o.ssh);
#else
    if (o.ssh) die_usage("--ssh: this berth-run was built without the SSH driver (libssh-dev)");
#endif
    if (o.plugin) {
        auto const manifest = plugin_manifest_of(*o.plugin);
        (void)plugin_driver_key_of(manifest, *o.plugin);
        (void)plugin_driver_config_of(o);
    }
#ifdef BERTH_RUN_WITH_SANDBOX
    if (o.sandbox) (void)sandbox_config_of(o);
#else
    if (o.sandbox) die_usage("--sandbox: this berth-run was built without berth::sandbox");
#endif
#if !BERTH_RUN_WITH_SERVICES
    if (o.services) die_usage("--services: this berth-run was built without berth::services (libssl-dev)");
#endif
}

/// What the orchestrator reports that berth-run's own step lines do not say: the provision
/// command's output, as it runs (the steps themselves are said by the functions below).
struct provision_output {
    using observer_concept = berth::observer_tag;
    reporter* rep = nullptr;
    void on_step_started(berth::step_started const&) const noexcept {}
    void on_step_ended(berth::step_ended const&) const noexcept {}
    void on_step_output(berth::step_output const& out) const noexcept {
        if (out.step != berth::run_step::provision) return;
        try {
            std::string_view text = out.chunk;
            while (!text.empty()) {
                auto const nl = text.find('\n');
                rep->line(fmt::format("  | {}", text.substr(0, nl)));
                if (nl == std::string_view::npos) break;
                text.remove_prefix(nl + 1);
            }
        } catch (...) {  // a line that cannot be printed is not worth ending the run for
        }
    }
};

/// Calls `f(orchestrator, environment id or nullopt)` with the stack this berth-run was built with.
template <class Store, class F>
int with_orchestrator(Store& store, options const& o, reporter& rep, F&& f) {
    // --plugin's worker (if any) runs while the orchestrator lives, and stops with the registry.
    auto const plugins = plugin_registry_of(o);
#ifdef BERTH_RUN_WITH_SSH
    using stack = berth::stack<
        berth::drivers<berth::local_driver, berth::ssh_driver, berth::plugin_driver BERTH_RUN_SANDBOX_DRIVER>,
        berth::policies<berth::ephemeral, berth::retain_on_failure BERTH_RUN_SANDBOX_POLICY>, Store, berth::system_clock, provision_output>;
    berth::run_orchestrator<stack> orch{store,
                                        berth::system_clock{},
                                        provision_output{&rep},
                                        berth::local_driver{},
                                        berth::ssh_driver{ssh_driver_options_of(o)},
                                        berth::plugin_driver{plugins} BERTH_RUN_SANDBOX_INSTANCE};
    auto environment_id = o.ssh      ? std::optional<std::string>(ssh_environment(store, o))
                          : o.plugin ? std::optional<std::string>(plugin_environment(store, o))
                                     : o.environment;
#else
    using stack = berth::stack<berth::drivers<berth::local_driver, berth::plugin_driver BERTH_RUN_SANDBOX_DRIVER>,
                               berth::policies<berth::ephemeral, berth::retain_on_failure BERTH_RUN_SANDBOX_POLICY>, Store, berth::system_clock,
                               provision_output>;
    berth::run_orchestrator<stack> orch{store, berth::system_clock{}, provision_output{&rep}, berth::local_driver{},
                                        berth::plugin_driver{plugins} BERTH_RUN_SANDBOX_INSTANCE};
    auto environment_id = o.plugin ? std::optional<std::string>(plugin_environment(store, o)) : o.environment;
#endif
#ifdef BERTH_RUN_WITH_SANDBOX
    if (o.sandbox) environment_id = sandbox_environment(store, o);
#endif
    return f(orch, environment_id);
}

/// Fault injection for the crash tests (tests/unit/crash_fault_matrix_test.cpp): with
/// BERTH_RUN_FAULT_PAUSE=<step> set, berth-run stops at that step (acquire, services, release),
/// says so on stderr, and waits there for a signal, so that a test can interrupt it at exactly
/// that point. (The tests stall worktree creation with a `git` of their own on PATH instead.)
void pause_for_fault_test(interrupts const& sig, std::string_view at) {
    char const* want = std::getenv("BERTH_RUN_FAULT_PAUSE");
    if (!want || at != want) return;
    fmt::print(stderr, "[berth] paused   at {}\n", at);
    std::fflush(stderr);
    while (sig.signal() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

/// What earlier runs on this store left behind when they were killed: their leases, services and
/// worktrees (berth::recover).
template <class Store, class Orch>
void recover_step(Store& store, Orch const& orch, reporter& rep) {
    auto const rec = berth::recover(orch, {.reconcile_services = [&] {
#if BERTH_RUN_WITH_SERVICES
        berth::services::supervisor<Store> sup{store};  // adopts what dead runs left; stops it when it goes
        (void)sup.reconcile_on_startup();
#else
        (void)store;
#endif
    }});
    if (!rec.ended.empty() || !rec.errors.empty() || !rec.workspaces_cleaned.empty())
        rep.note("recover", fmt::format("{} lease(s) of dead holders, {} expired, {} cleanup(s) retried, {} worktree(s) "
                                        "removed, {} error(s)",
                                        rec.holder_lost, rec.expired, rec.cleanup_retried, rec.workspaces_cleaned.size(),
                                        rec.errors.size()));
    for (auto const& e : rec.errors) rep.note("recover", fmt::format("error on lease {}: {}", e.lease_id, e.message));
#ifdef BERTH_RUN_WITH_SANDBOX
    // Then the sandboxes no live lease holds: a lease ended without deleting its sandbox, a
    // sandbox whose host died before recording its lease (and what of it still runs).
    auto const reaped = berth::reap_orphan_sandboxes(
        orch, orch.template driver<sandbox_driver>().template provider<berth::bubblewrap>());
    if (!reaped.removed.empty() || !reaped.errors.empty())
        rep.note("recover", fmt::format("{} orphan sandbox(es) removed, {} error(s)", reaped.removed.size(),
                                        reaped.errors.size()));
    for (auto const& e : reaped.errors) rep.note("recover", "error on sandbox " + e);
#endif
}

std::string issue_of(options const& o) { return o.issue.value_or("run-" + o.run.substr(0, 8)); }

template <class Orch>
berth::environment resolve_step(Orch const& orch, options const& o, std::optional<std::string> const& environment_id,
                                reporter& rep) {
    auto env = orch.resolve_environment({.company_id = o.company, .environment_id = environment_id});
    rep.note("resolve", fmt::format("environment \"{}\" ({}, {}) {}", env.name, env.driver, env.status, env.id));
    return env;
}

/// The lease, renewed while the run lives; if it is taken away meanwhile the command is stopped
/// and `lost` is set (the run then cannot succeed).
template <class Orch>
berth::run_scope<Orch> acquire_step(Orch const& orch, options const& o, berth::environment const& env, reporter& rep,
                                    std::atomic<bool>& lost) {
    rep.begin("acquire", fmt::format("acquiring a lease on \"{}\" ({})", env.name, env.driver));
    return reported(rep, [&] {
        berth::run_scope<Orch> run{orch,
                                   {.company_id = o.company,
                                    .environment_id = env.id,
                                    .agent_id = o.agent,
                                    .heartbeat_run_id = o.run,
                                    .issue_id = o.worktree || o.issue ? std::optional(issue_of(o)) : std::nullopt,
#ifdef BERTH_RUN_WITH_SANDBOX
                                    .execution_workspace_id = sandbox_execution_workspace_of(o),
#endif
                                   },
                                   [&lost](std::string const& why) {
                                       lost = true;
                                       fmt::print(stderr, "[berth] {:<8} {}\n", "lease", why);
                                       (void)berth::process::signal_running(SIGTERM);
                                   }};
        rep.end(fmt::format("lease {} policy {} provider {}", run.lease().id, run.lease().lease_policy,
                            shown(run.lease().provider)));
        return run;
    });
}

/// The workspace: a new (or reused) git worktree with --worktree, provisioned with --provision;
/// the remote workspace with --ssh; else --cwd as it is.
template <class Scope>
berth::realization const& realize_step(Scope& run, options const& o, reporter& rep) {
    auto const provisioning = o.provision ? fmt::format(", then provisioning it: {}", *o.provision) : std::string();
    if (o.worktree) {
        auto const issue = issue_of(o);
        rep.begin("worktree", fmt::format("creating worktree of {} for {}{}", o.cwd, issue, provisioning));
        auto const& realized = reported(rep, [&]() -> berth::realization const& {
            return run.realize(berth::realize_workspace_request{
                .base = {.base_cwd = o.cwd, .project_id = o.cwd},
                .strategy = {.type = berth::workspace_strategy_type::git_worktree, .provision_command = o.provision},
                .issue = berth::workspace_issue{.id = issue, .identifier = issue, .title = o.title},
                .agent = {.id = o.agent, .name = o.agent.value_or("berth-run"), .company_id = o.company},
                .stop = cancellation().get_token(),
                .provision_timeout = o.provision_timeout,
                .remove_when_run_ends = !o.keep});
        });
        // Under --sandbox the worktree is bound into the sandbox, where the command sees it at realized.cwd.
        auto const& host_cwd = realized.workspace->cwd;
        rep.end(fmt::format("{} branch {} ({}){}", host_cwd, shown(realized.workspace->branch_name),
                            realized.workspace->created ? "created" : "reused",
                            realized.cwd != host_cwd ? ", seen as " + realized.cwd + " by COMMAND" : std::string()));
        return realized;
    }
    if (run.env().driver != berth::driver_kind::local) {
        rep.begin("realize", fmt::format("preparing the workspace on \"{}\"{}", run.env().name, provisioning));
        auto const& realized =
            reported(rep, [&]() -> berth::realization const& {
                return run.realize(o.cwd, o.provision, cancellation().get_token());
            });
        rep.end(fmt::format("cwd {}{}", realized.cwd, realized.target ? " target " + realized.target->kind : ""));
        return realized;
    }
    auto const& realized = run.realize(o.cwd);
    rep.note("realize", fmt::format("cwd {}{}", realized.cwd, realized.target ? " target " + realized.target->kind : ""));
    return realized;
}

/// COMMAND, its output streamed as it comes (stdout to stderr under --json, so that stdout holds
/// only the document), its environment given the services' URLs.
template <class Scope>
berth::command_result execute_step(Scope const& run, options const& o, std::map<std::string, std::string> env,
                                   reporter& rep, interrupts& sig, output_writer& out) {
    std::string shown_argv;
    for (auto const& a : o.argv) shown_argv += (shown_argv.empty() ? "" : " ") + a;
    bool const json = o.mode() == output_mode::json;
    berth::command cmd{.program = o.argv.front(),
                       .args = {o.argv.begin() + 1, o.argv.end()},
                       .env = std::move(env),
                       .timeout = o.timeout,
                       .on_output = [json, &out](berth::output_stream s, std::string_view chunk) {
                           bool const to_stdout = s == berth::output_stream::stdout_stream && !json;
                           out.write(to_stdout ? STDOUT_FILENO : STDERR_FILENO, chunk);
                       },
                       .stop = cancellation().get_token()};
    // --timeout holds whatever berth-run's own readers do: output that cannot be written by then
    // is dropped, so that the deadline is always seen.
    out.set_deadline(std::chrono::steady_clock::now() + o.timeout);
    rep.begin("execute", shown_argv, /*live=*/false);  // the command's own output is the progress
    sig.check();
    sig.executing(true);
    auto result = reported(rep, [&] { return run.execute(std::move(cmd)); });
    sig.executing(false);
    rep.end(ended_text(result));
    return result;
}

berth::run_outcome outcome_of(berth::command_result const& r) {
    if (r.cancelled) return berth::run_outcome::cancelled;
    if (r.timed_out) return berth::run_outcome::timed_out;
    return exit_code_of(r) == 0 ? berth::run_outcome::succeeded : berth::run_outcome::failed;
}

/// True when the run's own lease was released (a lease lost, or one the store could not move, is not).
template <class Scope>
bool release_step(Scope& run, berth::run_outcome outcome, reporter& rep) {
    auto const released = run.finish(outcome);
    for (auto const& e : released.errors) rep.note("release", fmt::format("error on lease {}: {}", e.lease_id, e.message));
    for (auto const& l : released.released)
        rep.note("release", fmt::format("lease {} {}{}", l.id, l.status,
                                        l.failure_reason ? " (" + *l.failure_reason + ")" : std::string()));
    return released.errors.empty() && std::any_of(released.released.begin(), released.released.end(),
                                                  [&](auto const& l) { return l.id == run.lease().id; });
}

/// The worktree goes unless --keep (after the services, which run in it).
template <class Store, class Orch>
void cleanup_step(Store& store, Orch const& orch, berth::realization const& realized, options const& o, reporter& rep,
                  char const* reason = "berth-run finished") {
    if (!realized.execution_workspace) return;
    if (o.keep) {
        rep.note("cleanup", fmt::format("kept {} (--keep)", realized.cwd));
        return;
    }
    rep.begin("cleanup", fmt::format("removing worktree {}", realized.workspace ? realized.workspace->cwd : realized.cwd));
    berth::workspace_manager wm{store, orch.template driver<berth::local_driver>().workspaces()};
    auto const done = reported(rep, [&] {
        // Under the run's own hold on the worktree (cleanup never removes one another run holds).
        return wm.cleanup(realized.execution_workspace->id,
                          {.heartbeat_run_id = o.run,
                           .cleanup_reason = reason,
                           .held_lock = realized.workspace ? realized.workspace->lock : nullptr});
    });
    rep.end(fmt::format("{} {}", shown(done.result.cleaned_path), done.result.cleaned ? "removed" : "NOT removed"));
    for (auto const& w : done.result.warnings) rep.note("cleanup", "warning: " + w);
}

/// --destroy-reusable: the sandboxes --reuse kept for --cwd (every agent's), or those of --issue, are
/// destroyed (run_orchestrator::destroy_reusable_leases); their leases end expired (pending_cleanup
/// when a destroy fails: the next recover() retries it). Exit 0, or 125 when one failed.
template <class Orch>
int destroy_reusable_step(Orch const& orch, options const& o, reporter& rep, run_document& doc) {
#ifdef BERTH_RUN_WITH_SANDBOX
    berth::destroy_reusable_request req{.company_id = o.company};
    if (o.issue) req.issue_id = *o.issue;
    else req.execution_workspace_id = execution_workspace_of_cwd(o.cwd);
    rep.begin("destroy", o.issue ? fmt::format("destroying the kept sandboxes of issue {}", *o.issue)
                                 : fmt::format("destroying the kept sandboxes of {}", o.cwd));
    auto const r = orch.destroy_reusable_leases(req);
    rep.end(fmt::format("{} destroyed, {} error(s)", r.released.size(), r.errors.size()));
    boost::json::array destroyed;
    for (auto const& l : r.released) {
        rep.note("destroy", fmt::format("lease {} {} sandbox {}", l.id, l.status, shown(l.provider_lease_id)));
        destroyed.push_back(berth::to_json(l));
    }
    for (auto const& e : r.errors) rep.note("destroy", fmt::format("error on lease {}: {}", e.lease_id, e.message));
    doc.destroyed = std::move(destroyed);
    return r.errors.empty() ? 0 : 125;
#else
    (void)orch, (void)o, (void)rep, (void)doc;
    die_usage("--destroy-reusable: this berth-run was built without berth::sandbox");
#endif
}

template <class Store>
int run_command(Store& store, options const& o, reporter& rep, run_document& doc, interrupts& sig,
                output_writer& out) {
    return with_orchestrator(store, o, rep, [&](auto const& orch, std::optional<std::string> const& environment_id) {
        recover_step(store, orch, rep);
        if (o.destroy_reusable) return destroy_reusable_step(orch, o, rep, doc);
        sig.check();
        auto const env = resolve_step(orch, o, environment_id, rep);
        std::atomic<bool> lease_lost{false};
        auto run = acquire_step(orch, o, env, rep, lease_lost);
        pause_for_fault_test(sig, "acquire");

        // Interrupted from here on: the run ends `cancelled` (lease expired), its worktree goes
        // by policy, exit 128 + the signal.
        berth::realization const* realized_ptr = nullptr;
        auto cancelled = [&](int signal) {
            if (realized_ptr) {
                cleanup_step(store, orch, *realized_ptr, o, rep, "berth-run interrupted");
            } else if (o.worktree) {
                // Interrupted while realizing: what the run had made so far (it holds no lock now).
                auto const made = berth::clean_up_run_workspaces(orch, o.run);
                for (auto const& p : made.workspaces_cleaned) rep.note("cleanup", p + " removed");
                for (auto const& w : made.warnings) rep.note("cleanup", "warning: " + w);
            }
            (void)release_step(run, berth::run_outcome::cancelled, rep);
            doc.outcome = berth::to_string(berth::run_outcome::cancelled);
            rep.always("berth-run: interrupted by signal " + berth::process::signal_name(signal));
            return 128 + signal;
        };
        try {
            sig.check();
            realized_ptr = &realize_step(run, o, rep);
            sig.check();
        } catch (...) {
            if (sig.signal() != 0) return cancelled(sig.signal());
            if (o.worktree) (void)berth::clean_up_run_workspaces(orch, o.run);  // a half-made worktree
            throw;
        }
        auto const& realized = *realized_ptr;

        std::map<std::string, std::string> command_env;
#if BERTH_RUN_WITH_SERVICES
        std::optional<run_services<Store>> services;
        try {
            if (o.services) {
                services.emplace(store, rep, *o.services, o.run, realized.cwd, o.company, o.agent);
                command_env = services->command_env();
                doc.services = services->to_json();
                pause_for_fault_test(sig, "services");
            }
            sig.check();
        } catch (...) {
            if (sig.signal() == 0) throw;
            services.reset();
            return cancelled(sig.signal());
        }
#endif

#ifdef BERTH_RUN_WITH_SSH
        auto const& ssh = orch.template driver<berth::ssh_driver>();
        if (o.sync) {
            rep.begin("sync", fmt::format("pushing the tracked files of {}", o.cwd));
            auto const pushed = reported(rep, [&] { return ssh.sync_in(env, run.lease(), o.cwd); });
            rep.end(fmt::format("pushed {} tracked files ({} bytes)", pushed.files, pushed.bytes));
        }
#endif
        auto const result = execute_step(run, o, std::move(command_env), rep, sig, out);
#ifdef BERTH_RUN_WITH_SSH
        if (o.sync) {
            rep.begin("sync", fmt::format("pulling the files the command changed into {}", o.cwd));
            auto const pulled = reported(rep, [&] { return ssh.sync_out(env, run.lease(), o.cwd); });
            rep.end(fmt::format("pulled {} changed files", pulled.files));
        }
#endif
        doc.command = {{"exit_code", result.exit_code ? boost::json::value(*result.exit_code) : nullptr},
                       {"signal", result.signal ? boost::json::value(*result.signal) : nullptr},
                       {"timed_out", result.timed_out},
                       {"duration_ms", double(result.duration.count()) / 1000.0},
                       {"stdout", result.stdout_text},
                       {"stderr", result.stderr_text},
                       {"stdout_truncated", result.stdout_truncated},
                       {"stderr_truncated", result.stderr_truncated}};
        pause_for_fault_test(sig, "release");
        int const interrupted = sig.signal();
        auto const outcome = interrupted != 0 ? berth::run_outcome::cancelled : outcome_of(result);
        doc.outcome = berth::to_string(outcome);

        // Services, then the worktree, then the lease: what the run holds is put away while its
        // lease still says the run holds it, so a crash in between leaves a lease that the next
        // recover() ends, and it removes the rest.
#if BERTH_RUN_WITH_SERVICES
        services.reset();  // the run's services may run in the worktree: release them before removing it
#endif
        cleanup_step(store, orch, realized, o, rep, interrupted ? "berth-run interrupted" : "berth-run finished");
        bool const released = release_step(run, outcome, rep) && !lease_lost;
        for (auto const& op : store.list_operations({.company_id = o.company, .heartbeat_run_id = o.run}))
            rep.note("op", fmt::format("{:<19} {:<9} exit {} {}", op.phase, op.status, shown(op.exit_code),
                                       op.command.value_or("(no command)")));
        if (out.dropped() > 0)
            rep.note("output", fmt::format("{} bytes of the command's output dropped: nobody read them in time",
                                           out.dropped()));
        if (interrupted != 0) {
            rep.always("berth-run: interrupted by signal " + berth::process::signal_name(interrupted));
            return 128 + interrupted;
        }
        auto const code = exit_code_of(result);
        if (!released) {
            // A run whose lease was lost, or could not be released, did not succeed.
            rep.always("berth-run: the run's lease was lost or could not be released");
            return code == 0 ? 125 : code;
        }
        return code;
    });
}

/// The run as the store has it now (also after a failure: the lease was released as failed).
template <class Store>
void read_back(Store& store, options const& o, run_document& doc) {
    auto const leases = store.list_run_leases(o.run, {});
    if (!leases.empty()) doc.lease = leases.front();
    doc.events = store.list_activity({.company_id = o.company, .run_id = o.run});
    doc.operations = store.list_operations({.company_id = o.company, .heartbeat_run_id = o.run});
}

}  // namespace
}  // namespace berth_run

namespace berth_run {
namespace {

/// True when --db names a PostgreSQL database (a URL or a libpq key=value string), not a file.
bool is_postgres(std::string const& db) {
    return db.starts_with("postgresql://") || db.starts_with("postgres://") || db.find("dbname=") != std::string::npos ||
           db.find("host=") != std::string::npos;
}

/// Opens the store with `open`, runs the command, reads the run back and prints it. `where` names
/// the store in messages: the file, or the server (host, port, database: never a password).
template <class Store, class Open>
int run_on(options const& o, interrupts& sig, output_writer& out, Open&& open) {
    reporter rep{o.mode()};
    run_document doc{.run_id = o.run, .company_id = o.company, .argv = o.argv};
    std::optional<Store> store;
    std::string where = is_postgres(o.db) ? std::string("the PostgreSQL database") : o.db;
    try {
        store.emplace(open());
        if constexpr (requires { store->target(); }) where = store->target();
        doc.exit_code = run_command(*store, o, rep, doc, sig, out);
    } catch (interrupted const& e) {
        doc.error = {{"code", nullptr}, {"message", e.what()}};
        rep.always(fmt::format("berth-run: {}", e.what()));
        doc.exit_code = 128 + e.signal;
    } catch (berth::environment_run_error const& e) {
        doc.error = {{"code", berth::to_string(e.code())}, {"message", e.what()}};
        rep.always(fmt::format("berth-run: {}: {}", berth::to_string(e.code()), e.what()));
    } catch (std::exception const& e) {
        doc.error = {{"code", nullptr}, {"message", e.what()}};
        rep.always(fmt::format("berth-run: {}", e.what()));
    }
    try {
        if (store) read_back(*store, o, doc);
        if (o.mode() == output_mode::json) {
            std::fputs((boost::json::serialize(doc.to_json(rep.steps())) + "\n").c_str(), stdout);
        } else if (o.mode() == output_mode::normal && doc.lease) {
            print_lease(*doc.lease);
            // This run's lease and events only: a company's history can be millions of rows.
            print_history(store->list_run_leases(o.run, {}), doc.events, where);
        }
    } catch (std::exception const& e) {
        rep.always(fmt::format("berth-run: reading the run back from {}: {}", where, e.what()));
        return 125;
    }
    return doc.exit_code;
}

}  // namespace
}  // namespace berth_run

int main(int argc, char** argv) {
    using namespace berth_run;
    auto const o = parse_options(argc, argv);
    validate_drivers(o);
    interrupts sig{std::chrono::seconds(2)};  // before any thread starts: every thread inherits its mask
    output_writer out{sig};
    if (is_postgres(o.db)) {
#ifdef BERTH_RUN_WITH_POSTGRES
        return run_on<berth::postgres_store>(o, sig, out, [&] { return berth::postgres_store::open(o.db); });
#else
        std::fputs("berth-run: --db names a PostgreSQL database, but this berth-run was built without "
                   "berth::postgres (install libpq-dev and reconfigure)\n",
                   stderr);
        return 2;
#endif
    }
    return run_on<berth::sqlite_store>(o, sig, out, [&] { return berth::sqlite_store::open(o.db); });
}

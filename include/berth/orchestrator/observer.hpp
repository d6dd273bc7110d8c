#pragma once
//! @file
//! berth::run_observer — the progress of a run's steps, reported by the orchestrator as each step
//! starts and ends, with the live output of the commands it runs. The observer is the fifth
//! parameter of berth::stack; the default, berth::no_observer, compiles to nothing (the
//! orchestrator's step notes for it are empty inline functions on an empty member).
//!
//! Required (berth::run_observer<O>):
//!   - `using observer_concept = berth::observer_tag;`               opt-in tag
//!   - `void on_step_started(step_started const&) const noexcept`    a step begins
//!   - `void on_step_ended(step_ended const&) const noexcept`        it ended (ok or not)
//!   - `void on_step_output(step_output const&) const noexcept`      a chunk of a command's output
//! Semantics: called on the thread that runs the step (several runs at once: several threads);
//! the views are valid only during the call; an observer must not call back into the
//! orchestrator, and must not throw (noexcept: a throwing observer terminates).
//!
//! Steps, in the order of a run: `acquire`, `worktree` (local execution workspaces; its
//! provisioning's output is reported as `provision` output), `realize`, `provision` (off-local
//! environments), `execute`, `release`. The runtime service supervisor (an observer is its third
//! template parameter, berth/services/supervisor.hpp) reports `service` (one service about to be
//! started, reused or adopted: "service web: <command>") and, inside it, `readiness` (its wait:
//! "waiting for service web: GET http://127.0.0.1:PORT/health (timeout 30 s)").
//!
//! @code
//! struct printer {
//!     using observer_concept = berth::observer_tag;
//!     void on_step_started(berth::step_started const& s) const noexcept { std::printf("%s: %s\n", to_string(s.step), s.what.data()); }
//!     void on_step_ended(berth::step_ended const& e) const noexcept { ... }
//!     void on_step_output(berth::step_output const& o) const noexcept { ... }
//! };
//! using stack = berth::stack<berth::drivers<berth::local_driver>, berth::policies<berth::ephemeral>,
//!                            berth::memory_store, berth::system_clock, printer>;
//! berth::run_orchestrator<stack> orch{store, berth::system_clock{}, printer{}, berth::local_driver{}};
//! @endcode

#include <berth/model/command.hpp>  // output_stream

#include <boost/describe/enum.hpp>  // BOOST_DEFINE_ENUM_CLASS

#include <chrono>       // std::chrono::steady_clock, microseconds
#include <concepts>     // std::derived_from
#include <string_view>  // std::string_view
#include <type_traits>  // std::is_same_v

namespace berth {

/// The steps an orchestrator reports.
BOOST_DEFINE_ENUM_CLASS(run_step, acquire, worktree, realize, provision, execute, release, service, readiness)

struct step_started {
    run_step step{};
    std::string_view run_id{};
    std::string_view what{};  ///< what the step is about to do ("environment \"Local\" (local)", the argv, ...)
};

struct step_ended {
    run_step step{};
    std::string_view run_id{};
    bool ok = false;
    std::string_view outcome{};  ///< "lease <id> active", "exit 0", the error's message, ...
    std::chrono::microseconds elapsed{};
};

struct step_output {
    run_step step{};  ///< `execute`, or `provision`
    std::string_view run_id{};
    output_stream stream{};
    std::string_view chunk{};  ///< as read from the pipe: not split into lines
};

struct observer_tag {};

template <class O>
concept run_observer = requires { typename O::observer_concept; } &&
                       std::derived_from<typename O::observer_concept, observer_tag> &&
                       requires(O const& o, step_started const& s, step_ended const& e, step_output const& out) {
                           { o.on_step_started(s) } noexcept;
                           { o.on_step_ended(e) } noexcept;
                           { o.on_step_output(out) } noexcept;
                       };

/// The default observer: nothing is reported, nothing is paid.
struct no_observer {
    using observer_concept = observer_tag;
    void on_step_started(step_started const&) const noexcept {}
    void on_step_ended(step_ended const&) const noexcept {}
    void on_step_output(step_output const&) const noexcept {}
};
static_assert(run_observer<no_observer>);

/// Whether O reports anything (the orchestrator skips building step texts for no_observer).
template <class O>
inline constexpr bool observes = !std::is_same_v<O, no_observer>;

namespace detail {

/// One step as an RAII note: started on construction, ended `ok` by done(), ended failed by
/// failed(why), or by the destructor ("failed") when an exception left the step.
template <class O>
class step_note {
public:
    step_note(O const& o, run_step step, std::string_view run_id, std::string_view what) noexcept
        : o_(o), step_(step), run_id_(run_id), start_(std::chrono::steady_clock::now()) {
        o_.on_step_started({.step = step_, .run_id = run_id_, .what = what});
    }
    step_note(step_note const&) = delete;
    step_note& operator=(step_note const&) = delete;
    ~step_note() {
        if (!ended_) end(false, "failed");
    }
    void done(std::string_view outcome) noexcept { end(true, outcome); }
    void failed(std::string_view why) noexcept { end(false, why); }
    void output(output_stream s, std::string_view chunk, run_step as) const noexcept {
        o_.on_step_output({.step = as, .run_id = run_id_, .stream = s, .chunk = chunk});
    }

private:
    void end(bool ok, std::string_view outcome) noexcept {
        if (ended_) return;
        ended_ = true;
        o_.on_step_ended({.step = step_,
                          .run_id = run_id_,
                          .ok = ok,
                          .outcome = outcome,
                          .elapsed = std::chrono::duration_cast<std::chrono::microseconds>(
                              std::chrono::steady_clock::now() - start_)});
    }
    O const& o_;
    run_step step_;
    std::string_view run_id_;
    std::chrono::steady_clock::time_point start_;
    bool ended_ = false;
};

/// For no_observer: nothing at all.
template <>
class step_note<no_observer> {
public:
    step_note(no_observer const&, run_step, std::string_view, std::string_view) noexcept {}
    step_note(step_note const&) = delete;
    step_note& operator=(step_note const&) = delete;
    void done(std::string_view) noexcept {}
    void failed(std::string_view) noexcept {}
    void output(output_stream, std::string_view, run_step) const noexcept {}
};

}  // namespace detail

}  // namespace berth

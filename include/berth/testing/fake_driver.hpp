#pragma once
//! @file
//! berth::testing::fake_driver<Kind> — an environment driver with every capability, no side
//! effects, and scripted failures, for testing code that uses the orchestrator (yours and ours).
//!
//! State is shared through a `fake_driver::state` object (held by shared_ptr, thread-safe), so a
//! test keeps a handle after moving the driver into an orchestrator:
//! @code
//! auto fake = berth::testing::fake_driver<berth::driver_kind::ssh>{};
//! auto state = fake.shared_state();
//! state->fail_next("release", "disk on fire");     // the next release throws berth::error("disk on fire")
//! berth::run_orchestrator<stack> orch{store, std::move(fake)};
//! ...
//! CHECK(state->live_provider_leases().empty());      // everything acquired was released
//! @endcode

#include <berth/concepts/environment_driver.hpp>
#include <berth/error.hpp>

#include <cstddef>      // std::size_t
#include <map>          // std::map
#include <memory>       // std::shared_ptr
#include <mutex>        // std::mutex, std::lock_guard
#include <set>          // std::set
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <vector>       // std::vector

namespace berth::testing {

namespace detail {
/// A compile-time string usable as a template argument: fake_driver<driver_kind::sandbox, "fake-2">.
template <std::size_t N>
struct fixed_name {
    char text[N]{};
    constexpr fixed_name(char const (&s)[N]) noexcept {
        for (std::size_t i = 0; i < N; ++i) text[i] = s[i];
    }
    [[nodiscard]] constexpr std::string_view view() const noexcept { return {text, N - 1}; }
};
[[nodiscard]] constexpr std::string_view fake_name(driver_kind family) noexcept {
    switch (family) {
        case driver_kind::local: return "fake-local";
        case driver_kind::ssh: return "fake-ssh";
        case driver_kind::sandbox: return "fake-sandbox";
        case driver_kind::plugin: return "fake-plugin";
    }
    return "fake";
}
}  // namespace detail

/// `Family` is the environments it serves; `Name` its name in a stack (default "fake-<family>"),
/// so that several fakes of one family can live in one stack.
template <driver_kind Family = driver_kind::plugin, detail::fixed_name Name = "">
class fake_driver {
public:
    using driver_concept = driver_tag;
    static constexpr std::string_view name = Name.view().empty() ? detail::fake_name(Family) : Name.view();
    static constexpr driver_kind family = Family;

    /// What the fake has been asked to do, and what it should do next.
    class state {
    public:
        /// The next call of `operation` ("acquire", "release", "resume", "destroy",
        /// "realize_workspace", "execute", "execution_target") throws berth::error(message).
        void fail_next(std::string const& operation, std::string message) {
            std::lock_guard lk(mu_);
            failures_[operation].push_back(std::move(message));
        }
        /// The result the next executes return (default: exit 0, stdout = the argv joined by spaces).
        void set_execute_result(command_result r) {
            std::lock_guard lk(mu_);
            execute_result_ = std::move(r);
        }
        /// The cwd realize_workspace returns (default: the request's local path).
        void set_realized_cwd(std::string cwd) {
            std::lock_guard lk(mu_);
            realized_cwd_ = std::move(cwd);
        }
        /// Every call, in order: "acquire", "release:<lease id>:<status>", "execute:<program>", ...
        [[nodiscard]] std::vector<std::string> calls() const {
            std::lock_guard lk(mu_);
            return calls_;
        }
        /// Provider leases acquired (or resumed) and not yet released or destroyed.
        [[nodiscard]] std::set<std::string> live_provider_leases() const {
            std::lock_guard lk(mu_);
            return live_;
        }
        [[nodiscard]] std::vector<command> executed() const {
            std::lock_guard lk(mu_);
            return executed_;
        }

    private:
        friend class fake_driver;
        void enter(std::string call, std::string const& operation) {
            std::lock_guard lk(mu_);
            calls_.push_back(std::move(call));
            if (auto it = failures_.find(operation); it != failures_.end() && !it->second.empty()) {
                auto msg = std::move(it->second.front());
                it->second.erase(it->second.begin());
                throw error(msg);
            }
        }
        mutable std::mutex mu_;
        std::vector<std::string> calls_;
        std::map<std::string, std::vector<std::string>> failures_;
        std::set<std::string> live_;
        std::vector<command> executed_;
        std::optional<command_result> execute_result_;
        std::optional<std::string> realized_cwd_;
        unsigned long next_id_ = 0;
    };

    fake_driver() : state_(std::make_shared<state>()) {}
    explicit fake_driver(std::shared_ptr<state> s) : state_(std::move(s)) {}

    [[nodiscard]] std::shared_ptr<state> shared_state() const noexcept { return state_; }

    lease_grant acquire(acquire_request const& r) const {
        state_->enter("acquire", "acquire");
        std::lock_guard lk(state_->mu_);
        auto const id = "fake-" + std::to_string(++state_->next_id_);
        state_->live_.insert(id);
        json_object md{{"driver", to_string(family)}, {"fake", true}};
        if (r.agent_id.has_value()) md["agentId"] = *r.agent_id;
        return lease_grant{.provider = "fake", .provider_lease_id = id, .expires_at = {}, .metadata = std::move(md)};
    }

    release_outcome release(environment const&, environment_lease const& l, lease_status to) const {
        state_->enter("release:" + l.id + ":" + to_string(to), "release");
        forget(l);
        return {.cleanup_status = cleanup_status::success, .failure_reason = {}};
    }

    lease_grant resume(environment const&, environment_lease const& l) const {
        state_->enter("resume:" + l.id, "resume");
        std::lock_guard lk(state_->mu_);
        if (l.provider_lease_id) state_->live_.insert(*l.provider_lease_id);
        return lease_grant{.provider = l.provider, .provider_lease_id = l.provider_lease_id, .expires_at = {},
                           .metadata = l.metadata.value_or(json_object{})};
    }

    release_outcome destroy(environment const&, environment_lease const& l) const {
        state_->enter("destroy:" + l.id, "destroy");
        forget(l);
        return {.cleanup_status = cleanup_status::success, .failure_reason = {}};
    }

    workspace_realization realize_workspace(realize_request const& r) const {
        state_->enter("realize_workspace:" + r.lease.id, "realize_workspace");
        std::lock_guard lk(state_->mu_);
        auto const cwd = state_->realized_cwd_ ? *state_->realized_cwd_ : r.local_path.value_or("/");
        return workspace_realization{
            .cwd = cwd,
            .remote_cwd = state_->realized_cwd_,
            .metadata = {{"workspaceRealization", json_object{{"version", 1}, {"transport", "fake"}, {"cwd", cwd}}}}};
    }

    command_result execute(environment const&, environment_lease const&, command const& c) const {
        state_->enter("execute:" + c.program, "execute");
        std::lock_guard lk(state_->mu_);
        state_->executed_.push_back(c);
        if (state_->execute_result_) return *state_->execute_result_;
        command_result r{.exit_code = 0};
        r.stdout_text = c.program;
        for (auto const& a : c.args) r.stdout_text += " " + a;
        return r;
    }

    probe_result probe(environment const& e) const noexcept {
        return probe_result{.ok = true, .summary = "Fake environment " + e.name + " is available.", .details = {}};
    }

    berth::execution_target execution_target(environment const& e, environment_lease const& l) const {
        state_->enter("execution_target:" + l.id, "execution_target");
        return berth::execution_target{.kind = "fake", .transport = {}, .environment_id = e.id, .lease_id = l.id,
                                       .remote_cwd = {}, .spec = {}};
    }

private:
    void forget(environment_lease const& l) const {
        std::lock_guard lk(state_->mu_);
        if (l.provider_lease_id) state_->live_.erase(*l.provider_lease_id);
    }
    std::shared_ptr<state> state_;
};

static_assert(environment_driver<fake_driver<>>);
static_assert(driver_with_resume<fake_driver<>> && driver_with_destroy<fake_driver<>> &&
              driver_with_realize_workspace<fake_driver<>> && driver_with_execute<fake_driver<>> &&
              driver_with_probe<fake_driver<>> && driver_with_execution_target<fake_driver<>>);

}  // namespace berth::testing

#pragma once
//! @file
//! berth::testing::fake_sandbox_provider — upstream's built-in `fake` sandbox provider (the
//! provider a sandbox config without `provider` names), for tests of code that uses sandboxes:
//! sandboxes are records in memory, commands are not run, and every operation can be made to fail.
//!
//! Config (strict, as upstream's fake schema): `image` (string, default `ubuntu:24.04`) plus the
//! sandbox envelope (`reuseLease`, `timeoutMs`, `streamRunLogs`, `streamAgentSessionOutput`,
//! `archiveOnRelease`). Upstream refuses to persist such environments ("Built-in fake sandbox
//! environments are reserved for internal probes and cannot be saved."); berth's stores do not
//! know providers, so that rule is the application's.
//!
//! @code
//! berth::testing::fake_sandbox_provider fake;
//! auto state = fake.shared_state();
//! berth::sandbox_driver<berth::testing::fake_sandbox_provider> driver{fake};
//! state->fail_next("resume", "sandbox vanished");   // the next resume throws berth::error
//! ...
//! CHECK(state->live().empty());                      // every sandbox was released or destroyed
//! @endcode

#include <berth/drivers/sandbox/config.hpp>    // refuse_unknown_sandbox_keys
#include <berth/drivers/sandbox/provider.hpp>  // sandbox_provider_tag and the IO types
#include <berth/error.hpp>                     // berth::error

#include <boost/json/serialize.hpp>  // boost::json::serialize

#include <array>        // std::array
#include <map>          // std::map
#include <memory>       // std::shared_ptr
#include <mutex>        // std::mutex, std::lock_guard
#include <optional>     // std::optional
#include <set>          // std::set
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <utility>      // std::exchange, std::move
#include <vector>       // std::vector

namespace berth::testing {

class fake_sandbox_provider {
public:
    using sandbox_provider_concept = sandbox_provider_tag;
    static constexpr std::string_view name = "fake";
    static constexpr bool supports_reusable_leases = true;
    static constexpr char const* default_image = "ubuntu:24.04";

    /// One fake sandbox.
    struct sandbox {
        std::string id{};
        std::string run_id{};
        std::optional<std::string> agent_id{};
        std::optional<std::string> execution_workspace_id{};
        std::string image{};
        bool reusable = false;
        bool live = true;        ///< false once released (non-reusable) or destroyed
        int resumes = 0;
        int executions = 0;
    };

    /// What the fake was asked to do, and what it should do next. Shared by copies; thread-safe.
    class state {
    public:
        /// The next call of `operation` ("acquire", "resume", "release", "destroy", "realize",
        /// "execute", "sync_in", "sync_out") throws berth::error(message).
        void fail_next(std::string const& operation, std::string message) {
            std::lock_guard lk(mu_);
            failures_[operation].push_back(std::move(message));
        }
        /// The next resume returns no provider lease id (upstream treats it as a failed resume).
        void resume_without_id_next() {
            std::lock_guard lk(mu_);
            resume_without_id_ = true;
        }
        /// The result executes return (default: exit 0, stdout = the argv joined by spaces).
        void set_execute_result(command_result r) {
            std::lock_guard lk(mu_);
            execute_result_ = std::move(r);
        }
        /// Every call, in order: "acquire:<id>", "resume:<id>", "release:<id>", "destroy:<id>",
        /// "realize:<id>", "execute:<id>:<program>", "sync_in:<id>", "sync_out:<id>".
        [[nodiscard]] std::vector<std::string> calls() const {
            std::lock_guard lk(mu_);
            return calls_;
        }
        /// Ids of sandboxes that exist (acquired, not destroyed, not released unless reusable).
        [[nodiscard]] std::set<std::string> live() const {
            std::lock_guard lk(mu_);
            std::set<std::string> out;
            for (auto const& [id, s] : sandboxes_)
                if (s.live) out.insert(id);
            return out;
        }
        [[nodiscard]] std::optional<sandbox> find(std::string const& id) const {
            std::lock_guard lk(mu_);
            auto it = sandboxes_.find(id);
            if (it == sandboxes_.end()) return std::nullopt;
            return it->second;
        }
        [[nodiscard]] std::vector<command> executed() const {
            std::lock_guard lk(mu_);
            return executed_;
        }

    private:
        friend class fake_sandbox_provider;
        void enter(std::string call, std::string const& operation) {
            std::lock_guard lk(mu_);
            calls_.push_back(std::move(call));
            if (auto it = failures_.find(operation); it != failures_.end() && !it->second.empty()) {
                auto msg = std::move(it->second.front());
                it->second.erase(it->second.begin());
                throw error(msg);
            }
        }
        sandbox* get(std::optional<std::string> const& id) {
            if (!id) return nullptr;
            auto it = sandboxes_.find(*id);
            return it == sandboxes_.end() || !it->second.live ? nullptr : &it->second;
        }
        mutable std::mutex mu_;
        std::vector<std::string> calls_;
        std::map<std::string, std::vector<std::string>> failures_;
        std::map<std::string, sandbox> sandboxes_;
        std::vector<command> executed_;
        std::optional<command_result> execute_result_;
        bool resume_without_id_ = false;
        unsigned long next_id_ = 0;
    };

    fake_sandbox_provider() : state_(std::make_shared<state>()) {}
    explicit fake_sandbox_provider(std::shared_ptr<state> s) : state_(std::move(s)) {}

    [[nodiscard]] std::shared_ptr<state> shared_state() const noexcept { return state_; }

    /// upstream's fake schema: `image` (string) and the envelope; anything else is refused.
    /// Returns the config with `image` defaulted.
    [[nodiscard]] json_object validate_config(json_object const& config) const {
        static constexpr std::array<std::string_view, 1> own{"image"};
        refuse_unknown_sandbox_keys(config, own);
        json_object out = config;
        auto const* image = config.if_contains("image");
        if (image == nullptr || image->is_null()) out["image"] = default_image;
        else if (!image->is_string() || image->get_string().empty())
            throw sandbox_config_error("image", "Fake sandbox image must be a non-empty string (got " +
                                                    boost::json::serialize(*image) + ").");
        return out;
    }

    [[nodiscard]] sandbox_lease acquire(sandbox_acquire_params const& p) const {
        std::string id;
        {
            std::lock_guard lk(state_->mu_);
            id = "fake-sandbox-" + std::to_string(++state_->next_id_);
        }
        state_->enter("acquire:" + id, "acquire");
        std::lock_guard lk(state_->mu_);
        auto const* image = p.config.if_contains("image");
        state_->sandboxes_[id] = sandbox{.id = id,
                                         .run_id = p.run_id,
                                         .agent_id = p.agent_id,
                                         .execution_workspace_id = p.execution_workspace_id,
                                         .image = image && image->is_string() ? std::string(image->get_string())
                                                                             : std::string(default_image),
                                         .reusable = p.reusable};
        return sandbox_lease{.provider_lease_id = id,
                             .metadata = {{"remoteCwd", "/workspace"}, {"shellCommand", "bash"}, {"sandboxName", id}},
                             .expires_at = std::nullopt};
    }

    [[nodiscard]] sandbox_lease resume(sandbox_lease_params const& l) const {
        state_->enter("resume:" + l.provider_lease_id.value_or(""), "resume");
        std::lock_guard lk(state_->mu_);
        if (std::exchange(state_->resume_without_id_, false))
            return sandbox_lease{.provider_lease_id = std::nullopt, .metadata = {}, .expires_at = std::nullopt};
        auto* s = state_->get(l.provider_lease_id);
        if (s == nullptr) throw error("Fake sandbox \"" + l.provider_lease_id.value_or("") + "\" does not exist.");
        ++s->resumes;
        return sandbox_lease{.provider_lease_id = s->id, .metadata = {{"resumed", true}}, .expires_at = std::nullopt};
    }

    void release(sandbox_lease_params const& l) const {
        state_->enter("release:" + l.provider_lease_id.value_or(""), "release");
        std::lock_guard lk(state_->mu_);
        if (auto* s = state_->get(l.provider_lease_id); s != nullptr && !l.reusable) s->live = false;
    }

    void destroy(sandbox_lease_params const& l) const {
        state_->enter("destroy:" + l.provider_lease_id.value_or(""), "destroy");
        std::lock_guard lk(state_->mu_);
        if (auto* s = state_->get(l.provider_lease_id)) s->live = false;
    }

    [[nodiscard]] sandbox_realized realize(sandbox_realize_params const& r) const {
        state_->enter("realize:" + r.lease.provider_lease_id.value_or(""), "realize");
        return sandbox_realized{.cwd = r.remote_path.value_or("/workspace"),
                                .metadata = {{"sync", "sandbox_archive_upload_download"}}};
    }

    [[nodiscard]] command_result execute(sandbox_lease_params const& l, command const& c) const {
        state_->enter("execute:" + l.provider_lease_id.value_or("") + ":" + c.program, "execute");
        std::lock_guard lk(state_->mu_);
        auto* s = state_->get(l.provider_lease_id);
        if (s == nullptr) throw error("Fake sandbox \"" + l.provider_lease_id.value_or("") + "\" does not exist.");
        ++s->executions;
        state_->executed_.push_back(c);
        if (state_->execute_result_) return *state_->execute_result_;
        command_result r{.exit_code = 0};
        r.stdout_text = c.program;
        for (auto const& a : c.args) r.stdout_text += " " + a;
        return r;
    }

    /// Ready, without any call (upstream: the built-in fake probe makes no external calls).
    [[nodiscard]] probe_result probe(json_object const& config) const noexcept {
        try {
            auto const* image = config.if_contains("image");
            return probe_result{.ok = true,
                                .summary = "Fake sandbox provider is ready.",
                                .details = {{"image", image ? *image : boost::json::value(default_image)}}};
        } catch (...) {
            return probe_result{};
        }
    }

    [[nodiscard]] sandbox_sync_result sync_in(sandbox_lease_params const& l, std::string const&) const {
        state_->enter("sync_in:" + l.provider_lease_id.value_or(""), "sync_in");
        return {};
    }
    [[nodiscard]] sandbox_sync_result sync_out(sandbox_lease_params const& l, std::string const&) const {
        state_->enter("sync_out:" + l.provider_lease_id.value_or(""), "sync_out");
        return {};
    }

private:
    std::shared_ptr<state> state_;
};

static_assert(sandbox_provider<fake_sandbox_provider>);
static_assert(provider_with_validate_config<fake_sandbox_provider> && provider_with_resume<fake_sandbox_provider> &&
              provider_with_destroy<fake_sandbox_provider> && provider_with_realize<fake_sandbox_provider> &&
              provider_with_execute<fake_sandbox_provider> && provider_with_probe<fake_sandbox_provider> &&
              provider_with_sync<fake_sandbox_provider>);

}  // namespace berth::testing

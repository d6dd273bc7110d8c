// berth-run --services FILE: starts the runtime services of a workspace runtime config for the
// run (berth::services::supervisor), prints the workspace-ready summary on stderr, gives COMMAND
// each service's URL and port in its environment, and releases the run's leases when the run
// ends (stop policies apply; the rest stop with the supervisor).
//
// Progress comes from the supervisor's observer (service_progress): a line as each service is
// looked at, and the readiness wait as a live step with its real URL and timeout, said before
// the wait starts. berth-run's stop token (a signal) reaches the supervisor through the service
// context: a readiness wait ends at once, and the service being started is stopped.
#pragma once

#include "interrupts.hpp"  // cancellation()

#include "progress.hpp"  // reporter

#include <berth/model/json.hpp>  // berth::to_json
#include <berth/services/config.hpp>
#include <berth/services/ready_comment.hpp>
#include <berth/services/run_environment.hpp>
#include <berth/services/supervisor.hpp>

#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <fmt/format.h>

#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace berth_run {

/// The supervisor's steps as berth-run's lines: `service` steps as notes, the `readiness` wait as a
/// long step (live elapsed time on a terminal).
struct service_progress {
    using observer_concept = berth::observer_tag;
    reporter* rep = nullptr;
    void on_step_started(berth::step_started const& s) const noexcept {
        try {
            if (s.step == berth::run_step::readiness) rep->begin("ready", std::string(s.what));
            else if (s.step == berth::run_step::service) rep->note("service", std::string(s.what));
        } catch (...) {  // a line that cannot be printed is not worth ending the run for
        }
    }
    void on_step_ended(berth::step_ended const& e) const noexcept {
        try {
            if (e.step == berth::run_step::readiness) {
                if (e.ok) rep->end(std::string(e.outcome));
                else rep->fail(std::string(e.outcome));
            } else if (e.step == berth::run_step::service) {
                rep->note("service", (e.ok ? "" : "failed: ") + std::string(e.outcome));
            }
        } catch (...) {
        }
    }
    void on_step_output(berth::step_output const&) const noexcept {}
};

template <class Store>
class run_services {
public:
    run_services(Store& store, reporter& rep, std::string const& file, std::string run_id, std::string const& cwd,
                 std::string const& company, std::optional<std::string> const& agent)
        : run_id_(std::move(run_id)),
          supervisor_(store, {.on_log = [&rep](berth::output_stream, std::string_view line) { rep.line(line); }},
                      berth::system_clock{}, service_progress{&rep}) {
        auto const services = berth::services::parse_runtime_services(read_json(file));
        berth::services::service_context ctx;
        ctx.workspace.cwd = cwd;
        ctx.agent = {.id = agent, .name = agent.value_or("berth-run"), .company_id = company};
        ctx.stop = cancellation().get_token();  // a signal ends a readiness wait and stops what it started

        std::string names;
        for (auto const& s : services) names += (names.empty() ? "" : ", ") + s.name;
        rep.note("services", fmt::format("starting {} service(s): {}", services.size(), names));
        try {
            refs_ = supervisor_.ensure_for_run(run_id_, ctx, services);
        } catch (std::exception const& e) {
            rep.fail(e.what());
            throw;
        }
        std::string started;
        for (auto const& r : refs_)
            started += fmt::format("{}{} {} ({})", started.empty() ? "" : ", ", r.service.service_name,
                                   r.service.url.value_or("no url"), r.reused ? "reused" : "started");
        rep.note("services", fmt::format("{} service(s) ready: {}", refs_.size(), started));
        rep.line(fmt::format("\n{}\n", berth::services::build_workspace_ready_comment(ctx.workspace, refs_)));
    }
    run_services(run_services const&) = delete;
    run_services& operator=(run_services const&) = delete;
    ~run_services() { supervisor_.release_for_run(run_id_); }

    /// COMMAND's environment additions: `BERTH_SERVICE_<NAME>_URL` / `_PORT` of each service
    /// (berth::services::service_environment, services/run_environment.hpp).
    [[nodiscard]] std::map<std::string, std::string> command_env() const {
        return berth::services::service_environment(refs_);
    }

    /// The services as the store holds them, for --json.
    [[nodiscard]] boost::json::array to_json() const {
        boost::json::array a;
        for (auto const& r : refs_) {
            auto o = berth::to_json(r.service).as_object();
            o["reused"] = r.reused;
            a.push_back(std::move(o));
        }
        return a;
    }

private:
    static boost::json::value read_json(std::string const& file) {
        std::ifstream in(file);
        if (!in) throw std::runtime_error("--services: cannot read " + file);
        std::string const text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        boost::system::error_code ec;
        auto doc = boost::json::parse(text, ec);
        if (ec) throw std::runtime_error("--services: " + file + " is not JSON: " + ec.message());
        return doc;
    }

    std::string run_id_;
    berth::services::supervisor<Store, berth::system_clock, service_progress> supervisor_;
    std::vector<berth::services::runtime_service_ref> refs_;
};

}  // namespace berth_run

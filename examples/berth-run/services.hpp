// berth-run --services FILE: starts the runtime services of a workspace runtime config for the
// run (berth::services::supervisor), prints the workspace-ready summary on stderr, gives COMMAND
// each service's URL and port in its environment, and releases the run's leases when the run
// ends (stop policies apply; the rest stop with the supervisor).
#pragma once

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

/// What a service's readiness wait will be, said before it starts (the port is not known yet:
/// an automatic one is reserved by the start itself, so the URL shows its template).
inline std::string readiness_text(berth::services::runtime_service_config const& s) {
    if (!s.readiness || !s.readiness->url_template) return fmt::format("{} (no readiness check)", s.name);
    auto url = s.url_template().value_or(*s.readiness->url_template);
    return fmt::format("{}: GET {} (timeout {} s)", s.name, url, s.readiness->timeout_sec);
}

template <class Store>
class run_services {
public:
    run_services(Store& store, reporter& rep, std::string const& file, std::string run_id, std::string const& cwd,
                 std::string const& company, std::optional<std::string> const& agent)
        : run_id_(std::move(run_id)),
          supervisor_(store, {.on_log = [&rep](berth::output_stream, std::string_view line) { rep.line(line); }}) {
        auto const services = berth::services::parse_runtime_services(read_json(file));
        berth::services::service_context ctx;
        ctx.workspace.cwd = cwd;
        ctx.agent = {.id = agent, .name = agent.value_or("berth-run"), .company_id = company};

        std::string plan;
        for (auto const& s : services) plan += (plan.empty() ? "" : "; ") + readiness_text(s);
        rep.begin("services", fmt::format("starting {} service(s), waiting for {}", services.size(), plan));
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
        rep.end(fmt::format("{} service(s) ready: {}", refs_.size(), started));
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
    berth::services::supervisor<Store> supervisor_;
    std::vector<berth::services::runtime_service_ref> refs_;
};

}  // namespace berth_run

#pragma once
// The sandbox-family driver that docs/drivers/writing-a-driver.md walks through (§14): each lease
// is a private directory, and every command runs in a bubblewrap sandbox that sees that directory
// at /workspace, the host's /usr read-only, and nothing else. The docs quote the part between the
// markers (a test checks that they still do); tests/unit/bubblewrap_walkthrough_test.cpp runs the
// driver conformance kit on it and a run through the orchestrator.
#include <berth/concepts/diagnostics.hpp>  // verified_driver
#include <berth/error.hpp>                 // berth::error
#include <berth/model/driver_io.hpp>       // acquire_request, lease_grant, ...
#include <berth/process/spawn.hpp>         // berth::process::run

#include <chrono>
#include <exception>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

#include <stdlib.h>  // mkdtemp

//[bubblewrap_driver
class bubblewrap_driver {
public:
    using driver_concept = berth::driver_tag;
    static constexpr std::string_view name = "bubblewrap";                     // config `provider`
    static constexpr berth::driver_kind family = berth::driver_kind::sandbox;  // environments.driver

    /// `root`: where the leases' directories are made (one per lease).
    explicit bubblewrap_driver(std::filesystem::path root) : root_(std::move(root)) {}

    berth::lease_grant acquire(berth::acquire_request const&) const {
        std::filesystem::create_directories(root_);
        std::string dir = (root_ / "lease-XXXXXX").string();
        if (::mkdtemp(dir.data()) == nullptr)
            throw berth::error("bubblewrap: cannot create a directory in " + root_.string());
        return {.provider = "bubblewrap", .provider_lease_id = dir, .expires_at = {},
                .metadata = {{"driver", "sandbox"}, {"provider", "bubblewrap"}, {"remoteCwd", workspace}}};
    }

    // Idempotent and safe on any row: it only ever removes a directory it made, under root_.
    berth::release_outcome release(berth::environment const&, berth::environment_lease const& l,
                                   berth::lease_status) const noexcept {
        std::error_code ec;
        if (owns(l)) std::filesystem::remove_all(*l.provider_lease_id, ec);
        if (ec)
            return {.cleanup_status = berth::cleanup_status::failed, .failure_reason = "bubblewrap: " + ec.message()};
        return {.cleanup_status = berth::cleanup_status::success, .failure_reason = {}};
    }

    // Having realize_workspace is what makes the orchestrator realize (sandbox family: required).
    berth::workspace_realization realize_workspace(berth::realize_request const&) const {
        return {.cwd = workspace, .remote_cwd = workspace,
                .metadata = {{"workspaceRealization", {{"version", 1}, {"transport", "sandbox"}, {"cwd", workspace}}}}};
    }

    // The caller's command, unchanged (argv, env, stdin, timeout, output bounds, streaming), as
    // the argv after bwrap's own options.
    berth::command_result execute(berth::environment const&, berth::environment_lease const& l,
                                  berth::command const& cmd) const {
        if (!owns(l)) throw berth::error("bubblewrap: lease " + l.id + " holds no sandbox of this driver");
        berth::command outer = cmd;
        outer.program = "bwrap";
        outer.cwd.reset();
        outer.args = {"--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
                      "--symlink", "usr/lib64", "/lib64", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
                      "--bind", *l.provider_lease_id, workspace, "--chdir", cmd.cwd.value_or(workspace),
                      "--unshare-all", "--die-with-parent", "--", cmd.program};
        outer.args.insert(outer.args.end(), cmd.args.begin(), cmd.args.end());
        return berth::process::run(outer, {.inherit_sanitized_environment = true});
    }

    berth::probe_result probe(berth::environment const&) const noexcept {
        try {
            berth::command const check{.program = "bwrap", .args = {"--ro-bind", "/", "/", "--unshare-all", "true"},
                                       .timeout = std::chrono::seconds(10)};
            auto const r = berth::process::run(check, {.inherit_sanitized_environment = true});
            if (r.exit_code == 0) return {.ok = true, .summary = "bubblewrap can create sandboxes.", .details = {}};
            return {.ok = false, .summary = "bubblewrap failed: " + berth::last_lines(r.stderr_text), .details = {}};
        } catch (std::exception const& e) {
            return {.ok = false, .summary = std::string("bubblewrap is not usable: ") + e.what(), .details = {}};
        }
    }

private:
    static constexpr char const* workspace = "/workspace";
    bool owns(berth::environment_lease const& l) const {
        return l.provider_lease_id && std::filesystem::path(*l.provider_lease_id).parent_path() == root_;
    }
    std::filesystem::path root_;
};
static_assert(berth::verified_driver<bubblewrap_driver>);
//]

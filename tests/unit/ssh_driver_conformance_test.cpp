// The driver conformance kit (berth/testing/driver_conformance.hpp) on berth::ssh_driver against a
// real OpenSSH sshd (tests/support/sshd_fixture.hpp), one server per rule.
#ifdef BERTH_TEST_SSH

#include <berth/drivers/ssh.hpp>
#include <berth/testing/driver_conformance.hpp>

#include "sshd_fixture.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <string>

namespace {

using namespace std::chrono_literals;

struct ssh_harness {
    berth::test::ssh::sshd_fixture server;
    berth::ssh_driver d{options()};

    berth::ssh_driver_options options() const {
        berth::ssh_driver_options o;
        o.identity = berth::ssh_identity{.private_key_file = server.user_key_path()};
        o.connect_timeout = 5s;
        o.kill_grace = 500ms;
        return o;
    }
    berth::ssh_driver const& driver() const { return d; }

    berth::environment environment_with(boost::json::object config) const {
        berth::environment e{};
        e.id = "env-ssh-kit";
        e.company_id = "company-kit";
        e.name = "Build host";
        e.driver = berth::driver_kind::ssh;
        e.config = std::move(config);
        return e;
    }
    berth::environment environment() const { return environment_with(server.config((server.dir() / "ws").string())); }
    /// Nothing listens on that port: acquire fails to connect, the probe says so.
    berth::environment unusable_environment() const {
        auto config = server.config((server.dir() / "ws").string());
        config["port"] = berth::test::ssh::free_loopback_port();
        return environment_with(std::move(config));
    }
};

}  // namespace

BERTH_DRIVER_CONFORMANCE_TESTS(ssh_harness, "[ssh][ssh_driver]")

#endif

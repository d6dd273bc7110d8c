// The smallest program using berth as a package: the umbrella header, the one-TU sources, and
// something that needs berth's dependencies at compile time (Describe) and at link time (libfmt).
#include <berth/berth.hpp>
#include <berth/src.hpp>  // Boost.JSON's implementation: in exactly one TU
#ifdef BERTH_CONSUMER_SQLITE
#include <berth/stores/sqlite.hpp>
#endif
#ifdef BERTH_CONSUMER_POSTGRES
#include <berth/stores/postgres.hpp>  // links libpq
#endif
#ifdef BERTH_CONSUMER_SERVICES
#include <berth/services/identity.hpp>  // links OpenSSL's libcrypto
#endif
#ifdef BERTH_CONSUMER_SSH
#include <berth/drivers/ssh.hpp>
static_assert(berth::environment_driver<berth::ssh_driver>);
#endif

#ifdef BERTH_CONSUMER_TESTING
// The driver kit on the archetype driver, run by a Catch2 session of the consumer's own.
#define CATCH_CONFIG_RUNNER
#include <berth/testing/driver_conformance.hpp>
struct archetype_harness {
    berth::archetypes::driver driver() const { return {}; }
    berth::environment environment() const {
        berth::environment e{};
        e.id = "env-1";
        e.company_id = "company-1";
        e.driver = berth::archetypes::driver::family;
        return e;
    }
};
BERTH_DRIVER_CONFORMANCE_TESTS(archetype_harness, "[archetype]")
#endif

#include <fmt/format.h>

#include <cstdio>  // std::fflush

static_assert(berth::environment_driver<berth::archetypes::driver>);

int main() {
    fmt::print("{}: lease status {} ({})\n", BERTH_CONSUMER_HOW,
               berth::to_string(berth::lease_status::retained), berth::lease_status::retained);
#ifdef BERTH_CONSUMER_SERVICES
    fmt::print("sha256(abc) = {}\n", berth::services::sha256_hex("abc"));
#endif
#ifdef BERTH_CONSUMER_TESTING
    int const failures = Catch::Session().run();
    std::fflush(stdout);
    fmt::print("driver kit failures: {}\n", failures);
    if (failures != 0) return 1;
#endif
    return 0;
}

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

#include <fmt/format.h>

static_assert(berth::environment_driver<berth::archetypes::driver>);

int main() {
    fmt::print("{}: lease status {} ({})\n", BERTH_CONSUMER_HOW,
               berth::to_string(berth::lease_status::retained), berth::lease_status::retained);
#ifdef BERTH_CONSUMER_SERVICES
    fmt::print("sha256(abc) = {}\n", berth::services::sha256_hex("abc"));
#endif
    return 0;
}

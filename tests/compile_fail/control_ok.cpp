// expect-success
//
// The harness's positive control: compiled with exactly the command the negative tests use, it must
// succeed. Otherwise a broken command line (bad flag, missing include path) would make every
// negative test "fail to compile" and pass. It also checks, through the same constrained-template
// shape as the negative tests, that every archetype satisfies its concept.
#include <berth/concepts.hpp>

template <berth::environment_driver D>
void use(D const&) {}

static_assert(berth::environment_driver<berth::archetypes::driver>);
static_assert(berth::lease_policy<berth::archetypes::policy>);
static_assert(berth::environment_store<berth::archetypes::environment_store>);
static_assert(berth::lease_store<berth::archetypes::lease_store>);
static_assert(berth::activity_sink<berth::archetypes::activity_sink>);
static_assert(berth::persistence_backend<berth::archetypes::persistence_backend>);
static_assert(berth::clock<berth::archetypes::clock>);

int main() { use(berth::archetypes::driver{}); }

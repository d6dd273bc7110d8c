// berth::postgres_store against a real PostgreSQL 15 (tests/support/postgres_fixture.hpp): the
// store conformance kit unchanged, and what only a shared server has — schema and migrations,
// racing processes on one database, lost connections, timeouts and restarts, query plans.
#ifdef BERTH_TEST_POSTGRES

#include <catch2/catch.hpp>

#include <berth/stores/postgres.hpp>
#include <berth/testing/manual_clock.hpp>
#include <berth/testing/store_conformance.hpp>

#include "postgres_fixture.hpp"

#include <string>

using namespace berth;
namespace pg = berth::test::pg;

namespace {
/// A fresh schema of the process's server per check; reopen() is a second store object (its own
/// pool of connections) on the same schema, so the kit's races contend through the server.
struct postgres_schema {
    pg::scratch_schema schema;
    postgres_store make() { return postgres_store::open(schema.conninfo()); }
    postgres_store reopen() { return postgres_store::open(schema.conninfo()); }
};
}  // namespace

BERTH_STORE_CONFORMANCE_TESTS(postgres_schema, "[postgres_store]")

#endif  // BERTH_TEST_POSTGRES

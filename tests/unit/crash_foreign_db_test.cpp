// The SQLite store refuses another program's database file and leaves it byte for byte as it was
// (issue 15: `--db app.db` used to add berth's tables to it and switch it to WAL).
#ifdef BERTH_TEST_SQLITE

#include <catch2/catch.hpp>

#include <berth/stores/sqlite.hpp>

#include <sqlite3.h>

#include <stdlib.h>  // mkdtemp

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

using namespace berth;
namespace fs = std::filesystem;

namespace {

std::string slurp(fs::path const& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

struct scratch {
    fs::path dir;
    scratch() {
        std::string tmpl = (fs::temp_directory_path() / "berth-foreign-XXXXXX").string();
        REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        dir = tmpl;
    }
    ~scratch() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
};

void exec(fs::path const& file, char const* sql) {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(file.c_str(), &db) == SQLITE_OK);
    char* err = nullptr;
    int const rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
    INFO((err ? err : ""));
    sqlite3_free(err);
    sqlite3_close(db);
    REQUIRE(rc == SQLITE_OK);
}

}  // namespace

TEST_CASE("sqlite_store refuses another program's SQLite file with schema_mismatch and changes nothing",
          "[crash][foreign_db]") {
    scratch s;
    auto const app = s.dir / "app.db";
    exec(app, "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users(name) VALUES ('ada');");
    auto const before = slurp(app);
    REQUIRE(!before.empty());

    try {
        auto store = sqlite_store::open(app.string());
        FAIL("opened another program's database");
    } catch (store_error const& e) {
        CHECK(e.code() == store_errc::schema_mismatch);
        CHECK_THAT(e.what(), Catch::Contains(app.string()) && Catch::Contains("not a berth database") &&
                                 Catch::Contains("\"users\"") && Catch::Contains("unchanged"));
    }
    CHECK(slurp(app) == before);  // same bytes: no tables added, still in rollback-journal mode
    CHECK(!fs::exists(s.dir / "app.db-wal"));

    // An index or a view alone makes a file foreign too; an empty file becomes a berth database.
    auto const empty = s.dir / "empty.db";
    { std::ofstream touch(empty); }
    { auto store = sqlite_store::open(empty.string()); }
    { auto again = sqlite_store::open(empty.string()); }  // berth's own file opens again
}

TEST_CASE("sqlite_store names another application_id and leaves that file unchanged", "[crash][foreign_db]") {
    scratch s;
    auto const other = s.dir / "other.db";
    exec(other, "PRAGMA application_id = 42;");
    auto const before = slurp(other);
    try {
        auto store = sqlite_store::open(other.string());
        FAIL("opened a file with another application_id");
    } catch (store_error const& e) {
        CHECK(e.code() == store_errc::schema_mismatch);
        CHECK_THAT(e.what(), Catch::Contains("application_id is 42"));
    }
    CHECK(slurp(other) == before);
    CHECK(!fs::exists(s.dir / "other.db-wal"));
}

#endif  // BERTH_TEST_SQLITE

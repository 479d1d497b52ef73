// The two memory store backends as GoogleTest types, so that one typed suite runs on both.
// Each test gets a store of its own: a fresh SQLite file, or a fresh PostgreSQL schema in the
// database named by ENGRAM_TEST_PG (scripts/with_postgres.sh starts a throwaway server and sets
// it). Without ENGRAM_TEST_PG the PostgreSQL tests skip, naming the variable -- unless
// ENGRAM_REQUIRE_PG is set (scripts/test.sh sets it), when they fail: CI never skips them.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>

#include "agent_memory/sql_connection.h"
#include "engram/agent_memory.h"

namespace engram::agent_memory_test {

inline std::string unique_suffix() {
  static std::mt19937_64 rng(std::random_device{}());
  return std::to_string(getpid()) + "_" + std::to_string(rng() % 1000000000);
}

struct SqliteBackend {
  static constexpr const char* kName = "Sqlite";
  // Returns the location of a new empty store, or "" when the backend is not available.
  std::string create() {
    path = (std::filesystem::path(::testing::TempDir()) / ("memstore_" + unique_suffix() + ".db"))
               .string();
    return "sqlite:" + path;
  }
  void destroy() {
    for (const char* ext : {"", "-wal", "-shm"}) std::filesystem::remove(path + ext);
  }
  const std::string& raw_path() const { return path; }
  // A plain connection to the store's database, to look behind the store's back.
  std::unique_ptr<agent_memory::SqlConnection> raw() const {
    return agent_memory::open_sqlite_connection(path);
  }
  std::string path;
};

struct PostgresBackend {
  static constexpr const char* kName = "Postgres";
  std::string create() {
    const char* url = std::getenv("ENGRAM_TEST_PG");
    if (!url || !*url) return "";
    base = url;
    schema = "engram_test_" + unique_suffix();
    agent_memory::open_postgres_connection(base)->exec_script("CREATE SCHEMA " + schema);
    // Every connection of this test's store sees only its schema.
    location = base + (base.find('?') == std::string::npos ? "?" : "&") +
               "options=-csearch_path%3D" + schema;
    return location;
  }
  std::unique_ptr<agent_memory::SqlConnection> raw() const {
    return agent_memory::open_postgres_connection(location);
  }
  void destroy() {
    if (schema.empty()) return;
    try {
      agent_memory::open_postgres_connection(base)->exec_script("DROP SCHEMA " + schema +
                                                                " CASCADE");
    } catch (...) {
    }
  }
  std::string base, schema, location;
};

struct BackendNames {
  template <typename T>
  static std::string GetName(int) {
    return T::kName;
  }
};

// Fixture base: location() is a fresh store's location; the test is skipped, or fails under
// ENGRAM_REQUIRE_PG, when the backend is not available (see above).
template <typename Backend>
class StoreFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    location_ = backend_.create();
    if (!location_.empty()) return;
    if (std::getenv("ENGRAM_REQUIRE_PG"))
      FAIL() << "ENGRAM_TEST_PG is not set but ENGRAM_REQUIRE_PG is: run the tests under "
                "scripts/with_postgres.sh, which starts PostgreSQL and sets it";
    GTEST_SKIP() << "ENGRAM_TEST_PG is not set (scripts/with_postgres.sh sets it)";
  }
  void TearDown() override { backend_.destroy(); }
  const std::string& location() const { return location_; }
  Backend backend_;
  std::string location_;
};

}  // namespace engram::agent_memory_test

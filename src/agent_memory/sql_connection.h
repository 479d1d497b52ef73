// The little a memory store needs from a SQL database: statements with bound parameters, typed
// rows back, transactions. SQLite and PostgreSQL each implement it; the store's logic is
// written once above it (sql_memory_store.cpp). Statements are written with PostgreSQL's
// numbered placeholders ($1, $2, ...); the SQLite connection maps them to ?1, ?2.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace engram::agent_memory {

struct Blob {
  std::vector<uint8_t> bytes;
};
using SqlValue = std::variant<std::nullptr_t, int64_t, double, std::string, Blob>;
using SqlRow = std::vector<SqlValue>;

enum class SqlDialect { kSqlite, kPostgres };

class SqlConnection {
 public:
  virtual ~SqlConnection() = default;
  virtual SqlDialect dialect() const = 0;
  // One statement, parameters bound to $1..$n; returns its rows. Throws engram::Error.
  virtual std::vector<SqlRow> query(std::string_view sql, const std::vector<SqlValue>& params) = 0;
  // Several statements without parameters (schema scripts).
  virtual void exec_script(std::string_view sql) = 0;
  virtual void begin() = 0;  // a write transaction (SQLite: BEGIN IMMEDIATE)
  virtual void commit() = 0;
  virtual void rollback() noexcept = 0;
};

// A transaction that rolls back unless commit() was called (an exception leaves nothing).
class Transaction {
 public:
  explicit Transaction(SqlConnection& c) : c_(c) { c_.begin(); }
  ~Transaction() {
    if (!done_) c_.rollback();
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit() {
    c_.commit();
    done_ = true;
  }

 private:
  SqlConnection& c_;
  bool done_ = false;
};

// Typed access to a row's columns, with an error naming the column when the type is wrong.
int64_t column_int(const SqlRow& row, size_t i);
double column_double(const SqlRow& row, size_t i);
std::string column_text(const SqlRow& row, size_t i);  // NULL -> ""
bool column_is_null(const SqlRow& row, size_t i);
const std::vector<uint8_t>& column_blob(const SqlRow& row, size_t i);  // NULL -> empty

std::unique_ptr<SqlConnection> open_sqlite_connection(const std::string& path);
std::unique_ptr<SqlConnection> open_postgres_connection(const std::string& url);
// "postgresql://user:secret@host/db" -> "postgresql://user:***@host/db", for messages.
std::string masked_url(const std::string& url);

}  // namespace engram::agent_memory

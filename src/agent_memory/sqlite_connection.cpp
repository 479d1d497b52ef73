// SqlConnection over one SQLite file: WAL journal (readers never block the writer, a killed
// process leaves the last committed state), secure_delete (freed pages are zeroed, so forgotten
// text does not linger in the file), a busy timeout for several processes sharing the file.
#include <fcntl.h>
#include <fmt/format.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cerrno>
#include <unordered_map>

#include "agent_memory/sql_connection.h"
#include "engram/error.h"
#include "util/errno_text.h"

namespace engram::agent_memory {
namespace {

// "$12" -> "?12": the store's statements are static text, so this never sees user input.
std::string sqlite_placeholders(std::string_view sql) {
  std::string out(sql);
  for (size_t i = 0; i + 1 < out.size(); ++i)
    if (out[i] == '$' && out[i + 1] >= '0' && out[i + 1] <= '9') out[i] = '?';
  return out;
}

class SqliteConnection final : public SqlConnection {
 public:
  explicit SqliteConnection(const std::string& path) : path_(path) {
    // A new store is private to its owner: create the file 0600 before SQLite opens it (the
    // WAL and shared-memory files SQLite makes beside it copy the file's permissions).
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
      throw Error(fmt::format("{}: cannot open memory store: {}", path, errno_text(errno)));
    ::close(fd);
    const int rc = sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr);
    if (rc != SQLITE_OK) {
      const std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
      sqlite3_close(db_);
      throw Error(fmt::format("{}: cannot open memory store: {}", path, msg));
    }
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, 10000);
    try {
      // WAL + synchronous=NORMAL: a killed process never leaves a half transaction; a power
      // loss may lose the last commits but not consistency.
      exec_script(
          "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
          "PRAGMA secure_delete=ON;");
    } catch (...) {
      close_all();
      throw;
    }
  }
  ~SqliteConnection() override { close_all(); }

  SqlDialect dialect() const override { return SqlDialect::kSqlite; }

  std::vector<SqlRow> query(std::string_view sql, const std::vector<SqlValue>& params) override {
    sqlite3_stmt* st = prepared(sql);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    for (size_t i = 0; i < params.size(); ++i) bind(st, static_cast<int>(i + 1), params[i]);
    std::vector<SqlRow> rows;
    for (;;) {
      const int rc = sqlite3_step(st);
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) {
        const std::string msg = sqlite3_errmsg(db_);
        sqlite3_reset(st);
        throw Error(fmt::format("{}: memory store: {}", path_, msg));
      }
      const int n = sqlite3_column_count(st);
      SqlRow row;
      row.reserve(n);
      for (int c = 0; c < n; ++c) row.push_back(column(st, c));
      rows.push_back(std::move(row));
    }
    sqlite3_reset(st);
    return rows;
  }

  void exec_script(std::string_view sql) override {
    char* err = nullptr;
    const std::string text(sql);
    if (sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      const std::string msg = err ? err : sqlite3_errmsg(db_);
      sqlite3_free(err);
      throw Error(fmt::format("{}: memory store: {}", path_, msg));
    }
  }

  // IMMEDIATE takes the write lock up front, so two writers wait for each other (busy
  // timeout) instead of one failing when it upgrades a read lock.
  void begin() override { exec_script("BEGIN IMMEDIATE"); }
  void commit() override { exec_script("COMMIT"); }
  void rollback() noexcept override {
    if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }

 private:
  sqlite3_stmt* prepared(std::string_view sql) {
    auto it = statements_.find(std::string(sql));
    if (it != statements_.end()) return it->second;
    const std::string text = sqlite_placeholders(sql);
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db_, text.c_str(), static_cast<int>(text.size()), &st, nullptr) !=
        SQLITE_OK)
      throw Error(fmt::format("{}: memory store: {}", path_, sqlite3_errmsg(db_)));
    statements_.emplace(std::string(sql), st);
    return st;
  }

  void bind(sqlite3_stmt* st, int i, const SqlValue& v) {
    int rc = SQLITE_OK;
    if (std::holds_alternative<std::nullptr_t>(v)) {
      rc = sqlite3_bind_null(st, i);
    } else if (auto* n = std::get_if<int64_t>(&v)) {
      rc = sqlite3_bind_int64(st, i, *n);
    } else if (auto* d = std::get_if<double>(&v)) {
      rc = sqlite3_bind_double(st, i, *d);
    } else if (auto* s = std::get_if<std::string>(&v)) {
      rc = sqlite3_bind_text64(st, i, s->data(), s->size(), SQLITE_TRANSIENT, SQLITE_UTF8);
    } else {
      const auto& b = std::get<Blob>(v).bytes;
      // An empty blob is a zero-length blob, not NULL (bind_blob with no data would be NULL).
      rc = b.empty() ? sqlite3_bind_zeroblob(st, i, 0)
                     : sqlite3_bind_blob64(st, i, b.data(), b.size(), SQLITE_TRANSIENT);
    }
    if (rc != SQLITE_OK)
      throw Error(
          fmt::format("{}: memory store: binding parameter {}: {}", path_, i, sqlite3_errmsg(db_)));
  }

  static SqlValue column(sqlite3_stmt* st, int c) {
    switch (sqlite3_column_type(st, c)) {
      case SQLITE_INTEGER:
        return static_cast<int64_t>(sqlite3_column_int64(st, c));
      case SQLITE_FLOAT:
        return sqlite3_column_double(st, c);
      case SQLITE_TEXT: {
        const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st, c));
        return std::string(p, p + sqlite3_column_bytes(st, c));
      }
      case SQLITE_BLOB: {
        const auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(st, c));
        Blob b;
        b.bytes.assign(p, p + sqlite3_column_bytes(st, c));
        return b;
      }
      default:
        return nullptr;
    }
  }

  void close_all() noexcept {
    for (auto& [sql, st] : statements_) sqlite3_finalize(st);
    statements_.clear();
    if (db_) sqlite3_close(db_);
    db_ = nullptr;
  }

  std::string path_;
  sqlite3* db_ = nullptr;
  std::unordered_map<std::string, sqlite3_stmt*> statements_;
};

}  // namespace

std::unique_ptr<SqlConnection> open_sqlite_connection(const std::string& path) {
  return std::make_unique<SqliteConnection>(path);
}

}  // namespace engram::agent_memory

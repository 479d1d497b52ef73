// SqlConnection over libpq. Parameters travel out of band (PQexecParams): text for numbers and
// strings, binary for blobs; results come back as text and are converted by column type.
#include <fmt/format.h>
#include <libpq-fe.h>

#include <cstdlib>
#include <cstring>

#include "agent_memory/sql_connection.h"
#include "engram/error.h"

namespace engram::agent_memory {
namespace {

// Type OIDs from PostgreSQL's catalog (pg_type.dat); fixed since the types were introduced.
constexpr Oid kBoolOid = 16, kByteaOid = 17, kInt8Oid = 20, kInt2Oid = 21, kInt4Oid = 23,
              kTextOid = 25, kFloat4Oid = 700, kFloat8Oid = 701;

}  // namespace

std::string masked_url(const std::string& url) {
  const size_t scheme = url.find("://");
  const size_t at = url.find('@');
  if (scheme == std::string::npos || at == std::string::npos || at < scheme) return url;
  const size_t colon = url.find(':', scheme + 3);
  if (colon == std::string::npos || colon > at) return url;
  return url.substr(0, colon + 1) + "***" + url.substr(at);
}

namespace {

std::string one_line(const char* msg) {
  std::string s = msg ? msg : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  for (char& c : s)
    if (c == '\n') c = ' ';
  return s;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class PostgresConnection final : public SqlConnection {
 public:
  explicit PostgresConnection(const std::string& url) : where_(masked_url(url)) {
    conn_ = PQconnectdb(url.c_str());
    if (!conn_ || PQstatus(conn_) != CONNECTION_OK) {
      const std::string msg = one_line(conn_ ? PQerrorMessage(conn_) : "out of memory");
      PQfinish(conn_);
      throw Error(fmt::format("{}: cannot connect to the memory store: {}", where_, msg));
    }
    PQsetNoticeProcessor(
        conn_, [](void*, const char*) {}, nullptr);
    if (PQsetClientEncoding(conn_, "UTF8") != 0) {
      PQfinish(conn_);
      throw Error(fmt::format("{}: memory store: cannot use UTF-8", where_));
    }
  }
  ~PostgresConnection() override { PQfinish(conn_); }

  SqlDialect dialect() const override { return SqlDialect::kPostgres; }

  std::vector<SqlRow> query(std::string_view sql, const std::vector<SqlValue>& params) override {
    const size_t n = params.size();
    std::vector<Oid> types(n, 0);
    std::vector<std::string> text(n);
    std::vector<const char*> values(n, nullptr);
    std::vector<int> lengths(n, 0), formats(n, 0);
    for (size_t i = 0; i < n; ++i) {
      const SqlValue& v = params[i];
      if (std::holds_alternative<std::nullptr_t>(v)) continue;
      if (auto* k = std::get_if<int64_t>(&v)) {
        types[i] = kInt8Oid;
        text[i] = std::to_string(*k);
      } else if (auto* d = std::get_if<double>(&v)) {
        types[i] = kFloat8Oid;
        text[i] = fmt::format("{}", *d);
      } else if (auto* s = std::get_if<std::string>(&v)) {
        types[i] = kTextOid;
        text[i] = *s;
      } else {
        const auto& b = std::get<Blob>(v).bytes;
        types[i] = kByteaOid;
        formats[i] = 1;
        values[i] = reinterpret_cast<const char*>(b.data());
        lengths[i] = static_cast<int>(b.size());
        if (b.empty()) values[i] = "";
        continue;
      }
      values[i] = text[i].c_str();
      lengths[i] = static_cast<int>(text[i].size());
    }
    const std::string statement(sql);
    PGresult* res = PQexecParams(conn_, statement.c_str(), static_cast<int>(n), types.data(),
                                 values.data(), lengths.data(), formats.data(), 0);
    const ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
      const std::string msg = one_line(PQresultErrorMessage(res));
      PQclear(res);
      throw Error(fmt::format("{}: memory store: {}", where_, msg));
    }
    std::vector<SqlRow> rows;
    const int nrows = PQntuples(res), ncols = PQnfields(res);
    rows.reserve(nrows);
    for (int r = 0; r < nrows; ++r) {
      SqlRow row;
      row.reserve(ncols);
      for (int c = 0; c < ncols; ++c) row.push_back(cell(res, r, c));
      rows.push_back(std::move(row));
    }
    PQclear(res);
    return rows;
  }

  void exec_script(std::string_view sql) override {
    const std::string text(sql);
    PGresult* res = PQexec(conn_, text.c_str());
    const ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
      const std::string msg = one_line(PQresultErrorMessage(res));
      PQclear(res);
      throw Error(fmt::format("{}: memory store: {}", where_, msg));
    }
    PQclear(res);
  }

  void begin() override { exec_script("BEGIN"); }
  void commit() override { exec_script("COMMIT"); }
  void rollback() noexcept override {
    if (PQtransactionStatus(conn_) == PQTRANS_IDLE) return;
    PQclear(PQexec(conn_, "ROLLBACK"));
  }

 private:
  SqlValue cell(const PGresult* res, int r, int c) const {
    if (PQgetisnull(res, r, c)) return nullptr;
    const char* v = PQgetvalue(res, r, c);
    const int len = PQgetlength(res, r, c);
    switch (PQftype(res, c)) {
      case kInt2Oid:
      case kInt4Oid:
      case kInt8Oid:
        return static_cast<int64_t>(std::strtoll(v, nullptr, 10));
      case kFloat4Oid:
      case kFloat8Oid:
        return std::strtod(v, nullptr);
      case kBoolOid:
        return static_cast<int64_t>(v[0] == 't');
      case kByteaOid:
        return decode_bytea(v, len);
      default:
        return std::string(v, v + len);
    }
  }

  // Text-format bytea is "\x" followed by two hex digits per byte (bytea_output = hex, the
  // default since PostgreSQL 9.0).
  Blob decode_bytea(const char* v, int len) const {
    if (len < 2 || v[0] != '\\' || v[1] != 'x')
      throw Error(fmt::format("{}: memory store: bytea not in hex format", where_));
    Blob b;
    b.bytes.reserve((len - 2) / 2);
    for (int i = 2; i + 1 < len; i += 2) {
      const int hi = hex_value(v[i]), lo = hex_value(v[i + 1]);
      if (hi < 0 || lo < 0) throw Error(fmt::format("{}: memory store: bad bytea", where_));
      b.bytes.push_back(static_cast<uint8_t>(hi * 16 + lo));
    }
    return b;
  }

  std::string where_;
  PGconn* conn_ = nullptr;
};

}  // namespace

std::unique_ptr<SqlConnection> open_postgres_connection(const std::string& url) {
  return std::make_unique<PostgresConnection>(url);
}

}  // namespace engram::agent_memory

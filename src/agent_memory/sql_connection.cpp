#include "agent_memory/sql_connection.h"

#include <fmt/format.h>

#include "engram/error.h"

namespace engram::agent_memory {
namespace {

[[noreturn]] void wrong_type(size_t i, const char* expected) {
  throw Error(fmt::format("memory store: column {} is not {}", i, expected));
}

const SqlValue& at(const SqlRow& row, size_t i) {
  if (i >= row.size()) throw Error(fmt::format("memory store: no column {}", i));
  return row[i];
}

}  // namespace

int64_t column_int(const SqlRow& row, size_t i) {
  const SqlValue& v = at(row, i);
  if (auto* n = std::get_if<int64_t>(&v)) return *n;
  wrong_type(i, "an integer");
}

double column_double(const SqlRow& row, size_t i) {
  const SqlValue& v = at(row, i);
  if (auto* d = std::get_if<double>(&v)) return *d;
  if (auto* n = std::get_if<int64_t>(&v)) return static_cast<double>(*n);
  wrong_type(i, "a number");
}

std::string column_text(const SqlRow& row, size_t i) {
  const SqlValue& v = at(row, i);
  if (std::holds_alternative<std::nullptr_t>(v)) return {};
  if (auto* s = std::get_if<std::string>(&v)) return *s;
  wrong_type(i, "text");
}

bool column_is_null(const SqlRow& row, size_t i) {
  return std::holds_alternative<std::nullptr_t>(at(row, i));
}

const std::vector<uint8_t>& column_blob(const SqlRow& row, size_t i) {
  static const std::vector<uint8_t> kEmpty;
  const SqlValue& v = at(row, i);
  if (std::holds_alternative<std::nullptr_t>(v)) return kEmpty;
  if (auto* b = std::get_if<Blob>(&v)) return b->bytes;
  wrong_type(i, "a blob");
}

}  // namespace engram::agent_memory

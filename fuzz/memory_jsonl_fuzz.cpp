// Fuzz target: the agent memory's JSON-lines parser (`engram memory import`) and the full-text
// query builder, over arbitrary bytes. Either a line parses into a memory that passes the
// store's checks or it throws engram::Error; a parsed memory written back and parsed again is
// the same memory. The query builder keeps only word characters: no quote, operator or
// separator of FTS5 or tsquery syntax reaches a term.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "agent_memory/fts_query.h"
#include "agent_memory/memory_jsonl.h"
#include "engram/error.h"

namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "invariant failed: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  using namespace engram::agent_memory;
  try {
    const NewMemory m = memory_from_json_line(text);
    Memory stored;
    static_cast<NewMemory&>(stored) = m;
    stored.id = 1;
    const NewMemory again = memory_from_json_line(memory_to_json_line(stored));
    check(again.summary == m.summary, "summary round trip");
    check(again.embedding == m.embedding, "embedding round trip");
    check(again.conversation == m.conversation, "conversation round trip");
    check(again.sensitive == m.sensitive && again.explicit_request == m.explicit_request,
          "flags round trip");
  } catch (const engram::Error&) {
  }
  const auto terms = query_terms(text);
  check(terms.size() <= kMaxQueryTerms, "term count");
  for (const std::string& t : terms) {
    check(!t.empty() && t.size() <= kMaxTermBytes, "term size");
    for (char c : t) {
      const auto u = static_cast<unsigned char>(c);
      check(u >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z'), "term character");
    }
  }
  const std::string expr = fts5_match_expression(terms);
  check(terms.empty() == expr.empty(), "expression of no terms");
  return 0;
}

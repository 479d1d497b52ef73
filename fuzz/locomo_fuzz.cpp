// Fuzz target: the LoCoMo reader (`engram eval agent-memory`) over arbitrary bytes. Either the
// text parses into conversations that keep the reader's promises (every evidence reference names
// a turn of its conversation, once; categories 1-5; turn ids unique and of their session) or it
// throws engram::Error. The evidence-reference scanner is driven directly too.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

#include "engram/error.h"
#include "eval/locomo.h"

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
  using namespace engram::eval;
  for (const std::string& r : parse_evidence_refs(text)) {
    check(r.size() >= 4 && r[0] == 'D', "reference shape");
    check(parse_evidence_refs(r) == std::vector<std::string>{r}, "reference reads back");
  }
  try {
    for (const LocomoConversation& c : parse_locomo(text, "fuzz.json")) {
      std::set<std::string> ids;
      check(!c.sessions.empty(), "a conversation has a session");
      for (const LocomoSession& s : c.sessions) {
        check(!s.turns.empty(), "no empty session");
        for (const LocomoTurn& t : s.turns) {
          check(t.session == s.number, "turn of its session");
          check(ids.insert(t.id).second, "turn ids unique");
        }
      }
      for (const LocomoQuestion& q : c.questions) {
        check(q.category >= 1 && q.category <= 5, "category");
        std::set<std::string> seen;
        for (const std::string& e : q.evidence) {
          check(ids.count(e) == 1, "evidence names a turn");
          check(seen.insert(e).second, "evidence once");
        }
      }
      check(c.dropped_evidence >= 0, "dropped count");
    }
  } catch (const engram::Error&) {
  }
  return 0;
}

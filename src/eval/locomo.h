// LoCoMo (snap-research/locomo): long conversations between two speakers in numbered sessions,
// and questions about them with the turns that hold the answer (evidence "D<session>:<turn>")
// and a category 1-5. `engram eval agent-memory` reads them from here.
//
// Layouts read: one conversation per file, its sessions at the top level beside "qa" (the
// shared copy's layout) or under "conversation" (the release's samples); or an array of such
// samples (the release's locomo10.json). Structural faults (not JSON, a missing or mistyped
// field, a bad turn id) are engram::Error naming the file and the field. Evidence entries are
// read leniently, because the release has a few malformed ones ("D8:6; D9:17", "D:11:26", "D"):
// every "D<s>:<t>" inside an entry counts, and a reference to no turn of the conversation is
// dropped and counted (LocomoConversation::dropped_evidence).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace engram::eval {

struct LocomoTurn {
  std::string id;  // "D3:7"
  int session = 0;
  std::string speaker;
  std::string text;  // the words, then " [shares a photo: <caption>]" when the turn has one
};

struct LocomoSession {
  int number = 0;    // the n of "session_<n>"
  std::string date;  // "session_<n>_date_time", "" when absent
  std::vector<LocomoTurn> turns;
};

struct LocomoQuestion {
  size_t index = 0;  // position in the file's "qa" list
  std::string question;
  std::string answer;  // "answer" (text or number), else "adversarial_answer" (category 5)
  int category = 0;    // 1-5
  std::vector<std::string> evidence;  // turn ids that exist in the conversation, no repeats
};

struct LocomoConversation {
  std::string name;  // the file name, with "#<i>" for the i-th sample of an array
  std::vector<LocomoSession> sessions;  // by session number, empty sessions left out
  std::vector<LocomoQuestion> questions;
  int dropped_evidence = 0;  // evidence references naming no turn (or unreadable)
};

// Every "D<s>:<t>" in one evidence entry ("D:11:26" reads as D11:26), in order.
std::vector<std::string> parse_evidence_refs(std::string_view entry);

// The conversations in `json_text`; `name` (the file's) prefixes every error.
std::vector<LocomoConversation> parse_locomo(std::string_view json_text, const std::string& name);

// The .json files of `dir`, sorted by name; engram::Error if there are none or it is no directory.
std::vector<std::string> locomo_files(const std::string& dir);

// Reads and parses one file (errors name its path).
std::vector<LocomoConversation> read_locomo_file(const std::string& path);

}  // namespace engram::eval

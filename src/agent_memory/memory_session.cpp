// A conversation's agent memory: the controls, retrieval into the memory block, the record of
// the turns, and prospective reflection at the end (include/engram/memory_session.h).
#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <random>

#include "agent_memory/sensitive_detector.h"
#include "agent_memory/sensitive_judge.h"
#include "engram/error.h"
#include "engram/grammar.h"
#include "engram/memory_session.h"

namespace engram::agent_memory {
namespace {

constexpr const char* kReflectionActor = "reflection";

// `text` as the store and the full-text index accept it: well-formed UTF-8 (a bad byte becomes
// U+FFFD), no NUL, at most `max_bytes` (cut at a character boundary).
std::string clean_text(std::string_view text, size_t max_bytes) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    const auto b = static_cast<unsigned char>(text[i]);
    size_t n = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    bool ok = n > 0 && i + n <= text.size() && b != 0;
    for (size_t k = 1; ok && k < n; ++k)
      ok = (static_cast<unsigned char>(text[i + k]) & 0xC0) == 0x80;
    if (ok && n > 1) {
      // Overlong forms and surrogates are not UTF-8.
      const auto b1 = static_cast<unsigned char>(text[i + 1]);
      ok = !(n == 2 && b < 0xC2) && !(n == 3 && b == 0xE0 && b1 < 0xA0) &&
           !(n == 3 && b == 0xED && b1 >= 0xA0) && !(n == 4 && b == 0xF0 && b1 < 0x90) &&
           !(n == 4 && (b > 0xF4 || (b == 0xF4 && b1 >= 0x90)));
    }
    const std::string_view piece = ok ? text.substr(i, n) : std::string_view("\xEF\xBF\xBD");
    if (out.size() + piece.size() > max_bytes) break;
    out += piece;
    i += ok ? n : 1;
  }
  return out;
}

std::string new_conversation_id() {
  std::random_device rd;
  return fmt::format("c-{:08x}{:08x}", rd(), rd());
}

std::string turns_json(std::string_view conversation,
                       const std::vector<std::pair<size_t, TranscriptTurn>>& turns) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& [index, t] : turns)
    a.push_back(
        {{"conversation", conversation}, {"turn", index}, {"role", t.role}, {"text", t.text}});
  return a.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string plural(size_t n, const char* one, const char* many) {
  return fmt::format("{} {}", n, n == 1 ? one : many);
}

}  // namespace

std::vector<size_t> TopReranker::choose(std::string_view, const std::vector<float>&,
                                        const std::vector<SearchHit>& candidates, size_t m) {
  std::vector<size_t> out;
  for (size_t i = 0; i < candidates.size() && i < m; ++i) out.push_back(i);
  return out;
}

MemorySession::MemorySession(MemoryStore* store, std::string user, MemoryModel& model,
                             MemorySessionParams params, MemoryReranker* reranker)
    : store_(store),
      user_(std::move(user)),
      model_(model),
      params_(std::move(params)),
      reranker_(reranker ? reranker : &top_),
      judge_(std::make_unique<SensitiveJudge>(params_.ask_model_if_sensitive ? &model_ : nullptr)) {
  if (params_.conversation.empty()) params_.conversation = new_conversation_id();
  if (params_.top_m < 1 || params_.top_k < params_.top_m || params_.similar_k < 1 ||
      params_.top_k > StoreLimits::kMaxSearchLimit || params_.similar_k > 9)
    throw Error(
        fmt::format("memory session: need 1 <= top_m ({}) <= top_k ({}) <= {} and "
                    "similar_k ({}) in 1..9",
                    params_.top_m, params_.top_k, StoreLimits::kMaxSearchLimit, params_.similar_k));
}

MemorySession::~MemorySession() = default;

bool MemorySession::sensitive(std::string_view text, ReflectionReport& report) {
  if (detect_sensitive(text).any()) return true;
  if (!judge_->judge(text).any()) return false;
  ++report.sensitive_by_model;
  return true;
}

MemoryTurn MemorySession::begin_turn(std::string_view user_text) {
  MemoryTurn turn;
  turn.user_text = std::string(user_text);
  turn.control = parse_control(user_text);
  if (turn.control.kind != ControlKind::kNone) {
    if (temporary()) {
      turn.reply = "This is a temporary chat: I don't read or write memories in it.";
    } else if (turn.control.kind == ControlKind::kRemember) {
      turn.reply = remember_reply(turn);
    } else if (turn.control.kind == ControlKind::kForget) {
      turn.reply = forget(turn.control.text);
    } else {
      turn.reply = list_reply();
    }
    return turn;
  }
  if (temporary()) return turn;
  const std::string query = clean_text(user_text, StoreLimits::kMaxQueryBytes);
  turn.query = model_.embed(query);
  turn.candidates = hybrid_search(*store_, user_, query, turn.query, params_.top_k, params_.hybrid);
  turn.chosen = reranker_->choose(user_, turn.query, turn.candidates, params_.top_m);
  std::vector<std::string> summaries;
  for (size_t i : turn.chosen) {
    if (i >= turn.candidates.size() || summaries.size() >= params_.top_m)
      throw Error(fmt::format("memory session: the reranker chose candidate {} of {}", i,
                              turn.candidates.size()));
    turn.shown.push_back(turn.candidates[i].memory);
    summaries.push_back(turn.candidates[i].memory.summary);
  }
  turn.system_prompt = memory_block(summaries);
  return turn;
}

std::vector<ChatMessage> MemorySession::prompt_messages(const MemoryTurn& turn,
                                                        std::string_view system,
                                                        const std::vector<ChatMessage>& dialogue) {
  std::vector<ChatMessage> out;
  std::string sys(system);
  if (!turn.system_prompt.empty()) sys += (sys.empty() ? "" : "\n\n") + turn.system_prompt;
  if (!sys.empty()) out.push_back({"system", sys});
  for (const ChatMessage& m : dialogue)
    if (m.role != "system") out.push_back(m);
  return out;
}

void MemorySession::end_turn(const MemoryTurn& turn, std::string_view shown_reply,
                             const std::vector<int>& cited) {
  if (temporary()) return;
  const bool control = turn.control.kind != ControlKind::kNone;
  turns_.push_back({{"user", turn.user_text}, control});
  turns_.push_back({{"assistant", std::string(shown_reply)}, control});
  if (!turn.reply && !turn.shown.empty()) {
    std::vector<bool> used(turn.shown.size(), false);
    for (int c : cited)
      if (c >= 1 && static_cast<size_t>(c) <= used.size()) used[static_cast<size_t>(c) - 1] = true;
    reranker_->feedback(user_, turn.query, turn.candidates, turn.chosen, used);
  }
}

Memory MemorySession::remember(std::string_view statement, std::string_view said) {
  if (temporary()) throw Error("a temporary chat stores no memory");
  NewMemory m;
  m.summary = std::string(statement);
  m.embedding = model_.embed(m.summary);
  m.conversation = params_.conversation;
  m.sensitive = detect_sensitive(m.summary).any();
  m.explicit_request = true;
  m.turns_json = turns_json(params_.conversation,
                            {{turns_.size(), TranscriptTurn{"user", std::string(said)}}});
  return store_->add(user_, m, params_.actor);
}

std::string MemorySession::remember_reply(const MemoryTurn& turn) {
  try {
    const Memory m = remember(turn.control.text, turn.user_text);
    const SensitiveFindings f = detect_sensitive(m.summary);
    std::string note;
    for (const std::string& n : f.names()) note += (note.empty() ? "" : ", ") + n;
    return note.empty() ? fmt::format("Got it. I'll remember: {}", m.summary)
                        : fmt::format(
                              "Got it. I'll remember: {} (you asked me to, so I stored it "
                              "although it is sensitive: {})",
                              m.summary, note);
  } catch (const Error& e) {
    return fmt::format("I could not remember that: {}", e.what());
  }
}

std::string MemorySession::forget(const std::string& what) {
  forgotten_.push_back(what);
  const std::string low = [&] {
    std::string s = what;
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  }();
  size_t n = 0;
  for (const Memory& m : store_->get_all(user_)) {
    std::string summary = m.summary;
    for (char& c : summary) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (forget_matches(what, m.summary) || summary.find(low) != std::string::npos) {
      if (store_->remove(user_, m.id, params_.actor)) ++n;
    }
  }
  if (n == 0) return "I had nothing matching that to forget.";
  return fmt::format("Done: I forgot {}.", plural(n, "memory", "memories"));
}

std::string MemorySession::list_reply() {
  const std::vector<Memory> all = store_->get_all(user_);
  if (all.empty()) return "I don't remember anything about you yet.";
  std::string out = "Here is what I remember about you:";
  for (size_t i = 0; i < all.size(); ++i) out += fmt::format("\n{}. {}", i + 1, all[i].summary);
  return out;
}

ReflectionReport MemorySession::end_conversation() {
  ReflectionReport report;
  if (temporary() || turns_.empty()) {
    turns_.clear();
    return report;
  }
  std::vector<TranscriptTurn> kept;
  for (size_t i = 0; i < turns_.size(); ++i) {
    // A turn is left out with its answer: a control, a sensitive statement, what was forgotten.
    const Recorded& r = turns_[i];
    bool out = r.leave_out;
    if (!out) {
      out = sensitive(r.turn.text, report) ||
            std::any_of(forgotten_.begin(), forgotten_.end(),
                        [&](const std::string& f) { return forget_touches(f, r.turn.text); });
      if (out && r.turn.role == "user" && i + 1 < turns_.size() &&
          turns_[i + 1].turn.role == "assistant") {
        ++report.turns_left_out;
        ++i;
      }
    }
    if (out) {
      ++report.turns_left_out;
      continue;
    }
    kept.push_back(r.turn);
  }
  turns_.clear();
  ReflectionReport r = reflect(kept);
  r.turns_left_out += report.turns_left_out;
  r.sensitive_by_model += report.sensitive_by_model;
  forgotten_.clear();
  params_.conversation = new_conversation_id();
  return r;
}

ReflectionReport MemorySession::reflect(const std::vector<TranscriptTurn>& input) {
  ReflectionReport report;
  if (temporary()) return report;
  std::vector<TranscriptTurn> turns;
  for (const TranscriptTurn& t : input) {
    // Only what the store can hold; a sensitive statement never reaches extraction (the model
    // sees one the rules pass only in the yes/no question).
    TranscriptTurn c{t.role == "user" ? "user" : "assistant",
                     clean_text(t.text, StoreLimits::kMaxTurnTextBytes)};
    if (sensitive(c.text, report)) {
      ++report.turns_left_out;
      continue;
    }
    turns.push_back(std::move(c));
  }
  if (std::none_of(turns.begin(), turns.end(), [](auto& t) { return t.role == "user"; }))
    return report;
  // Record the turns memories will refer to.
  std::vector<Turn> stored;
  for (size_t i = 0; i < turns.size(); ++i)
    stored.push_back({static_cast<int64_t>(i), turns[i].role, turns[i].text, 0});
  try {
    store_->add_turns(user_, params_.conversation, stored);
  } catch (const Error& e) {
    report.errors.push_back(fmt::format("storing the turns: {}", e.what()));
  }
  if (!extraction_grammar_) extraction_grammar_ = Grammar::from_json_schema(extraction_schema());
  // Windows of whole turns that fit the context with the reply.
  size_t at = 0;
  while (at < turns.size()) {
    std::vector<TranscriptTurn> window;
    std::vector<size_t> index;
    size_t end = at;
    while (end < turns.size()) {
      std::vector<TranscriptTurn> trial = window;
      trial.push_back(turns[end]);
      const std::vector<ChatMessage> msgs = {{"system", std::string(kExtractSystem)},
                                             {"user", extraction_transcript(trial)}};
      if (model_.count_tokens(msgs) + static_cast<size_t>(params_.extract_max_tokens) >
          model_.context_tokens())
        break;
      window = std::move(trial);
      index.push_back(end);
      ++end;
    }
    if (window.empty()) {
      report.errors.push_back(fmt::format("turn {} alone does not fit the context", at));
      ++at;
      continue;
    }
    extract_window(window, index, report);
    at = end;
  }
  return report;
}

void MemorySession::extract_window(const std::vector<TranscriptTurn>& window,
                                   const std::vector<size_t>& global_index,
                                   ReflectionReport& report) {
  std::vector<ExtractedMemory> found;
  try {
    const std::string reply = model_.complete(
        {{"system", std::string(kExtractSystem)}, {"user", extraction_transcript(window)}},
        extraction_grammar_, params_.extract_max_tokens);
    found = parse_extraction(reply);
  } catch (const Error& e) {
    report.errors.push_back(fmt::format("extraction: {}", e.what()));
    return;
  }
  report.extracted += found.size();
  for (const ExtractedMemory& e : found) {
    try {
      store_extracted(e, window, global_index, report);
    } catch (const Error& err) {
      report.errors.push_back(fmt::format("storing '{}': {}", e.summary.substr(0, 60), err.what()));
    }
  }
}

void MemorySession::store_extracted(const ExtractedMemory& e,
                                    const std::vector<TranscriptTurn>& window,
                                    const std::vector<size_t>& global_index,
                                    ReflectionReport& report) {
  const std::string summary = clean_text(e.summary, StoreLimits::kMaxSummaryBytes);
  if (summary.empty()) return;
  std::vector<std::pair<size_t, TranscriptTurn>> refs;
  bool is_sensitive = sensitive(summary, report);
  for (int64_t r : e.reference) {
    if (r < 0 || static_cast<size_t>(r) >= window.size()) continue;
    const size_t i = static_cast<size_t>(r);
    if (std::any_of(refs.begin(), refs.end(), [&](auto& p) { return p.first == global_index[i]; }))
      continue;
    refs.push_back({global_index[i], window[i]});
    is_sensitive = is_sensitive || sensitive(window[i].text, report);
  }
  if (is_sensitive) {
    ++report.skipped_sensitive;
    return;
  }
  if (std::any_of(forgotten_.begin(), forgotten_.end(),
                  [&](const std::string& f) { return forget_matches(f, summary); })) {
    ++report.skipped_forgotten;
    return;
  }
  NewMemory fresh;
  fresh.summary = summary;
  fresh.embedding = model_.embed(summary);
  fresh.conversation = params_.conversation;
  fresh.turns_json = turns_json(params_.conversation, refs);
  const std::vector<SearchHit> similar =
      hybrid_search(*store_, user_, clean_text(summary, StoreLimits::kMaxQueryBytes),
                    fresh.embedding, params_.similar_k, params_.hybrid);
  for (const SearchHit& h : similar) {
    if (h.memory.summary == summary) {
      ++report.unchanged;
      return;
    }
  }
  if (!similar.empty()) {
    std::vector<std::string> existing;
    for (const SearchHit& h : similar) existing.push_back(h.memory.summary);
    const std::vector<ChatMessage> msgs = {{"system", std::string(kMergeSystem)},
                                           {"user", add_merge_prompt(existing, summary)}};
    if (model_.count_tokens(msgs) + static_cast<size_t>(params_.decide_max_tokens) <=
        model_.context_tokens()) {
      if (merge_grammars_.size() <= similar.size()) merge_grammars_.resize(similar.size() + 1);
      auto& g = merge_grammars_[similar.size()];
      if (!g) g = Grammar::from_gbnf(add_merge_gbnf(similar.size()));
      AddMergeDecision d;
      try {
        d = parse_add_merge(model_.complete(msgs, g, params_.decide_max_tokens), similar.size());
      } catch (const Error& err) {
        report.errors.push_back(fmt::format("add/merge: {} (added instead)", err.what()));
      }
      const std::string merged = clean_text(d.summary, StoreLimits::kMaxSummaryBytes);
      // A merged summary must pass the same checks as an extracted one.
      if (d.merge && !merged.empty() && !sensitive(merged, report) &&
          std::none_of(forgotten_.begin(), forgotten_.end(),
                       [&](const std::string& f) { return forget_matches(f, merged); })) {
        NewMemory from = fresh;
        from.summary = merged;
        from.embedding = model_.embed(merged);
        store_->merge(user_, similar[d.index - 1].memory.id, merged, from, kReflectionActor);
        ++report.merged;
        return;
      }
    }
  }
  store_->add(user_, fresh, kReflectionActor);
  ++report.added;
}

}  // namespace engram::agent_memory

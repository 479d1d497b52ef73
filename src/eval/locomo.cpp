// LoCoMo reader (see locomo.h).
#include "eval/locomo.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "engram/error.h"

namespace engram::eval {
namespace {

using nlohmann::json;

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// Digits at s[i..] as a number (at most 6 digits, so no overflow); -1 if none.
int read_number(std::string_view s, size_t& i) {
  const size_t start = i;
  int v = 0;
  while (i < s.size() && is_digit(s[i]) && i - start < 6) v = v * 10 + (s[i++] - '0');
  return i == start ? -1 : v;
}

// "D<s>:<t>" exactly, with s, t >= 1.
bool parse_turn_id(std::string_view id, int& session, int& turn) {
  if (id.size() < 4 || id[0] != 'D') return false;
  size_t i = 1;
  session = read_number(id, i);
  if (session < 1 || i >= id.size() || id[i] != ':') return false;
  ++i;
  turn = read_number(id, i);
  return turn >= 1 && i == id.size();
}

std::string type_of(const json& j) {
  return j.type_name();
}

const json& field(const json& obj, const char* key, const std::string& where) {
  const auto it = obj.find(key);
  if (it == obj.end()) throw Error(fmt::format("{}: missing field \"{}\"", where, key));
  return *it;
}

std::string string_field(const json& obj, const char* key, const std::string& where) {
  const json& v = field(obj, key, where);
  if (!v.is_string())
    throw Error(fmt::format("{}.{}: expected a string, got {}", where, key, type_of(v)));
  return v.get<std::string>();
}

// "session_<n>" -> n, "session_<n>_date_time" -> n with `date` set; -1 for other keys.
int session_key(std::string_view key, bool& date) {
  constexpr std::string_view prefix = "session_";
  if (key.substr(0, prefix.size()) != prefix) return -1;
  size_t i = prefix.size();
  const int n = read_number(key, i);
  if (n < 0) return -1;
  const std::string_view rest = key.substr(i);
  date = rest == "_date_time";
  return rest.empty() || date ? n : -1;
}

LocomoSession read_session(const json& turns, int number, const std::string& where,
                           std::set<std::string>& ids) {
  if (!turns.is_array())
    throw Error(fmt::format("{}: expected an array of turns, got {}", where, type_of(turns)));
  LocomoSession s;
  s.number = number;
  for (size_t k = 0; k < turns.size(); ++k) {
    const json& t = turns[k];
    const std::string tw = fmt::format("{}[{}]", where, k);
    if (!t.is_object()) throw Error(fmt::format("{}: expected an object, got {}", tw, type_of(t)));
    LocomoTurn turn;
    turn.id = string_field(t, "dia_id", tw);
    int sn = 0, tn = 0;
    if (!parse_turn_id(turn.id, sn, tn))
      throw Error(
          fmt::format("{}.dia_id: \"{}\" is not D<session>:<turn>", tw, turn.id.substr(0, 40)));
    if (sn != number)
      throw Error(
          fmt::format("{}.dia_id: \"{}\" names session {}, not {}", tw, turn.id, sn, number));
    if (!ids.insert(turn.id).second)
      throw Error(fmt::format("{}.dia_id: \"{}\" appears twice", tw, turn.id));
    turn.session = number;
    turn.speaker = string_field(t, "speaker", tw);
    turn.text = string_field(t, "text", tw);
    const auto cap = t.find("blip_caption");
    if (cap != t.end() && cap->is_string() && !cap->get<std::string>().empty())
      turn.text += " [shares a photo: " + cap->get<std::string>() + "]";
    s.turns.push_back(std::move(turn));
  }
  return s;
}

LocomoQuestion read_question(const json& q, size_t index, const std::string& where,
                             const std::set<std::string>& ids, int& dropped) {
  if (!q.is_object()) throw Error(fmt::format("{}: expected an object, got {}", where, type_of(q)));
  LocomoQuestion out;
  out.index = index;
  out.question = string_field(q, "question", where);
  const json& cat = field(q, "category", where);
  if (!cat.is_number_integer() || cat.get<int64_t>() < 1 || cat.get<int64_t>() > 5)
    throw Error(fmt::format("{}.category: expected an integer 1-5, got {}", where,
                            cat.dump().substr(0, 40)));
  out.category = cat.get<int>();
  for (const char* key : {"answer", "adversarial_answer"}) {
    const auto a = q.find(key);
    if (a == q.end() || a->is_null()) continue;
    if (a->is_string())
      out.answer = a->get<std::string>();
    else if (a->is_number() || a->is_boolean())
      out.answer = a->dump();
    else
      throw Error(fmt::format("{}.{}: expected text or a number, got {}", where, key, type_of(*a)));
    break;
  }
  const json& ev = field(q, "evidence", where);
  if (!ev.is_array())
    throw Error(fmt::format("{}.evidence: expected an array, got {}", where, type_of(ev)));
  for (size_t e = 0; e < ev.size(); ++e) {
    if (!ev[e].is_string())
      throw Error(
          fmt::format("{}.evidence[{}]: expected a string, got {}", where, e, type_of(ev[e])));
    const std::string entry = ev[e].get<std::string>();
    const auto refs = parse_evidence_refs(entry);
    if (refs.empty()) ++dropped;
    for (const std::string& r : refs) {
      if (!ids.count(r))
        ++dropped;
      else if (std::find(out.evidence.begin(), out.evidence.end(), r) == out.evidence.end())
        out.evidence.push_back(r);
    }
  }
  return out;
}

LocomoConversation read_conversation(const json& sample, const std::string& name) {
  if (!sample.is_object())
    throw Error(fmt::format("{}: expected a JSON object, got {}", name, type_of(sample)));
  LocomoConversation c;
  c.name = name;
  const auto conv_it = sample.find("conversation");
  const bool nested = conv_it != sample.end();
  if (nested && !conv_it->is_object())
    throw Error(
        fmt::format("{}.conversation: expected an object, got {}", name, type_of(*conv_it)));
  const json& conv = nested ? *conv_it : sample;
  const std::string cw = nested ? name + ".conversation" : name;

  std::map<int, LocomoSession> sessions;
  std::map<int, std::string> dates;
  std::set<std::string> ids;
  for (const auto& [key, value] : conv.items()) {
    bool date = false;
    const int n = session_key(key, date);
    if (n < 1) continue;
    if (date) {
      if (value.is_string()) dates[n] = value.get<std::string>();
      continue;
    }
    LocomoSession s = read_session(value, n, cw + "." + key, ids);
    if (!s.turns.empty()) sessions[n] = std::move(s);
  }
  if (sessions.empty())
    throw Error(fmt::format("{}: no session_<n> array of turns (is this a LoCoMo file?)", cw));
  for (auto& [n, s] : sessions) {
    const auto d = dates.find(n);
    if (d != dates.end()) s.date = d->second;
    c.sessions.push_back(std::move(s));
  }

  const json& qa = field(sample, "qa", name);
  if (!qa.is_array())
    throw Error(fmt::format("{}.qa: expected an array, got {}", name, type_of(qa)));
  for (size_t i = 0; i < qa.size(); ++i)
    c.questions.push_back(
        read_question(qa[i], i, fmt::format("{}.qa[{}]", name, i), ids, c.dropped_evidence));
  return c;
}

}  // namespace

std::vector<std::string> parse_evidence_refs(std::string_view entry) {
  std::vector<std::string> out;
  for (size_t i = 0; i < entry.size(); ++i) {
    if (entry[i] != 'D') continue;
    size_t j = i + 1;
    if (j < entry.size() && entry[j] == ':') ++j;  // "D:11:26"
    const int s = read_number(entry, j);
    if (s < 1 || j >= entry.size() || entry[j] != ':') continue;
    ++j;
    const int t = read_number(entry, j);
    if (t < 1) continue;
    out.push_back(fmt::format("D{}:{}", s, t));
    i = j - 1;
  }
  return out;
}

std::vector<LocomoConversation> parse_locomo(std::string_view json_text, const std::string& name) {
  json doc;
  try {
    doc = json::parse(json_text);
  } catch (const json::exception& e) {
    throw Error(fmt::format("{}: not valid JSON ({})", name, e.what()));
  }
  std::vector<LocomoConversation> out;
  if (doc.is_array()) {
    if (doc.empty()) throw Error(fmt::format("{}: an empty array, no conversation", name));
    for (size_t i = 0; i < doc.size(); ++i)
      out.push_back(read_conversation(doc[i], fmt::format("{}#{}", name, i)));
  } else {
    out.push_back(read_conversation(doc, name));
  }
  return out;
}

std::vector<std::string> locomo_files(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    throw Error(fmt::format("LoCoMo data: '{}' is not a directory", dir));
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    if (e.path().extension() == ".json") files.push_back(e.path().string());
  if (ec) throw Error(fmt::format("LoCoMo data: cannot list '{}': {}", dir, ec.message()));
  if (files.empty()) throw Error(fmt::format("LoCoMo data: no .json file in '{}'", dir));
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<LocomoConversation> read_locomo_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot open", path));
  std::ostringstream ss;
  ss << in.rdbuf();
  // Errors name the path as given; the conversations are named by the file's name.
  std::vector<LocomoConversation> out = parse_locomo(ss.str(), path);
  const std::string file = std::filesystem::path(path).filename().string();
  for (size_t i = 0; i < out.size(); ++i)
    out[i].name = out.size() == 1 ? file : fmt::format("{}#{}", file, i);
  return out;
}

}  // namespace engram::eval

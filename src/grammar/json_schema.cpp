// JSON Schema -> grammar.
//
// Terminals carry their surrounding whitespace ("{ws", "ws}", "ws,ws", "\"key\"ws:ws"), so
// the ", " and ": " of json.dumps sit inside one lexeme and a token like `": "` crosses one
// boundary at most. Objects list their properties in the schema's order (required ones must
// appear, optional ones may be skipped; additional keys may appear anywhere and never spell
// a listed name). Arrays and repeated members are left-recursive (cheap for Earley).
//
// Keywords that only annotate (title, description, default, examples, $comment, unknown
// vendor keys ...) are ignored, as validators ignore them. A validation keyword the compiler
// cannot enforce is an error naming it and its JSON pointer; nothing is silently dropped when
// dropping it would let invalid output through.
#include <cmath>
#include <functional>
#include <map>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>

#include "engram/error.h"
#include "grammar/grammar_impl.h"
#include "grammar/regex.h"

namespace engram::grammar {

namespace {

using json = nlohmann::ordered_json;

const std::set<std::string> kAnnotations = {"title",
                                            "description",
                                            "default",
                                            "examples",
                                            "example",
                                            "$schema",
                                            "$id",
                                            "id",
                                            "$comment",
                                            "deprecated",
                                            "readOnly",
                                            "writeOnly",
                                            "$anchor",
                                            "contentEncoding",
                                            "contentMediaType",
                                            "contentSchema",
                                            "definitions",
                                            "$defs",
                                            "$vocabulary",
                                            "$dynamicAnchor",
                                            "$recursiveAnchor",
                                            "discriminator",
                                            "xml",
                                            "externalDocs",
                                            "nullable"};

// Validation keywords handled somewhere below; anything else known is an error.
const std::set<std::string> kHandled = {"type",
                                        "enum",
                                        "const",
                                        "$ref",
                                        "allOf",
                                        "anyOf",
                                        "oneOf",
                                        "properties",
                                        "required",
                                        "additionalProperties",
                                        "patternProperties",
                                        "propertyNames",
                                        "minProperties",
                                        "maxProperties",
                                        "items",
                                        "prefixItems",
                                        "additionalItems",
                                        "minItems",
                                        "maxItems",
                                        "uniqueItems",
                                        "minLength",
                                        "maxLength",
                                        "pattern",
                                        "format",
                                        "minimum",
                                        "maximum",
                                        "exclusiveMinimum",
                                        "exclusiveMaximum",
                                        "multipleOf",
                                        "unevaluatedProperties"};

const std::set<std::string> kUnsupported = {"not",
                                            "if",
                                            "then",
                                            "else",
                                            "dependencies",
                                            "dependentRequired",
                                            "dependentSchemas",
                                            "contains",
                                            "minContains",
                                            "maxContains",
                                            "unevaluatedItems",
                                            "$dynamicRef",
                                            "$recursiveRef"};

std::string pointer_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

bool is_integer_value(double v) {
  return std::isfinite(v) && std::floor(v) == v && std::fabs(v) < 9e15;
}

// ---- integer ranges as regexes ----

std::string digits_class(char lo, char hi) {
  if (lo == hi) return std::string(1, lo);
  if (lo == '0' && hi == '9') return "\\d";
  return std::string("[") + lo + "-" + hi + "]";
}

// Same-length decimal strings lo..hi (lo <= hi).
std::string same_length(const std::string& lo, const std::string& hi) {
  if (lo.empty()) return "";
  if (lo[0] == hi[0]) return std::string(1, lo[0]) + same_length(lo.substr(1), hi.substr(1));
  const size_t n = lo.size() - 1;
  const bool lo_zero = lo.substr(1) == std::string(n, '0');
  const bool hi_nine = hi.substr(1) == std::string(n, '9');
  std::vector<std::string> alts;
  char first_full = lo[0], last_full = hi[0];
  if (!lo_zero) {
    alts.push_back(std::string(1, lo[0]) + "(?:" + same_length(lo.substr(1), std::string(n, '9')) +
                   ")");
    first_full = static_cast<char>(lo[0] + 1);
  }
  if (!hi_nine) last_full = static_cast<char>(hi[0] - 1);
  if (first_full <= last_full) {
    alts.push_back(digits_class(first_full, last_full) +
                   (n ? "\\d{" + std::to_string(n) + "}" : ""));
  }
  if (!hi_nine) {
    alts.push_back(std::string(1, hi[0]) + "(?:" + same_length(std::string(n, '0'), hi.substr(1)) +
                   ")");
  }
  std::string out = "(?:";
  for (size_t i = 0; i < alts.size(); ++i) out += (i ? "|" : "") + alts[i];
  return out + ")";
}

// Non-negative integers in [lo, hi] (hi < 0: unbounded), no leading zeros.
std::string nonneg_range(int64_t lo, int64_t hi) {
  std::vector<std::string> alts;
  const std::string los = std::to_string(lo);
  const size_t max_len = hi < 0 ? 18 : std::to_string(hi).size();
  for (size_t d = los.size(); d <= max_len; ++d) {
    int64_t p = 1;
    for (size_t k = 1; k < d; ++k) p *= 10;
    const int64_t a = std::max(lo, d == 1 ? int64_t{0} : p);
    const int64_t b = hi < 0 ? p * 10 - 1 : std::min(hi, p * 10 - 1);
    if (a > b) continue;
    alts.push_back(same_length(std::to_string(a), std::to_string(b)));
  }
  if (hi < 0) alts.push_back("[1-9]\\d{18,}");
  std::string out = "(?:";
  for (size_t i = 0; i < alts.size(); ++i) out += (i ? "|" : "") + alts[i];
  return out + ")";
}

// Integers in [lo, hi]; nullopt = unbounded on that side.
std::string integer_range(std::optional<int64_t> lo, std::optional<int64_t> hi) {
  std::vector<std::string> alts;
  // Non-negative part.
  if (!hi || *hi >= 0)
    alts.push_back(nonneg_range(lo ? std::max<int64_t>(*lo, 0) : 0, hi ? *hi : -1));
  // Negative part: -y, y in [max(1, -hi), -lo].
  if (!lo || *lo < 0) {
    const int64_t ylo = hi ? std::max<int64_t>(1, -*hi) : 1;
    const int64_t yhi = lo ? -*lo : -1;
    if (yhi < 0 || ylo <= yhi) alts.push_back("-" + nonneg_range(ylo, yhi));
  }
  if (alts.empty()) return "";
  std::string out = "(?:";
  for (size_t i = 0; i < alts.size(); ++i) out += (i ? "|" : "") + alts[i];
  return out + ")";
}

// Non-negative decimals y with L <(=) y <(=) H (integer bounds; H < 0: unbounded).
std::string nonneg_decimal(int64_t L, bool l_excl, int64_t H, bool h_excl) {
  std::vector<std::string> alts;
  const std::string frac = "(?:\\.\\d+)?";
  const std::string nonzero_frac = "\\.\\d*[1-9]\\d*";
  const std::string zero_frac = "(?:\\.0+)?";
  if (H >= 0 && L == H) {
    if (!l_excl && !h_excl) alts.push_back(std::to_string(L) + zero_frac);
  } else {
    // Whole part strictly between, any fraction.
    const int64_t a = l_excl ? L + 1 : L;
    const int64_t b = H < 0 ? -1 : H - 1;
    if (l_excl) alts.push_back(std::to_string(L) + nonzero_frac);
    if (H < 0 || a <= b) {
      if (!(H >= 0 && a > b)) alts.push_back(nonneg_range(a, b) + frac);
    }
    if (H >= 0 && !h_excl) alts.push_back(std::to_string(H) + zero_frac);
  }
  if (alts.empty()) return "";
  std::string out = "(?:";
  for (size_t i = 0; i < alts.size(); ++i) out += (i ? "|" : "") + alts[i];
  return out + ")";
}

// ---- formats ----

const std::map<std::string, std::string>& format_regexes() {
  // Dates check the day against the month (and February 29 against leap years).
  static const std::string date =
      "(?:\\d{4}-(?:0[13578]|1[02])-(?:0[1-9]|[12]\\d|3[01])|\\d{4}-(?:0[469]|11)-(?:0[1-9]|[12]"
      "\\d|"
      "30)|\\d{4}-02-(?:0[1-9]|1\\d|2[0-8])|(?:\\d\\d(?:0[48]|[2468][048]|[13579][26])|(?:[02468]["
      "048]|[13579][26])00)-02-29)";
  static const std::string time =
      "(?:[01]\\d|2[0-3]):[0-5]\\d:(?:[0-5]\\d|60)(?:\\.\\d+)?(?:[Zz]|[+-](?:[01]\\d|2[0-3]):[0-5]"
      "\\d)";
  static const std::string uric = "[^\\s\"<>\\\\^`{|}]";
  static const std::string host =
      "[A-Za-z0-9](?:[A-Za-z0-9\\-]{0,61}[A-Za-z0-9])?(?:\\.[A-Za-z0-9](?:[A-Za-z0-9\\-]{0,61}["
      "A-Za-z0-9])?)+";
  static const std::string segc = "[^\\s\"<>\\\\^`{|}:/?#]";
  static const std::map<std::string, std::string> m = {
      {"date-time", date + "[Tt]" + time},
      {"date", date},
      {"time", time},
      // A dot-atom local part at a host name (RFC 5322 / 1034, what validators such as
      // ajv-formats check); idn-email keeps the loose form, as its characters are any.
      {"email", "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@" + host},
      {"idn-email", "[^\\s@\"\\\\]+@[^\\s@\"\\\\]+"},
      {"uuid", "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"},
      {"uri", "[A-Za-z][A-Za-z0-9+.\\-]*:" + uric + "*"},
      {"iri", "[A-Za-z][A-Za-z0-9+.\\-]*:" + uric + "*"},
      // Absolute, or relative with no ':' in the first segment (RFC 3986 relative-ref).
      {"uri-reference",
       "[A-Za-z][A-Za-z0-9+.\\-]*:" + uric + "*|" + segc + "*(?:[/?#]" + uric + "*)?"},
      {"iri-reference",
       "[A-Za-z][A-Za-z0-9+.\\-]*:" + uric + "*|" + segc + "*(?:[/?#]" + uric + "*)?"},
      {"ipv4",
       "(?:(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)\\.){3}(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)"},
      {"hostname",
       "[A-Za-z0-9](?:[A-Za-z0-9\\-]{0,61}[A-Za-z0-9])?(?:\\.[A-Za-z0-9](?:[A-Za-z0-9\\-]{0,61}["
       "A-Za-z0-9])?)*"},
  };
  return m;
}

// Formats a validator may check that this compiler has no pattern for.
const std::set<std::string> kUnsupportedFormats = {
    "ipv6",         "idn-hostname", "json-pointer", "relative-json-pointer",
    "uri-template", "regex",        "duration"};

class JsonSchemaCompiler {
 public:
  JsonSchemaCompiler(const json& root, const GrammarOptions& opt, Cfg& cfg)
      : root_(root), opt_(opt), cfg_(cfg), clock_(opt.max_compile_seconds) {}

  uint32_t compile() {
    const int32_t s = schema(root_, "#", 0);
    return as_nonterminal(s, "root");
  }

  uint32_t any_object() { return as_nonterminal(any_object_sym(), "root"); }

 private:
  [[noreturn]] void fail(const std::string& path, const std::string& what) const {
    throw Error("json schema: " + path + ": " + what);
  }

  uint32_t as_nonterminal(int32_t sym, const std::string& name) {
    if (sym >= 0) return static_cast<uint32_t>(sym);
    const uint32_t nt = cfg_.add_nonterminal(name);
    cfg_.add_rule(nt, {sym});
    return nt;
  }

  uint32_t nt(const std::string& name) { return cfg_.add_nonterminal(name); }

  // ---- terminals ----

  // Whitespace between tokens: what JSON allows, but at most 24 characters per gap, so that a
  // weak model cannot fill its whole budget with spaces (pretty-printing fits easily).
  std::string ws() const { return opt_.compact_json ? "" : "[ \\t\\n\\r]{0,24}"; }

  int32_t term_regex(const std::string& key, const std::function<RegexPtr()>& make, Encoding enc,
                     const std::string& where) {
    auto it = terms_.find(key);
    if (it != terms_.end()) return it->second;
    clock_.check(where);
    Dfa d = compile_regex(make(), enc, where);
    const int32_t sym = cfg_.add_regular(std::move(d), key);
    terms_.emplace(key, sym);
    return sym;
  }

  int32_t term_pattern(const std::string& re, const std::string& where) {
    return term_regex(
        "re:" + re, [&] { return parse_regex(re, where); }, Encoding::Utf8, where);
  }

  int32_t lbrace() { return term_pattern("\\{" + ws(), "{"); }
  int32_t rbrace() { return term_pattern(ws() + "\\}", "}"); }
  int32_t lbrack() { return term_pattern("\\[" + ws(), "["); }
  int32_t rbrack() { return term_pattern(ws() + "\\]", "]"); }
  int32_t comma() { return term_pattern(ws() + "," + ws(), ","); }
  int32_t colon() { return term_pattern(ws() + ":" + ws(), ":"); }

  // A quoted JSON string whose decoded text matches `body` (a regex over characters).
  RegexPtr quoted(RegexPtr body) {
    return re_concat({re_bytes("\""), std::move(body), re_bytes("\"")});
  }

  // "name": as one lexeme (every escape spelling of the name is accepted).
  int32_t key_term(const std::string& name) {
    auto it = keys_.find(name);
    if (it != keys_.end()) return it->second;
    Dfa d = compile_regex(quoted(re_literal(name)), Encoding::JsonString, "key " + name);
    Dfa tail = compile_regex(parse_regex(ws() + ":" + ws(), ":"), Encoding::Utf8, ":");
    Dfa both = concat(d, tail);
    const int32_t sym = cfg_.add_regular(std::move(both), "\"" + name + "\":");
    keys_.emplace(name, sym);
    return sym;
  }

  // DFA concatenation for a DFA `a` whose accepting states have no outgoing edges (quoted
  // strings): the accepting states take over b's start edges.
  static Dfa concat(const Dfa& a, const Dfa& b) {
    Dfa d;
    const uint32_t na = a.n_states();
    for (uint32_t s = 0; s < na; ++s) d.add_state(false);
    for (uint32_t s = 0; s < b.n_states(); ++s) d.add_state(b.accepting(s));
    for (uint32_t s = 0; s < na; ++s) {
      for (int c = 0; c < 256; ++c) {
        const uint32_t t = a.next(s, static_cast<uint8_t>(c));
        if (t != Dfa::kDead) d.set_next(s, static_cast<uint8_t>(c), t);
      }
      if (a.accepting(s)) {
        d.set_accepting(s, b.accepting(0));
        for (int c = 0; c < 256; ++c) {
          const uint32_t t = b.next(0, static_cast<uint8_t>(c));
          if (t != Dfa::kDead) d.set_next(s, static_cast<uint8_t>(c), na + t);
        }
      }
    }
    for (uint32_t s = 0; s < b.n_states(); ++s) {
      for (int c = 0; c < 256; ++c) {
        const uint32_t t = b.next(s, static_cast<uint8_t>(c));
        if (t != Dfa::kDead) d.set_next(na + s, static_cast<uint8_t>(c), na + t);
      }
    }
    d.trim();
    return d;
  }

  int32_t number_term() {
    return term_pattern("-?(?:0|[1-9]\\d*)(?:\\.\\d+)?(?:[eE][+-]?\\d+)?", "number");
  }
  int32_t integer_term() { return term_pattern("-?(?:0|[1-9]\\d*)", "integer"); }

  // Any JSON string: a counted terminal when a length is bounded (a DFA would need a state
  // per count).
  int32_t string_term(uint32_t min_len, uint32_t max_len) {
    const std::string key = "str:" + std::to_string(min_len) + ":" + std::to_string(max_len);
    auto it = terms_.find(key);
    if (it != terms_.end()) return it->second;
    Dfa d = compile_regex(quoted(re_repeat(re_set(CharSet::any()), 0, RegexNode::kUnbounded)),
                          Encoding::JsonString, "string");
    int32_t sym;
    if (min_len == 0 && max_len == Terminal::kMaxCount) {
      sym = cfg_.add_regular(std::move(d), "string");
    } else {
      const uint32_t body = d.next(0, '"');
      sym = cfg_.add_counted(std::move(d), body, min_len, max_len, key);
    }
    terms_.emplace(key, sym);
    return sym;
  }

  // ---- any value ----

  int32_t any_value() {
    if (any_value_ >= 0) return any_value_;
    const uint32_t v = nt("any"), obj = nt("any-object"), arr = nt("any-array");
    const uint32_t members = nt("any-members"), items = nt("any-items");
    any_value_ = static_cast<int32_t>(v);
    const int32_t str = string_term(0, Terminal::kMaxCount);
    cfg_.add_rule(v, {static_cast<int32_t>(obj)});
    cfg_.add_rule(v, {static_cast<int32_t>(arr)});
    cfg_.add_rule(v, {str});
    cfg_.add_rule(v, {number_term()});
    cfg_.add_rule(v, {term_pattern("true|false|null", "literal")});
    cfg_.add_rule(obj, {lbrace(), rbrace()});
    cfg_.add_rule(obj, {lbrace(), static_cast<int32_t>(members), rbrace()});
    cfg_.add_rule(members, {str, colon(), static_cast<int32_t>(v)});
    cfg_.add_rule(members,
                  {static_cast<int32_t>(members), comma(), str, colon(), static_cast<int32_t>(v)});
    cfg_.add_rule(arr, {lbrack(), rbrack()});
    cfg_.add_rule(arr, {lbrack(), static_cast<int32_t>(items), rbrack()});
    cfg_.add_rule(items, {static_cast<int32_t>(v)});
    cfg_.add_rule(items, {static_cast<int32_t>(items), comma(), static_cast<int32_t>(v)});
    return any_value_;
  }

  int32_t any_object_sym() {
    any_value();
    // any_value() made "any-object" right after "any".
    return any_value_ + 1;
  }

  // ---- $ref ----

  const json& resolve(const std::string& ref, const std::string& path) {
    if (ref.empty() || ref[0] != '#')
      fail(path, "$ref '" + ref + "' is not local (only #... refs are supported)");
    if (ref == "#") return root_;
    std::string ptr = ref.substr(1);
    // Percent-decoding of the fragment.
    std::string dec;
    for (size_t i = 0; i < ptr.size(); ++i) {
      if (ptr[i] == '%' && i + 2 < ptr.size() + 0 && i + 2 < ptr.size()) {
        dec += static_cast<char>(std::stoi(ptr.substr(i + 1, 2), nullptr, 16));
        i += 2;
      } else {
        dec += ptr[i];
      }
    }
    if (dec.empty() || dec[0] != '/') {
      // A named anchor: search $anchor / id "#name".
      const json* found = find_anchor(root_, ref.substr(1), 0);
      if (!found) fail(path, "$ref '" + ref + "' names no anchor in the schema");
      return *found;
    }
    try {
      const json& target = root_.at(json::json_pointer(dec));
      return target;
    } catch (const std::exception&) {
      fail(path, "$ref '" + ref + "' does not resolve");
    }
  }

  const json* find_anchor(const json& s, const std::string& name, int depth) {
    if (depth > 64) return nullptr;
    if (s.is_object()) {
      for (const char* k : {"$anchor", "$id", "id"}) {
        auto it = s.find(k);
        if (it != s.end() && it->is_string()) {
          const std::string v = it->get<std::string>();
          if (v == name || v == "#" + name) return &s;
        }
      }
    }
    if (s.is_object() || s.is_array()) {
      for (const auto& v : s) {
        if (const json* f = find_anchor(v, name, depth + 1)) return f;
      }
    }
    return nullptr;
  }

  // ---- allOf merging ----

  // The schema with $ref and allOf folded in (one level of object keywords).
  json flatten(const json& s, const std::string& path, int depth) {
    if (depth > 32) fail(path, "allOf/$ref nest deeper than 32");
    if (!s.is_object()) return s;
    json out = json::object();
    std::vector<std::pair<json, std::string>> parts;
    for (auto it = s.begin(); it != s.end(); ++it) {
      if (it.key() == "allOf") {
        if (!it->is_array()) fail(path + "/allOf", "must be an array");
        for (size_t i = 0; i < it->size(); ++i) {
          parts.emplace_back((*it)[i], path + "/allOf/" + std::to_string(i));
        }
      } else if (it.key() == "$ref") {
        if (!it->is_string()) fail(path + "/$ref", "must be a string");
        parts.emplace_back(resolve(it->get<std::string>(), path), it->get<std::string>());
      } else {
        out[it.key()] = it.value();
      }
    }
    for (auto& [p, ppath] : parts) {
      json f = flatten(p, ppath, depth + 1);
      if (f.is_boolean()) {
        if (!f.get<bool>()) return json(false);
        continue;
      }
      merge_into(out, f, ppath);
    }
    return out;
  }

  void merge_into(json& a, const json& b, const std::string& path) {
    // additionalProperties: false on one side forbids the other side's unlisted properties.
    auto listed = [](const json& s) {
      std::set<std::string> l;
      if (s.contains("properties") && s["properties"].is_object()) {
        for (auto it = s["properties"].begin(); it != s["properties"].end(); ++it)
          l.insert(it.key());
      }
      return l;
    };
    const bool a_closed = a.contains("additionalProperties") &&
                          a["additionalProperties"] == false && !a.contains("patternProperties");
    const bool b_closed = b.contains("additionalProperties") &&
                          b["additionalProperties"] == false && !b.contains("patternProperties");
    const std::set<std::string> a_listed = listed(a), b_listed = listed(b);
    for (auto it = b.begin(); it != b.end(); ++it) {
      const std::string& k = it.key();
      const json& v = it.value();
      if (!a.contains(k)) {
        a[k] = v;
        continue;
      }
      json& x = a[k];
      if (x == v || kAnnotations.count(k)) continue;
      if (k == "properties") {
        for (auto p = v.begin(); p != v.end(); ++p) {
          if (x.contains(p.key())) {
            x[p.key()] = json{{"allOf", json::array({x[p.key()], p.value()})}};
          } else {
            x[p.key()] = p.value();
          }
        }
      } else if (k == "required") {
        for (const auto& r : v) {
          if (std::find(x.begin(), x.end(), r) == x.end()) x.push_back(r);
        }
      } else if (k == "type") {
        auto as_list = [](const json& t) {
          std::vector<std::string> l;
          if (t.is_string()) l.push_back(t.get<std::string>());
          if (t.is_array()) {
            for (const auto& e : t) {
              if (e.is_string()) l.push_back(e.get<std::string>());
            }
          }
          return l;
        };
        const auto la = as_list(x), lb = as_list(v);
        auto has = [](const std::vector<std::string>& l, const char* t) {
          return std::find(l.begin(), l.end(), t) != l.end();
        };
        json both = json::array();
        for (const auto& t : la) {
          if (has(lb, t.c_str()) || (t == "integer" && has(lb, "number"))) both.push_back(t);
        }
        if (has(lb, "integer") && has(la, "number") && !has(la, "integer"))
          both.push_back("integer");
        x = both;
      } else if (k == "enum") {
        json both = json::array();
        for (const auto& e : x) {
          if (std::find(v.begin(), v.end(), e) != v.end()) both.push_back(e);
        }
        x = both;
      } else if (k == "minimum" || k == "minLength" || k == "minItems" || k == "minProperties") {
        if (x.is_number() && v.is_number() && v > x) x = v;
      } else if (k == "maximum" || k == "maxLength" || k == "maxItems" || k == "maxProperties") {
        if (x.is_number() && v.is_number() && v < x) x = v;
      } else if ((k == "items" || k == "additionalItems" || k == "propertyNames") &&
                 x.is_object() && v.is_object()) {
        x = json{{"allOf", json::array({x, v})}};
      } else if (k == "anyOf" || k == "oneOf") {
        // Both sides choose among alternatives: distribute one over the other.
        json alts = json::array();
        for (const auto& alt : x) alts.push_back(json{{"allOf", json::array({alt, json{{k, v}}})}});
        x = alts;
      } else if (k == "additionalProperties") {
        if (x == false || v == false) {
          x = false;
        } else {
          x = json{{"allOf", json::array({x, v})}};
        }
      } else if (kHandled.count(k) || kUnsupported.count(k)) {
        fail(path, "allOf: conflicting values for '" + k + "'");
      }
    }
    if ((a_closed || b_closed) && a.contains("properties")) {
      json kept = json::object();
      for (auto p = a["properties"].begin(); p != a["properties"].end(); ++p) {
        if (a_closed && !a_listed.count(p.key())) continue;
        if (b_closed && !b_listed.count(p.key())) continue;
        kept[p.key()] = p.value();
      }
      a["properties"] = kept;
      a["additionalProperties"] = false;
    }
  }

  // ---- the compiler proper ----

  int32_t schema(const json& s, const std::string& path, int depth) {
    if (depth > 200) fail(path, "schema nests deeper than 200");
    clock_.check(path);
    if (s.is_boolean()) {
      if (s.get<bool>()) return any_value();
      return static_cast<int32_t>(nt(path + " (false)"));  // no rules: no value
    }
    if (!s.is_object()) fail(path, "a schema must be an object or a boolean");
    for (auto it = s.begin(); it != s.end(); ++it) {
      if (kUnsupported.count(it.key())) {
        fail(path + "/" + pointer_escape(it.key()), "keyword '" + it.key() + "' is not supported");
      }
    }
    // A bare $ref is a nonterminal of its own (recursion goes through it).
    if (s.contains("$ref")) {
      bool only_ref = true;
      for (auto it = s.begin(); it != s.end(); ++it) {
        if (it.key() != "$ref" && !kAnnotations.count(it.key()) &&
            (kHandled.count(it.key()) || kUnsupported.count(it.key()))) {
          only_ref = false;
        }
      }
      if (!s["$ref"].is_string()) fail(path + "/$ref", "must be a string");
      if (only_ref) return ref_symbol(s["$ref"].get<std::string>(), path, depth);
    }
    if (s.contains("allOf") || s.contains("$ref")) {
      json flat = flatten(s, path, 0);
      return schema(flat, path, depth + 1);
    }
    const bool has_any = s.contains("anyOf"), has_one = s.contains("oneOf");
    if (has_any || has_one) {
      if (has_any && has_one) {
        // Both must hold: nest one inside each branch of the other.
        json outer = s;
        outer.erase("oneOf");
        json inner = json{{"oneOf", s["oneOf"]}};
        json alts = json::array();
        for (const auto& b : s["anyOf"]) alts.push_back(json{{"allOf", json::array({b, inner})}});
        outer["anyOf"] = alts;
        return schema(outer, path, depth + 1);
      }
      const char* key = has_any ? "anyOf" : "oneOf";
      const json& alts = s[key];
      if (!alts.is_array() || alts.empty()) fail(path + "/" + key, "must be a non-empty array");
      // oneOf is compiled as anyOf, which is exact only when no value matches two branches.
      if (has_one && !disjoint(alts, path + "/oneOf")) {
        fail(path + "/oneOf", "oneOf whose branches may overlap is not supported");
      }
      json rest = s;
      rest.erase(key);
      bool rest_constrains = false;
      for (auto it = rest.begin(); it != rest.end(); ++it) {
        if (kHandled.count(it.key())) rest_constrains = true;
      }
      const uint32_t n = nt(path + "/" + key);
      for (size_t i = 0; i < alts.size(); ++i) {
        const std::string bp = path + "/" + key + "/" + std::to_string(i);
        int32_t b;
        if (rest_constrains) {
          json both = rest;
          both["allOf"] = json::array({alts[i]});
          b = schema(both, bp, depth + 1);
        } else {
          b = schema(alts[i], bp, depth + 1);
        }
        cfg_.add_rule(n, {b});
      }
      return static_cast<int32_t>(n);
    }
    // Types allowed.
    std::vector<std::string> types;
    if (s.contains("type")) {
      const json& t = s["type"];
      if (t.is_string()) {
        types.push_back(t.get<std::string>());
      } else if (t.is_array()) {
        for (const auto& e : t) {
          if (!e.is_string()) fail(path + "/type", "must name types");
          types.push_back(e.get<std::string>());
        }
      } else {
        fail(path + "/type", "must be a string or an array");
      }
      for (const auto& ty : types) {
        static const std::set<std::string> kTypes = {"object",  "array",   "string", "number",
                                                     "integer", "boolean", "null"};
        if (!kTypes.count(ty)) fail(path + "/type", "unknown type '" + ty + "'");
      }
    } else {
      types = {"object", "array", "string", "number", "boolean", "null"};
      if (s.contains("enum") || s.contains("const")) types.push_back("integer");
    }
    if (s.contains("const") || s.contains("enum")) return enum_values(s, types, path);
    const uint32_t n = nt(path);
    const bool has_number = std::find(types.begin(), types.end(), "number") != types.end();
    for (const auto& ty : types) {
      if (ty == "integer" && has_number) continue;
      int32_t sym;
      if (ty == "object") {
        sym = object(s, path, depth);
      } else if (ty == "array") {
        sym = array(s, path, depth);
      } else if (ty == "string") {
        sym = string(s, path);
      } else if (ty == "number" || ty == "integer") {
        sym = number(s, path, ty == "integer");
      } else if (ty == "boolean") {
        sym = term_pattern("true|false", "boolean");
      } else {
        sym = term_pattern("null", "null");
      }
      cfg_.add_rule(n, {sym});
    }
    return static_cast<int32_t>(n);
  }

  // The types a branch admits ("number" admits "integer").
  std::set<std::string> branch_types(const json& b) {
    std::set<std::string> t;
    auto add = [&](const std::string& ty) {
      t.insert(ty);
      if (ty == "number") t.insert("integer");
    };
    if (b.is_object() && b.contains("const")) {
      add(type_of(b["const"]));
    } else if (b.is_object() && b.contains("enum") && b["enum"].is_array()) {
      for (const auto& v : b["enum"]) add(type_of(v));
    } else if (b.is_object() && b.contains("type")) {
      if (b["type"].is_string()) add(b["type"].get<std::string>());
      if (b["type"].is_array()) {
        for (const auto& e : b["type"]) {
          if (e.is_string()) add(e.get<std::string>());
        }
      }
    } else {
      for (const char* ty : {"object", "array", "string", "number", "boolean", "null"}) add(ty);
    }
    return t;
  }

  static const json* values_of(const json& b) {
    if (!b.is_object()) return nullptr;
    if (b.contains("enum") && b["enum"].is_array()) return &b["enum"];
    return nullptr;
  }

  static bool values_disjoint(const json& a, const json& b) {
    auto vals = [](const json& s) {
      std::vector<json> v;
      if (s.contains("const")) v.push_back(s["const"]);
      if (s.contains("enum")) {
        for (const auto& e : s["enum"]) v.push_back(e);
      }
      return v;
    };
    for (const auto& x : vals(a)) {
      for (const auto& y : vals(b)) {
        if (x == y) return false;
      }
    }
    return true;
  }

  static bool has_values(const json& s) {
    return s.is_object() && (s.contains("const") || values_of(s) != nullptr);
  }

  // Whether no JSON value can match two of the branches (conservative: false when unsure).
  bool disjoint(const json& alts, const std::string& path) {
    std::vector<json> bs;
    try {
      for (size_t i = 0; i < alts.size(); ++i) bs.push_back(flatten(alts[i], path, 0));
    } catch (const Error&) {
      return false;
    }
    for (size_t i = 0; i < bs.size(); ++i) {
      for (size_t j = i + 1; j < bs.size(); ++j) {
        const auto ti = branch_types(bs[i]), tj = branch_types(bs[j]);
        bool overlap = false;
        for (const auto& t : ti) overlap |= tj.count(t) > 0;
        if (!overlap) continue;
        if (has_values(bs[i]) && has_values(bs[j]) && values_disjoint(bs[i], bs[j])) continue;
        // Objects told apart by a required property with disjoint const/enum values.
        bool told_apart = false;
        const json& a = bs[i];
        const json& b = bs[j];
        if (a.is_object() && b.is_object() && a.contains("properties") &&
            b.contains("properties") && a["properties"].is_object() &&
            b["properties"].is_object() && !ti.count("array") && !ti.count("string")) {
          for (auto it = a["properties"].begin(); it != a["properties"].end() && !told_apart;
               ++it) {
            if (!b["properties"].contains(it.key())) continue;
            auto req = [&](const json& s) {
              if (!s.contains("required") || !s["required"].is_array()) return false;
              for (const auto& r : s["required"]) {
                if (r == it.key()) return true;
              }
              return false;
            };
            if (!req(a) || !req(b)) continue;
            json pa, pb;
            try {
              pa = flatten(it.value(), path, 0);
              pb = flatten(b["properties"][it.key()], path, 0);
            } catch (const Error&) {
              continue;
            }
            if (has_values(pa) && has_values(pb) && values_disjoint(pa, pb)) told_apart = true;
            if (!told_apart && ti == std::set<std::string>{"object"}) {
              const auto pta = branch_types(pa), ptb = branch_types(pb);
              bool o = false;
              for (const auto& t : pta) o |= ptb.count(t) > 0;
              if (!o) told_apart = true;
            }
          }
        }
        if (!told_apart) return false;
      }
    }
    return true;
  }

  int32_t ref_symbol(const std::string& ref, const std::string& path, int depth) {
    auto it = refs_.find(ref);
    if (it != refs_.end()) return static_cast<int32_t>(it->second);
    const uint32_t n = nt(ref);
    refs_.emplace(ref, n);
    const json& target = resolve(ref, path);
    const int32_t body = schema(target, ref, depth + 1);
    cfg_.add_rule(n, {body});
    return static_cast<int32_t>(n);
  }

  // ---- enum / const ----

  static std::string type_of(const json& v) {
    if (v.is_object()) return "object";
    if (v.is_array()) return "array";
    if (v.is_string()) return "string";
    if (v.is_boolean()) return "boolean";
    if (v.is_null()) return "null";
    if (v.is_number_integer() || v.is_number_unsigned()) return "integer";
    if (v.is_number_float() && is_integer_value(v.get<double>())) return "integer";
    return "number";
  }

  int32_t enum_values(const json& s, const std::vector<std::string>& types,
                      const std::string& path) {
    std::vector<json> values;
    if (s.contains("const")) values.push_back(s["const"]);
    if (s.contains("enum")) {
      if (!s["enum"].is_array()) fail(path + "/enum", "must be an array");
      std::vector<json> kept;
      for (const auto& v : s["enum"]) {
        if (s.contains("const") && v != s["const"]) continue;
        kept.push_back(v);
      }
      values = kept;
    }
    const uint32_t n = nt(path + "/enum");
    for (const auto& v : values) {
      const std::string t = type_of(v);
      const bool ok =
          std::find(types.begin(), types.end(), t) != types.end() ||
          (t == "integer" && std::find(types.begin(), types.end(), "number") != types.end());
      if (!ok) continue;
      if (!value_satisfies_scalars(s, v)) continue;
      cfg_.add_rule(n, {literal_value(v, path)});
    }
    return static_cast<int32_t>(n);
  }

  // Length/bound/pattern keywords next to an enum, checked against each value.
  bool value_satisfies_scalars(const json& s, const json& v) {
    if (v.is_string()) {
      const std::string str = v.get<std::string>();
      size_t len = 0;
      for (unsigned char c : str) len += (c & 0xC0) != 0x80;
      if (s.contains("minLength") && s["minLength"].is_number() &&
          len < s["minLength"].get<double>())
        return false;
      if (s.contains("maxLength") && s["maxLength"].is_number() &&
          len > s["maxLength"].get<double>())
        return false;
      if (s.contains("pattern") && s["pattern"].is_string()) {
        Dfa d = compile_regex(
            anchor(parse_regex(s["pattern"].get<std::string>(), "pattern"), true, "pattern"),
            Encoding::Utf8, "pattern");
        if (!d.matches(str)) return false;
      }
    }
    if (v.is_number()) {
      const double x = v.get<double>();
      if (s.contains("minimum") && s["minimum"].is_number() && x < s["minimum"].get<double>())
        return false;
      if (s.contains("maximum") && s["maximum"].is_number() && x > s["maximum"].get<double>())
        return false;
    }
    return true;
  }

  int32_t literal_value(const json& v, const std::string& path) {
    if (v.is_object()) {
      const uint32_t n = nt(path + "/const-object");
      std::vector<int32_t> rhs = {lbrace()};
      bool first = true;
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (!first) rhs.push_back(comma());
        first = false;
        rhs.push_back(key_term(it.key()));
        rhs.push_back(literal_value(it.value(), path));
      }
      rhs.push_back(rbrace());
      cfg_.add_rule(n, rhs);
      return static_cast<int32_t>(n);
    }
    if (v.is_array()) {
      const uint32_t n = nt(path + "/const-array");
      std::vector<int32_t> rhs = {lbrack()};
      for (size_t i = 0; i < v.size(); ++i) {
        if (i) rhs.push_back(comma());
        rhs.push_back(literal_value(v[i], path));
      }
      rhs.push_back(rbrack());
      cfg_.add_rule(n, rhs);
      return static_cast<int32_t>(n);
    }
    if (v.is_string()) {
      const std::string str = v.get<std::string>();
      return term_regex(
          "lit:" + str, [&] { return quoted(re_literal(str)); }, Encoding::JsonString, path);
    }
    std::string text = v.dump();
    std::vector<std::string> spellings = {text};
    if (v.is_number_float() && is_integer_value(v.get<double>())) {
      // 1.0 == 1: both spellings.
      const auto i = static_cast<int64_t>(v.get<double>());
      spellings = {std::to_string(i), std::to_string(i) + "\\.0+"};
    } else if (v.is_number_integer() || v.is_number_unsigned()) {
      spellings = {text, text + "\\.0+"};
    } else if (v.is_number_float()) {
      std::string esc;
      for (char c : text) {
        if (c == '.' || c == '+') esc += '\\';
        esc += c;
      }
      spellings = {esc};
    }
    std::string re;
    for (size_t i = 0; i < spellings.size(); ++i) re += (i ? "|" : "") + spellings[i];
    return term_pattern(re, path);
  }

  // ---- strings ----

  int32_t string(const json& s, const std::string& path) {
    uint32_t min_len = 0, max_len = Terminal::kMaxCount;
    auto count = [&](const char* k, uint32_t& out) {
      if (!s.contains(k)) return;
      const json& v = s[k];
      if (!v.is_number() || v.get<double>() < 0)
        fail(path + "/" + k, "must be a non-negative number");
      out = static_cast<uint32_t>(std::min<double>(v.get<double>(), Terminal::kMaxCount));
    };
    count("minLength", min_len);
    count("maxLength", max_len);
    std::vector<std::pair<std::string, std::string>> patterns;  // (regex, where)
    bool search = true;
    if (s.contains("pattern")) {
      if (!s["pattern"].is_string()) fail(path + "/pattern", "must be a string");
      patterns.emplace_back(s["pattern"].get<std::string>(), path + "/pattern");
    }
    if (s.contains("format") && s["format"].is_string()) {
      const std::string f = s["format"].get<std::string>();
      auto it = format_regexes().find(f);
      if (it != format_regexes().end()) {
        patterns.emplace_back("^(?:" + it->second + ")$", path + "/format");
      } else if (kUnsupportedFormats.count(f)) {
        fail(path + "/format", "format '" + f + "' is not supported");
      }
    }
    (void)search;
    if (patterns.empty()) return string_term(min_len, max_len);
    const std::string key = "pat:" + std::to_string(min_len) + ":" + std::to_string(max_len) + ":" +
                            (patterns.size() > 0 ? patterns[0].first : "") + "\x01" +
                            (patterns.size() > 1 ? patterns[1].first : "");
    auto cached = terms_.find(key);
    if (cached != terms_.end()) return cached->second;
    clock_.check(path);
    Dfa d;
    bool first = true;
    for (auto& [re, where] : patterns) {
      Dfa p = compile_regex(quoted(anchor(parse_regex(re, where), true, where)),
                            Encoding::JsonString, where);
      d = first ? std::move(p) : Dfa::intersect(d, p, 20000);
      first = false;
    }
    if (min_len > 0 || max_len != Terminal::kMaxCount) {
      // Lengths the patterns already imply need no automaton of their own.
      const auto [shortest, longest] = length_bounds(d);
      const bool min_implied = shortest >= static_cast<int64_t>(min_len) + 2;
      const bool max_implied = longest >= 0 && longest <= static_cast<int64_t>(max_len) + 2;
      // Characters, not bytes: only ASCII-only automata have byte length == char count.
      if (!(min_implied && max_implied && ascii_only(d))) {
        if (max_len != Terminal::kMaxCount && max_len > 2000) {
          fail(path + "/maxLength", "maxLength " + std::to_string(max_len) +
                                        " together with a pattern or format is not supported");
        }
        if (min_len > 2000)
          fail(path + "/minLength", "minLength above 2000 with a pattern is not supported");
        Dfa len = compile_regex(
            quoted(re_repeat(re_set(CharSet::any()), min_len,
                             max_len == Terminal::kMaxCount ? RegexNode::kUnbounded : max_len)),
            Encoding::JsonString, path + "/maxLength");
        d = Dfa::intersect(d, len, 20000);
      }
    }
    const int32_t sym = cfg_.add_regular(std::move(d), path);
    terms_.emplace(key, sym);
    return sym;
  }

  static bool ascii_only(const Dfa& d) {
    for (uint32_t s = 0; s < d.n_states(); ++s) {
      for (int c = 128; c < 256; ++c) {
        if (d.next(s, static_cast<uint8_t>(c)) != Dfa::kDead) return false;
      }
      if (d.next(s, '\\') != Dfa::kDead) return false;
    }
    return true;
  }

  // Shortest and longest accepted byte length (longest -1 when unbounded).
  static std::pair<int64_t, int64_t> length_bounds(const Dfa& d) {
    const uint32_t n = d.n_states();
    if (n == 0) return {0, 0};
    // BFS for the shortest; longest path in a DAG (a cycle means unbounded).
    std::vector<int64_t> dist(n, -1);
    std::vector<uint32_t> q = {0};
    dist[0] = 0;
    int64_t shortest = -1;
    for (size_t i = 0; i < q.size(); ++i) {
      const uint32_t s = q[i];
      if (d.accepting(s) && shortest < 0) shortest = dist[s];
      for (int c = 0; c < 256; ++c) {
        const uint32_t t = d.next(s, static_cast<uint8_t>(c));
        if (t != Dfa::kDead && dist[t] < 0) {
          dist[t] = dist[s] + 1;
          q.push_back(t);
        }
      }
    }
    std::vector<int> color(n, 0);
    std::vector<int64_t> longest(n, -2);
    bool cyclic = false;
    std::function<int64_t(uint32_t)> dfs = [&](uint32_t s) -> int64_t {
      if (color[s] == 1) {
        cyclic = true;
        return 0;
      }
      if (color[s] == 2) return longest[s];
      color[s] = 1;
      int64_t best = d.accepting(s) ? 0 : -1;
      for (int c = 0; c < 256 && !cyclic; ++c) {
        const uint32_t t = d.next(s, static_cast<uint8_t>(c));
        if (t == Dfa::kDead) continue;
        const int64_t l = dfs(t);
        if (l >= 0) best = std::max(best, l + 1);
      }
      color[s] = 2;
      longest[s] = best;
      return best;
    };
    const int64_t l = dfs(0);
    return {shortest, cyclic ? -1 : l};
  }

  // ---- numbers ----

  int32_t number(const json& s, const std::string& path, bool integer) {
    std::optional<double> lo, hi;
    bool lo_excl = false, hi_excl = false;
    auto num = [&](const char* k) -> std::optional<double> {
      if (!s.contains(k)) return std::nullopt;
      const json& v = s[k];
      if (v.is_boolean()) return std::nullopt;
      if (!v.is_number()) fail(path + "/" + k, "must be a number");
      return v.get<double>();
    };
    lo = num("minimum");
    hi = num("maximum");
    if (s.contains("exclusiveMinimum")) {
      if (s["exclusiveMinimum"].is_boolean()) {
        lo_excl = s["exclusiveMinimum"].get<bool>();
      } else if (auto v = num("exclusiveMinimum")) {
        if (!lo || *v >= *lo) {
          lo = v;
          lo_excl = true;
        }
      }
    }
    if (s.contains("exclusiveMaximum")) {
      if (s["exclusiveMaximum"].is_boolean()) {
        hi_excl = s["exclusiveMaximum"].get<bool>();
      } else if (auto v = num("exclusiveMaximum")) {
        if (!hi || *v <= *hi) {
          hi = v;
          hi_excl = true;
        }
      }
    }
    if (s.contains("multipleOf")) {
      const json& m = s["multipleOf"];
      const bool trivial =
          m.is_number() && integer && is_integer_value(m.get<double>()) && m.get<double>() == 1;
      if (!trivial) fail(path + "/multipleOf", "multipleOf is not supported");
    }
    if (!lo && !hi) return integer ? integer_term() : number_term();
    for (auto [b, k] : {std::make_pair(lo, "minimum"), std::make_pair(hi, "maximum")}) {
      if (b && std::fabs(*b) > 9e15) fail(path + "/" + k, "bound too large");
    }
    if (integer) {
      std::optional<int64_t> ilo, ihi;
      if (lo) ilo = static_cast<int64_t>(lo_excl ? std::floor(*lo) + 1 : std::ceil(*lo));
      if (hi) ihi = static_cast<int64_t>(hi_excl ? std::ceil(*hi) - 1 : std::floor(*hi));
      if (ilo && ihi && *ilo > *ihi) return static_cast<int32_t>(nt(path + " (no integer)"));
      const std::string re = integer_range(ilo, ihi);
      return term_pattern(re, path);
    }
    for (auto [b, k] : {std::make_pair(lo, "minimum"), std::make_pair(hi, "maximum")}) {
      if (b && !is_integer_value(*b)) {
        fail(path + "/" + k,
             "a non-integer bound (" + std::to_string(*b) + ") on a number is not supported");
      }
    }
    std::vector<std::string> alts;
    const int64_t L = lo ? static_cast<int64_t>(*lo) : 0;
    const int64_t H = hi ? static_cast<int64_t>(*hi) : 0;
    // x >= 0 part: y = x in [max(L,0), H].
    if (!hi || H >= 0) {
      int64_t a = 0;
      bool a_excl = false;
      if (lo && L >= 0) {
        a = L;
        a_excl = lo_excl;
      }
      const std::string r = nonneg_decimal(a, a_excl, hi ? H : -1, hi_excl);
      if (!r.empty()) alts.push_back(r);
    }
    // x < 0 part: x = -y, y in (max(0,-H), -L].
    if (!lo || L < 0) {
      int64_t a = 0;
      bool a_excl = true;  // y > 0
      if (hi && H < 0) {
        a = -H;
        a_excl = hi_excl;
      }
      const std::string r = nonneg_decimal(a, a_excl, lo ? -L : -1, lo_excl);
      if (!r.empty()) alts.push_back("-" + r);
    }
    if (alts.empty()) return static_cast<int32_t>(nt(path + " (no number)"));
    std::string re = "(?:";
    for (size_t i = 0; i < alts.size(); ++i) re += (i ? "|" : "") + alts[i];
    re += ")";
    return term_pattern(re, path);
  }

  // ---- arrays ----

  int32_t array(const json& s, const std::string& path, int depth) {
    std::vector<int32_t> prefix;
    constexpr int32_t kNone = INT32_MIN;
    int32_t rest = kNone;  // no more items allowed
    bool rest_any = true;
    if (s.contains("prefixItems")) {
      const json& p = s["prefixItems"];
      if (!p.is_array()) fail(path + "/prefixItems", "must be an array");
      for (size_t i = 0; i < p.size(); ++i) {
        prefix.push_back(schema(p[i], path + "/prefixItems/" + std::to_string(i), depth + 1));
      }
      if (s.contains("items")) {
        rest_any = false;
        if (s["items"] != false) rest = schema(s["items"], path + "/items", depth + 1);
      }
    } else if (s.contains("items") && s["items"].is_array()) {
      const json& p = s["items"];
      for (size_t i = 0; i < p.size(); ++i) {
        prefix.push_back(schema(p[i], path + "/items/" + std::to_string(i), depth + 1));
      }
      if (s.contains("additionalItems")) {
        rest_any = false;
        if (s["additionalItems"] != false)
          rest = schema(s["additionalItems"], path + "/additionalItems", depth + 1);
      }
    } else if (s.contains("items")) {
      rest_any = false;
      if (s["items"] != false) rest = schema(s["items"], path + "/items", depth + 1);
    }
    if (rest_any) rest = any_value();
    uint64_t min_items = 0, max_items = UINT64_MAX;
    if (s.contains("minItems")) {
      if (!s["minItems"].is_number()) fail(path + "/minItems", "must be a number");
      min_items = static_cast<uint64_t>(std::max(0.0, s["minItems"].get<double>()));
    }
    if (s.contains("maxItems")) {
      if (!s["maxItems"].is_number()) fail(path + "/maxItems", "must be a number");
      max_items = static_cast<uint64_t>(std::max(0.0, s["maxItems"].get<double>()));
    }
    if (rest == kNone) max_items = std::min<uint64_t>(max_items, prefix.size());
    if (s.contains("uniqueItems") && s["uniqueItems"] == true && max_items > 1) {
      fail(path + "/uniqueItems", "uniqueItems is not supported");
    }
    if (min_items > max_items) return static_cast<int32_t>(nt(path + " (no array)"));
    // Element j: prefix[j] or rest. Elements 0..J-1 are spelled out one nonterminal each,
    // J = max(prefix, minItems); past that a left-recursive tail (unbounded) or a chain.
    const uint64_t J = std::max<uint64_t>(prefix.size(), min_items);
    const uint64_t bounded_to = max_items == UINT64_MAX ? J : max_items;
    if (bounded_to > 5000)
      fail(path + "/maxItems", "array bounds above 5000 items are not supported");
    auto elem = [&](uint64_t j) { return j < prefix.size() ? prefix[j] : rest; };
    // S_j: elements j.. given j written. Built from the back.
    const uint32_t arr = nt(path + "[]");
    int32_t next = kNone;  // S_{j+1}
    const uint64_t last = bounded_to;
    for (uint64_t j = last + 1; j-- > 0;) {
      const uint32_t sj = nt(path + "[" + std::to_string(j) + "..]");
      if (j == last) {
        if (max_items == UINT64_MAX) {
          // Unbounded tail of `rest`: Tail -> e | Tail , e ; S_J -> eps | (sep) Tail
          if (rest != kNone) {
            const uint32_t tail = nt(path + "[tail]");
            cfg_.add_rule(tail, {rest});
            cfg_.add_rule(tail, {static_cast<int32_t>(tail), comma(), rest});
            if (j == 0) {
              cfg_.add_rule(sj, {static_cast<int32_t>(tail)});
            } else {
              cfg_.add_rule(sj, {comma(), static_cast<int32_t>(tail)});
            }
          }
        }
        if (j >= min_items) cfg_.add_rule(sj, {});
      } else {
        if (j >= min_items) cfg_.add_rule(sj, {});
        const int32_t e = elem(j);
        if (e != kNone) {
          if (j == 0) {
            cfg_.add_rule(sj, {e, next});
          } else {
            cfg_.add_rule(sj, {comma(), e, next});
          }
        }
      }
      next = static_cast<int32_t>(sj);
    }
    cfg_.add_rule(arr, {lbrack(), next, rbrack()});
    return static_cast<int32_t>(arr);
  }

  // ---- objects ----

  int32_t object(const json& s, const std::string& path, int depth) {
    struct Prop {
      std::string name;
      int32_t value;
      bool required;
    };
    std::vector<Prop> props;
    std::set<std::string> required;
    std::vector<std::string> required_order;  // as the "required" array lists them
    if (s.contains("required")) {
      if (!s["required"].is_array()) fail(path + "/required", "must be an array");
      for (const auto& r : s["required"]) {
        if (!r.is_string()) fail(path + "/required", "must list strings");
        if (required.insert(r.get<std::string>()).second)
          required_order.push_back(r.get<std::string>());
      }
    }
    std::set<std::string> listed;
    if (s.contains("properties")) {
      const json& p = s["properties"];
      if (!p.is_object()) fail(path + "/properties", "must be an object");
      for (auto it = p.begin(); it != p.end(); ++it) {
        const std::string pp = path + "/properties/" + pointer_escape(it.key());
        listed.insert(it.key());
        if (it.value() == false) {
          if (required.count(it.key())) return static_cast<int32_t>(nt(pp + " (impossible)"));
          continue;  // may not appear; additional keys never spell it either
        }
        props.push_back(
            {it.key(), schema(it.value(), pp, depth + 1), required.count(it.key()) > 0});
      }
    }
    // Additional members: patternProperties, then additionalProperties.
    struct Extra {
      int32_t key;    // a key terminal (quoted string)
      int32_t value;  // value symbol
    };
    std::vector<Extra> extras;
    Dfa names_dfa;  // quoted spellings of the listed names
    {
      std::vector<RegexPtr> alts;
      for (const auto& n : listed) alts.push_back(quoted(re_literal(n)));
      if (!alts.empty())
        names_dfa = compile_regex(re_alt(alts), Encoding::JsonString, path + "/properties");
    }
    auto minus_names = [&](Dfa d) {
      if (!names_dfa.empty()) d = Dfa::intersect(d, Dfa::complement(names_dfa), 50000);
      return d;
    };
    Dfa key_space =
        compile_regex(quoted(re_repeat(re_set(CharSet::any()), 0, RegexNode::kUnbounded)),
                      Encoding::JsonString, path);
    if (s.contains("propertyNames")) {
      const json& pn = s["propertyNames"];
      const std::string pnp = path + "/propertyNames";
      if (pn.is_object()) {
        for (auto it = pn.begin(); it != pn.end(); ++it) {
          if (kAnnotations.count(it.key()) || it.key() == "type") continue;
          if (it.key() == "pattern" && it->is_string()) {
            Dfa p =
                compile_regex(quoted(anchor(parse_regex(it->get<std::string>(), pnp), true, pnp)),
                              Encoding::JsonString, pnp);
            key_space = Dfa::intersect(key_space, p, 50000);
          } else if (it.key() == "maxLength" || it.key() == "minLength") {
            const uint32_t lo = pn.value("minLength", 0u), hi = pn.value("maxLength", 100000u);
            if (hi > 2000) continue;
            Dfa p = compile_regex(quoted(re_repeat(re_set(CharSet::any()), lo, hi)),
                                  Encoding::JsonString, pnp);
            key_space = Dfa::intersect(key_space, p, 50000);
          } else if (it.key() == "enum" && it->is_array()) {
            std::vector<RegexPtr> alts;
            for (const auto& e : *it) {
              if (e.is_string()) alts.push_back(quoted(re_literal(e.get<std::string>())));
            }
            Dfa p = alts.empty() ? Dfa() : compile_regex(re_alt(alts), Encoding::JsonString, pnp);
            key_space = Dfa::intersect(key_space, p, 50000);
          } else if (kHandled.count(it.key()) || kUnsupported.count(it.key())) {
            fail(pnp + "/" + it.key(),
                 "keyword '" + it.key() + "' in propertyNames is not supported");
          }
        }
      } else if (pn == false) {
        key_space = Dfa();
      }
    }
    Dfa not_patterns = key_space;  // keys no pattern matches
    if (s.contains("patternProperties")) {
      const json& pp = s["patternProperties"];
      if (!pp.is_object()) fail(path + "/patternProperties", "must be an object");
      for (auto it = pp.begin(); it != pp.end(); ++it) {
        const std::string where = path + "/patternProperties/" + pointer_escape(it.key());
        Dfa p = compile_regex(quoted(anchor(parse_regex(it.key(), where), true, where)),
                              Encoding::JsonString, where);
        p = Dfa::intersect(p, key_space, 50000);
        not_patterns = Dfa::intersect(not_patterns, Dfa::complement(p), 50000);
        Dfa k = minus_names(p);
        if (k.empty()) continue;
        extras.push_back(
            {cfg_.add_regular(std::move(k), where), schema(it.value(), where, depth + 1)});
      }
    }
    bool extra_allowed = true;
    constexpr int32_t kNoValue = INT32_MIN;
    int32_t extra_value = kNoValue;
    if (s.contains("additionalProperties")) {
      const json& ap = s["additionalProperties"];
      if (ap == false) {
        extra_allowed = false;
      } else {
        extra_value = schema(ap, path + "/additionalProperties", depth + 1);
      }
    } else if (s.contains("unevaluatedProperties")) {
      const json& up = s["unevaluatedProperties"];
      if (up == false) {
        extra_allowed = false;
      } else {
        extra_value = schema(up, path + "/unevaluatedProperties", depth + 1);
      }
    }
    if (extra_allowed) {
      if (extra_value == kNoValue) extra_value = any_value();
      Dfa k = minus_names(not_patterns);
      if (!k.empty())
        extras.push_back({cfg_.add_regular(std::move(k), path + " (additional key)"), extra_value});
    }
    // Required names the properties do not list are written as additional members.
    for (const auto& r : required_order) {
      if (listed.count(r)) continue;
      // Which extra rule covers it: a pattern (first match) or additionalProperties.
      int32_t value = kNoValue;
      if (s.contains("patternProperties")) {
        for (auto it = s["patternProperties"].begin(); it != s["patternProperties"].end(); ++it) {
          const std::string where = path + "/patternProperties/" + pointer_escape(it.key());
          Dfa p = compile_regex(anchor(parse_regex(it.key(), where), true, where), Encoding::Utf8,
                                where);
          if (p.matches(r)) {
            value = schema(it.value(), where, depth + 1);
            break;
          }
        }
      }
      if (value == kNoValue) {
        if (!extra_allowed)
          return static_cast<int32_t>(nt(path + " (required '" + r + "' not allowed)"));
        value = extra_value;
      }
      props.push_back({r, value, true});
    }
    uint64_t n_required = 0;
    for (const auto& p : props) n_required += p.required;
    if (s.contains("minProperties") && s["minProperties"].is_number()) {
      const double m = s["minProperties"].get<double>();
      if (m > static_cast<double>(n_required)) {
        if (m == 1 && props.size() + (extras.empty() ? 0 : 1) > 0) {
          min_one_ = true;
        } else {
          fail(path + "/minProperties",
               "minProperties above the number of required properties is not supported");
        }
      }
    }
    if (s.contains("maxProperties") && s["maxProperties"].is_number()) {
      const double m = s["maxProperties"].get<double>();
      if (!extras.empty() || m < static_cast<double>(props.size())) {
        fail(path + "/maxProperties", "maxProperties is not supported here");
      }
    }
    const bool need_one = min_one_;
    min_one_ = false;
    // Members: the required properties in a fixed order, each exactly once; between them any
    // number of free members (optional listed properties, in any order, and additional ones).
    // Two orders are accepted when they differ: the properties' and the "required" array's.
    std::vector<int32_t> free_member;
    std::map<std::string, int32_t> req_member;
    for (const auto& p : props) {
      const uint32_t m = nt(path + "{" + p.name + "}");
      cfg_.add_rule(m, {key_term(p.name), p.value});
      if (p.required) {
        req_member[p.name] = static_cast<int32_t>(m);
      } else {
        free_member.push_back(static_cast<int32_t>(m));
      }
    }
    for (const auto& e : extras) {
      const uint32_t m = nt(path + "{extra}");
      cfg_.add_rule(m, {e.key, colon(), e.value});
      free_member.push_back(static_cast<int32_t>(m));
    }
    std::vector<std::string> by_props, by_required;
    for (const auto& p : props) {
      if (p.required) by_props.push_back(p.name);
    }
    for (const auto& r : required_order) {
      if (req_member.count(r)) by_required.push_back(r);
    }
    int32_t free_sym = 0;
    const bool has_free = !free_member.empty();
    if (has_free) {
      const uint32_t f = nt(path + "{free}");
      for (int32_t m : free_member) cfg_.add_rule(f, {m});
      free_sym = static_cast<int32_t>(f);
    }
    const uint32_t obj = nt(path + "{}");
    const size_t k = by_props.size();
    if (k <= 6) {
      // Required properties in any order: one state per subset written so far (2^k).
      // F: nothing written yet; R[S]: the required ones in S written, maybe free ones too.
      const uint32_t F = nt(path + "{F}");
      std::vector<uint32_t> R(size_t{1} << k);
      for (auto& r : R) r = nt(path + "{R}");
      const size_t full = R.size() - 1;
      if (k == 0 && !need_one) cfg_.add_rule(F, {});
      if (has_free) cfg_.add_rule(F, {free_sym, static_cast<int32_t>(R[0])});
      for (size_t i = 0; i < k; ++i) {
        cfg_.add_rule(F, {req_member[by_props[i]], static_cast<int32_t>(R[size_t{1} << i])});
      }
      for (size_t set = 0; set <= full; ++set) {
        if (set == full) cfg_.add_rule(R[set], {});
        if (has_free) cfg_.add_rule(R[set], {comma(), free_sym, static_cast<int32_t>(R[set])});
        for (size_t i = 0; i < k; ++i) {
          if (set & (size_t{1} << i)) continue;
          cfg_.add_rule(R[set], {comma(), req_member[by_props[i]],
                                 static_cast<int32_t>(R[set | (size_t{1} << i)])});
        }
      }
      cfg_.add_rule(obj, {lbrace(), static_cast<int32_t>(F), rbrace()});
      return static_cast<int32_t>(obj);
    }
    // Many required properties: two fixed orders, the properties' and the "required" array's.
    std::vector<std::vector<std::string>> orders = {by_props};
    if (by_required != by_props) orders.push_back(by_required);
    for (const auto& order : orders) {
      // F_i: none written yet, next required is order[i]; R_i: at least one written.
      std::vector<uint32_t> F(k + 1), R(k + 1);
      for (size_t i = 0; i <= k; ++i) {
        F[i] = nt(path + "{F" + std::to_string(i) + "}");
        R[i] = nt(path + "{R" + std::to_string(i) + "}");
      }
      for (size_t i = 0; i <= k; ++i) {
        const auto Ri = static_cast<int32_t>(R[i]);
        if (i == k) {
          cfg_.add_rule(R[i], {});
        } else {
          const int32_t m = req_member[order[i]];
          cfg_.add_rule(F[i], {m, static_cast<int32_t>(R[i + 1])});
          cfg_.add_rule(R[i], {comma(), m, static_cast<int32_t>(R[i + 1])});
        }
        if (has_free) {
          cfg_.add_rule(F[i], {free_sym, Ri});
          cfg_.add_rule(R[i], {comma(), free_sym, Ri});
        }
      }
      cfg_.add_rule(obj, {lbrace(), static_cast<int32_t>(F[0]), rbrace()});
    }
    return static_cast<int32_t>(obj);
  }

  const json& root_;
  const GrammarOptions& opt_;
  Cfg& cfg_;
  CompileClock clock_;
  std::map<std::string, int32_t> terms_;
  std::map<std::string, int32_t> keys_;
  std::map<std::string, uint32_t> refs_;
  int32_t any_value_ = -1;
  bool min_one_ = false;
};

}  // namespace

void build_json_schema(std::string_view schema_text, const GrammarOptions& opt, Cfg& out) {
  json root;
  try {
    root = json::parse(schema_text.begin(), schema_text.end());
  } catch (const json::parse_error& e) {
    throw Error(std::string("json schema: not valid JSON: ") + e.what());
  }
  JsonSchemaCompiler c(root, opt, out);
  const uint32_t start = c.compile();
  out.finish(start);
}

void build_any_json_object(const GrammarOptions& opt, Cfg& out) {
  json root = json::object();
  JsonSchemaCompiler c(root, opt, out);
  const uint32_t start = c.any_object();
  out.finish(start);
}

}  // namespace engram::grammar

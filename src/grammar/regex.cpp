#include "grammar/regex.h"

#include <algorithm>
#include <map>

#include "engram/error.h"

namespace engram::grammar {

namespace {

constexpr uint32_t kMaxChar = 0x10FFFF;

}  // namespace

// ---- CharSet ----

CharSet CharSet::of(uint32_t lo, uint32_t hi) {
  CharSet s;
  s.add(lo, hi);
  return s;
}

CharSet CharSet::any() {
  CharSet s;
  s.add(0, 0xD7FF);
  s.add(0xE000, kMaxChar);
  return s;
}

void CharSet::add(uint32_t lo, uint32_t hi) {
  if (lo > hi) return;
  ranges.emplace_back(lo, hi);
  std::sort(ranges.begin(), ranges.end());
  std::vector<std::pair<uint32_t, uint32_t>> merged;
  for (auto r : ranges) {
    if (!merged.empty() && r.first <= merged.back().second + 1) {
      merged.back().second = std::max(merged.back().second, r.second);
    } else {
      merged.push_back(r);
    }
  }
  ranges = std::move(merged);
}

void CharSet::add(const CharSet& o) {
  for (auto r : o.ranges) add(r.first, r.second);
}

CharSet CharSet::negated() const {
  CharSet out;
  uint32_t next = 0;
  for (auto r : ranges) {
    if (r.first > next) out.add(next, r.first - 1);
    next = r.second + 1;
  }
  if (next <= kMaxChar) out.add(next, kMaxChar);
  // Surrogates are not characters.
  CharSet res;
  for (auto r : out.ranges) {
    if (r.second < 0xD800 || r.first > 0xDFFF) {
      res.ranges.push_back(r);
    } else {
      if (r.first < 0xD800) res.ranges.emplace_back(r.first, 0xD7FF);
      if (r.second > 0xDFFF) res.ranges.emplace_back(0xE000, r.second);
    }
  }
  return res;
}

bool CharSet::contains(uint32_t c) const {
  for (auto r : ranges) {
    if (c >= r.first && c <= r.second) return true;
  }
  return false;
}

// ---- constructors ----

RegexPtr re_empty() {
  return std::make_shared<RegexNode>();
}

RegexPtr re_set(CharSet s) {
  auto n = std::make_shared<RegexNode>();
  n->kind = RegexNode::Kind::Set;
  n->set = std::move(s);
  return n;
}

RegexPtr re_char(uint32_t c) {
  return re_set(CharSet::of(c, c));
}

RegexPtr re_bytes(std::string_view bytes) {
  auto n = std::make_shared<RegexNode>();
  n->kind = RegexNode::Kind::Bytes;
  n->bytes = std::string(bytes);
  return n;
}

namespace {

// Decodes one code point; ill-formed bytes come back as themselves (for byte literals).
uint32_t decode_utf8(std::string_view s, size_t& i) {
  const auto b = static_cast<uint8_t>(s[i]);
  int len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
  if (len == 0 || i + len > s.size()) {
    ++i;
    return b;
  }
  uint32_t c = len == 1 ? b : len == 2 ? (b & 0x1F) : len == 3 ? (b & 0x0F) : (b & 0x07);
  for (int k = 1; k < len; ++k) {
    const auto cb = static_cast<uint8_t>(s[i + k]);
    if ((cb >> 6) != 2) {
      ++i;
      return b;
    }
    c = (c << 6) | (cb & 0x3F);
  }
  i += len;
  return c;
}

}  // namespace

RegexPtr re_literal(std::string_view utf8) {
  std::vector<RegexPtr> kids;
  for (size_t i = 0; i < utf8.size();) kids.push_back(re_char(decode_utf8(utf8, i)));
  return re_concat(std::move(kids));
}

RegexPtr re_concat(std::vector<RegexPtr> kids) {
  if (kids.empty()) return re_empty();
  if (kids.size() == 1) return kids[0];
  auto n = std::make_shared<RegexNode>();
  n->kind = RegexNode::Kind::Concat;
  n->kids = std::move(kids);
  return n;
}

RegexPtr re_alt(std::vector<RegexPtr> kids) {
  if (kids.empty()) return re_empty();  // callers never mean the empty language here
  if (kids.size() == 1) return kids[0];
  auto n = std::make_shared<RegexNode>();
  n->kind = RegexNode::Kind::Alt;
  n->kids = std::move(kids);
  return n;
}

RegexPtr re_repeat(RegexPtr kid, uint32_t min, uint32_t max) {
  auto n = std::make_shared<RegexNode>();
  n->kind = RegexNode::Kind::Repeat;
  n->kids = {std::move(kid)};
  n->min = min;
  n->max = max;
  return n;
}

void append_utf8(std::string& out, uint32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

// ---- parser ----

namespace {

CharSet class_digit() {
  return CharSet::of('0', '9');
}
CharSet class_word() {
  CharSet s = CharSet::of('0', '9');
  s.add('A', 'Z');
  s.add('a', 'z');
  s.add('_', '_');
  return s;
}
CharSet class_space() {
  CharSet s = CharSet::of('\t', '\r');
  s.add(' ', ' ');
  s.add(0xA0, 0xA0);
  s.add(0x1680, 0x1680);
  s.add(0x2000, 0x200A);
  s.add(0x2028, 0x2029);
  s.add(0x202F, 0x202F);
  s.add(0x205F, 0x205F);
  s.add(0x3000, 0x3000);
  s.add(0xFEFF, 0xFEFF);
  return s;
}
CharSet class_dot() {
  CharSet s = CharSet::any();
  CharSet nl = CharSet::of('\n', '\n');
  nl.add('\r', '\r');
  nl.add(0x2028, 0x2029);
  CharSet out;
  for (auto r : nl.negated().ranges) out.add(r.first, r.second);
  return out;
}

class RegexParser {
 public:
  RegexParser(std::string_view p, const std::string& where) : p_(p), where_(where) {}

  RegexPtr parse() {
    RegexPtr r = alternation();
    if (i_ < p_.size()) fail("unbalanced ')'");
    return r;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(where_ + ": regex /" + std::string(p_.substr(0, 200)) + "/ at offset " +
                std::to_string(i_) + ": " + what);
  }
  bool more() const { return i_ < p_.size(); }
  char peek() const { return p_[i_]; }

  uint32_t next_char() { return decode_utf8(p_, i_); }

  RegexPtr alternation() {
    std::vector<RegexPtr> alts = {sequence()};
    while (more() && peek() == '|') {
      ++i_;
      alts.push_back(sequence());
    }
    return re_alt(std::move(alts));
  }

  RegexPtr sequence() {
    std::vector<RegexPtr> items;
    while (more() && peek() != '|' && peek() != ')') {
      RegexPtr atom_node = atom();
      items.push_back(quantified(std::move(atom_node)));
    }
    if (items.empty()) return re_empty();
    return re_concat(std::move(items));
  }

  bool parse_count(uint32_t& out) {
    size_t start = i_;
    uint64_t v = 0;
    while (more() && peek() >= '0' && peek() <= '9') {
      v = v * 10 + static_cast<uint64_t>(peek() - '0');
      if (v > 100000) v = 100000;
      ++i_;
    }
    out = static_cast<uint32_t>(v);
    return i_ > start;
  }

  RegexPtr quantified(RegexPtr a) {
    for (;;) {
      if (!more()) return a;
      const char c = peek();
      uint32_t lo = 0, hi = 0;
      if (c == '*') {
        lo = 0, hi = RegexNode::kUnbounded;
        ++i_;
      } else if (c == '+') {
        lo = 1, hi = RegexNode::kUnbounded;
        ++i_;
      } else if (c == '?') {
        lo = 0, hi = 1;
        ++i_;
      } else if (c == '{') {
        const size_t save = i_;
        ++i_;
        if (!parse_count(lo)) {
          i_ = save;  // a literal '{' (Annex B)
          return a;
        }
        hi = lo;
        if (more() && peek() == ',') {
          ++i_;
          if (!parse_count(hi)) hi = RegexNode::kUnbounded;
        }
        if (!more() || peek() != '}') {
          i_ = save;
          return a;
        }
        ++i_;
        if (hi < lo) fail("repetition {" + std::to_string(lo) + "," + std::to_string(hi) + "}");
      } else {
        return a;
      }
      if (a->kind == RegexNode::Kind::AnchorStart || a->kind == RegexNode::Kind::AnchorEnd) {
        fail("quantifier after an anchor");
      }
      if (more() && peek() == '?') ++i_;  // lazy: the same language
      if (more() && (peek() == '*' || peek() == '+' || peek() == '?')) fail("nothing to repeat");
      a = re_repeat(std::move(a), lo, hi);
    }
  }

  uint32_t hex(int n) {
    uint32_t v = 0;
    for (int k = 0; k < n; ++k) {
      if (!more()) fail("truncated hex escape");
      const char c = peek();
      int d = c >= '0' && c <= '9'   ? c - '0'
              : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                     : -1;
      if (d < 0) fail("bad hex digit");
      v = v * 16 + static_cast<uint32_t>(d);
      ++i_;
    }
    return v;
  }

  // After a backslash: fills `set` for a class escape, or returns a single character.
  bool escape(CharSet& set, uint32_t& ch, bool in_class) {
    if (!more()) fail("trailing backslash");
    const char c = peek();
    ++i_;
    switch (c) {
      case 'd':
        set = class_digit();
        return true;
      case 'D':
        set = class_digit().negated();
        return true;
      case 'w':
        set = class_word();
        return true;
      case 'W':
        set = class_word().negated();
        return true;
      case 's':
        set = class_space();
        return true;
      case 'S':
        set = class_space().negated();
        return true;
      case 'n':
        ch = '\n';
        return false;
      case 'r':
        ch = '\r';
        return false;
      case 't':
        ch = '\t';
        return false;
      case 'f':
        ch = '\f';
        return false;
      case 'v':
        ch = '\v';
        return false;
      case '0':
        if (more() && peek() >= '0' && peek() <= '9') fail("octal escape or backreference");
        ch = 0;
        return false;
      case 'x':
        ch = hex(2);
        return false;
      case 'u':
        if (more() && peek() == '{') {
          ++i_;
          ch = 0;
          int n = 0;
          while (more() && peek() != '}') {
            ch = ch * 16 + hex(1);
            if (++n > 6 || ch > kMaxChar) fail("code point out of range");
          }
          if (!more()) fail("unterminated \\u{");
          ++i_;
        } else {
          ch = hex(4);
          // A surrogate pair written as two escapes is one character.
          if (ch >= 0xD800 && ch <= 0xDBFF && i_ + 6 <= p_.size() && p_[i_] == '\\' &&
              p_[i_ + 1] == 'u') {
            const size_t save = i_;
            i_ += 2;
            const uint32_t lo = hex(4);
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
              ch = 0x10000 + ((ch - 0xD800) << 10) + (lo - 0xDC00);
            } else {
              i_ = save;
            }
          }
          if (ch >= 0xD800 && ch <= 0xDFFF) fail("lone surrogate escape");
        }
        return false;
      case 'c':
        if (more() && ((peek() >= 'a' && peek() <= 'z') || (peek() >= 'A' && peek() <= 'Z'))) {
          ch = static_cast<uint32_t>(peek()) % 32;
          ++i_;
          return false;
        }
        ch = '\\';
        --i_;
        return false;
      case 'b':
        if (in_class) {
          ch = '\b';
          return false;
        }
        fail("word boundary \\b is not supported");
      case 'B':
        fail("word boundary \\B is not supported");
      case 'k':
        fail("named backreference is not supported");
      case 'p':
      case 'P':
        fail("Unicode property escapes are not supported");
      default:
        if (c >= '1' && c <= '9') fail("backreference is not supported");
        --i_;
        ch = next_char();
        return false;
    }
  }

  RegexPtr char_class() {
    // '[' already consumed.
    bool negate = false;
    if (more() && peek() == '^') {
      negate = true;
      ++i_;
    }
    CharSet set;
    bool first = true;
    while (true) {
      if (!more()) fail("unterminated character class");
      if (peek() == ']' && !first) break;
      if (peek() == ']' && first) break;  // ECMA: [] is the empty class
      first = false;
      CharSet item;
      uint32_t lo = 0;
      bool is_set = false;
      if (peek() == '\\') {
        ++i_;
        is_set = escape(item, lo, true);
      } else {
        lo = next_char();
      }
      if (!is_set && more() && peek() == '-' && i_ + 1 < p_.size() && p_[i_ + 1] != ']') {
        ++i_;
        uint32_t hi = 0;
        CharSet hs;
        bool hi_set = false;
        if (peek() == '\\') {
          ++i_;
          hi_set = escape(hs, hi, true);
        } else {
          hi = next_char();
        }
        if (hi_set) {
          // [a-\d]: ECMA Annex B reads the '-' literally.
          set.add(lo, lo);
          set.add('-', '-');
          set.add(hs);
          continue;
        }
        if (hi < lo) fail("class range out of order");
        set.add(lo, hi);
      } else if (is_set) {
        set.add(item);
      } else {
        set.add(lo, lo);
      }
    }
    ++i_;  // ']'
    if (negate) set = set.negated();
    return re_set(std::move(set));
  }

  RegexPtr atom() {
    const char c = peek();
    switch (c) {
      case '(': {
        ++i_;
        if (more() && peek() == '?') {
          ++i_;
          if (!more()) fail("bad group");
          if (peek() == ':') {
            ++i_;
          } else if (peek() == '=' || peek() == '!') {
            fail("lookahead is not supported");
          } else if (peek() == '<') {
            ++i_;
            if (more() && (peek() == '=' || peek() == '!')) fail("lookbehind is not supported");
            while (more() && peek() != '>') ++i_;
            if (!more()) fail("unterminated group name");
            ++i_;
          } else {
            fail("unknown group kind");
          }
        }
        if (++depth_ > 200) fail("groups nested too deeply");
        RegexPtr r = alternation();
        --depth_;
        if (!more() || peek() != ')') fail("missing ')'");
        ++i_;
        return r;
      }
      case ')':
        fail("unbalanced ')'");
      case '[':
        ++i_;
        return char_class();
      case '.':
        ++i_;
        return re_set(class_dot());
      case '^': {
        ++i_;
        auto n = std::make_shared<RegexNode>();
        n->kind = RegexNode::Kind::AnchorStart;
        return n;
      }
      case '$': {
        ++i_;
        auto n = std::make_shared<RegexNode>();
        n->kind = RegexNode::Kind::AnchorEnd;
        return n;
      }
      case '*':
      case '+':
      case '?':
        fail("nothing to repeat");
      case '\\': {
        ++i_;
        CharSet set;
        uint32_t ch = 0;
        if (escape(set, ch, false)) return re_set(std::move(set));
        return re_char(ch);
      }
      default:
        return re_char(next_char());
    }
  }

  std::string_view p_;
  const std::string& where_;
  size_t i_ = 0;
  int depth_ = 0;
};

bool has_anchor(const RegexPtr& r) {
  if (r->kind == RegexNode::Kind::AnchorStart || r->kind == RegexNode::Kind::AnchorEnd) {
    return true;
  }
  for (auto& k : r->kids) {
    if (has_anchor(k)) return true;
  }
  return false;
}

}  // namespace

RegexPtr parse_regex(std::string_view pattern, const std::string& where) {
  return RegexParser(pattern, where).parse();
}

RegexPtr anchor(const RegexPtr& re, bool search, const std::string& where) {
  if (re->kind == RegexNode::Kind::Alt) {
    std::vector<RegexPtr> alts;
    for (auto& k : re->kids) alts.push_back(anchor(k, search, where));
    return re_alt(std::move(alts));
  }
  std::vector<RegexPtr> items;
  if (re->kind == RegexNode::Kind::Concat) {
    items = re->kids;
  } else {
    items = {re};
  }
  // A single group holding an alternation with anchors inside: (^a|^b).
  if (items.size() == 1 && items[0]->kind == RegexNode::Kind::Alt)
    return anchor(items[0], search, where);
  bool start = false, end = false;
  while (!items.empty() && items.front()->kind == RegexNode::Kind::AnchorStart) {
    start = true;
    items.erase(items.begin());
  }
  while (!items.empty() && items.back()->kind == RegexNode::Kind::AnchorEnd) {
    end = true;
    items.pop_back();
  }
  for (auto& k : items) {
    if (has_anchor(k))
      throw Error(where + ": regex anchor (^ or $) inside the pattern is not supported");
  }
  const RegexPtr any_star = re_repeat(re_set(CharSet::any()), 0, RegexNode::kUnbounded);
  if (search && !start) items.insert(items.begin(), any_star);
  if (search && !end) items.push_back(any_star);
  if (items.empty()) return re_empty();
  return re_concat(std::move(items));
}

// ---- NFA and subset construction ----

namespace {

struct Nfa {
  struct Edge {
    uint8_t lo, hi;
    uint32_t to;
  };
  std::vector<std::vector<uint32_t>> eps;
  std::vector<std::vector<Edge>> edges;
  uint32_t max_states;
  const std::string* where;

  uint32_t add() {
    if (eps.size() >= max_states) {
      throw Error(*where + ": regex too large (more than " + std::to_string(max_states) +
                  " automaton states before determinisation)");
    }
    eps.emplace_back();
    edges.emplace_back();
    return static_cast<uint32_t>(eps.size() - 1);
  }
};

struct Frag {
  uint32_t start, end;
};

// Adds byte paths for the UTF-8 encodings of [lo, hi] from `from` to `to`.
void add_utf8_range(Nfa& n, uint32_t from, uint32_t to, uint32_t lo, uint32_t hi) {
  static constexpr uint32_t kBounds[] = {0x7F, 0x7FF, 0xFFFF, 0x10FFFF};
  for (uint32_t b : kBounds) {
    if (lo <= b && hi > b) {
      add_utf8_range(n, from, to, lo, b);
      add_utf8_range(n, from, to, b + 1, hi);
      return;
    }
  }
  if (hi < 0x80) {
    n.edges[from].push_back({static_cast<uint8_t>(lo), static_cast<uint8_t>(hi), to});
    return;
  }
  const int len = hi < 0x800 ? 2 : hi < 0x10000 ? 3 : 4;
  for (int i = 1; i < len; ++i) {
    const uint32_t m = (1u << (6 * i)) - 1;
    if ((lo & ~m) != (hi & ~m)) {
      if ((lo & m) != 0) {
        add_utf8_range(n, from, to, lo, lo | m);
        add_utf8_range(n, from, to, (lo | m) + 1, hi);
        return;
      }
      if ((hi & m) != m) {
        add_utf8_range(n, from, to, lo, (hi & ~m) - 1);
        add_utf8_range(n, from, to, hi & ~m, hi);
        return;
      }
    }
  }
  std::string a, b;
  append_utf8(a, lo);
  append_utf8(b, hi);
  uint32_t cur = from;
  for (int k = 0; k < len; ++k) {
    const uint32_t nxt = k + 1 == len ? to : n.add();
    n.edges[cur].push_back({static_cast<uint8_t>(a[k]), static_cast<uint8_t>(b[k]), nxt});
    cur = nxt;
  }
}

void add_bytes(Nfa& n, uint32_t from, uint32_t to, std::string_view bytes) {
  uint32_t cur = from;
  for (size_t k = 0; k < bytes.size(); ++k) {
    const uint32_t nxt = k + 1 == bytes.size() ? to : n.add();
    const auto b = static_cast<uint8_t>(bytes[k]);
    n.edges[cur].push_back({b, b, nxt});
    cur = nxt;
  }
}

void add_set(Nfa& n, uint32_t from, uint32_t to, const CharSet& set, Encoding enc) {
  if (enc == Encoding::Utf8) {
    for (auto r : set.ranges) {
      // Surrogates have no UTF-8 form.
      if (r.second < 0xD800 || r.first > 0xDFFF) {
        add_utf8_range(n, from, to, r.first, r.second);
      } else {
        if (r.first < 0xD800) add_utf8_range(n, from, to, r.first, 0xD7FF);
        if (r.second > 0xDFFF) add_utf8_range(n, from, to, 0xE000, r.second);
      }
    }
    return;
  }
  // JSON string text: '"', '\' and control characters are escaped; everything else raw.
  CharSet raw;
  for (auto r : set.ranges) {
    uint32_t lo = std::max<uint32_t>(r.first, 0x20), hi = r.second;
    if (lo > hi) continue;
    for (uint32_t c : {uint32_t{'"'}, uint32_t{'\\'}}) {
      if (c >= lo && c <= hi) {
        if (c > lo) raw.add(lo, c - 1);
        lo = c + 1;
      }
    }
    if (lo <= hi) raw.add(lo, hi);
  }
  for (auto r : raw.ranges) {
    if (r.second < 0xD800 || r.first > 0xDFFF) {
      add_utf8_range(n, from, to, r.first, r.second);
    } else {
      if (r.first < 0xD800) add_utf8_range(n, from, to, r.first, 0xD7FF);
      if (r.second > 0xDFFF) add_utf8_range(n, from, to, 0xE000, r.second);
    }
  }
  if (set.ranges == CharSet::any().ranges) {
    // Any character may also be written \uXXXX; one above U+FFFF as a surrogate pair
    // \uD8xx-\uDBxx \uDCxx-\uDFxx, which is one character (as JSON Schema counts lengths).
    // A lone surrogate is not a character: refused.
    auto hex = [&](uint32_t a, uint32_t b) {
      n.edges[a].push_back({'0', '9', b});
      n.edges[a].push_back({'a', 'f', b});
      n.edges[a].push_back({'A', 'F', b});
    };
    auto range = [&](uint32_t a, uint32_t b, char lo, char hi) {
      n.edges[a].push_back({static_cast<uint8_t>(lo), static_cast<uint8_t>(hi), b});
      if (lo >= 'a') {
        n.edges[a].push_back(
            {static_cast<uint8_t>(lo - 'a' + 'A'), static_cast<uint8_t>(hi - 'a' + 'A'), b});
      }
    };
    // Escapes of the basic plane outside the surrogates: [0-9a-cefA-CEF]hhh | [dD][0-7]hh.
    const uint32_t u = n.add();
    add_bytes(n, from, u, "\\u");
    const uint32_t h3 = n.add(), d = n.add(), h2 = n.add(), h1 = n.add();
    range(u, h3, '0', '9');
    range(u, h3, 'a', 'c');
    range(u, h3, 'e', 'f');
    hex(h3, h2);
    n.edges[u].push_back({'d', 'd', d});
    n.edges[u].push_back({'D', 'D', d});
    range(d, h2, '0', '7');
    hex(h2, h1);
    hex(h1, to);
    // A surrogate pair: [dD][89abAB]hh \u [dD][c-fC-F]hh.
    const uint32_t hi = n.add(), p2 = n.add(), p1 = n.add(), lo_u = n.add();
    range(d, hi, '8', '9');
    range(d, hi, 'a', 'b');
    hex(hi, p2);
    hex(p2, p1);
    add_bytes(n, p1, lo_u, "\\u");
    const uint32_t lo_d = n.add(), lo_2 = n.add(), lo_1 = n.add();
    n.edges[lo_u].push_back({'d', 'd', lo_d});
    n.edges[lo_u].push_back({'D', 'D', lo_d});
    range(lo_d, lo_2, 'c', 'f');
    hex(lo_2, lo_1);
    hex(lo_1, to);
  }
  if (set.contains('"')) add_bytes(n, from, to, "\\\"");
  if (set.contains('\\')) add_bytes(n, from, to, "\\\\");
  if (set.contains('/')) add_bytes(n, from, to, "\\/");
  static const char* kHex = "0123456789abcdef";
  static const char* kHexU = "0123456789ABCDEF";
  for (uint32_t c = 0; c < 0x20; ++c) {
    if (!set.contains(c)) continue;
    const char* short_form = c == '\b'   ? "\\b"
                             : c == '\f' ? "\\f"
                             : c == '\n' ? "\\n"
                             : c == '\r' ? "\\r"
                             : c == '\t' ? "\\t"
                                         : nullptr;
    if (short_form) add_bytes(n, from, to, short_form);
    for (const char* digits : {kHex, kHexU}) {
      std::string esc = "\\u00";
      esc += digits[c >> 4];
      esc += digits[c & 15];
      add_bytes(n, from, to, esc);
      if (c < 10 || (c & 15) < 10) break;  // both spellings equal: add once
    }
  }
}

Frag build(Nfa& n, const RegexPtr& r, Encoding enc) {
  switch (r->kind) {
    case RegexNode::Kind::Empty: {
      const uint32_t s = n.add();
      return {s, s};
    }
    case RegexNode::Kind::AnchorStart:
    case RegexNode::Kind::AnchorEnd:
      throw Error(*n.where + ": regex anchor (^ or $) inside the pattern is not supported");
    case RegexNode::Kind::Set: {
      const uint32_t s = n.add(), e = n.add();
      add_set(n, s, e, r->set, enc);
      return {s, e};
    }
    case RegexNode::Kind::Bytes: {
      const uint32_t s = n.add();
      if (r->bytes.empty()) return {s, s};
      const uint32_t e = n.add();
      add_bytes(n, s, e, r->bytes);
      return {s, e};
    }
    case RegexNode::Kind::Concat: {
      Frag f = build(n, r->kids[0], enc);
      for (size_t k = 1; k < r->kids.size(); ++k) {
        Frag g = build(n, r->kids[k], enc);
        n.eps[f.end].push_back(g.start);
        f.end = g.end;
      }
      return f;
    }
    case RegexNode::Kind::Alt: {
      const uint32_t s = n.add(), e = n.add();
      for (auto& k : r->kids) {
        Frag g = build(n, k, enc);
        n.eps[s].push_back(g.start);
        n.eps[g.end].push_back(e);
      }
      return {s, e};
    }
    case RegexNode::Kind::Repeat: {
      const uint32_t s = n.add();
      uint32_t cur = s;
      for (uint32_t k = 0; k < r->min; ++k) {
        Frag g = build(n, r->kids[0], enc);
        n.eps[cur].push_back(g.start);
        cur = g.end;
      }
      if (r->max == RegexNode::kUnbounded) {
        Frag g = build(n, r->kids[0], enc);
        const uint32_t e = n.add();
        n.eps[cur].push_back(g.start);
        n.eps[cur].push_back(e);
        n.eps[g.end].push_back(g.start);
        n.eps[g.end].push_back(e);
        return {s, e};
      }
      const uint32_t e = n.add();
      n.eps[cur].push_back(e);
      for (uint32_t k = r->min; k < r->max; ++k) {
        Frag g = build(n, r->kids[0], enc);
        n.eps[cur].push_back(g.start);
        n.eps[g.end].push_back(e);
        cur = g.end;
      }
      return {s, e};
    }
  }
  return {0, 0};
}

void closure(const Nfa& n, std::vector<uint32_t>& set, std::vector<uint32_t>& mark,
             uint32_t stamp) {
  std::vector<uint32_t> stack(set.begin(), set.end());
  for (uint32_t s : set) mark[s] = stamp;
  while (!stack.empty()) {
    const uint32_t s = stack.back();
    stack.pop_back();
    for (uint32_t t : n.eps[s]) {
      if (mark[t] != stamp) {
        mark[t] = stamp;
        set.push_back(t);
        stack.push_back(t);
      }
    }
  }
  std::sort(set.begin(), set.end());
}

}  // namespace

Dfa compile_regex(const RegexPtr& re, Encoding enc, const std::string& where,
                  const RegexLimits& limits) {
  Nfa n;
  n.max_states = limits.max_nfa_states;
  n.where = &where;
  const Frag f = build(n, re, enc);
  const uint32_t accept = f.end;

  Dfa d;
  std::map<std::vector<uint32_t>, uint32_t> ids;
  std::vector<std::vector<uint32_t>> sets;
  std::vector<uint32_t> mark(n.eps.size(), 0);
  uint32_t stamp = 1;
  auto intern = [&](std::vector<uint32_t> set) -> uint32_t {
    auto it = ids.find(set);
    if (it != ids.end()) return it->second;
    if (d.n_states() >= limits.max_dfa_states) {
      throw Error(where + ": regex too large (more than " + std::to_string(limits.max_dfa_states) +
                  " DFA states)");
    }
    const bool acc = std::binary_search(set.begin(), set.end(), accept);
    const uint32_t id = d.add_state(acc);
    ids.emplace(set, id);
    sets.push_back(std::move(set));
    return id;
  };
  std::vector<uint32_t> start = {f.start};
  closure(n, start, mark, stamp++);
  intern(std::move(start));
  std::vector<std::vector<uint32_t>> by_byte(256);
  for (uint32_t cur = 0; cur < sets.size(); ++cur) {
    for (auto& v : by_byte) v.clear();
    for (uint32_t s : sets[cur]) {
      for (const auto& e : n.edges[s]) {
        for (int b = e.lo; b <= e.hi; ++b) by_byte[b].push_back(e.to);
      }
    }
    // Bytes with the same target set share one closure computation.
    std::map<std::vector<uint32_t>, uint32_t> done;
    for (int b = 0; b < 256; ++b) {
      auto& v = by_byte[b];
      if (v.empty()) continue;
      std::sort(v.begin(), v.end());
      v.erase(std::unique(v.begin(), v.end()), v.end());
      auto it = done.find(v);
      uint32_t to;
      if (it != done.end()) {
        to = it->second;
      } else {
        std::vector<uint32_t> c = v;
        closure(n, c, mark, stamp++);
        to = intern(std::move(c));
        done.emplace(v, to);
      }
      d.set_next(cur, static_cast<uint8_t>(b), to);
    }
  }
  d.trim();
  if (d.n_states() <= 4000) d.minimize();
  return d;
}

}  // namespace engram::grammar

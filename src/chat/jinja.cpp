// Lexer, parser and evaluator for the chat-template Jinja subset (see jinja.h).
//
// Strings are UTF-8 bytes; where the reference (JavaScript) would count or index UTF-16 code
// units, we count code units too (length) or index code points (slicing, which the reference
// also does by code point).
#include "chat/jinja.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <ctime>
#include <functional>
#include <limits>
#include <optional>
#include <unordered_map>
#include <vector>

#include "engram/error.h"

namespace engram::chat::jinja {
namespace {

// ---------------------------------------------------------------------------------------------
// Text helpers with JavaScript semantics.

uint32_t decode_at(std::string_view s, size_t i, size_t* len) {
  const auto c = static_cast<unsigned char>(s[i]);
  auto cont = [&](size_t k) {
    return i + k < s.size() && (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
  };
  if (c < 0x80) {
    *len = 1;
    return c;
  }
  if ((c & 0xE0) == 0xC0 && cont(1)) {
    *len = 2;
    return ((c & 0x1F) << 6) | (s[i + 1] & 0x3F);
  }
  if ((c & 0xF0) == 0xE0 && cont(1) && cont(2)) {
    *len = 3;
    return ((c & 0x0F) << 12) | ((s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F);
  }
  if ((c & 0xF8) == 0xF0 && cont(1) && cont(2) && cont(3)) {
    *len = 4;
    return ((c & 0x07) << 18) | ((s[i + 1] & 0x3F) << 12) | ((s[i + 2] & 0x3F) << 6) |
           (s[i + 3] & 0x3F);
  }
  *len = 1;  // ill-formed byte: treat as one unit of its own
  return 0xFFFD;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// JavaScript's \s and String.prototype.trim() whitespace (WhiteSpace + LineTerminator).
bool js_space_cp(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

// Byte length of the whitespace character starting at i, or 0.
size_t js_space_at(std::string_view s, size_t i) {
  if (i >= s.size()) return 0;
  size_t len = 0;
  const uint32_t cp = decode_at(s, i, &len);
  return js_space_cp(cp) ? len : 0;
}

// Byte length of the whitespace character ending at `end`, or 0.
size_t js_space_before(std::string_view s, size_t end) {
  for (size_t len = 1; len <= 4 && len <= end; ++len) {
    const size_t start = end - len;
    if ((static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) continue;
    size_t l = 0;
    const uint32_t cp = decode_at(s, start, &l);
    return (l == len && js_space_cp(cp)) ? len : 0;
  }
  return 0;
}

std::string trim_start(std::string_view s) {
  size_t i = 0;
  while (size_t n = js_space_at(s, i)) i += n;
  return std::string(s.substr(i));
}

std::string trim_end(std::string_view s) {
  size_t e = s.size();
  while (size_t n = js_space_before(s, e)) e -= n;
  return std::string(s.substr(0, e));
}

std::string trim(std::string_view s) {
  return trim_end(trim_start(s));
}

// Length in UTF-16 code units, as JavaScript's String.length.
int64_t utf16_length(std::string_view s) {
  int64_t n = 0;
  for (size_t i = 0; i < s.size();) {
    size_t len = 0;
    const uint32_t cp = decode_at(s, i, &len);
    n += cp >= 0x10000 ? 2 : 1;
    i += len;
  }
  return n;
}

std::vector<std::string> code_points(std::string_view s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    size_t len = 0;
    decode_at(s, i, &len);
    out.emplace_back(s.substr(i, len));
    i += len;
  }
  return out;
}

// ASCII-only case mapping (the reference maps all of Unicode; chat templates only ever
// change the case of role names and keywords).
std::string ascii_upper(std::string s) {
  for (char& c : s) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
  }
  return s;
}
std::string ascii_lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  }
  return s;
}
bool is_word_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// Number.prototype.toString(): shortest round-trip digits, exponent form outside [1e-6, 1e21).
std::string js_number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  if (v == 0) return "0";
  std::string out;
  if (v < 0) {
    out = "-";
    v = -v;
  }
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  std::string sci(buf, res.ptr);  // d[.ddd]e±XX
  const size_t e = sci.find('e');
  std::string digits = sci.substr(0, e);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  const int exp10 = std::stoi(sci.substr(e + 1));
  const int k = static_cast<int>(digits.size());
  const int n = exp10 + 1;
  if (k <= n && n <= 21) {
    out += digits + std::string(n - k, '0');
  } else if (0 < n && n <= 21) {
    out += digits.substr(0, n) + "." + digits.substr(n);
  } else if (-6 < n && n <= 0) {
    out += "0." + std::string(-n, '0') + digits;
  } else {
    out += digits.substr(0, 1);
    if (k > 1) out += "." + digits.substr(1);
    out += fmt::format("e{}{}", n - 1 >= 0 ? "+" : "-", std::abs(n - 1));
  }
  return out;
}

// JSON.stringify(string), optionally with every code unit >= 0x7F escaped (ensure_ascii).
std::string json_quote(std::string_view s, bool ensure_ascii) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size();) {
    size_t len = 0;
    const uint32_t cp = decode_at(s, i, &len);
    switch (cp) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (cp < 0x20) {
          out += fmt::format("\\u{:04x}", cp);
        } else if (ensure_ascii && cp >= 0x7F) {
          if (cp >= 0x10000) {
            const uint32_t c = cp - 0x10000;
            out += fmt::format("\\u{:04x}\\u{:04x}", 0xD800 + (c >> 10), 0xDC00 + (c & 0x3FF));
          } else {
            out += fmt::format("\\u{:04x}", cp);
          }
        } else {
          out.append(s.substr(i, len));
        }
    }
    i += len;
  }
  return out + "\"";
}

// ---------------------------------------------------------------------------------------------
// Source text after the reference's preprocessing, with a map back to the original offsets
// so errors point into the template as written.

struct Source {
  const std::string* original = nullptr;
  std::string text;
  std::vector<uint32_t> orig;  // orig[i]: offset in *original of text[i]; one extra at the end

  std::string where(size_t pos) const {
    const size_t o = pos < orig.size() ? orig[pos] : original->size();
    size_t line = 1, col = 1;
    for (size_t i = 0; i < o && i < original->size(); ++i) {
      if ((*original)[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    return fmt::format("line {}, column {}", line, col);
  }
};

bool is_line_start(const std::string& s, size_t i) {
  if (i == 0) return true;
  const char p = s[i - 1];
  if (p == '\n' || p == '\r') return true;
  // U+2028 / U+2029 end lines for JavaScript's multiline ^ as well.
  return i >= 3 && static_cast<unsigned char>(s[i - 3]) == 0xE2 &&
         static_cast<unsigned char>(s[i - 2]) == 0x80 &&
         (static_cast<unsigned char>(s[i - 1]) == 0xA8 ||
          static_cast<unsigned char>(s[i - 1]) == 0xA9);
}

// Drops one trailing newline, then applies lstrip_blocks (spaces/tabs from a line start up to
// "{%", "{#" or "{-") and trim_blocks (the newline right after "%}", "#}" or "-}").
Source preprocess(const std::string& src) {
  Source out;
  out.original = &src;
  size_t n = src.size();
  if (n > 0 && src[n - 1] == '\n') --n;
  std::vector<bool> keep(n, true);
  for (size_t i = 0; i < n; ++i) {
    if (!is_line_start(src, i)) continue;
    size_t j = i;
    while (j < n && (src[j] == ' ' || src[j] == '\t')) ++j;
    if (j > i && j + 1 < n && src[j] == '{' &&
        (src[j + 1] == '#' || src[j + 1] == '%' || src[j + 1] == '-')) {
      for (size_t k = i; k < j; ++k) keep[k] = false;
    }
  }
  // trim_blocks runs on the lstripped text; deleting spaces cannot create or break a
  // "%}\n" sequence, so checking the original characters is equivalent.
  for (size_t i = 0; i + 2 < n; ++i) {
    if ((src[i] == '#' || src[i] == '%' || src[i] == '-') && src[i + 1] == '}' &&
        src[i + 2] == '\n') {
      keep[i + 2] = false;
    }
  }
  for (size_t i = 0; i < n; ++i) {
    if (!keep[i]) continue;
    out.text += src[i];
    out.orig.push_back(static_cast<uint32_t>(i));
  }
  out.orig.push_back(static_cast<uint32_t>(n));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Lexer.

enum class Tok {
  Text,
  Number,
  String,
  Ident,
  Equals,
  LParen,
  RParen,
  OpenStmt,
  CloseStmt,
  OpenExpr,
  CloseExpr,
  LBracket,
  RBracket,
  LBrace,
  RBrace,
  Comma,
  Dot,
  Colon,
  Pipe,
  Additive,
  Multiplicative,
  Power,
  Comparison,
  Unary,
  Comment,
};

struct Token {
  Tok type;
  std::string value;
  size_t pos;
};

class Lexer {
 public:
  explicit Lexer(const Source& src) : src_(src), s_(src.text) {}

  std::vector<Token> run() {
    while (pos_ < s_.size()) step();
    return std::move(tokens_);
  }

 private:
  [[noreturn]] void fail(const std::string& what, size_t at) const {
    throw Error(fmt::format("chat template: {} at {}", what, src_.where(at)));
  }
  bool at(std::string_view lit) const { return s_.compare(pos_, lit.size(), lit) == 0; }
  const Token* last() const { return tokens_.empty() ? nullptr : &tokens_.back(); }
  void push(Tok t, std::string v, size_t p) { tokens_.push_back({t, std::move(v), p}); }

  void strip_trailing_ws() {
    if (!tokens_.empty() && tokens_.back().type == Tok::Text) {
      tokens_.back().value = trim_end(tokens_.back().value);
      if (tokens_.back().value.empty()) tokens_.pop_back();
    }
  }
  void skip_ws() {
    while (size_t n = js_space_at(s_, pos_)) pos_ += n;
  }

  // Characters of a string literal up to the closing quote, with escapes resolved.
  std::string string_body(char quote, size_t start) {
    std::string str;
    while (true) {
      if (pos_ >= s_.size()) fail("unterminated string literal", start);
      const char c = s_[pos_];
      if (c == quote) break;
      if (c == '\\') {
        ++pos_;
        if (pos_ >= s_.size()) fail("unterminated string literal", start);
        const char e = s_[pos_++];
        if (e == 'x' || e == 'u') {
          const size_t len = e == 'x' ? 2 : 4;
          const std::string hex = s_.substr(pos_, len);
          uint32_t cp = 0;
          auto r = std::from_chars(hex.data(), hex.data() + hex.size(), cp, 16);
          if (hex.size() != len || r.ptr != hex.data() + hex.size()) {
            fail(fmt::format("invalid escape \\{}{}", e, hex), pos_ - 2);
          }
          append_utf8(str, cp);
          pos_ += len;
          continue;
        }
        switch (e) {
          case 'n':
            str += '\n';
            break;
          case 't':
            str += '\t';
            break;
          case 'r':
            str += '\r';
            break;
          case 'b':
            str += '\b';
            break;
          case 'f':
            str += '\f';
            break;
          case 'v':
            str += '\v';
            break;
          case '\'':
            str += '\'';
            break;
          case '"':
            str += '"';
            break;
          case '\\':
            str += '\\';
            break;
          default:
            fail(fmt::format("unsupported escape character '\\{}'", e), pos_ - 2);
        }
        continue;
      }
      str += c;
      ++pos_;
    }
    ++pos_;  // closing quote
    return str;
  }

  std::string digits() {
    const size_t b = pos_;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
    return s_.substr(b, pos_ - b);
  }
  bool digit_at(size_t i) const { return i < s_.size() && s_[i] >= '0' && s_[i] <= '9'; }

  void step() {
    const Token* prev = last();
    if (!prev || prev->type == Tok::CloseStmt || prev->type == Tok::CloseExpr ||
        prev->type == Tok::Comment) {
      const size_t b = pos_;
      while (pos_ < s_.size() &&
             !(s_[pos_] == '{' && pos_ + 1 < s_.size() &&
               (s_[pos_ + 1] == '%' || s_[pos_ + 1] == '{' || s_[pos_ + 1] == '#'))) {
        ++pos_;
      }
      if (pos_ > b) {
        push(Tok::Text, s_.substr(b, pos_ - b), b);
        return;
      }
    }
    if (at("{#")) {
      const size_t b = pos_;
      pos_ += 2;
      const bool strip_before = pos_ < s_.size() && s_[pos_] == '-';
      if (strip_before) ++pos_;
      const size_t end = s_.find("#}", pos_);
      if (end == std::string::npos) fail("comment without a closing '#}'", b);
      std::string comment = s_.substr(pos_, end - pos_);
      const bool strip_after = !comment.empty() && comment.back() == '-';
      if (strip_after) comment.pop_back();
      if (strip_before) strip_trailing_ws();
      push(Tok::Comment, comment, b);
      pos_ = end + 2;
      if (strip_after) skip_ws();
      return;
    }
    if (at("{%-")) {
      strip_trailing_ws();
      push(Tok::OpenStmt, "{%", pos_);
      pos_ += 3;
      return;
    }
    if (at("{{-")) {
      strip_trailing_ws();
      push(Tok::OpenExpr, "{{", pos_);
      curly_ = 0;
      pos_ += 3;
      return;
    }
    skip_ws();
    if (pos_ >= s_.size()) fail("unexpected end of template inside a tag", pos_);
    if (at("-%}")) {
      push(Tok::CloseStmt, "%}", pos_);
      pos_ += 3;
      skip_ws();
      return;
    }
    if (at("-}}")) {
      push(Tok::CloseExpr, "}}", pos_);
      pos_ += 3;
      skip_ws();
      return;
    }
    const char c = s_[pos_];
    if (c == '-' || c == '+') {
      const Token* p = last();
      if (!p || p->type == Tok::Text) fail(fmt::format("unexpected character '{}'", c), pos_);
      const bool binary = p->type == Tok::Ident || p->type == Tok::Number ||
                          p->type == Tok::String || p->type == Tok::RParen ||
                          p->type == Tok::RBracket;
      if (!binary) {
        const size_t b = pos_++;
        std::string num = digits();
        if (!num.empty() && pos_ < s_.size() && s_[pos_] == '.' && digit_at(pos_ + 1)) {
          ++pos_;
          num += "." + digits();
        }
        push(num.empty() ? Tok::Unary : Tok::Number, std::string(1, c) + num, b);
        return;
      }
    }
    static constexpr std::pair<std::string_view, Tok> kTable[] = {
        {"{%", Tok::OpenStmt},      {"%}", Tok::CloseStmt},
        {"{{", Tok::OpenExpr},      {"}}", Tok::CloseExpr},
        {"(", Tok::LParen},         {")", Tok::RParen},
        {"{", Tok::LBrace},         {"}", Tok::RBrace},
        {"[", Tok::LBracket},       {"]", Tok::RBracket},
        {",", Tok::Comma},          {".", Tok::Dot},
        {":", Tok::Colon},          {"|", Tok::Pipe},
        {"<=", Tok::Comparison},    {">=", Tok::Comparison},
        {"==", Tok::Comparison},    {"!=", Tok::Comparison},
        {"<", Tok::Comparison},     {">", Tok::Comparison},
        {"+", Tok::Additive},       {"-", Tok::Additive},
        {"~", Tok::Additive},       {"**", Tok::Power},
        {"*", Tok::Multiplicative}, {"//", Tok::Multiplicative},
        {"/", Tok::Multiplicative}, {"%", Tok::Multiplicative},
        {"=", Tok::Equals},
    };
    for (const auto& [seq, type] : kTable) {
      if (seq == "}}" && curly_ > 0) continue;  // "}}" closing a dict literal inside {{ }}
      if (!at(seq)) continue;
      push(type, std::string(seq), pos_);
      if (type == Tok::OpenExpr) curly_ = 0;
      if (type == Tok::LBrace) ++curly_;
      if (type == Tok::RBrace) --curly_;
      pos_ += seq.size();
      return;
    }
    if (c == '\'' || c == '"') {
      const size_t b = pos_++;
      push(Tok::String, string_body(c, b), b);
      return;
    }
    if (c >= '0' && c <= '9') {
      const size_t b = pos_;
      std::string num = digits();
      const Token* p = last();
      if (!(p && p->type == Tok::Dot) && pos_ < s_.size() && s_[pos_] == '.' &&
          digit_at(pos_ + 1)) {
        ++pos_;
        num += "." + digits();
      }
      push(Tok::Number, num, b);
      return;
    }
    if (is_word_char(c)) {
      const size_t b = pos_;
      while (pos_ < s_.size() && is_word_char(s_[pos_])) ++pos_;
      push(Tok::Ident, s_.substr(b, pos_ - b), b);
      return;
    }
    fail(fmt::format("unexpected character '{}'", c), pos_);
  }

  const Source& src_;
  const std::string& s_;
  size_t pos_ = 0;
  int curly_ = 0;
  std::vector<Token> tokens_;
};

// ---------------------------------------------------------------------------------------------
// Syntax tree.

enum class NK {
  // expressions
  Str,
  Int,
  Float,
  Ident,
  Array,
  Tuple,
  Object,
  Member,
  Slice,
  Call,
  Unary,
  Binary,
  Filter,
  Test,
  Select,
  Ternary,
  Kwarg,
  // statements
  If,
  For,
  Set,
  Macro,
  Break,
  Continue,
  Comment,
  FilterBlock,
};

struct Node;
using NodeP = std::unique_ptr<Node>;

struct Node {
  NK kind;
  size_t pos = 0;
  std::string str;  // literal text, identifier, operator, filter/test/macro name, kwarg key
  int64_t ival = 0;
  double fval = 0;
  bool flag = false;        // Member: computed; Test: negated
  NodeP x, y, z;            // operands (see each kind below)
  std::vector<NodeP> list;  // items, arguments, parameters, object key/value pairs
  std::vector<NodeP> body, alt;
};

bool is_statement(NK k) {
  return k >= NK::If;
}

}  // namespace

struct Program {
  Source src;
  std::vector<NodeP> body;
};

namespace {

class Parser {
 public:
  Parser(const Source& src, std::vector<Token> tokens) : src_(src), t_(std::move(tokens)) {}

  std::vector<NodeP> run() {
    std::vector<NodeP> body;
    while (i_ < t_.size()) body.push_back(any());
    return body;
  }

 private:
  static constexpr int kMaxDepth = 200;

  [[noreturn]] void fail(const std::string& what, size_t pos) const {
    throw Error(fmt::format("chat template: {} at {}", what, src_.where(pos)));
  }
  size_t here() const { return i_ < t_.size() ? t_[i_].pos : src_.text.size(); }
  bool is(Tok t, size_t off = 0) const { return i_ + off < t_.size() && t_[i_ + off].type == t; }
  bool is_ident(std::string_view name, size_t off = 0) const {
    return is(Tok::Ident, off) && t_[i_ + off].value == name;
  }
  bool is_stmt(std::initializer_list<std::string_view> names) const {
    if (!is(Tok::OpenStmt) || !is(Tok::Ident, 1)) return false;
    for (auto n : names) {
      if (t_[i_ + 1].value == n) return true;
    }
    return false;
  }
  const Token& expect(Tok t, const char* what) {
    if (!is(t)) {
      fail(fmt::format("expected {}, found {}", what,
                       i_ < t_.size() ? "'" + t_[i_].value + "'" : "the end of the template"),
           here());
    }
    return t_[i_++];
  }
  void expect_ident(std::string_view name) {
    if (!is_ident(name)) fail(fmt::format("expected '{}'", name), here());
    ++i_;
  }
  NodeP node(NK k, size_t pos) {
    auto n = std::make_unique<Node>();
    n->kind = k;
    n->pos = pos;
    return n;
  }
  // Guards the recursive descent against hostile nesting depth.
  struct Depth {
    explicit Depth(Parser& p) : p_(p) {
      if (++p_.depth_ > kMaxDepth) p_.fail("nesting too deep", p_.here());
    }
    ~Depth() { --p_.depth_; }
    Parser& p_;
  };

  // Everything until one of the statements `names` (not consumed).
  std::vector<NodeP> until(std::initializer_list<std::string_view> names, const char* opener,
                           size_t open_pos) {
    std::vector<NodeP> body;
    while (!is_stmt(names)) {
      if (i_ >= t_.size()) fail(fmt::format("'{}' is never closed", opener), open_pos);
      body.push_back(any());
    }
    return body;
  }

  NodeP any() {
    Depth d(*this);
    const Token& tok = t_[i_];
    switch (tok.type) {
      case Tok::Comment: {
        auto n = node(NK::Comment, tok.pos);
        ++i_;
        return n;
      }
      case Tok::Text: {
        auto n = node(NK::Str, tok.pos);
        n->str = tok.value;
        ++i_;
        return n;
      }
      case Tok::OpenStmt:
        return statement();
      case Tok::OpenExpr: {
        ++i_;
        auto e = expression();
        expect(Tok::CloseExpr, "'}}'");
        return e;
      }
      default:
        fail(fmt::format("unexpected '{}'", tok.value), tok.pos);
    }
  }

  void end_tag(std::string_view name) {
    expect(Tok::OpenStmt, "'{%'");
    expect_ident(name);
    expect(Tok::CloseStmt, "'%}'");
  }

  NodeP statement() {
    const size_t open = t_[i_].pos;
    ++i_;  // {%
    if (!is(Tok::Ident)) fail("expected a statement name after '{%'", here());
    const std::string name = t_[i_].value;
    const size_t pos = t_[i_].pos;
    ++i_;
    if (name == "set") {
      auto n = node(NK::Set, pos);
      n->x = sequence(false);
      if (is(Tok::Equals)) {
        ++i_;
        n->y = sequence(false);
      } else {
        expect(Tok::CloseStmt, "'%}'");
        n->body = until({"endset"}, "set", open);
        expect(Tok::OpenStmt, "'{%'");
        expect_ident("endset");
      }
      expect(Tok::CloseStmt, "'%}'");
      return n;
    }
    if (name == "if") {
      auto n = if_rest(pos, open);
      end_tag("endif");
      return n;
    }
    if (name == "for") {
      auto n = node(NK::For, pos);
      n->x = sequence(true);
      if (n->x->kind != NK::Ident && n->x->kind != NK::Tuple) {
        fail("expected a name or a tuple of names as the loop variable", n->x->pos);
      }
      expect_ident("in");
      n->y = expression();
      expect(Tok::CloseStmt, "'%}'");
      n->body = until({"endfor", "else"}, "for", open);
      if (is_stmt({"else"})) {
        i_ += 2;
        expect(Tok::CloseStmt, "'%}'");
        n->alt = until({"endfor"}, "for", open);
      }
      end_tag("endfor");
      return n;
    }
    if (name == "macro") {
      auto n = node(NK::Macro, pos);
      if (!is(Tok::Ident)) fail("expected a macro name", here());
      n->str = t_[i_++].value;
      n->list = arguments(true);
      expect(Tok::CloseStmt, "'%}'");
      n->body = until({"endmacro"}, "macro", open);
      end_tag("endmacro");
      return n;
    }
    if (name == "break" || name == "continue") {
      expect(Tok::CloseStmt, "'%}'");
      return node(name == "break" ? NK::Break : NK::Continue, pos);
    }
    if (name == "filter") {
      auto n = node(NK::FilterBlock, pos);
      n->y = filter_ref();
      expect(Tok::CloseStmt, "'%}'");
      n->body = until({"endfilter"}, "filter", open);
      end_tag("endfilter");
      return n;
    }
    fail(fmt::format("unsupported statement '{}'", name), pos);
  }

  NodeP if_rest(size_t pos, size_t open) {
    auto n = node(NK::If, pos);
    n->x = expression();
    expect(Tok::CloseStmt, "'%}'");
    n->body = until({"elif", "else", "endif"}, "if", open);
    if (is_stmt({"elif"})) {
      const size_t p = t_[i_ + 1].pos;
      i_ += 2;
      n->alt.push_back(if_rest(p, open));
    } else if (is_stmt({"else"})) {
      i_ += 2;
      expect(Tok::CloseStmt, "'%}'");
      n->alt = until({"endif"}, "if", open);
    }
    return n;
  }

  // `a` or `a, b, ...` (a tuple); primary-only for loop variables.
  NodeP sequence(bool primary_only) {
    const size_t pos = here();
    std::vector<NodeP> items;
    items.push_back(primary_only ? primary() : expression());
    const bool tuple = is(Tok::Comma);
    while (tuple) {
      ++i_;
      items.push_back(primary_only ? primary() : expression());
      if (!is(Tok::Comma)) break;
    }
    if (!tuple) return std::move(items[0]);
    auto n = node(NK::Tuple, pos);
    n->list = std::move(items);
    return n;
  }

  NodeP expression() {
    Depth d(*this);
    auto a = logical_or();
    if (is_ident("if")) {
      const size_t pos = t_[i_++].pos;
      auto test = logical_or();
      if (is_ident("else")) {
        ++i_;
        auto n = node(NK::Ternary, pos);
        n->x = std::move(test);
        n->y = std::move(a);
        n->z = expression();
        return n;
      }
      auto n = node(NK::Select, pos);
      n->x = std::move(a);
      n->y = std::move(test);
      return n;
    }
    return a;
  }

  NodeP binary(std::string op, size_t pos, NodeP l, NodeP r) {
    auto n = node(NK::Binary, pos);
    n->str = std::move(op);
    n->x = std::move(l);
    n->y = std::move(r);
    return n;
  }

  NodeP logical_or() {
    auto l = logical_and();
    while (is_ident("or")) {
      const size_t pos = t_[i_++].pos;
      l = binary("or", pos, std::move(l), logical_and());
    }
    return l;
  }
  NodeP logical_and() {
    auto l = logical_not();
    while (is_ident("and")) {
      const size_t pos = t_[i_++].pos;
      l = binary("and", pos, std::move(l), logical_not());
    }
    return l;
  }
  NodeP logical_not() {
    if (is_ident("not")) {
      Depth d(*this);
      auto n = node(NK::Unary, t_[i_++].pos);
      n->str = "not";
      n->x = logical_not();
      return n;
    }
    return comparison();
  }
  NodeP comparison() {
    auto l = additive();
    while (true) {
      std::string op;
      const size_t pos = here();
      if (is_ident("not") && is_ident("in", 1)) {
        op = "not in";
        i_ += 2;
      } else if (is_ident("in")) {
        op = "in";
        ++i_;
      } else if (is(Tok::Comparison)) {
        op = t_[i_++].value;
      } else {
        break;
      }
      l = binary(op, pos, std::move(l), additive());
    }
    return l;
  }
  NodeP additive() {
    auto l = multiplicative();
    while (is(Tok::Additive)) {
      const Token& op = t_[i_++];
      l = binary(op.value, op.pos, std::move(l), multiplicative());
    }
    return l;
  }
  NodeP multiplicative() {
    auto l = power();
    while (is(Tok::Multiplicative)) {
      const Token& op = t_[i_++];
      l = binary(op.value, op.pos, std::move(l), power());
    }
    return l;
  }
  NodeP power() {
    auto l = test();
    while (is(Tok::Power)) {
      const Token& op = t_[i_++];
      l = binary(op.value, op.pos, std::move(l), test());
    }
    return l;
  }
  NodeP test() {
    auto operand = filter();
    while (is_ident("is")) {
      const size_t pos = t_[i_++].pos;
      auto n = node(NK::Test, pos);
      if (is_ident("not")) {
        n->flag = true;
        ++i_;
      }
      if (!is(Tok::Ident)) fail("expected a test name after 'is'", here());
      n->str = t_[i_++].value;
      n->x = std::move(operand);
      operand = std::move(n);
    }
    return operand;
  }
  // A filter name, optionally called with arguments: Ident or Call(Ident).
  NodeP filter_ref() {
    if (!is(Tok::Ident)) fail("expected a filter name", here());
    auto f = node(NK::Ident, t_[i_].pos);
    f->str = t_[i_++].value;
    if (is(Tok::LParen)) return call(std::move(f));
    return f;
  }
  NodeP filter() {
    auto operand = unary_sign();
    while (is(Tok::Pipe)) {
      const size_t pos = t_[i_++].pos;
      auto n = node(NK::Filter, pos);
      n->y = filter_ref();
      n->x = std::move(operand);
      operand = std::move(n);
    }
    return operand;
  }
  NodeP unary_sign() {
    if ((is(Tok::Unary) || is(Tok::Additive)) && (t_[i_].value == "-" || t_[i_].value == "+")) {
      Depth d(*this);
      auto n = node(NK::Unary, t_[i_].pos);
      n->str = t_[i_++].value;
      n->x = unary_sign();
      return n;
    }
    auto m = member(primary());
    if (is(Tok::LParen)) return call(std::move(m));
    return m;
  }
  NodeP call(NodeP callee) {
    Depth d(*this);
    auto n = node(NK::Call, callee->pos);
    n->x = std::move(callee);
    n->list = arguments(false);
    NodeP e = member(std::move(n));
    if (is(Tok::LParen)) return call(std::move(e));
    return e;
  }
  std::vector<NodeP> arguments(bool parameters) {
    expect(Tok::LParen, "'('");
    std::vector<NodeP> args;
    bool saw_kw = false;
    while (!is(Tok::RParen)) {
      if (i_ >= t_.size()) fail("argument list is never closed", here());
      if (is(Tok::Power) || (is(Tok::Multiplicative) && t_[i_].value == "*")) {
        fail("unsupported argument unpacking ('*' / '**')", here());
      }
      auto a = expression();
      if (is(Tok::Equals)) {
        ++i_;
        if (a->kind != NK::Ident) fail("expected a name before '='", a->pos);
        auto kw = node(NK::Kwarg, a->pos);
        kw->str = a->str;
        kw->x = expression();
        a = std::move(kw);
        saw_kw = true;
      } else if (saw_kw) {
        fail("positional argument after a keyword argument", a->pos);
      }
      if (parameters && a->kind != NK::Ident && a->kind != NK::Kwarg) {
        fail("expected a parameter name", a->pos);
      }
      args.push_back(std::move(a));
      if (is(Tok::Comma)) ++i_;
    }
    ++i_;  // )
    return args;
  }
  NodeP member(NodeP object) {
    while (is(Tok::Dot) || is(Tok::LBracket)) {
      const Token& op = t_[i_++];
      auto n = node(NK::Member, op.pos);
      n->flag = op.type == Tok::LBracket;
      if (n->flag) {
        n->y = subscript(op.pos);
        expect(Tok::RBracket, "']'");
      } else {
        n->y = primary();
        if (n->y->kind != NK::Ident && n->y->kind != NK::Int) {
          fail("expected a name after '.'", n->y->pos);
        }
      }
      n->x = std::move(object);
      object = std::move(n);
    }
    return object;
  }
  // The inside of [...]: an index expression or a slice start:stop:step.
  NodeP subscript(size_t pos) {
    std::vector<NodeP> parts;
    bool slice = false;
    while (!is(Tok::RBracket)) {
      if (i_ >= t_.size()) fail("'[' is never closed", pos);
      if (is(Tok::Colon)) {
        parts.push_back(nullptr);
        ++i_;
        slice = true;
      } else {
        parts.push_back(expression());
        if (is(Tok::Colon)) {
          ++i_;
          slice = true;
        }
      }
    }
    if (parts.empty()) fail("empty subscript '[]'", pos);
    if (!slice) return std::move(parts[0]);
    if (parts.size() > 3) fail("a slice takes at most 3 parts", pos);
    auto n = node(NK::Slice, pos);
    parts.resize(3);
    n->x = std::move(parts[0]);
    n->y = std::move(parts[1]);
    n->z = std::move(parts[2]);
    return n;
  }
  NodeP primary() {
    Depth d(*this);
    if (i_ >= t_.size()) fail("unexpected end of template in an expression", here());
    const Token& tok = t_[i_++];
    switch (tok.type) {
      case Tok::Number: {
        if (tok.value.find('.') != std::string::npos) {
          auto n = node(NK::Float, tok.pos);
          n->fval = std::strtod(tok.value.c_str(), nullptr);
          return n;
        }
        auto n = node(NK::Int, tok.pos);
        n->ival = std::strtoll(tok.value.c_str(), nullptr, 10);
        return n;
      }
      case Tok::String: {
        auto n = node(NK::Str, tok.pos);
        n->str = tok.value;
        while (is(Tok::String)) n->str += t_[i_++].value;  // adjacent literals concatenate
        return n;
      }
      case Tok::Ident: {
        auto n = node(NK::Ident, tok.pos);
        n->str = tok.value;
        return n;
      }
      case Tok::LParen: {
        auto e = sequence(false);
        expect(Tok::RParen, "')'");
        return e;
      }
      case Tok::LBracket: {
        auto n = node(NK::Array, tok.pos);
        while (!is(Tok::RBracket)) {
          if (i_ >= t_.size()) fail("'[' is never closed", tok.pos);
          n->list.push_back(expression());
          if (is(Tok::Comma)) ++i_;
        }
        ++i_;
        return n;
      }
      case Tok::LBrace: {
        auto n = node(NK::Object, tok.pos);
        while (!is(Tok::RBrace)) {
          if (i_ >= t_.size()) fail("'{' is never closed", tok.pos);
          n->list.push_back(expression());
          expect(Tok::Colon, "':' between key and value");
          n->list.push_back(expression());
          if (is(Tok::Comma)) ++i_;
        }
        ++i_;
        return n;
      }
      default:
        fail(fmt::format("unexpected '{}' in an expression", tok.value), tok.pos);
    }
  }

  const Source& src_;
  std::vector<Token> t_;
  size_t i_ = 0;
  int depth_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Values.

struct Value;
struct Env;
struct Args;
using Array = std::vector<Value>;
using Func = std::function<Value(Args&, Env&)>;

struct Object;

struct Value {
  enum class K : uint8_t { Undefined, Null, Bool, Int, Float, Str, Array, Object, Namespace, Func };
  K k = K::Undefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::shared_ptr<Array> arr;   // shared: containers have reference semantics, as in the reference
  std::shared_ptr<Object> obj;  // Object and Namespace
  std::shared_ptr<Func> fn;

  static Value null() { return make(K::Null); }
  static Value boolean(bool v) {
    Value r = make(K::Bool);
    r.b = v;
    return r;
  }
  static Value integer(int64_t v) {
    Value r = make(K::Int);
    r.i = v;
    return r;
  }
  static Value number(double v) {
    Value r = make(K::Float);
    r.f = v;
    return r;
  }
  static Value str(std::string v) {
    Value r = make(K::Str);
    r.s = std::move(v);
    return r;
  }
  static Value array(Array v = {}) {
    Value r = make(K::Array);
    r.arr = std::make_shared<Array>(std::move(v));
    return r;
  }
  static Value object(K kind = K::Object);
  static Value func(Func f) {
    Value r = make(K::Func);
    r.fn = std::make_shared<Func>(std::move(f));
    return r;
  }
  static Value make(K kind) {
    Value r;
    r.k = kind;
    return r;
  }

  bool undef() const { return k == K::Undefined; }
  bool nullish() const { return k == K::Undefined || k == K::Null; }
  bool is_num() const { return k == K::Int || k == K::Float; }
  double as_double() const { return k == K::Int ? static_cast<double>(i) : f; }
  bool is_container() const { return k == K::Object || k == K::Namespace; }
};

struct Object {
  std::vector<std::pair<std::string, Value>> items;  // insertion order, as a JS Map
  const Value* find(std::string_view key) const {
    for (const auto& [k, v] : items) {
      if (k == key) return &v;
    }
    return nullptr;
  }
  void set(const std::string& key, Value v) {
    for (auto& [k, old] : items) {
      if (k == key) {
        old = std::move(v);
        return;
      }
    }
    items.emplace_back(key, std::move(v));
  }
};

Value Value::object(K kind) {
  Value r = make(kind);
  r.obj = std::make_shared<Object>();
  return r;
}

const char* type_name(const Value& v) {
  switch (v.k) {
    case Value::K::Undefined:
      return "UndefinedValue";
    case Value::K::Null:
      return "NullValue";
    case Value::K::Bool:
      return "BooleanValue";
    case Value::K::Int:
      return "IntegerValue";
    case Value::K::Float:
      return "FloatValue";
    case Value::K::Str:
      return "StringValue";
    case Value::K::Array:
      return "ArrayValue";
    case Value::K::Object:
      return "ObjectValue";
    case Value::K::Namespace:
      return "NamespaceValue";
    case Value::K::Func:
      return "FunctionValue";
  }
  return "?";
}

struct Args {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
  const Value* get(size_t i, std::string_view name) const {
    if (i < pos.size()) return &pos[i];
    for (const auto& [k, v] : kw) {
      if (k == name) return &v;
    }
    return nullptr;
  }
};

struct Env {
  explicit Env(Env* p = nullptr) : parent(p) {}
  std::unordered_map<std::string, Value> vars;
  Env* parent;
  Value lookup(const std::string& name) const {
    for (const Env* e = this; e; e = e->parent) {
      auto it = e->vars.find(name);
      if (it != e->vars.end()) return it->second;
    }
    return Value{};
  }
  void set(const std::string& name, Value v) { vars[name] = std::move(v); }
};

bool truthy(const Value& v) {
  switch (v.k) {
    case Value::K::Undefined:
    case Value::K::Null:
      return false;
    case Value::K::Bool:
      return v.b;
    case Value::K::Int:
      return v.i != 0;
    case Value::K::Float:
      return v.f != 0 && !std::isnan(v.f);
    case Value::K::Str:
      return !v.s.empty();
    case Value::K::Array:
      return !v.arr->empty();
    case Value::K::Object:
      return !v.obj->items.empty();
    case Value::K::Namespace:
    case Value::K::Func:
      return true;
  }
  return false;
}

struct JsonOptions {
  std::optional<int64_t> indent;
  bool ensure_ascii = false;
  std::optional<std::pair<std::string, std::string>> separators;
  bool sort_keys = false;
};

std::string to_json(const Value& v, const JsonOptions& o, int depth, bool undefined_to_null);

// What `{{ v }}` prints (the reference's RuntimeValue.toString()).
std::string to_output(const Value& v) {
  switch (v.k) {
    case Value::K::Undefined:
      return "undefined";
    case Value::K::Null:
      return "null";
    case Value::K::Bool:
      return v.b ? "true" : "false";
    case Value::K::Int:
      return js_number(static_cast<double>(v.i));
    case Value::K::Float:
      if (v.f == 0 && std::signbit(v.f)) return "-0.0";
      if (std::isfinite(v.f) && std::fmod(v.f, 1.0) == 0 && std::fabs(v.f) < 1e21) {
        return js_number(v.f) + ".0";
      }
      return js_number(v.f);
    case Value::K::Str:
      return v.s;
    case Value::K::Array:
    case Value::K::Object:
    case Value::K::Namespace:
      return to_json(v, {}, 0, false);
    case Value::K::Func:
      return "[function]";
  }
  return "";
}

// The JavaScript String() of the underlying value, used by `~` and string `+`.
std::string js_string(const Value& v) {
  switch (v.k) {
    case Value::K::Int:
      return js_number(static_cast<double>(v.i));
    case Value::K::Float:
      return js_number(v.f);
    case Value::K::Array: {
      std::string out;
      for (size_t i = 0; i < v.arr->size(); ++i) {
        if (i) out += ",";
        out += to_output((*v.arr)[i]);
      }
      return out;
    }
    case Value::K::Object:
    case Value::K::Namespace:
      return "[object Map]";
    default:
      return to_output(v);
  }
}

std::string to_json(const Value& v, const JsonOptions& o, int depth, bool undefined_to_null) {
  std::string item_sep = ", ", key_sep = ": ";
  const bool indented = o.indent && *o.indent != 0;
  if (o.separators) {
    item_sep = o.separators->first;
    key_sep = o.separators->second;
  } else if (indented) {
    item_sep = ",";
  }
  switch (v.k) {
    case Value::K::Null:
      return "null";
    case Value::K::Undefined:
      return undefined_to_null ? "null" : "undefined";
    case Value::K::Bool:
      return v.b ? "true" : "false";
    case Value::K::Int:
      return js_number(static_cast<double>(v.i));
    case Value::K::Float:
      return std::isfinite(v.f) ? js_number(v.f) : "null";
    case Value::K::Str:
      return json_quote(v.s, o.ensure_ascii);
    case Value::K::Array:
    case Value::K::Object:
    case Value::K::Namespace: {
      const std::string unit = indented ? std::string(std::max<int64_t>(*o.indent, 0), ' ') : "";
      std::string base = "\n";
      for (int d = 0; d < depth; ++d) base += unit;
      const std::string child = base + unit;
      std::vector<std::string> core;
      if (v.k == Value::K::Array) {
        for (const auto& e : *v.arr) core.push_back(to_json(e, o, depth + 1, undefined_to_null));
        std::string out = "[";
        if (indented && !core.empty()) {
          out += child;
          for (size_t i = 0; i < core.size(); ++i) {
            if (i) out += item_sep + child;
            out += core[i];
          }
          return out + base + "]";
        }
        for (size_t i = 0; i < core.size(); ++i) out += (i ? item_sep : "") + core[i];
        return out + "]";
      }
      auto entries = v.obj->items;
      if (o.sort_keys) {
        std::stable_sort(entries.begin(), entries.end(),
                         [](const auto& a, const auto& b) { return a.first < b.first; });
      }
      for (const auto& [key, val] : entries) {
        std::string e = json_quote(key, o.ensure_ascii) + key_sep +
                        to_json(val, o, depth + 1, undefined_to_null);
        core.push_back(indented ? child + e : e);
      }
      std::string out = "{";
      for (size_t i = 0; i < core.size(); ++i) out += (i ? item_sep : "") + core[i];
      return out + (indented && !core.empty() ? base : "") + "}";
    }
    case Value::K::Func:
      throw Error("chat template: cannot convert a function to JSON");
  }
  return "";
}

double js_to_number(const Value& v) {
  switch (v.k) {
    case Value::K::Bool:
      return v.b ? 1 : 0;
    case Value::K::Int:
      return static_cast<double>(v.i);
    case Value::K::Float:
      return v.f;
    case Value::K::Str: {
      const std::string t = trim(v.s);
      if (t.empty()) return 0;
      char* end = nullptr;
      const double d = std::strtod(t.c_str(), &end);
      return end == t.c_str() + t.size() ? d : std::nan("");
    }
    default:
      return std::nan("");
  }
}

// JavaScript `==` on the underlying values.
bool loose_equal(const Value& a, const Value& b) {
  if (a.nullish() || b.nullish()) return a.nullish() && b.nullish();
  using K = Value::K;
  const bool a_prim = a.k == K::Bool || a.is_num() || a.k == K::Str;
  const bool b_prim = b.k == K::Bool || b.is_num() || b.k == K::Str;
  if (a_prim && b_prim) {
    if (a.k == K::Str && b.k == K::Str) return a.s == b.s;
    if (a.k == K::Bool && b.k == K::Bool) return a.b == b.b;
    return js_to_number(a) == js_to_number(b);
  }
  if (a_prim != b_prim) {
    // An object compared with a primitive goes through its string form.
    const Value& obj = a_prim ? b : a;
    const Value& prim = a_prim ? a : b;
    return loose_equal(Value::str(js_string(obj)), prim);
  }
  if (a.k != b.k && !(a.is_container() && b.is_container())) return false;
  return a.arr == b.arr && a.obj == b.obj && a.fn == b.fn;
}

// JavaScript `===` on the underlying values (membership tests).
bool strict_equal(const Value& a, const Value& b) {
  using K = Value::K;
  if (a.is_num() && b.is_num()) return a.as_double() == b.as_double();
  if (a.k != b.k) return false;
  switch (a.k) {
    case K::Undefined:
    case K::Null:
      return true;
    case K::Bool:
      return a.b == b.b;
    case K::Str:
      return a.s == b.s;
    default:
      return a.arr == b.arr && a.obj == b.obj && a.fn == b.fn;
  }
}

// Python-style slicing over n items; returns the selected indices.
std::vector<int64_t> slice_indices(int64_t n, std::optional<int64_t> start,
                                   std::optional<int64_t> stop, int64_t step) {
  std::vector<int64_t> out;
  if (step == 0) throw Error("chat template: slice step cannot be zero");
  int64_t b, e;
  if (step > 0) {
    b = start.value_or(0);
    b = b < 0 ? std::max<int64_t>(n + b, 0) : std::min(b, n);
    e = stop.value_or(n);
    e = e < 0 ? std::max<int64_t>(n + e, 0) : std::min(e, n);
    for (int64_t i = b; i < e; i += step) out.push_back(i);
  } else {
    b = start.value_or(n - 1);
    b = b < 0 ? std::max<int64_t>(n + b, -1) : std::min(b, n - 1);
    e = stop.value_or(-1);
    e = e < -1 ? std::max<int64_t>(n + e, -1) : std::min(e, n - 1);
    for (int64_t i = b; i > e; i += step) out.push_back(i);
  }
  return out;
}

Value from_json(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
      return Value::null();
    case nlohmann::ordered_json::value_t::boolean:
      return Value::boolean(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
      return Value::integer(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned:
      return Value::integer(static_cast<int64_t>(j.get<uint64_t>()));
    case nlohmann::ordered_json::value_t::number_float: {
      // JavaScript has one number type; integral values become IntegerValue there.
      const double d = j.get<double>();
      if (std::isfinite(d) && std::fmod(d, 1.0) == 0 && std::fabs(d) < 9e15) {
        return Value::integer(static_cast<int64_t>(d));
      }
      return Value::number(d);
    }
    case nlohmann::ordered_json::value_t::string:
      return Value::str(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      Array a;
      for (const auto& e : j) a.push_back(from_json(e));
      return Value::array(std::move(a));
    }
    case nlohmann::ordered_json::value_t::object: {
      Value o = Value::object();
      for (auto it = j.begin(); it != j.end(); ++it) o.obj->set(it.key(), from_json(it.value()));
      return o;
    }
    default:
      return Value{};
  }
}

// ---------------------------------------------------------------------------------------------
// Evaluator.

struct BreakSignal {};
struct ContinueSignal {};

class Interpreter {
 public:
  explicit Interpreter(const Source& src) : src_(src) {}

  std::string block(const std::vector<NodeP>& stmts, Env& env) {
    std::string out;
    for (const auto& s : stmts) {
      if (is_statement(s->kind)) {
        out += statement(*s, env);
      } else {
        Value v = eval(*s, env);
        if (!v.nullish()) out += to_output(v);
      }
    }
    return out;
  }

  void install_globals(Env& env) {
    env.set("true", Value::boolean(true));
    env.set("false", Value::boolean(false));
    env.set("none", Value::null());
    env.set("True", Value::boolean(true));
    env.set("False", Value::boolean(false));
    env.set("None", Value::null());
    env.set("raise_exception", Value::func([](Args& a, Env&) -> Value {
              const std::string msg = a.pos.empty() ? "" : js_string(a.pos[0]);
              throw Error(fmt::format("chat template raised an exception: {}", msg));
            }));
    env.set("range", Value::func([](Args& a, Env&) -> Value {
              auto num = [&](size_t i) -> int64_t {
                if (i >= a.pos.size() || a.pos[i].k != Value::K::Int) {
                  throw Error("chat template: range() takes integer arguments");
                }
                return a.pos[i].i;
              };
              if (a.pos.empty()) throw Error("chat template: range() needs an argument");
              int64_t start = 0, stop = 0, step = 1;
              if (a.pos.size() == 1) {
                stop = num(0);
              } else {
                start = num(0);
                stop = num(1);
                if (a.pos.size() > 2) step = num(2);
              }
              if (step == 0) throw Error("chat template: range() step must not be zero");
              Array out;
              for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
                if (out.size() >= 1'000'000) throw Error("chat template: range() is too long");
                out.push_back(Value::integer(i));
              }
              return Value::array(std::move(out));
            }));
    env.set("namespace", Value::func([](Args& a, Env&) -> Value {
              Value ns = Value::object(Value::K::Namespace);
              if (a.pos.size() > 1)
                throw Error("chat template: namespace() takes at most 1 argument");
              if (a.pos.size() == 1) {
                if (a.pos[0].k != Value::K::Object) {
                  throw Error("chat template: namespace() takes a mapping");
                }
                for (const auto& [k, v] : a.pos[0].obj->items) ns.obj->set(k, v);
              }
              for (const auto& [k, v] : a.kw) ns.obj->set(k, v);
              return ns;
            }));
    env.set("strftime_now", Value::func([](Args& a, Env&) -> Value {
              if (a.pos.empty() || a.pos[0].k != Value::K::Str) {
                throw Error("chat template: strftime_now() takes a format string");
              }
              const std::time_t now = std::time(nullptr);
              std::tm tm{};
              localtime_r(&now, &tm);
              char buf[256];
              const size_t n = std::strftime(buf, sizeof buf, a.pos[0].s.c_str(), &tm);
              return Value::str(std::string(buf, n));
            }));
  }

 private:
  static constexpr int kMaxCallDepth = 100;

  [[noreturn]] void fail(const std::string& what, const Node& at) const {
    throw Error(fmt::format("chat template: {} at {}", what, src_.where(at.pos)));
  }

  std::string statement(const Node& n, Env& env) {
    switch (n.kind) {
      case NK::If:
        return block(truthy(eval(*n.x, env)) ? n.body : n.alt, env);
      case NK::For:
        return for_loop(n, env);
      case NK::Set:
        set(n, env);
        return "";
      case NK::Macro:
        macro(n, env);
        return "";
      case NK::Break:
        throw BreakSignal{};
      case NK::Continue:
        throw ContinueSignal{};
      case NK::Comment:
        return "";
      case NK::FilterBlock:
        return to_output(apply_filter(Value::str(block(n.body, env)), *n.y, env));
      default:
        fail("internal: not a statement", n);
    }
  }

  void assign(const Node& target, Value v, Env& env) {
    if (target.kind == NK::Ident) {
      env.set(target.str, std::move(v));
    } else if (target.kind == NK::Tuple) {
      if (v.k != Value::K::Array) fail(fmt::format("cannot unpack {}", type_name(v)), target);
      if (v.arr->size() != target.list.size()) {
        fail(fmt::format("expected {} values to unpack, got {}", target.list.size(), v.arr->size()),
             target);
      }
      for (size_t i = 0; i < target.list.size(); ++i) {
        if (target.list[i]->kind != NK::Ident) fail("can only unpack into names", *target.list[i]);
        env.set(target.list[i]->str, (*v.arr)[i]);
      }
    } else if (target.kind == NK::Member) {
      Value obj = eval(*target.x, env);
      if (obj.k != Value::K::Namespace) {
        fail("cannot assign an attribute of something that is not a namespace()", target);
      }
      if (target.y->kind != NK::Ident) fail("can only assign a named attribute", target);
      obj.obj->set(target.y->str, std::move(v));
    } else {
      fail("invalid assignment target", target);
    }
  }

  void set(const Node& n, Env& env) {
    Value v = n.y ? eval(*n.y, env) : Value::str(block(n.body, env));
    assign(*n.x, std::move(v), env);
  }

  std::string for_loop(const Node& n, Env& env) {
    Env scope(&env);
    const Node* iter_node = n.y.get();
    const Node* cond = nullptr;
    if (iter_node->kind == NK::Select) {
      cond = iter_node->y.get();
      iter_node = iter_node->x.get();
    }
    Value iterable = eval(*iter_node, scope);
    Array items;
    if (iterable.k == Value::K::Array) {
      items = *iterable.arr;
    } else if (iterable.k == Value::K::Object) {
      for (const auto& [k, v] : iterable.obj->items) items.push_back(Value::str(k));
    } else {
      fail(fmt::format("cannot loop over {}", type_name(iterable)), *n.y);
    }
    if (cond) {
      Array kept;
      for (auto& item : items) {
        Env probe(&scope);
        assign(*n.x, item, probe);
        if (truthy(eval(*cond, probe))) kept.push_back(item);
      }
      items = std::move(kept);
    }
    std::string out;
    bool iterated = false;
    const int64_t len = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < len; ++i) {
      Value loop = Value::object();
      loop.obj->items = {
          {"index", Value::integer(i + 1)},
          {"index0", Value::integer(i)},
          {"revindex", Value::integer(len - i)},
          {"revindex0", Value::integer(len - i - 1)},
          {"first", Value::boolean(i == 0)},
          {"last", Value::boolean(i == len - 1)},
          {"length", Value::integer(len)},
          {"previtem", i > 0 ? items[i - 1] : Value{}},
          {"nextitem", i < len - 1 ? items[i + 1] : Value{}},
      };
      scope.set("loop", std::move(loop));
      assign(*n.x, items[i], scope);
      try {
        out += block(n.body, scope);
      } catch (const ContinueSignal&) {
        continue;
      } catch (const BreakSignal&) {
        break;
      }
      iterated = true;
    }
    if (!iterated) out += block(n.alt, scope);
    return out;
  }

  void macro(const Node& n, Env& env) {
    const Node* def = &n;
    env.set(
        n.str, Value::func([this, def](Args& a, Env& caller) -> Value {
          if (++call_depth_ > kMaxCallDepth) {
            --call_depth_;
            fail("macro recursion too deep", *def);
          }
          Env scope(&caller);
          std::vector<const Node*> pending;
          auto kw = a.kw;
          for (size_t i = 0; i < def->list.size(); ++i) {
            const Node& p = *def->list[i];
            const std::string& name = p.kind == NK::Kwarg ? p.str : p.str;
            Value v;
            bool have = false;
            if (i < a.pos.size()) {
              v = a.pos[i];
              have = true;
            } else {
              for (auto it = kw.begin(); it != kw.end(); ++it) {
                if (it->first == name) {
                  v = it->second;
                  kw.erase(it);
                  have = true;
                  break;
                }
              }
            }
            if (!have && p.kind == NK::Kwarg) pending.push_back(&p);
            scope.set(name, std::move(v));
          }
          if (!kw.empty()) {
            --call_depth_;
            fail(fmt::format("macro '{}' has no parameter '{}'", def->str, kw[0].first), *def);
          }
          if (a.pos.size() > def->list.size()) {
            --call_depth_;
            fail(fmt::format("macro '{}' takes at most {} arguments", def->str, def->list.size()),
                 *def);
          }
          std::string out;
          try {
            for (const Node* p : pending) scope.set(p->str, eval(*p->x, scope));
            out = block(def->body, scope);
          } catch (...) {
            --call_depth_;
            throw;
          }
          --call_depth_;
          return Value::str(std::move(out));
        }));
  }

  Args eval_args(const std::vector<NodeP>& list, Env& env) {
    Args a;
    for (const auto& arg : list) {
      if (arg->kind != NK::Kwarg) a.pos.push_back(eval(*arg, env));
    }
    for (const auto& arg : list) {
      if (arg->kind != NK::Kwarg) continue;
      for (const auto& [k, v] : a.kw) {
        if (k == arg->str) fail(fmt::format("keyword argument '{}' given twice", k), *arg);
      }
      a.kw.emplace_back(arg->str, eval(*arg->x, env));
    }
    return a;
  }

 public:
  Value eval(const Node& n, Env& env) {
    switch (n.kind) {
      case NK::Str:
        return Value::str(n.str);
      case NK::Int:
        return Value::integer(n.ival);
      case NK::Float:
        return Value::number(n.fval);
      case NK::Ident:
        return env.lookup(n.str);
      case NK::Array:
      case NK::Tuple: {
        Array a;
        for (const auto& e : n.list) a.push_back(eval(*e, env));
        return Value::array(std::move(a));
      }
      case NK::Object: {
        Value o = Value::object();
        for (size_t i = 0; i + 1 < n.list.size(); i += 2) {
          Value k = eval(*n.list[i], env);
          if (k.k != Value::K::Str) {
            fail(fmt::format("object keys must be strings, got {}", type_name(k)), *n.list[i]);
          }
          o.obj->set(k.s, eval(*n.list[i + 1], env));
        }
        return o;
      }
      case NK::Member:
        return member(n, env);
      case NK::Call: {
        Args a = eval_args(n.list, env);
        Value f = eval(*n.x, env);
        if (f.k != Value::K::Func) {
          fail(fmt::format("cannot call {} (not a function)", describe_callee(*n.x)), n);
        }
        return (*f.fn)(a, env);
      }
      case NK::Unary: {
        Value v = eval(*n.x, env);
        if (n.str == "not") return Value::boolean(!truthy(v));
        const int sign = n.str == "-" ? -1 : 1;
        if (v.k == Value::K::Float) return Value::number(sign * v.f);
        if (v.k == Value::K::Int) return Value::integer(sign * v.i);
        if (v.k == Value::K::Bool) return Value::integer(sign * (v.b ? 1 : 0));
        fail(fmt::format("unary '{}' on {}", n.str, type_name(v)), n);
      }
      case NK::Binary:
        return binary(n, env);
      case NK::Filter:
        return apply_filter(eval(*n.x, env), *n.y, env);
      case NK::Test: {
        Value v = eval(*n.x, env);
        const bool r = run_test(n.str, v, nullptr, n);
        return Value::boolean(n.flag ? !r : r);
      }
      case NK::Select:
        if (!truthy(eval(*n.y, env))) return Value{};
        return eval(*n.x, env);
      case NK::Ternary:
        return truthy(eval(*n.x, env)) ? eval(*n.y, env) : eval(*n.z, env);
      case NK::Slice:
        fail("a slice outside of '[]'", n);
      case NK::Kwarg:
        fail("a keyword argument outside of a call", n);
      default:
        fail("internal: statement used as an expression", n);
    }
  }

 private:
  static std::string describe_callee(const Node& c) {
    if (c.kind == NK::Ident) return "'" + c.str + "'";
    if (c.kind == NK::Member && !c.flag && c.y->kind == NK::Ident) return "'." + c.y->str + "'";
    return "the expression";
  }

  Value binary(const Node& n, Env& env) {
    const std::string& op = n.str;
    Value l = eval(*n.x, env);
    if (op == "and") return truthy(l) ? eval(*n.y, env) : l;
    if (op == "or") return truthy(l) ? l : eval(*n.y, env);
    Value r = eval(*n.y, env);
    if (op == "==") return Value::boolean(loose_equal(l, r));
    if (op == "!=") return Value::boolean(!loose_equal(l, r));
    using K = Value::K;
    if (l.undef() || r.undef()) {
      if (r.undef() && (op == "in" || op == "not in")) return Value::boolean(op == "not in");
      fail(fmt::format("'{}' on an undefined value", op), n);
    }
    if (l.k == K::Null || r.k == K::Null) fail(fmt::format("'{}' on a none value", op), n);
    if (op == "~") return Value::str(js_string(l) + js_string(r));
    const bool l_numlike = l.is_num() || l.k == K::Bool, r_numlike = r.is_num() || r.k == K::Bool;
    if (op == "**" && l_numlike && r_numlike) {
      const double a = l.k == K::Bool ? l.b : l.as_double();
      const double b = r.k == K::Bool ? r.b : r.as_double();
      if (a == 0 && b < 0) fail("0.0 cannot be raised to a negative power", n);
      const double res = std::pow(a, b);
      if (!std::isfinite(res)) fail("exponentiation result is not a finite real number", n);
      if (l.k == K::Float || r.k == K::Float || b < 0) return Value::number(res);
      return Value::integer(static_cast<int64_t>(res));
    }
    if (l.is_num() && r.is_num()) {
      const bool fl = l.k == K::Float || r.k == K::Float;
      const double a = l.as_double(), b = r.as_double();
      auto num = [&](double v) {
        return fl ? Value::number(v) : Value::integer(static_cast<int64_t>(v));
      };
      if (op == "+") return fl ? Value::number(a + b) : Value::integer(l.i + r.i);
      if (op == "-") return fl ? Value::number(a - b) : Value::integer(l.i - r.i);
      if (op == "*") return fl ? Value::number(a * b) : Value::integer(l.i * r.i);
      if (op == "/") return Value::number(a / b);
      if (op == "//") {
        if (!fl && b == 0) fail("integer division by zero", n);
        return num(std::floor(a / b));
      }
      if (op == "%") {
        if (!fl && b == 0) fail("integer modulo by zero", n);
        return fl ? Value::number(std::fmod(a, b)) : Value::integer(l.i % r.i);
      }
      if (op == "<") return Value::boolean(a < b);
      if (op == ">") return Value::boolean(a > b);
      if (op == "<=") return Value::boolean(a <= b);
      if (op == ">=") return Value::boolean(a >= b);
    } else if (l.k == K::Array && r.k == K::Array) {
      if (op == "+") {
        Array a = *l.arr;
        a.insert(a.end(), r.arr->begin(), r.arr->end());
        return Value::array(std::move(a));
      }
    } else if (r.k == K::Array) {
      bool member = false;
      for (const auto& e : *r.arr) member = member || strict_equal(e, l);
      if (op == "in") return Value::boolean(member);
      if (op == "not in") return Value::boolean(!member);
    }
    if ((l.k == K::Str || r.k == K::Str) && op == "+")
      return Value::str(js_string(l) + js_string(r));
    if (l.k == K::Str && r.k == K::Str) {
      if (op == "in") return Value::boolean(r.s.find(l.s) != std::string::npos);
      if (op == "not in") return Value::boolean(r.s.find(l.s) == std::string::npos);
    }
    if (l.k == K::Str && r.k == K::Object) {
      const bool has = r.obj->find(l.s) != nullptr;
      if (op == "in") return Value::boolean(has);
      if (op == "not in") return Value::boolean(!has);
    }
    fail(fmt::format("unsupported operator '{}' between {} and {}", op, type_name(l), type_name(r)),
         n);
  }

  Value member(const Node& n, Env& env) {
    Value obj = eval(*n.x, env);
    Value prop;
    if (n.flag) {
      if (n.y->kind == NK::Slice) return slice(obj, *n.y, env);
      prop = eval(*n.y, env);
    } else if (n.y->kind == NK::Int) {
      prop = Value::integer(n.y->ival);
    } else {
      prop = Value::str(n.y->str);
    }
    using K = Value::K;
    if (obj.is_container()) {
      if (prop.k != K::Str) {
        fail(fmt::format("cannot index a mapping with {}", type_name(prop)), n);
      }
      if (const Value* v = obj.obj->find(prop.s)) return *v;
      if (obj.k == K::Object) return object_method(obj, prop.s);
      return Value{};
    }
    if (obj.k == K::Array || obj.k == K::Str) {
      if (prop.k == K::Int) {
        if (obj.k == K::Array) {
          const int64_t len = static_cast<int64_t>(obj.arr->size());
          const int64_t i = prop.i < 0 ? prop.i + len : prop.i;
          return i >= 0 && i < len ? (*obj.arr)[i] : Value{};
        }
        auto cps = code_points(obj.s);
        const int64_t len = static_cast<int64_t>(cps.size());
        const int64_t i = prop.i < 0 ? prop.i + len : prop.i;
        return i >= 0 && i < len ? Value::str(cps[i]) : Value{};
      }
      if (prop.k == K::Str) {
        if (obj.k == K::Array) {
          return prop.s == "length" ? Value::integer(static_cast<int64_t>(obj.arr->size()))
                                    : Value{};
        }
        return string_method(obj, prop.s, n);
      }
      fail(fmt::format("cannot index with {}", type_name(prop)), n);
    }
    if (prop.k != K::Str) fail(fmt::format("cannot index with {}", type_name(prop)), n);
    return Value{};  // attributes of numbers, none and undefined are undefined
  }

  Value slice(const Value& obj, const Node& s, Env& env) {
    auto part = [&](const NodeP& p) -> std::optional<int64_t> {
      if (!p) return std::nullopt;
      Value v = eval(*p, env);
      if (v.undef()) return std::nullopt;
      if (v.k != Value::K::Int) fail("slice bounds must be integers", *p);
      return v.i;
    };
    const auto start = part(s.x), stop = part(s.y), step = part(s.z);
    if (obj.k == Value::K::Array) {
      Array out;
      for (int64_t i :
           slice_indices(static_cast<int64_t>(obj.arr->size()), start, stop, step.value_or(1))) {
        out.push_back((*obj.arr)[i]);
      }
      return Value::array(std::move(out));
    }
    if (obj.k == Value::K::Str) {
      auto cps = code_points(obj.s);
      std::string out;
      for (int64_t i :
           slice_indices(static_cast<int64_t>(cps.size()), start, stop, step.value_or(1))) {
        out += cps[i];
      }
      return Value::str(std::move(out));
    }
    fail(fmt::format("cannot slice {}", type_name(obj)), s);
  }

  Value object_method(const Value& obj, const std::string& name) {
    auto o = obj.obj;
    if (name == "get") {
      return Value::func([o](Args& a, Env&) -> Value {
        if (a.pos.empty() || a.pos[0].k != Value::K::Str) {
          throw Error("chat template: dict.get() takes a string key");
        }
        if (const Value* v = o->find(a.pos[0].s)) return *v;
        return a.pos.size() > 1 ? a.pos[1] : Value::null();
      });
    }
    if (name == "items" || name == "keys" || name == "values") {
      return Value::func([o, name](Args&, Env&) -> Value {
        Array out;
        for (const auto& [k, v] : o->items) {
          if (name == "items") {
            out.push_back(Value::array({Value::str(k), v}));
          } else {
            out.push_back(name == "keys" ? Value::str(k) : v);
          }
        }
        return Value::array(std::move(out));
      });
    }
    return Value{};
  }

  Value string_method(const Value& str, const std::string& name, const Node& at) {
    const std::string s = str.s;
    auto fn = [](auto f) { return Value::func(f); };
    // The reference strips whitespace whatever characters are passed (see jinja.h).
    if (name == "strip") return fn([s](Args&, Env&) { return Value::str(trim(s)); });
    if (name == "lstrip") return fn([s](Args&, Env&) { return Value::str(trim_start(s)); });
    if (name == "rstrip") return fn([s](Args&, Env&) { return Value::str(trim_end(s)); });
    if (name == "upper") return fn([s](Args&, Env&) { return Value::str(ascii_upper(s)); });
    if (name == "lower") return fn([s](Args&, Env&) { return Value::str(ascii_lower(s)); });
    if (name == "title") return fn([s](Args&, Env&) { return Value::str(title_case(s)); });
    if (name == "capitalize") {
      return fn([s](Args&, Env&) {
        return Value::str(s.empty() ? s : ascii_upper(s.substr(0, 1)) + s.substr(1));
      });
    }
    if (name == "length") return Value::integer(utf16_length(s));
    if (name == "startswith" || name == "endswith") {
      const bool starts = name == "startswith";
      return fn([s, starts](Args& a, Env&) {
        if (a.pos.empty()) throw Error("chat template: startswith/endswith needs an argument");
        auto match = [&](const std::string& p) {
          return p.size() <= s.size() &&
                 (starts ? s.compare(0, p.size(), p) == 0
                         : s.compare(s.size() - p.size(), p.size(), p) == 0);
        };
        const Value& p = a.pos[0];
        if (p.k == Value::K::Str) return Value::boolean(match(p.s));
        if (p.k == Value::K::Array) {
          for (const auto& e : *p.arr) {
            if (e.k != Value::K::Str)
              throw Error("chat template: startswith() tuple of non-strings");
            if (match(e.s)) return Value::boolean(true);
          }
          return Value::boolean(false);
        }
        throw Error("chat template: startswith/endswith takes a string or a tuple of strings");
      });
    }
    if (name == "split") return fn([s](Args& a, Env&) { return split(s, a); });
    if (name == "replace") return fn([s](Args& a, Env&) { return replace(s, a); });
    (void)at;
    return Value{};
  }

  static std::string title_case(const std::string& s) {
    std::string out = s;
    for (size_t i = 0; i < out.size(); ++i) {
      if (is_word_char(out[i]) && (i == 0 || !is_word_char(out[i - 1])) && out[i] >= 'a' &&
          out[i] <= 'z') {
        out[i] = static_cast<char>(out[i] - 32);
      }
    }
    return out;
  }

  static Value split(const std::string& s, const Args& a) {
    const Value sep = a.pos.size() > 0 ? a.pos[0] : Value::null();
    const Value maxv = a.pos.size() > 1 ? a.pos[1] : Value::integer(-1);
    if (sep.k != Value::K::Str && sep.k != Value::K::Null) {
      throw Error("chat template: split() separator must be a string or none");
    }
    if (maxv.k != Value::K::Int) throw Error("chat template: split() maxsplit must be an integer");
    const int64_t maxsplit = maxv.i;
    Array out;
    if (sep.k == Value::K::Null) {
      const std::string t = trim_start(s);
      size_t i = 0;
      while (i < t.size()) {
        while (size_t n = js_space_at(t, i)) i += n;
        if (i >= t.size()) break;
        size_t j = i;
        while (j < t.size() && !js_space_at(t, j)) {
          size_t len = 0;
          decode_at(t, j, &len);
          j += len;
        }
        if (maxsplit != -1 && static_cast<int64_t>(out.size()) >= maxsplit) {
          out.push_back(Value::str(t.substr(i)));
          break;
        }
        out.push_back(Value::str(t.substr(i, j - i)));
        i = j;
      }
      return Value::array(std::move(out));
    }
    if (sep.s.empty()) throw Error("chat template: split() with an empty separator");
    std::vector<std::string> parts;
    size_t b = 0;
    while (true) {
      const size_t e = s.find(sep.s, b);
      if (e == std::string::npos) break;
      parts.push_back(s.substr(b, e - b));
      b = e + sep.s.size();
    }
    parts.push_back(s.substr(b));
    if (maxsplit != -1 && static_cast<int64_t>(parts.size()) > maxsplit) {
      std::string rest;
      for (size_t i = maxsplit; i < parts.size(); ++i)
        rest += (i > size_t(maxsplit) ? sep.s : "") + parts[i];
      parts.resize(maxsplit);
      parts.push_back(rest);
    }
    for (auto& p : parts) out.push_back(Value::str(std::move(p)));
    return Value::array(std::move(out));
  }

  static Value replace(const std::string& s, const Args& a) {
    if (a.pos.size() < 2 || a.pos[0].k != Value::K::Str || a.pos[1].k != Value::K::Str) {
      throw Error("chat template: replace() takes two strings");
    }
    const std::string& from = a.pos[0].s;
    const std::string& to = a.pos[1].s;
    const Value* c = a.get(2, "count");
    int64_t remaining = std::numeric_limits<int64_t>::max();
    if (c && c->k == Value::K::Int && c->i >= 0) remaining = c->i;
    if (c && c->k != Value::K::Int && c->k != Value::K::Null) {
      throw Error("chat template: replace() count must be an integer or none");
    }
    if (remaining == 0) return Value::str(s);
    std::string out;
    if (from.empty()) {  // inserts `to` at every code point boundary
      auto cps = code_points(s);
      for (size_t i = 0; i <= cps.size(); ++i) {
        if (remaining > 0) {
          out += to;
          --remaining;
        }
        if (i < cps.size()) out += cps[i];
      }
      return Value::str(std::move(out));
    }
    size_t b = 0;
    while (remaining > 0) {
      const size_t e = s.find(from, b);
      if (e == std::string::npos) break;
      out += s.substr(b, e - b) + to;
      b = e + from.size();
      --remaining;
    }
    out += s.substr(b);
    return Value::str(std::move(out));
  }

  bool run_test(const std::string& name, const Value& v, const Value* arg, const Node& at) {
    using K = Value::K;
    if (name == "defined") return !v.undef();
    if (name == "undefined") return v.undef();
    if (name == "none") return v.k == K::Null;
    if (name == "boolean") return v.k == K::Bool;
    if (name == "true") return v.k == K::Bool && v.b;
    if (name == "false") return v.k == K::Bool && !v.b;
    if (name == "string") return v.k == K::Str;
    if (name == "number") return v.is_num();
    if (name == "integer") return v.k == K::Int;
    if (name == "iterable") return v.k == K::Array || v.k == K::Str;
    if (name == "mapping") return v.k == K::Object;
    if (name == "sequence") return v.k == K::Array || v.k == K::Object || v.k == K::Str;
    if (name == "callable") return v.k == K::Func;
    if (name == "lower") return v.k == K::Str && v.s == ascii_lower(v.s);
    if (name == "upper") return v.k == K::Str && v.s == ascii_upper(v.s);
    if (name == "odd" || name == "even") {
      if (v.k != K::Int) fail(fmt::format("cannot test '{}' on {}", name, type_name(v)), at);
      return (v.i % 2 != 0) == (name == "odd");
    }
    if (name == "eq" || name == "equalto") return arg && strict_equal(v, *arg);
    fail(fmt::format("unsupported test '{}'", name), at);
  }

  // Attribute path "a.b.0" into objects and arrays, for sort/map(attribute=...).
  static Value attribute_path(const Value& item, const std::string& path) {
    Value v = item;
    size_t b = 0;
    while (true) {
      const size_t e = path.find('.', b);
      const std::string part = path.substr(b, e == std::string::npos ? std::string::npos : e - b);
      if (v.is_container()) {
        const Value* f = v.obj->find(part);
        v = f ? *f : Value{};
      } else if (v.k == Value::K::Array) {
        char* end = nullptr;
        const long idx = std::strtol(part.c_str(), &end, 10);
        if (end == part.c_str() || idx < 0 || idx >= static_cast<long>(v.arr->size())) return {};
        v = (*v.arr)[idx];
      } else {
        return {};
      }
      if (e == std::string::npos) return v;
      b = e + 1;
    }
  }

  int compare(const Value& a, const Value& b, bool case_sensitive, const Node& at) {
    using K = Value::K;
    if (a.k == K::Null && b.k == K::Null) return 0;
    if (a.undef() && b.undef()) return 0;
    const bool an = a.is_num() || a.k == K::Bool, bn = b.is_num() || b.k == K::Bool;
    if (an && bn) {
      const double x = js_to_number(a), y = js_to_number(b);
      return x < y ? -1 : x > y ? 1 : 0;
    }
    if (a.k == K::Str && b.k == K::Str) {
      const std::string x = case_sensitive ? a.s : ascii_lower(a.s);
      const std::string y = case_sensitive ? b.s : ascii_lower(b.s);
      return x < y ? -1 : x > y ? 1 : 0;
    }
    fail(fmt::format("cannot compare {} with {}", type_name(a), type_name(b)), at);
  }

  Value apply_filter(const Value& v, const Node& f, Env& env) {
    using K = Value::K;
    const bool called = f.kind == NK::Call;
    const std::string& name = called ? f.x->str : f.str;
    if (name == "safe") return v;
    if (name == "tojson") {
      JsonOptions o;
      if (called) {
        Args a = eval_args(f.list, env);
        for (const auto& [k, val] : a.kw) {
          if (k == "indent" && val.k == K::Int) {
            o.indent = val.i;
          } else if (k == "indent" && val.k == K::Null) {
          } else if (k == "ensure_ascii" && val.k == K::Bool) {
            o.ensure_ascii = val.b;
          } else if (k == "sort_keys" && val.k == K::Bool) {
            o.sort_keys = val.b;
          } else if (k == "separators" && val.k == K::Array && val.arr->size() == 2 &&
                     (*val.arr)[0].k == K::Str && (*val.arr)[1].k == K::Str) {
            o.separators = std::pair((*val.arr)[0].s, (*val.arr)[1].s);
          } else {
            fail(fmt::format("unsupported tojson argument '{}'", k), f);
          }
        }
      }
      return Value::str(to_json(v, o, 0, true));
    }
    if (called) return apply_called_filter(v, f, name, env);
    switch (v.k) {
      case K::Array:
        if (name == "list") return v;
        if (name == "first") return v.arr->empty() ? Value{} : v.arr->front();
        if (name == "last") return v.arr->empty() ? Value{} : v.arr->back();
        if (name == "length") return Value::integer(static_cast<int64_t>(v.arr->size()));
        if (name == "reverse") return Value::array(Array(v.arr->rbegin(), v.arr->rend()));
        if (name == "sort") {
          Array a = *v.arr;
          std::stable_sort(a.begin(), a.end(), [&](const Value& x, const Value& y) {
            return compare(x, y, false, f) < 0;
          });
          return Value::array(std::move(a));
        }
        if (name == "join") {
          std::string out;
          for (const auto& e : *v.arr) out += e.nullish() ? "" : js_string(e);
          return Value::str(std::move(out));
        }
        if (name == "string") return Value::str(to_json(v, {}, 0, false));
        if (name == "unique") {
          Array out;
          for (const auto& e : *v.arr) {
            bool seen = false;
            for (const auto& o : out) seen = seen || strict_equal(o, e);
            if (!seen) out.push_back(e);
          }
          return Value::array(std::move(out));
        }
        break;
      case K::Str:
        if (name == "length") return Value::integer(utf16_length(v.s));
        if (name == "upper") return Value::str(ascii_upper(v.s));
        if (name == "lower") return Value::str(ascii_lower(v.s));
        if (name == "title") return Value::str(title_case(v.s));
        if (name == "capitalize") {
          return Value::str(v.s.empty() ? v.s : ascii_upper(v.s.substr(0, 1)) + v.s.substr(1));
        }
        if (name == "trim") return Value::str(trim(v.s));
        if (name == "indent") return Value::str(indent(v.s, 4, false, false));
        if (name == "join" || name == "string") return v;
        if (name == "int") {
          const double d = js_parse_int(v.s);
          return Value::integer(std::isnan(d) ? 0 : static_cast<int64_t>(d));
        }
        if (name == "float") {
          const double d = js_parse_float(v.s);
          return Value::number(std::isnan(d) ? 0.0 : d);
        }
        break;
      case K::Int:
      case K::Float:
        if (name == "abs") {
          return v.k == K::Int ? Value::integer(v.i < 0 ? -v.i : v.i)
                               : Value::number(std::fabs(v.f));
        }
        if (name == "int") return Value::integer(static_cast<int64_t>(std::floor(v.as_double())));
        if (name == "float") return Value::number(v.as_double());
        if (name == "string") return Value::str(to_output(v));
        break;
      case K::Object:
        if (name == "length") return Value::integer(static_cast<int64_t>(v.obj->items.size()));
        if (name == "items" || name == "keys" || name == "values") {
          Args none;
          return (*object_method(v, name).fn)(none, env);
        }
        break;
      case K::Bool:
        if (name == "bool") return v;
        if (name == "int") return Value::integer(v.b ? 1 : 0);
        if (name == "float") return Value::number(v.b ? 1.0 : 0.0);
        if (name == "string") return Value::str(v.b ? "true" : "false");
        break;
      default:
        break;
    }
    fail(fmt::format("unsupported filter '{}' on {}", name, type_name(v)), f);
  }

  static double js_parse_int(const std::string& s) {
    const std::string t = trim_start(s);
    size_t i = 0;
    bool neg = false;
    if (i < t.size() && (t[i] == '+' || t[i] == '-')) neg = t[i++] == '-';
    double r = 0;
    const size_t b = i;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') r = r * 10 + (t[i++] - '0');
    if (i == b) return std::nan("");
    return neg ? -r : r;
  }
  static double js_parse_float(const std::string& s) {
    const std::string t = trim_start(s);
    char* end = nullptr;
    const double d = std::strtod(t.c_str(), &end);
    if (end == t.c_str()) return std::nan("");
    return d;
  }

  static std::string indent(const std::string& s, int64_t width, bool first, bool blank) {
    const std::string pad(std::max<int64_t>(width, 0), ' ');
    std::string out;
    size_t b = 0;
    for (size_t line = 0;; ++line) {
      const size_t e = s.find('\n', b);
      const std::string x = s.substr(b, e == std::string::npos ? std::string::npos : e - b);
      if (line) out += "\n";
      out += ((!first && line == 0) || (!blank && x.empty())) ? x : pad + x;
      if (e == std::string::npos) break;
      b = e + 1;
    }
    return out;
  }

  Value apply_called_filter(const Value& v, const Node& f, const std::string& name, Env& env) {
    using K = Value::K;
    if (name == "join") {
      Args a = eval_args(f.list, env);
      const Value* sepv = a.get(0, "separator");
      const std::string sep = sepv ? (sepv->k == K::Str ? sepv->s : "") : "";
      if (sepv && sepv->k != K::Str) fail("join() separator must be a string", f);
      std::vector<std::string> parts;
      if (v.k == K::Str) {
        parts = code_points(v.s);
      } else if (v.k == K::Array) {
        for (const auto& e : *v.arr) parts.push_back(e.nullish() ? "" : js_string(e));
      } else {
        fail(fmt::format("join on {}", type_name(v)), f);
      }
      std::string out;
      for (size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
      return Value::str(std::move(out));
    }
    if (name == "int" || name == "float") {
      Args a = eval_args(f.list, env);
      const Value* d = a.get(0, "default");
      const Value dflt = d ? *d : (name == "int" ? Value::integer(0) : Value::number(0));
      if (v.k == K::Str) {
        const double x = name == "int" ? js_parse_int(v.s) : js_parse_float(v.s);
        if (std::isnan(x)) return dflt;
        return name == "int" ? Value::integer(static_cast<int64_t>(x)) : Value::number(x);
      }
      if (v.is_num()) return v;
      if (v.k == K::Bool) return name == "int" ? Value::integer(v.b) : Value::number(v.b);
      fail(fmt::format("filter '{}' on {}", name, type_name(v)), f);
    }
    if (name == "default") {
      Args a = eval_args(f.list, env);
      const Value dflt = a.pos.size() > 0 ? a.pos[0] : Value::str("");
      const Value* bflag = a.pos.size() > 1 ? &a.pos[1] : a.get(99, "boolean");
      const bool boolean = bflag && bflag->k == K::Bool && bflag->b;
      if (v.undef() || (boolean && !truthy(v))) return dflt;
      return v;
    }
    if (v.k == K::Array) {
      if (name == "sort") {
        Args a = eval_args(f.list, env);
        const Value* rv = a.get(0, "reverse");
        const Value* cv = a.get(1, "case_sensitive");
        const Value* av = a.get(2, "attribute");
        const bool reverse = rv && rv->k == K::Bool && rv->b;
        const bool cs = cv && cv->k == K::Bool && cv->b;
        std::string attr;
        if (av && av->k == K::Str) attr = av->s;
        if (av && av->k == K::Int) attr = std::to_string(av->i);
        Array out = *v.arr;
        std::stable_sort(out.begin(), out.end(), [&](const Value& x, const Value& y) {
          const Value xa = attr.empty() ? x : attribute_path(x, attr);
          const Value ya = attr.empty() ? y : attribute_path(y, attr);
          const int c = compare(xa, ya, cs, f);
          return reverse ? c > 0 : c < 0;
        });
        return Value::array(std::move(out));
      }
      if (name == "selectattr" || name == "rejectattr") {
        for (const auto& arg : f.list) {
          if (arg->kind != NK::Str) fail(fmt::format("{}() takes string literals", name), f);
        }
        if (f.list.empty()) fail(fmt::format("{}() needs an attribute name", name), f);
        const std::string attr = f.list[0]->str;
        const std::string test = f.list.size() > 1 ? f.list[1]->str : "";
        const Value cmp = f.list.size() > 2 ? Value::str(f.list[2]->str) : Value{};
        Array out;
        for (const auto& item : *v.arr) {
          if (!item.is_container()) fail(fmt::format("{}() on a list of non-objects", name), f);
          const Value* a = item.obj->find(attr);
          bool r = false;
          if (a) r = test.empty() ? truthy(*a) : run_test(test, *a, &cmp, f);
          if (r == (name == "selectattr")) out.push_back(item);
        }
        return Value::array(std::move(out));
      }
      if (name == "map") {
        Args a = eval_args(f.list, env);
        const Value* attr = a.get(99, "attribute");
        if (!attr || attr->k != K::Str) fail("map() is only supported with attribute=", f);
        const Value* dflt = a.get(99, "default");
        Array out;
        for (const auto& item : *v.arr) {
          if (!item.is_container()) fail("map() on a list of non-objects", f);
          Value x = attribute_path(item, attr->s);
          out.push_back(x.undef() && dflt ? *dflt : x);
        }
        return Value::array(std::move(out));
      }
    } else if (v.k == K::Str) {
      if (name == "indent") {
        Args a = eval_args(f.list, env);
        const Value* w = a.get(0, "width");
        const Value* first = a.get(1, "first");
        const Value* blank = a.get(2, "blank");
        if (w && w->k != K::Int) fail("indent() width must be an integer", f);
        return Value::str(
            indent(v.s, w ? w->i : 4, first && truthy(*first), blank && truthy(*blank)));
      }
      if (name == "replace") {
        Args a = eval_args(f.list, env);
        return replace(v.s, a);
      }
    } else if (v.k == K::Object) {
      Value m = object_method(v, name);
      if (m.k == K::Func) {
        Args a = eval_args(f.list, env);
        return (*m.fn)(a, env);
      }
    }
    fail(fmt::format("unsupported filter '{}(...)' on {}", name, type_name(v)), f);
  }

  const Source& src_;
  int call_depth_ = 0;
};

}  // namespace

Template::Template(std::string source) : source_(std::move(source)) {
  program_ = std::make_unique<Program>();
  program_->src = preprocess(source_);
  program_->src.original = &source_;
  std::vector<Token> tokens = Lexer(program_->src).run();
  program_->body = Parser(program_->src, std::move(tokens)).run();
}

Template::~Template() = default;
Template::Template(Template&& o) noexcept
    : source_(std::move(o.source_)), program_(std::move(o.program_)) {
  if (program_) program_->src.original = &source_;
}
Template& Template::operator=(Template&& o) noexcept {
  source_ = std::move(o.source_);
  program_ = std::move(o.program_);
  if (program_) program_->src.original = &source_;
  return *this;
}

std::string Template::render(const nlohmann::ordered_json& vars) const {
  if (!vars.is_object()) throw Error("chat template: the variables must be a JSON object");
  Interpreter interp(program_->src);
  Env global;
  interp.install_globals(global);
  for (auto it = vars.begin(); it != vars.end(); ++it) global.set(it.key(), from_json(it.value()));
  try {
    return interp.block(program_->body, global);
  } catch (const BreakSignal&) {
    throw Error("chat template: 'break' outside of a loop");
  } catch (const ContinueSignal&) {
    throw Error("chat template: 'continue' outside of a loop");
  }
}

}  // namespace engram::chat::jinja

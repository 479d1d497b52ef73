// GBNF (llama.cpp's grammar format) -> grammar, and the whole-output regex front end.
//
//   root ::= item ("," ws item)*      # comment
//   item ::= [a-z]+ | "quoted \"text\"" | ( "x" | . ){2,4} | other-rule ?
//
// Rules that do not reach recursion are regular: they become one terminal (one DFA), which
// keeps token masks precomputable (a `string ::= "\"" [^"]* "\""` rule is one lexeme).
// Recursive rules become nonterminals; repetitions of them are left-recursive lists. Left
// recursion written by the user is fine (Earley). Errors name the line and column.
#include <functional>
#include <map>
#include <set>

#include "engram/error.h"
#include "grammar/grammar_impl.h"
#include "grammar/regex.h"

namespace engram::grammar {

namespace {

struct Node {
  enum class Kind { Alt, Seq, Chars, Ref, Repeat };
  Kind kind;
  std::vector<std::shared_ptr<Node>> kids;
  RegexPtr chars;  // Chars: a literal, class or '.'
  std::string ref;
  size_t line = 0, col = 0;
  uint32_t min = 0, max = 0;
};
using NodePtr = std::shared_ptr<Node>;

class GbnfParser {
 public:
  explicit GbnfParser(std::string_view text) : t_(text) {}

  struct RuleDef {
    NodePtr body;
    size_t line;
  };
  std::map<std::string, RuleDef> rules;
  std::vector<std::string> order;

  void parse() {
    skip_space(true);
    while (i_ < t_.size()) {
      const size_t line = line_;
      const std::string name = identifier();
      if (name.empty()) fail("expected a rule name");
      skip_space(true);
      if (t_.substr(i_, 3) != "::=") fail("expected '::=' after rule name '" + name + "'");
      i_ += 3;
      NodePtr body = alternatives(0);
      if (rules.count(name)) fail("rule '" + name + "' is defined twice");
      rules[name] = {body, line};
      order.push_back(name);
      skip_space(true);
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error("gbnf: line " + std::to_string(line_) + ", column " + std::to_string(col()) + ": " +
                what);
  }
  size_t col() const {
    size_t c = 1;
    for (size_t k = i_; k > 0 && t_[k - 1] != '\n'; --k) ++c;
    return c;
  }

  void skip_space(bool newlines) {
    while (i_ < t_.size()) {
      const char c = t_[i_];
      if (c == '#') {
        while (i_ < t_.size() && t_[i_] != '\n') ++i_;
      } else if (c == ' ' || c == '\t' || c == '\r') {
        ++i_;
      } else if (c == '\n' && newlines) {
        ++line_;
        ++i_;
      } else {
        break;
      }
    }
  }

  static bool name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
  }

  std::string identifier() {
    const size_t b = i_;
    while (i_ < t_.size() && name_char(t_[i_])) ++i_;
    return std::string(t_.substr(b, i_ - b));
  }

  // After a newline: does a new rule start here ("name ::=")?
  bool at_rule_start() const {
    size_t k = i_;
    while (k < t_.size() && name_char(t_[k])) ++k;
    if (k == i_) return false;
    while (k < t_.size() && (t_[k] == ' ' || t_[k] == '\t')) ++k;
    return t_.substr(k, 3) == "::=";
  }

  NodePtr make(Node::Kind k) {
    auto n = std::make_shared<Node>();
    n->kind = k;
    n->line = line_;
    n->col = col();
    return n;
  }

  NodePtr alternatives(int depth) {
    if (depth > 100) fail("groups nested too deeply");
    auto alt = make(Node::Kind::Alt);
    alt->kids.push_back(sequence(depth));
    while (i_ < t_.size() && t_[i_] == '|') {
      ++i_;
      alt->kids.push_back(sequence(depth));
    }
    return alt;
  }

  NodePtr sequence(int depth) {
    auto seq = make(Node::Kind::Seq);
    for (;;) {
      // Inside parentheses newlines are plain space; at the top they may end the rule.
      skip_space(depth > 0);
      if (depth == 0 && i_ < t_.size() && t_[i_] == '\n') {
        size_t save_i = i_, save_line = line_;
        skip_space(true);
        if (i_ >= t_.size() || at_rule_start()) {
          i_ = save_i;
          line_ = save_line;
          return seq;
        }
        // A continuation line ("| ..." or more items).
      }
      if (i_ >= t_.size()) return seq;
      const char c = t_[i_];
      if (c == '|' || c == ')') return seq;
      NodePtr item = primary(depth);
      seq->kids.push_back(postfix(item));
    }
  }

  NodePtr postfix(NodePtr item) {
    for (;;) {
      if (i_ >= t_.size()) return item;
      const char c = t_[i_];
      uint32_t lo, hi;
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
        ++i_;
        skip_space(false);
        lo = number();
        skip_space(false);
        hi = lo;
        if (i_ < t_.size() && t_[i_] == ',') {
          ++i_;
          skip_space(false);
          hi =
              (i_ < t_.size() && t_[i_] >= '0' && t_[i_] <= '9') ? number() : RegexNode::kUnbounded;
          skip_space(false);
        }
        if (i_ >= t_.size() || t_[i_] != '}') fail("expected '}' in a repetition");
        ++i_;
        if (hi < lo)
          fail("repetition {" + std::to_string(lo) + "," + std::to_string(hi) + "} has max < min");
        if (lo > 10000 || (hi != RegexNode::kUnbounded && hi > 10000))
          fail("repetition count above 10000");
      } else {
        return item;
      }
      auto r = make(Node::Kind::Repeat);
      r->kids = {item};
      r->min = lo;
      r->max = hi;
      item = r;
    }
  }

  uint32_t number() {
    if (i_ >= t_.size() || t_[i_] < '0' || t_[i_] > '9') fail("expected a number");
    uint64_t v = 0;
    while (i_ < t_.size() && t_[i_] >= '0' && t_[i_] <= '9') {
      v = std::min<uint64_t>(v * 10 + static_cast<uint64_t>(t_[i_] - '0'), 1u << 30);
      ++i_;
    }
    return static_cast<uint32_t>(v);
  }

  uint32_t hex(int n) {
    uint32_t v = 0;
    for (int k = 0; k < n; ++k) {
      if (i_ >= t_.size()) fail("truncated escape");
      const char c = t_[i_++];
      const int d = c >= '0' && c <= '9'   ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                           : -1;
      if (d < 0) fail("bad hex digit in escape");
      v = v * 16 + static_cast<uint32_t>(d);
    }
    return v;
  }

  uint32_t character() {
    if (i_ >= t_.size()) fail("unexpected end of text");
    const auto b = static_cast<uint8_t>(t_[i_]);
    if (b == '\n') fail("unexpected end of line");
    if (b == '\\') {
      ++i_;
      if (i_ >= t_.size()) fail("truncated escape");
      const char e = t_[i_++];
      switch (e) {
        case 'n':
          return '\n';
        case 'r':
          return '\r';
        case 't':
          return '\t';
        case '\\':
          return '\\';
        case '"':
          return '"';
        case '\'':
          return '\'';
        case '[':
          return '[';
        case ']':
          return ']';
        case '-':
          return '-';
        case '^':
          return '^';
        case '/':
          return '/';
        case 'x':
          return hex(2);
        case 'u':
          return hex(4);
        case 'U':
          return hex(8);
        default:
          fail(std::string("unknown escape \\") + e);
      }
    }
    // One UTF-8 character.
    const int len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    if (len == 0 || i_ + len > t_.size()) fail("invalid UTF-8");
    uint32_t c = len == 1 ? b : len == 2 ? (b & 0x1F) : len == 3 ? (b & 0x0F) : (b & 0x07);
    for (int k = 1; k < len; ++k) c = (c << 6) | (static_cast<uint8_t>(t_[i_ + k]) & 0x3F);
    i_ += len;
    return c;
  }

  NodePtr primary(int depth) {
    const char c = t_[i_];
    if (c == '"') {
      ++i_;
      std::vector<RegexPtr> chars;
      while (i_ < t_.size() && t_[i_] != '"') chars.push_back(re_char(character()));
      if (i_ >= t_.size()) fail("unterminated string literal");
      ++i_;
      auto n = make(Node::Kind::Chars);
      n->chars = chars.empty() ? re_empty() : re_concat(std::move(chars));
      return n;
    }
    if (c == '[') {
      ++i_;
      bool neg = false;
      if (i_ < t_.size() && t_[i_] == '^') {
        neg = true;
        ++i_;
      }
      CharSet set;
      while (i_ < t_.size() && t_[i_] != ']') {
        const uint32_t lo = character();
        if (i_ + 1 < t_.size() && t_[i_] == '-' && t_[i_ + 1] != ']') {
          ++i_;
          const uint32_t hi = character();
          if (hi < lo) fail("character range out of order");
          set.add(lo, hi);
        } else {
          set.add(lo, lo);
        }
      }
      if (i_ >= t_.size()) fail("unterminated character class");
      ++i_;
      auto n = make(Node::Kind::Chars);
      n->chars = re_set(neg ? set.negated() : set);
      return n;
    }
    if (c == '.') {
      ++i_;
      auto n = make(Node::Kind::Chars);
      n->chars = re_set(CharSet::any());
      return n;
    }
    if (c == '(') {
      ++i_;
      NodePtr inner = alternatives(depth + 1);
      skip_space(true);
      if (i_ >= t_.size() || t_[i_] != ')') fail("expected ')'");
      ++i_;
      return inner;
    }
    if (name_char(c)) {
      auto n = make(Node::Kind::Ref);
      n->ref = identifier();
      return n;
    }
    fail(std::string("unexpected character '") + c + "'");
  }

  std::string_view t_;
  size_t i_ = 0;
  size_t line_ = 1;
};

class GbnfCompiler {
 public:
  GbnfCompiler(GbnfParser& p, Cfg& cfg, const GrammarOptions& opt)
      : p_(p), cfg_(cfg), clock_(opt.max_compile_seconds) {}

  uint32_t compile() {
    if (!p_.rules.count("root")) throw Error("gbnf: no rule named 'root'");
    for (auto& [name, def] : p_.rules) check_refs(def.body, name);
    // Regular rules: those that reach no cycle.
    std::map<std::string, int> state;  // 0 new, 1 visiting, 2 done
    std::function<bool(const std::string&)> visit = [&](const std::string& name) -> bool {
      int& st = state[name];
      if (st == 1) return false;
      if (st == 2) return regular_.count(name) > 0;
      st = 1;
      bool reg = true;
      std::function<void(const NodePtr&)> walk = [&](const NodePtr& n) {
        if (n->kind == Node::Kind::Ref) {
          if (!visit(n->ref)) reg = false;
        }
        for (auto& k : n->kids) walk(k);
      };
      walk(p_.rules[name].body);
      state[name] = 2;
      if (reg) regular_.insert(name);
      return reg;
    };
    for (auto& name : p_.order) visit(name);
    // Cycles found late leave some rules marked regular that reach a rule on a cycle: redo to
    // a fixpoint.
    for (bool changed = true; changed;) {
      changed = false;
      for (auto& name : p_.order) {
        if (!regular_.count(name)) continue;
        bool reg = true;
        std::function<void(const NodePtr&)> walk = [&](const NodePtr& n) {
          if (n->kind == Node::Kind::Ref && !regular_.count(n->ref)) reg = false;
          for (auto& k : n->kids) walk(k);
        };
        walk(p_.rules[name].body);
        if (!reg) {
          regular_.erase(name);
          changed = true;
        }
      }
    }
    for (auto& name : p_.order) rule_nt_[name] = cfg_.add_nonterminal(name);
    for (auto& name : p_.order) {
      const int32_t body = symbol(p_.rules[name].body, name);
      cfg_.add_rule(rule_nt_[name], {body});
    }
    return rule_nt_["root"];
  }

 private:
  void check_refs(const NodePtr& n, const std::string& rule) {
    if (n->kind == Node::Kind::Ref && !p_.rules.count(n->ref)) {
      throw Error("gbnf: line " + std::to_string(n->line) + ", column " + std::to_string(n->col) +
                  ": rule '" + rule + "' refers to undefined rule '" + n->ref + "'");
    }
    for (auto& k : n->kids) check_refs(k, rule);
  }

  bool is_regular(const NodePtr& n) {
    if (n->kind == Node::Kind::Ref) return regular_.count(n->ref) > 0;
    for (auto& k : n->kids) {
      if (!is_regular(k)) return false;
    }
    return true;
  }

  RegexPtr to_regex(const NodePtr& n, int depth) {
    if (depth > 200) throw Error("gbnf: rules nest too deeply to inline");
    switch (n->kind) {
      case Node::Kind::Chars:
        return n->chars;
      case Node::Kind::Ref:
        return to_regex(p_.rules[n->ref].body, depth + 1);
      case Node::Kind::Repeat:
        return re_repeat(to_regex(n->kids[0], depth + 1), n->min, n->max);
      case Node::Kind::Seq: {
        std::vector<RegexPtr> k;
        for (auto& c : n->kids) k.push_back(to_regex(c, depth + 1));
        return k.empty() ? re_empty() : re_concat(std::move(k));
      }
      case Node::Kind::Alt: {
        std::vector<RegexPtr> k;
        for (auto& c : n->kids) k.push_back(to_regex(c, depth + 1));
        return re_alt(std::move(k));
      }
    }
    return re_empty();
  }

  int32_t symbol(const NodePtr& n, const std::string& rule) {
    clock_.check("rule '" + rule + "'");
    const std::string where =
        "gbnf: line " + std::to_string(n->line) + ", column " + std::to_string(n->col);
    if (n->kind == Node::Kind::Ref && !regular_.count(n->ref)) {
      return static_cast<int32_t>(rule_nt_[n->ref]);
    }
    if (is_regular(n)) {
      try {
        RegexLimits lim;
        lim.max_dfa_states = 4000;
        Dfa d = compile_regex(to_regex(n, 0), Encoding::Utf8, where, lim);
        return cfg_.add_regular(std::move(d), rule);
      } catch (const Error&) {
        if (n->kind == Node::Kind::Chars) throw;
        // Too large as one automaton: keep its structure instead.
      }
    }
    switch (n->kind) {
      case Node::Kind::Chars:
        return cfg_.add_regular(compile_regex(n->chars, Encoding::Utf8, where), rule);
      case Node::Kind::Ref: {
        // A regular rule too large to inline: use its own nonterminal.
        return static_cast<int32_t>(rule_nt_[n->ref]);
      }
      case Node::Kind::Seq: {
        std::vector<int32_t> rhs;
        for (auto& k : n->kids) rhs.push_back(symbol(k, rule));
        const uint32_t nt = cfg_.add_nonterminal(rule + "/seq");
        cfg_.add_rule(nt, rhs);
        return static_cast<int32_t>(nt);
      }
      case Node::Kind::Alt: {
        const uint32_t nt = cfg_.add_nonterminal(rule + "/alt");
        for (auto& k : n->kids) cfg_.add_rule(nt, {symbol(k, rule)});
        return static_cast<int32_t>(nt);
      }
      case Node::Kind::Repeat: {
        const int32_t x = symbol(n->kids[0], rule);
        const uint32_t nt = cfg_.add_nonterminal(rule + "/repeat");
        std::vector<int32_t> head(n->min, x);
        if (n->max == RegexNode::kUnbounded) {
          // List -> eps | List x (left recursive)
          const uint32_t list = cfg_.add_nonterminal(rule + "/list");
          cfg_.add_rule(list, {});
          cfg_.add_rule(list, {static_cast<int32_t>(list), x});
          head.push_back(static_cast<int32_t>(list));
          cfg_.add_rule(nt, head);
        } else {
          // Opt_k -> eps | x Opt_{k-1}
          int32_t opt = -1;
          for (uint32_t k = n->min; k < n->max; ++k) {
            const uint32_t o = cfg_.add_nonterminal(rule + "/opt");
            cfg_.add_rule(o, {});
            if (k == n->min) {
              cfg_.add_rule(o, {x});
            } else {
              cfg_.add_rule(o, {x, opt});
            }
            opt = static_cast<int32_t>(o);
          }
          if (n->max > n->min) head.push_back(opt);
          cfg_.add_rule(nt, head);
        }
        return static_cast<int32_t>(nt);
      }
    }
    return 0;
  }

  GbnfParser& p_;
  Cfg& cfg_;
  CompileClock clock_;
  std::set<std::string> regular_;
  std::map<std::string, uint32_t> rule_nt_;
};

}  // namespace

void build_gbnf(std::string_view text, const GrammarOptions& opt, Cfg& out) {
  GbnfParser p(text);
  p.parse();
  GbnfCompiler c(p, out, opt);
  const uint32_t root = c.compile();
  out.finish(root);
}

void build_regex(std::string_view pattern, const GrammarOptions& opt, Cfg& out) {
  (void)opt;
  const std::string where = "regex";
  Dfa d = compile_regex(anchor(parse_regex(pattern, where), false, where), Encoding::Utf8, where);
  const int32_t sym = out.add_regular(std::move(d), "regex");
  const uint32_t root = out.add_nonterminal("root");
  out.add_rule(root, {sym});
  out.finish(root);
}

}  // namespace engram::grammar

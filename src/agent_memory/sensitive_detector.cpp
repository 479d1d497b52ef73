#include "agent_memory/sensitive_detector.h"

#include <array>
#include <cctype>

namespace engram::agent_memory {
namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_alnum(char c) {
  return is_digit(c) || is_alpha(c);
}
char upper(char c) {
  return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
}

// --- identifiers -------------------------------------------------------------------------------

// Runs of digits separated by one space or hyphen ("4111 1111-1111 1111"), not glued to letters
// or other digits. Each group of consecutive runs whose digits number 13..19 and pass Luhn is a
// card number (so a card followed by another number is still found).
bool has_card_number(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    if (!is_digit(s[i]) || (i > 0 && is_alnum(s[i - 1]))) {
      ++i;
      continue;
    }
    std::vector<std::string> groups;
    size_t j = i;
    for (;;) {
      std::string g;
      while (j < s.size() && is_digit(s[j])) g += s[j++];
      groups.push_back(g);
      if (j + 1 < s.size() && (s[j] == ' ' || s[j] == '-') && is_digit(s[j + 1])) {
        ++j;
        continue;
      }
      break;
    }
    const bool glued = j < s.size() && is_alpha(s[j]);
    if (!glued) {
      for (size_t a = 0; a < groups.size(); ++a) {
        std::string digits;
        for (size_t b = a; b < groups.size() && digits.size() < 19; ++b) {
          digits += groups[b];
          if (digits.size() >= 13 && digits.size() <= 19 && luhn_valid(digits)) return true;
        }
      }
    }
    i = j;
  }
  return false;
}

// Two letters, two check digits, then letters/digits (printed in groups of four) up to 34 in
// all; a prefix of 15+ characters with a valid mod-97 checksum is an IBAN.
bool has_iban(std::string_view s) {
  for (size_t i = 0; i + 4 <= s.size(); ++i) {
    if ((i > 0 && is_alnum(s[i - 1])) || !is_alpha(s[i]) || !is_alpha(s[i + 1]) ||
        !is_digit(s[i + 2]) || !is_digit(s[i + 3]))
      continue;
    std::string compact;
    std::vector<size_t> candidate_lengths;
    size_t j = i;
    while (j < s.size() && compact.size() < 34) {
      if (is_alnum(s[j])) {
        compact += upper(s[j++]);
        if (j == s.size() || !is_alnum(s[j])) candidate_lengths.push_back(compact.size());
      } else if (s[j] == ' ' && j + 1 < s.size() && is_alnum(s[j + 1]) && compact.size() >= 4) {
        ++j;
      } else {
        break;
      }
    }
    for (size_t len : candidate_lengths)
      if (len >= 15 && iban_valid(std::string_view(compact).substr(0, len))) return true;
  }
  return false;
}

// AAA-GG-SSSS with the area, group and serial the SSA never issues left out.
bool has_ssn(std::string_view s) {
  for (size_t i = 0; i + 11 <= s.size(); ++i) {
    if (i > 0 && is_alnum(s[i - 1])) continue;
    const std::string_view t = s.substr(i, 11);
    bool shape = t[3] == '-' && t[6] == '-';
    for (size_t k : {0, 1, 2, 4, 5, 7, 8, 9, 10}) shape = shape && is_digit(t[k]);
    if (!shape || (i + 11 < s.size() && is_alnum(s[i + 11]))) continue;
    const int area = std::stoi(std::string(t.substr(0, 3)));
    const int group = std::stoi(std::string(t.substr(4, 2)));
    const int serial = std::stoi(std::string(t.substr(7, 4)));
    if (area != 0 && area != 666 && area < 900 && group != 0 && serial != 0) return true;
  }
  return false;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// A word naming an identifier (in lower-cased text), then within `reach` characters a token of
// letters/digits with at least `min_digits` digits and `min_len`..`max_len` characters
// (separators inside the number allowed: spaces and hyphens).
bool keyword_then_number(const std::string& low, std::string_view keyword, size_t reach,
                         size_t min_digits, size_t min_len, size_t max_len) {
  for (size_t at = low.find(keyword); at != std::string::npos; at = low.find(keyword, at + 1)) {
    if (at > 0 && is_alnum(low[at - 1])) continue;
    const size_t end = std::min(low.size(), at + keyword.size() + reach);
    size_t i = at + keyword.size();
    while (i < end) {
      if (!is_alnum(low[i])) {
        ++i;
        continue;
      }
      size_t digits = 0, len = 0, j = i;
      while (j < low.size() &&
             (is_alnum(low[j]) || ((low[j] == ' ' || low[j] == '-') && j + 1 < low.size() &&
                                   is_digit(low[j + 1]) && j > 0 && is_digit(low[j - 1])))) {
        if (is_alnum(low[j])) ++len;
        if (is_digit(low[j])) ++digits;
        ++j;
      }
      if (digits >= min_digits && len >= min_len && len <= max_len) return true;
      i = j;
    }
  }
  return false;
}

bool has_account_number(const std::string& low) {
  for (std::string_view k : {"account number", "account no", "acct", "account #", "routing number",
                             "sort code", "bank account", "iban"})
    if (keyword_then_number(low, k, 24, 6, 6, 34)) return true;
  return false;
}

bool has_government_id(std::string_view s, const std::string& low) {
  if (has_ssn(s)) return true;
  for (std::string_view k :
       {"passport", "social security", "ssn", "national insurance", "national id", "id card",
        "identity card", "driver's license", "drivers license", "driving licence", "driver license",
        "tax id", "taxpayer", "personalausweis", "aadhaar"})
    if (keyword_then_number(low, k, 32, 2, 6, 20)) return true;
  return false;
}

// --- categories --------------------------------------------------------------------------------

struct LexiconEntry {
  SensitiveCategory category;
  std::string_view phrase;  // lower case, words separated by one space; '*' ends a prefix
};

// Words chosen for what they say about the speaker in a memory ("User was diagnosed with ...",
// "User attends mass every Sunday"). Ambiguous words with common harmless senses (faith,
// temple, straight, aids, party, liberal) are left out or only taken in a phrase.
constexpr std::array kLexicon = {
    // health
    LexiconEntry{SensitiveCategory::kHealth, "diagnos*"},
    LexiconEntry{SensitiveCategory::kHealth, "diabet*"},
    LexiconEntry{SensitiveCategory::kHealth, "cancer*"},
    LexiconEntry{SensitiveCategory::kHealth, "tumor*"},
    LexiconEntry{SensitiveCategory::kHealth, "tumour*"},
    LexiconEntry{SensitiveCategory::kHealth, "chemo*"},
    LexiconEntry{SensitiveCategory::kHealth, "hiv"},
    LexiconEntry{SensitiveCategory::kHealth, "depression"},
    LexiconEntry{SensitiveCategory::kHealth, "depressed"},
    LexiconEntry{SensitiveCategory::kHealth, "anxiety"},
    LexiconEntry{SensitiveCategory::kHealth, "panic attack*"},
    LexiconEntry{SensitiveCategory::kHealth, "bipolar"},
    LexiconEntry{SensitiveCategory::kHealth, "schizophreni*"},
    LexiconEntry{SensitiveCategory::kHealth, "adhd"},
    LexiconEntry{SensitiveCategory::kHealth, "autism"},
    LexiconEntry{SensitiveCategory::kHealth, "autistic"},
    LexiconEntry{SensitiveCategory::kHealth, "ptsd"},
    LexiconEntry{SensitiveCategory::kHealth, "asthma*"},
    LexiconEntry{SensitiveCategory::kHealth, "epilep*"},
    LexiconEntry{SensitiveCategory::kHealth, "dementia"},
    LexiconEntry{SensitiveCategory::kHealth, "alzheimer*"},
    LexiconEntry{SensitiveCategory::kHealth, "parkinson*"},
    LexiconEntry{SensitiveCategory::kHealth, "pregnan*"},
    LexiconEntry{SensitiveCategory::kHealth, "miscarriage*"},
    LexiconEntry{SensitiveCategory::kHealth, "abortion*"},
    LexiconEntry{SensitiveCategory::kHealth, "medication*"},
    LexiconEntry{SensitiveCategory::kHealth, "antidepressant*"},
    LexiconEntry{SensitiveCategory::kHealth, "insulin"},
    LexiconEntry{SensitiveCategory::kHealth, "therapist*"},
    LexiconEntry{SensitiveCategory::kHealth, "psychiatr*"},
    LexiconEntry{SensitiveCategory::kHealth, "rehab"},
    LexiconEntry{SensitiveCategory::kHealth, "addiction*"},
    LexiconEntry{SensitiveCategory::kHealth, "addicted"},
    LexiconEntry{SensitiveCategory::kHealth, "alcoholi*"},
    LexiconEntry{SensitiveCategory::kHealth, "surgery"},
    LexiconEntry{SensitiveCategory::kHealth, "disabilit*"},
    LexiconEntry{SensitiveCategory::kHealth, "disabled"},
    LexiconEntry{SensitiveCategory::kHealth, "illness*"},
    LexiconEntry{SensitiveCategory::kHealth, "disease*"},
    LexiconEntry{SensitiveCategory::kHealth, "disorder*"},
    LexiconEntry{SensitiveCategory::kHealth, "syndrome"},
    LexiconEntry{SensitiveCategory::kHealth, "chronic pain"},
    LexiconEntry{SensitiveCategory::kHealth, "blood pressure"},
    LexiconEntry{SensitiveCategory::kHealth, "hypertension"},
    LexiconEntry{SensitiveCategory::kHealth, "hepatitis"},
    LexiconEntry{SensitiveCategory::kHealth, "herpes"},
    LexiconEntry{SensitiveCategory::kHealth, "chlamydia"},
    LexiconEntry{SensitiveCategory::kHealth, "anorexi*"},
    LexiconEntry{SensitiveCategory::kHealth, "bulimi*"},
    LexiconEntry{SensitiveCategory::kHealth, "allerg*"},
    LexiconEntry{SensitiveCategory::kHealth, "prescri*"},
    LexiconEntry{SensitiveCategory::kHealth, "suicid*"},
    LexiconEntry{SensitiveCategory::kHealth, "self harm"},
    LexiconEntry{SensitiveCategory::kHealth, "mental health"},
    LexiconEntry{SensitiveCategory::kHealth, "infertil*"},
    LexiconEntry{SensitiveCategory::kHealth, "ivf"},
    // religion
    LexiconEntry{SensitiveCategory::kReligion, "religio*"},
    LexiconEntry{SensitiveCategory::kReligion, "christian*"},
    LexiconEntry{SensitiveCategory::kReligion, "catholic*"},
    LexiconEntry{SensitiveCategory::kReligion, "protestant*"},
    LexiconEntry{SensitiveCategory::kReligion, "evangelical*"},
    LexiconEntry{SensitiveCategory::kReligion, "mormon*"},
    LexiconEntry{SensitiveCategory::kReligion, "muslim*"},
    LexiconEntry{SensitiveCategory::kReligion, "islam*"},
    LexiconEntry{SensitiveCategory::kReligion, "jewish"},
    LexiconEntry{SensitiveCategory::kReligion, "judaism"},
    LexiconEntry{SensitiveCategory::kReligion, "hindu*"},
    LexiconEntry{SensitiveCategory::kReligion, "buddhis*"},
    LexiconEntry{SensitiveCategory::kReligion, "sikh*"},
    LexiconEntry{SensitiveCategory::kReligion, "atheis*"},
    LexiconEntry{SensitiveCategory::kReligion, "agnostic*"},
    LexiconEntry{SensitiveCategory::kReligion, "church*"},
    LexiconEntry{SensitiveCategory::kReligion, "mosque*"},
    LexiconEntry{SensitiveCategory::kReligion, "synagogue*"},
    LexiconEntry{SensitiveCategory::kReligion, "pray*"},
    LexiconEntry{SensitiveCategory::kReligion, "ramadan"},
    LexiconEntry{SensitiveCategory::kReligion, "kosher"},
    LexiconEntry{SensitiveCategory::kReligion, "halal"},
    LexiconEntry{SensitiveCategory::kReligion, "bible*"},
    LexiconEntry{SensitiveCategory::kReligion, "quran"},
    LexiconEntry{SensitiveCategory::kReligion, "koran"},
    LexiconEntry{SensitiveCategory::kReligion, "torah"},
    LexiconEntry{SensitiveCategory::kReligion, "baptis*"},
    LexiconEntry{SensitiveCategory::kReligion, "jehovah*"},
    LexiconEntry{SensitiveCategory::kReligion, "scientolog*"},
    LexiconEntry{SensitiveCategory::kReligion, "attends mass"},
    LexiconEntry{SensitiveCategory::kReligion, "goes to mass"},
    // sexual orientation and gender identity
    LexiconEntry{SensitiveCategory::kSexualOrientation, "gay"},
    LexiconEntry{SensitiveCategory::kSexualOrientation, "lesbian*"},
    LexiconEntry{SensitiveCategory::kSexualOrientation, "bisexual*"},
    LexiconEntry{SensitiveCategory::kSexualOrientation, "homosexual*"},
    LexiconEntry{SensitiveCategory::kSexualOrientation, "heterosexual*"},
    LexiconEntry{SensitiveCategory::kSexualOrientation, "pansexual*"},
    LexiconEntry{SensitiveCategory::kSexualOrientation, "asexual*"},
    LexiconEntry{SensitiveCategory::kSexualOrientation, "queer"},
    LexiconEntry{SensitiveCategory::kSexualOrientation, "lgbt*"},
    LexiconEntry{SensitiveCategory::kSexualOrientation, "transgender*"},
    LexiconEntry{SensitiveCategory::kSexualOrientation, "trans woman"},
    LexiconEntry{SensitiveCategory::kSexualOrientation, "trans man"},
    LexiconEntry{SensitiveCategory::kSexualOrientation, "nonbinary"},
    LexiconEntry{SensitiveCategory::kSexualOrientation, "non binary"},
    LexiconEntry{SensitiveCategory::kSexualOrientation, "sexual orientation"},
    LexiconEntry{SensitiveCategory::kSexualOrientation, "came out as"},
    LexiconEntry{SensitiveCategory::kSexualOrientation, "coming out as"},
    // political opinions, union membership
    LexiconEntry{SensitiveCategory::kPoliticalOpinion, "democrat*"},
    LexiconEntry{SensitiveCategory::kPoliticalOpinion, "republican*"},
    LexiconEntry{SensitiveCategory::kPoliticalOpinion, "conservatives"},
    LexiconEntry{SensitiveCategory::kPoliticalOpinion, "conservative party"},
    LexiconEntry{SensitiveCategory::kPoliticalOpinion, "labour party"},
    LexiconEntry{SensitiveCategory::kPoliticalOpinion, "labour voter"},
    LexiconEntry{SensitiveCategory::kPoliticalOpinion, "green party"},
    LexiconEntry{SensitiveCategory::kPoliticalOpinion, "tory"},
    LexiconEntry{SensitiveCategory::kPoliticalOpinion, "tories"},
    LexiconEntry{SensitiveCategory::kPoliticalOpinion, "socialis*"},
    LexiconEntry{SensitiveCategory::kPoliticalOpinion, "communis*"},
    LexiconEntry{SensitiveCategory::kPoliticalOpinion, "fascis*"},
    LexiconEntry{SensitiveCategory::kPoliticalOpinion, "marxis*"},
    LexiconEntry{SensitiveCategory::kPoliticalOpinion, "libertarian*"},
    LexiconEntry{SensitiveCategory::kPoliticalOpinion, "anarchis*"},
    LexiconEntry{SensitiveCategory::kPoliticalOpinion, "left wing"},
    LexiconEntry{SensitiveCategory::kPoliticalOpinion, "right wing"},
    LexiconEntry{SensitiveCategory::kPoliticalOpinion, "voted for"},
    LexiconEntry{SensitiveCategory::kPoliticalOpinion, "votes for"},
    LexiconEntry{SensitiveCategory::kPoliticalOpinion, "vote for"},
    LexiconEntry{SensitiveCategory::kPoliticalOpinion, "voting for"},
    LexiconEntry{SensitiveCategory::kPoliticalOpinion, "political*"},
    LexiconEntry{SensitiveCategory::kPoliticalOpinion, "politics"},
    LexiconEntry{SensitiveCategory::kPoliticalOpinion, "trade union*"},
    LexiconEntry{SensitiveCategory::kPoliticalOpinion, "union member*"},
    LexiconEntry{SensitiveCategory::kPoliticalOpinion, "maga"},
};

std::vector<std::string> words_of(const std::string& low) {
  std::vector<std::string> words;
  size_t i = 0;
  while (i < low.size()) {
    while (i < low.size() && !is_alnum(low[i])) ++i;
    const size_t start = i;
    // "driver's" stays one word; other punctuation separates.
    while (i < low.size() && (is_alnum(low[i]) || (low[i] == '\'' && i + 1 < low.size() &&
                                                   is_alpha(low[i + 1]) && i > start)))
      ++i;
    if (i > start) words.emplace_back(low.substr(start, i - start));
  }
  return words;
}

bool word_matches(std::string_view pattern, const std::string& word) {
  if (!pattern.empty() && pattern.back() == '*') {
    pattern.remove_suffix(1);
    return word.compare(0, pattern.size(), pattern) == 0;
  }
  return word == pattern;
}

bool phrase_at(std::string_view phrase, const std::vector<std::string>& words, size_t at) {
  size_t w = at;
  while (!phrase.empty()) {
    const size_t sp = phrase.find(' ');
    const std::string_view head = phrase.substr(0, sp);
    if (w >= words.size() || !word_matches(head, words[w])) return false;
    ++w;
    phrase = sp == std::string_view::npos ? std::string_view() : phrase.substr(sp + 1);
  }
  return true;
}

}  // namespace

bool luhn_valid(std::string_view digits) {
  if (digits.empty()) return false;
  int sum = 0;
  bool twice = false;
  for (size_t i = digits.size(); i-- > 0;) {
    if (!is_digit(digits[i])) return false;
    int d = digits[i] - '0';
    if (twice && (d *= 2) > 9) d -= 9;
    sum += d;
    twice = !twice;
  }
  return sum % 10 == 0;
}

bool iban_valid(std::string_view compact) {
  if (compact.size() < 15 || compact.size() > 34) return false;
  if (!is_alpha(compact[0]) || !is_alpha(compact[1]) || !is_digit(compact[2]) ||
      !is_digit(compact[3]))
    return false;
  // Move the first four characters to the end, letters become 10..35, the number mod 97 is 1.
  int rem = 0;
  for (size_t k = 0; k < compact.size(); ++k) {
    const char c = upper(compact[(k + 4) % compact.size()]);
    if (is_digit(c)) {
      rem = (rem * 10 + (c - '0')) % 97;
    } else if (c >= 'A' && c <= 'Z') {
      rem = (rem * 100 + (c - 'A' + 10)) % 97;
    } else {
      return false;
    }
  }
  return rem == 1;
}

std::string_view category_name(SensitiveCategory c) {
  switch (c) {
    case SensitiveCategory::kCardNumber:
      return "card_number";
    case SensitiveCategory::kBankAccount:
      return "bank_account";
    case SensitiveCategory::kGovernmentId:
      return "government_id";
    case SensitiveCategory::kHealth:
      return "health";
    case SensitiveCategory::kReligion:
      return "religion";
    case SensitiveCategory::kSexualOrientation:
      return "sexual_orientation";
    case SensitiveCategory::kPoliticalOpinion:
      return "political_opinion";
  }
  return "?";
}

std::vector<std::string> SensitiveFindings::names() const {
  std::vector<std::string> out;
  for (uint32_t bit = 1; bit <= static_cast<uint32_t>(SensitiveCategory::kPoliticalOpinion);
       bit <<= 1)
    if (categories & bit) out.emplace_back(category_name(static_cast<SensitiveCategory>(bit)));
  return out;
}

SensitiveFindings detect_sensitive(std::string_view text) {
  SensitiveFindings f;
  auto mark = [&](SensitiveCategory c) { f.categories |= static_cast<uint32_t>(c); };
  const std::string low = lower(text);
  if (has_card_number(text)) mark(SensitiveCategory::kCardNumber);
  if (has_iban(text) || has_account_number(low)) mark(SensitiveCategory::kBankAccount);
  if (has_government_id(text, low)) mark(SensitiveCategory::kGovernmentId);
  // Hyphens and apostrophes join nothing in phrases: "left-wing" is "left wing".
  const std::vector<std::string> words = words_of(low);
  for (size_t w = 0; w < words.size(); ++w)
    for (const LexiconEntry& e : kLexicon)
      if (phrase_at(e.phrase, words, w)) mark(e.category);
  return f;
}

}  // namespace engram::agent_memory

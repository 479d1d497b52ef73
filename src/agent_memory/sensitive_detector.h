// Which sensitive categories a statement touches, so that automatic extraction (prospective
// reflection) leaves them out unless the user explicitly asked to remember them -- what
// ChatGPT's memory promises for health details and the like. Two kinds of evidence:
//   identifiers, by pattern and checksum: payment card numbers (13-19 digits, Luhn), IBANs
//     (country, check digits, ISO 7064 mod 97), account numbers after words that name one,
//     US social security numbers (AAA-GG-SSSS, valid areas), passport and other government id
//     numbers after words that name one;
//   categories, by a lexicon of words and phrases (whole words, a trailing * a prefix): health,
//     religion, sexual orientation and gender identity, political opinions and union membership.
// The lexicon errs towards caution: a false positive costs one memory not stored automatically
// (the user can still say "remember ..."), a false negative stores what should not be. The
// table of cases in tests/test_agent_memory_sensitive.cpp is the documentation of what is and
// is not caught. English only.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace engram::agent_memory {

enum class SensitiveCategory : uint32_t {
  kCardNumber = 1u << 0,
  kBankAccount = 1u << 1,
  kGovernmentId = 1u << 2,
  kHealth = 1u << 3,
  kReligion = 1u << 4,
  kSexualOrientation = 1u << 5,
  kPoliticalOpinion = 1u << 6,
};

// "card_number", "bank_account", "government_id", "health", "religion", "sexual_orientation",
// "political_opinion".
std::string_view category_name(SensitiveCategory c);

struct SensitiveFindings {
  uint32_t categories = 0;  // a set of SensitiveCategory bits
  bool has(SensitiveCategory c) const { return categories & static_cast<uint32_t>(c); }
  bool any() const { return categories != 0; }
  std::vector<std::string> names() const;  // category_name of each, in enum order
};

SensitiveFindings detect_sensitive(std::string_view text);

// The rule for automatic extraction: a statement is stored if it touches no sensitive category,
// or if the user explicitly asked for it to be remembered.
inline bool may_store(const SensitiveFindings& f, bool explicit_request) {
  return explicit_request || !f.any();
}

// Checksums, exposed for their tests.
bool luhn_valid(std::string_view digits);   // digits only
bool iban_valid(std::string_view compact);  // upper-case letters and digits, no spaces

}  // namespace engram::agent_memory

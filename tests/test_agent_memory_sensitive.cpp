// The sensitive-data detector's table of cases: what automatic extraction must not store
// unless the user asked, and what it may. Each row is a statement as a memory would hold it and
// the categories the detector must report (none for the rows that must pass). Known misses are
// listed at the end as such, so that a change that catches them shows up here.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "agent_memory/sensitive_detector.h"

namespace engram {
namespace {

using agent_memory::detect_sensitive;
using agent_memory::SensitiveCategory;

struct Case {
  const char* text;
  std::vector<std::string> categories;
};

const std::vector<Case> kCases = {
    // payment cards: 13-19 digits that pass Luhn, with or without separators
    {"My card number is 4111 1111 1111 1111.", {"card_number"}},
    {"Visa 4111-1111-1111-1111 expires 09/27", {"card_number"}},
    {"Amex: 378282246310005", {"card_number"}},
    {"card 5555555555554444 and PIN hint: birthday", {"card_number"}},
    {"Charge it to 4012 8888 8888 1881 12 please", {"card_number"}},
    {"Order number 4111111111111112 shipped", {}},       // fails Luhn
    {"Tracking 1Z999AA10123456784 arrives Monday", {}},  // glued to letters
    {"Call me at +1 555 123 4567 after six", {}},        // 11 digits
    {"The meeting is on 2024-05-06 at 10:30", {}},
    // bank accounts: IBAN checksum, or a number after words naming an account
    {"Pay rent to DE89 3704 0044 0532 0130 00", {"bank_account"}},
    {"IBAN GB82WEST12345698765432 for the deposit", {"bank_account"}},
    {"my account number is 12345678 at the credit union", {"bank_account"}},
    {"routing number 021000021", {"bank_account"}},
    {"GB82 WEST 1234 5698 7654 33 is not a real one", {}},  // checksum off by one
    {"Flight DE1234 leaves at noon", {}},
    // government ids
    {"SSN 078-05-1120 for the tax form", {"government_id"}},
    {"her social security number is 219 09 9999", {"government_id"}},
    {"Passport: X1234567, valid until 2031", {"government_id"}},
    {"my passport number is 533380006", {"government_id"}},
    {"driver's license D1234-5678-9012", {"government_id"}},
    {"000-12-3456 is not an issued number", {}},
    {"User renewed their passport last spring", {}},  // the word alone names no id
    // health
    {"User was diagnosed with type 2 diabetes last year", {"health"}},
    {"User takes antidepressants and sees a therapist weekly", {"health"}},
    {"User is pregnant with her second child", {"health"}},
    {"User has a severe peanut allergy", {"health"}},
    {"User's father has Alzheimer's", {"health"}},
    {"User struggles with anxiety before exams", {"health"}},
    {"User runs five kilometres every morning", {}},
    {"User's laptop has a battery disease", {"health"}},  // cautious: a false positive
    // religion
    {"User is a practising Catholic and attends mass on Sundays", {"religion"}},
    {"User fasts during Ramadan", {"religion"}},
    {"User is an atheist", {"religion"}},
    {"User prays before every meal", {"religion"}},
    {"User visited the Temple Bar district in Dublin", {}},
    {"User has faith in the new manager", {}},
    // sexual orientation, gender identity
    {"User is gay and lives with his husband", {"sexual_orientation"}},
    {"User came out as bisexual to her parents", {"sexual_orientation"}},
    {"User is a trans woman", {"sexual_orientation"}},
    {"User is non-binary and uses they/them", {"sexual_orientation"}},
    {"User came out of the cinema at ten", {}},
    {"User is a straight-A student", {}},
    // political opinions, union membership
    {"User voted for the Green Party in the last election", {"political_opinion"}},
    {"User is a registered Republican", {"political_opinion"}},
    {"User considers themself a socialist", {"political_opinion"}},
    {"User is a trade union member", {"political_opinion"}},
    {"User holds left-wing views", {"political_opinion"}},
    {"User threw a party for the team", {}},
    {"User gave a liberal amount of sauce", {}},
    // several at once
    {"User, a Muslim, was diagnosed with asthma", {"health", "religion"}},
    {"Card 4111111111111111, passport X1234567", {"card_number", "government_id"}},
    // ordinary memories
    {"User's daughter Mia loves jellyfish", {}},
    {"User prefers 50-minute lessons with a follow-up activity", {}},
    {"User lives in Lyon and works as an architect", {}},
    {"", {}},
    // Known misses (documented, not wanted): other languages, euphemisms, numbers without a
    // naming word.
    {"Le patient est diabétique", {}},
    {"User is expecting a baby in June", {}},
    {"my number is 533380006", {}},
};

TEST(SensitiveDetector, TableOfCases) {
  for (const Case& c : kCases) {
    EXPECT_EQ(detect_sensitive(c.text).names(), c.categories) << "\"" << c.text << "\"";
  }
}

TEST(SensitiveDetector, ExplicitRequestsBypassIt) {
  const auto f = detect_sensitive("User was diagnosed with asthma");
  EXPECT_TRUE(f.has(SensitiveCategory::kHealth));
  EXPECT_FALSE(agent_memory::may_store(f, false));
  EXPECT_TRUE(agent_memory::may_store(f, true));
  EXPECT_TRUE(agent_memory::may_store(detect_sensitive("User likes tea"), false));
}

TEST(SensitiveDetector, Checksums) {
  EXPECT_TRUE(agent_memory::luhn_valid("79927398713"));
  EXPECT_FALSE(agent_memory::luhn_valid("79927398710"));
  EXPECT_FALSE(agent_memory::luhn_valid(""));
  EXPECT_FALSE(agent_memory::luhn_valid("7992739871a"));
  EXPECT_TRUE(agent_memory::iban_valid("GB82WEST12345698765432"));
  EXPECT_TRUE(agent_memory::iban_valid("FR1420041010050500013M02606"));
  EXPECT_FALSE(agent_memory::iban_valid("GB82WEST12345698765433"));
  EXPECT_FALSE(agent_memory::iban_valid("GB82"));
}

TEST(SensitiveDetector, HostileInputIsJustText) {
  std::string digits(100000, '4');
  EXPECT_NO_THROW(detect_sensitive(digits));
  std::string mixed;
  for (int i = 0; i < 20000; ++i) mixed += "1 -a' ";
  EXPECT_NO_THROW(detect_sensitive(mixed));
  EXPECT_NO_THROW(detect_sensitive(std::string("\xff\xfe\0passport", 11)));
}

}  // namespace
}  // namespace engram

// The sensitive-data detector's table of cases (tests/fixtures/agent_memory/sensitive_cases.json):
// what automatic extraction must not store unless the user asked, and what it may. Each row is a
// statement as a memory would hold it and the categories the detector's rules must report (none
// for the rows that must pass). Known misses are listed at the end as such, with the truth, so
// that a change that catches them shows up here.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "agent_memory/sensitive_detector.h"

namespace engram {
namespace {

using agent_memory::detect_sensitive;
using agent_memory::SensitiveCategory;

// tests/fixtures/agent_memory/sensitive_cases.json: {"text", "rules": [categories], "truth"?}.
nlohmann::json load_cases() {
  std::ifstream in(std::string(ENGRAM_SOURCE_DIR) +
                   "/tests/fixtures/agent_memory/sensitive_cases.json");
  EXPECT_TRUE(in.good());
  return nlohmann::json::parse(in)["cases"];
}

TEST(SensitiveDetector, TableOfCases) {
  const nlohmann::json cases = load_cases();
  size_t sensitive = 0, plain = 0;
  std::set<std::string> categories;
  for (const auto& c : cases) {
    const std::string text = c["text"];
    const auto rules = c["rules"].get<std::vector<std::string>>();
    EXPECT_EQ(detect_sensitive(text).names(), rules) << "\"" << text << "\"";
    (rules.empty() ? plain : sensitive) += 1;
    categories.insert(rules.begin(), rules.end());
  }
  // Not vacuous: both kinds, every category.
  EXPECT_GE(sensitive, 30u);
  EXPECT_GE(plain, 20u);
  EXPECT_EQ(categories.size(), 7u);
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

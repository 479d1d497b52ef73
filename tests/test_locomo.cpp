// The LoCoMo reader: both layouts, the release's malformed evidence entries, and bad input named
// by file and field.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "engram/error.h"
#include "eval/locomo.h"

namespace engram::eval {
namespace {

const char* kSmall = R"({
  "speaker_a": "Ann", "speaker_b": "Bo",
  "session_1_date_time": "1:00 pm on 1 May, 2023",
  "session_1": [
    {"speaker": "Ann", "dia_id": "D1:1", "text": "I adopted a cat."},
    {"speaker": "Bo", "dia_id": "D1:2", "text": "Nice!", "blip_caption": "a photo of a cat"}
  ],
  "session_2_date_time": "2:00 pm on 2 May, 2023",
  "session_2": [{"speaker": "Ann", "dia_id": "D2:1", "text": "Her name is Tuna."}],
  "session_3_date_time": "never held",
  "qa": [
    {"question": "What pet?", "answer": "a cat", "evidence": ["D1:1"], "category": 4},
    {"question": "When?", "answer": 2023, "evidence": ["D1:1; D2:1", "D:2:1", "D", "D9:9"],
     "category": 2},
    {"question": "Dog name?", "adversarial_answer": "Rex", "evidence": [], "category": 5}
  ]
})";

// The message of the Error `text` raises.
std::string error_of(const std::string& text) {
  try {
    parse_locomo(text, "f.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Locomo, ReadsSessionsTurnsAndQuestions) {
  const auto convs = parse_locomo(kSmall, "f.json");
  ASSERT_EQ(convs.size(), 1u);
  const LocomoConversation& c = convs[0];
  ASSERT_EQ(c.sessions.size(), 2u);  // session 3 has a date and no turns
  EXPECT_EQ(c.sessions[0].number, 1);
  EXPECT_EQ(c.sessions[0].date, "1:00 pm on 1 May, 2023");
  ASSERT_EQ(c.sessions[0].turns.size(), 2u);
  EXPECT_EQ(c.sessions[0].turns[1].id, "D1:2");
  EXPECT_EQ(c.sessions[0].turns[1].text, "Nice! [shares a photo: a photo of a cat]");
  ASSERT_EQ(c.questions.size(), 3u);
  EXPECT_EQ(c.questions[0].evidence, (std::vector<std::string>{"D1:1"}));
  EXPECT_EQ(c.questions[1].answer, "2023");
  EXPECT_EQ(c.questions[1].category, 2);
  // "D1:1; D2:1" gives both, "D:2:1" repeats D2:1, "D" and D9:9 are dropped.
  EXPECT_EQ(c.questions[1].evidence, (std::vector<std::string>{"D1:1", "D2:1"}));
  EXPECT_EQ(c.dropped_evidence, 2);
  EXPECT_EQ(c.questions[2].answer, "Rex");
  EXPECT_TRUE(c.questions[2].evidence.empty());
}

TEST(Locomo, ReadsTheReleaseLayout) {
  const std::string sample =
      std::string(R"({"sample_id": "x", "conversation": )") +
      R"({"session_1": [{"speaker": "A", "dia_id": "D1:1", "text": "hi"}]},)" +
      R"( "qa": [{"question": "q", "answer": "a", "evidence": ["D1:1"],)" + R"( "category": 1}]})";
  const auto convs = parse_locomo("[" + sample + "," + sample + "]", "locomo10.json");
  ASSERT_EQ(convs.size(), 2u);
  EXPECT_EQ(convs[1].name, "locomo10.json#1");
  EXPECT_EQ(convs[1].questions[0].evidence, (std::vector<std::string>{"D1:1"}));
}

TEST(Locomo, EvidenceReferences) {
  EXPECT_EQ(parse_evidence_refs("D8:6; D9:17"), (std::vector<std::string>{"D8:6", "D9:17"}));
  EXPECT_EQ(parse_evidence_refs("D:11:26"), (std::vector<std::string>{"D11:26"}));
  EXPECT_TRUE(parse_evidence_refs("D").empty());
  EXPECT_TRUE(parse_evidence_refs("D0:1 D1:0 D1: :2").empty());
  EXPECT_TRUE(parse_evidence_refs("").empty());
  EXPECT_EQ(parse_evidence_refs("DD3:4"), (std::vector<std::string>{"D3:4"}));
}

TEST(Locomo, BadInputNamesTheFileAndField) {
  const std::string turn = R"({"speaker": "A", "dia_id": "D1:1", "text": "hi"})";
  const std::string s1 = R"("session_1": [)" + turn + "]";
  const std::string q = R"({"question": "q", "answer": "a", "evidence": ["D1:1"], "category": 1})";
  auto doc = [&](const std::string& sessions, const std::string& qa) {
    return "{" + sessions + R"(, "qa": [)" + qa + "]}";
  };
  struct Case {
    std::string text, expect;
  } cases[] = {
      {"", "f.json: not valid JSON"},
      {"{\"session_1\": [", "f.json: not valid JSON"},
      {"42", "f.json: expected a JSON object, got number"},
      {"[]", "f.json: an empty array"},
      {R"({"qa": []})", "f.json: no session_<n> array of turns"},
      {"{" + s1 + "}", R"(f.json: missing field "qa")"},
      {"{" + s1 + R"(, "qa": {}})", "f.json.qa: expected an array, got object"},
      {doc(R"("session_1": "hi")", q), "f.json.session_1: expected an array of turns"},
      {doc(R"("session_1": [7])", q), "f.json.session_1[0]: expected an object, got number"},
      {doc(R"("session_1": [{"speaker": "A", "text": "hi"}])", q),
       R"(f.json.session_1[0]: missing field "dia_id")"},
      {doc(R"("session_1": [{"speaker": "A", "dia_id": "1:1", "text": "hi"}])", q),
       "f.json.session_1[0].dia_id: \"1:1\" is not D<session>:<turn>"},
      {doc(R"("session_1": [{"speaker": "A", "dia_id": "D2:1", "text": "hi"}])", q),
       "names session 2, not 1"},
      {doc(R"("session_1": [{"speaker": "A", "dia_id": "D1:1", "text": 5}])", q),
       "f.json.session_1[0].text: expected a string, got number"},
      {doc(R"("session_1": [)" + turn + "," + turn + "]", q), "\"D1:1\" appears twice"},
      {doc(s1, "3"), "f.json.qa[0]: expected an object"},
      {doc(s1, R"({"answer": "a", "evidence": [], "category": 1})"),
       R"(f.json.qa[0]: missing field "question")"},
      {doc(s1, R"({"question": "q", "evidence": [], "category": 6})"),
       "f.json.qa[0].category: expected an integer 1-5, got 6"},
      {doc(s1, R"({"question": "q", "evidence": [], "category": "1"})"),
       "f.json.qa[0].category: expected an integer 1-5"},
      {doc(s1, R"({"question": "q", "evidence": [], "category": 1.5})"),
       "f.json.qa[0].category: expected an integer 1-5"},
      {doc(s1, R"({"question": "q", "category": 1})"), R"(f.json.qa[0]: missing field "evidence")"},
      {doc(s1, R"({"question": "q", "evidence": "D1:1", "category": 1})"),
       "f.json.qa[0].evidence: expected an array, got string"},
      {doc(s1, R"({"question": "q", "evidence": [1], "category": 1})"),
       "f.json.qa[0].evidence[0]: expected a string, got number"},
      {doc(s1, R"({"question": "q", "answer": [1], "evidence": [], "category": 1})"),
       "f.json.qa[0].answer: expected text or a number, got array"},
      {R"({"conversation": [], "qa": []})", "f.json.conversation: expected an object"},
  };
  for (const Case& c : cases) {
    const std::string msg = error_of(c.text);
    EXPECT_NE(msg.find(c.expect), std::string::npos) << "input: " << c.text << "\nerror: " << msg;
  }
}

TEST(Locomo, FilesOfADirectory) {
  const auto dir = std::filesystem::path(::testing::TempDir()) / "locomo_files_test";
  std::filesystem::remove_all(dir);
  EXPECT_THROW(locomo_files(dir.string()), Error);  // missing
  std::filesystem::create_directories(dir);
  EXPECT_THROW(locomo_files(dir.string()), Error);  // empty
  std::ofstream(dir / "b.json") << kSmall;
  std::ofstream(dir / "a.json") << "{";
  std::ofstream(dir / "notes.txt") << "x";
  const auto files = locomo_files(dir.string());
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(std::filesystem::path(files[0]).filename(), "a.json");
  EXPECT_EQ(read_locomo_file(files[1])[0].name, "b.json");
  try {
    read_locomo_file(files[0]);
    FAIL() << "a broken file parsed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find((dir / "a.json").string()), std::string::npos);
  }
  EXPECT_THROW(read_locomo_file((dir / "missing.json").string()), Error);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace engram::eval

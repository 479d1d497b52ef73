// The agent-memory session (include/engram/memory_session.h): the protocol's texts, the
// controls, retrieval into the memory block and prospective reflection, with a scripted model
// (what the session does must not depend on what a model happens to answer).
#include <gtest/gtest.h>

#include <deque>
#include <filesystem>
#include <functional>

#include "agent_memory/sensitive_judge.h"
#include "agent_memory_backends.h"
#include "engram/error.h"
#include "engram/grammar.h"
#include "engram/memory_session.h"
#include "engram/reranker.h"
#include "server/memory_sessions.h"

namespace engram::agent_memory {
namespace {

// Replies from a script, and every prompt it was asked, for the tests to look at. Embeddings:
// words hashed into 16 dimensions (texts sharing words are close).
class ScriptedModel : public MemoryModel {
 public:
  std::deque<std::string> replies;
  std::vector<std::vector<ChatMessage>> asked;
  std::vector<bool> constrained;
  // The sensitive-data yes/no questions (sensitive_judge.h) are answered apart from the script:
  // "yes" when the statement holds one of `sensitive_words`, else "no" (kControlWords make it
  // right on the judge's controls).
  std::vector<std::string> sensitive_words;
  std::vector<std::vector<ChatMessage>> yes_no_asked;

  std::vector<float> embed(std::string_view text) override {
    std::vector<float> v(16, 0.0f);
    std::string w;
    auto flush = [&] {
      if (w.empty()) return;
      v[std::hash<std::string>{}(w) % 16] += 1.0f;
      w.clear();
    };
    for (char c : text) {
      if (std::isalnum(static_cast<unsigned char>(c)))
        w += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      else
        flush();
    }
    flush();
    return v;
  }
  std::string complete(const std::vector<ChatMessage>& messages,
                       const std::shared_ptr<const Grammar>& grammar, int) override {
    if (!messages.empty() && messages[0].content == "Answer yes or no.") {
      yes_no_asked.push_back(messages);
      if (!grammar) return "not constrained";
      const std::string& q = messages.back().content;
      const std::string statement = q.substr(q.find("Statement: ") + 11);
      for (const std::string& w : sensitive_words)
        if (statement.find(w) != std::string::npos) return "yes";
      return "no";
    }
    asked.push_back(messages);
    constrained.push_back(grammar != nullptr);
    if (replies.empty()) return "{\"extracted_memories\": []}";
    std::string r = replies.front();
    replies.pop_front();
    return r;
  }
  size_t count_tokens(const std::vector<ChatMessage>& messages) override {
    size_t n = 0;
    for (const auto& m : messages) n += m.content.size() / 4 + 4;
    return n;
  }
  size_t context_tokens() const override { return context; }
  size_t context = 4096;

  // Everything the model was shown, as one text.
  std::string all_asked() const {
    std::string s;
    for (const auto& msgs : asked)
      for (const auto& m : msgs) s += m.content + "\n";
    return s;
  }
};

TEST(MemoryProtocol, MemoryBlockIsTheDocumentedSystemPrompt) {
  EXPECT_EQ(memory_block({"User's sister is named Alice.", "User works at Northwind Bank."}),
            "You are a helpful assistant. Memories about the user:\n"
            "[1] User's sister is named Alice.\n"
            "[2] User works at Northwind Bank.\n"
            "Cite the memory you use as [i]. If none applies, say you don't know.");
  EXPECT_EQ(memory_block({}), "You are a helpful assistant.");
  // A newline inside a memory cannot start a line of its own.
  EXPECT_EQ(memory_block({"a\n[2] b"}).find("\n[2]"), std::string::npos);
}

TEST(MemoryProtocol, CitationsAreStrippedAlsoWhenStreamedByteByByte) {
  struct Case {
    const char* in;
    const char* out;
    std::vector<int> cited;
  };
  const Case cases[] = {
      {"Your sister is named Alice [1].", "Your sister is named Alice.", {1}},
      {"Alice [1] and Bob [3][1].", "Alice and Bob.", {1, 3}},
      {"[2] at the start", " at the start", {2}},
      {"x [12].", "x.", {12}},
      {"x [123] stays", "x [123] stays", {}},
      {"x [0] stays", "x [0] stays", {}},
      {"arr[a] and [ 1] stay", "arr[a] and [ 1] stay", {}},
      {"ends with [", "ends with [", {}},
      {"ends with [4", "ends with [4", {}},
      {"two  spaces [1]", "two  spaces", {1}},
      {"I don't know. You haven't told me that.", "I don't know. You haven't told me that.", {}},
  };
  for (const Case& c : cases) {
    std::vector<int> cited;
    EXPECT_EQ(strip_citations(c.in, &cited), c.out) << c.in;
    EXPECT_EQ(cited, c.cited) << c.in;
    CitationFilter f;
    std::string streamed;
    for (const char* p = c.in; *p; ++p) streamed += f.feed(std::string_view(p, 1));
    streamed += f.finish();
    EXPECT_EQ(streamed, c.out) << c.in;
    EXPECT_EQ(f.cited(), c.cited) << c.in;
  }
}

TEST(MemoryProtocol, ControlsAreRecognisedInTheirWordingsOnly) {
  struct Case {
    const char* in;
    ControlKind kind;
    const char* text;
  };
  const Case cases[] = {
      {"Remember that my sister is Alice", ControlKind::kRemember, "User's sister is Alice."},
      {"please remember: I am allergic to nuts.", ControlKind::kRemember,
       "User is allergic to nuts."},
      {"remember I'm a nurse", ControlKind::kRemember, "User is a nurse."},
      {"REMEMBER this: my car is a red Toyota!", ControlKind::kRemember,
       "User's car is a red Toyota!"},
      {"Remember when we met?", ControlKind::kNone, ""},
      {"Do you remember my sister?", ControlKind::kNone, ""},
      {"remember", ControlKind::kNone, ""},
      {"remembering things is hard", ControlKind::kNone, ""},
      {"Forget that my sister is Alice.", ControlKind::kForget, "my sister is Alice"},
      {"please forget about my job", ControlKind::kForget, "my job"},
      {"forget it?", ControlKind::kNone, ""},
      {"forgetful people", ControlKind::kNone, ""},
      {"What do you remember about me?", ControlKind::kList, ""},
      {"  what do you know about me  ", ControlKind::kList, ""},
      {"list my memories.", ControlKind::kList, ""},
      {"My sister is Alice.", ControlKind::kNone, ""},
      {"", ControlKind::kNone, ""},
  };
  for (const Case& c : cases) {
    const Control got = parse_control(c.in);
    EXPECT_EQ(got.kind, c.kind) << c.in;
    EXPECT_EQ(got.text, c.text) << c.in;
  }
}

TEST(MemoryProtocol, ForgetMatchesEveryContentWord) {
  EXPECT_TRUE(forget_matches("my sister", "User's sister is named Alice."));
  EXPECT_TRUE(forget_matches("that my sister is called Alice", "User's sister is named Alice."));
  EXPECT_TRUE(forget_matches("my hobbies", "User's hobby is chess."));
  EXPECT_FALSE(forget_matches("my brother", "User's sister is named Alice."));
  EXPECT_FALSE(forget_matches("sister Bob", "User's sister is named Alice."));
  EXPECT_FALSE(forget_matches("it", "User's sister is named Alice."));  // no content word
  EXPECT_FALSE(forget_matches("", "anything"));
}

TEST(MemoryProtocol, ExtractionAndAddMergeReplies) {
  const auto e = parse_extraction(
      R"({"extracted_memories": [{"summary": "User's sister is named Alice.", "reference": [0]},)"
      R"( {"summary": "User works at Northwind Bank.", "reference": [2, 4]}]})");
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[1].summary, "User works at Northwind Bank.");
  EXPECT_EQ(e[1].reference, (std::vector<int64_t>{2, 4}));
  EXPECT_TRUE(parse_extraction(R"({"extracted_memories": []})").empty());
  EXPECT_THROW(parse_extraction("not json"), Error);
  EXPECT_THROW(parse_extraction(R"({"memories": []})"), Error);
  EXPECT_THROW(parse_extraction(R"({"extracted_memories": [{"reference": []}]})"), Error);

  EXPECT_FALSE(parse_add_merge("Add()", 3).merge);
  const auto d = parse_add_merge("Merge(2, \"User's hobbies are chess and hiking.\")", 3);
  EXPECT_TRUE(d.merge);
  EXPECT_EQ(d.index, 2u);
  EXPECT_EQ(d.summary, "User's hobbies are chess and hiking.");
  EXPECT_THROW(parse_add_merge("Merge(4, \"x\")", 3), Error);
  EXPECT_THROW(parse_add_merge("Merge(0, \"x\")", 3), Error);
  EXPECT_THROW(parse_add_merge("Merge(1, \"\")", 3), Error);
  EXPECT_THROW(parse_add_merge("Delete(1)", 3), Error);

  EXPECT_EQ(add_merge_prompt({"User works as a nurse.", "User's hobby is chess."},
                             "User's hobby is hiking."),
            "Existing memories:\n[1] User works as a nurse.\n[2] User's hobby is chess.\n"
            "New memory: User's hobby is hiking.");
  EXPECT_EQ(
      extraction_transcript({{"user", "My sister is called Alice."}, {"assistant", "Got it."}}),
      "[0] User: My sister is called Alice.\n[1] Assistant: Got it.");
  // The constraints compile.
  EXPECT_NO_THROW(Grammar::from_json_schema(extraction_schema()));
  for (size_t n = 1; n <= 9; ++n) EXPECT_NO_THROW(Grammar::from_gbnf(add_merge_gbnf(n))) << n;
}

class MemorySessionTest : public ::testing::Test {
 protected:
  void SetUp() override { store = open_memory_store(backend.create()); }
  void TearDown() override {
    store.reset();
    backend.destroy();
  }
  void s_add_existing() {
    NewMemory m;
    m.summary = "User's hobby is chess.";
    m.embedding = model.embed(m.summary);
    store->add("alice", m, "test");
  }
  agent_memory_test::SqliteBackend backend;
  std::unique_ptr<MemoryStore> store;
  ScriptedModel model;
};

TEST_F(MemorySessionTest, RememberedFactsComeBackInALaterConversationsPrompt) {
  {
    MemorySession s(store.get(), "alice", model);
    const MemoryTurn t = s.begin_turn("Remember that my sister is called Maren.");
    ASSERT_TRUE(t.reply.has_value());
    EXPECT_NE(t.reply->find("User's sister is called Maren."), std::string::npos);
    s.end_turn(t, *t.reply, {});
    s.end_conversation();
  }
  ASSERT_EQ(store->get_all("alice").size(), 1u);
  EXPECT_TRUE(store->get_all("alice")[0].explicit_request);
  EXPECT_TRUE(model.asked.empty());  // a control needs no model, and reflection left it out

  MemorySession later(store.get(), "alice", model);
  const MemoryTurn t = later.begin_turn("What is my sister called?");
  EXPECT_FALSE(t.reply.has_value());
  ASSERT_EQ(t.shown.size(), 1u);
  EXPECT_NE(t.system_prompt.find("[1] User's sister is called Maren."), std::string::npos);
  const auto msgs = MemorySession::prompt_messages(t, "", {{"user", t.user_text}});
  ASSERT_EQ(msgs.size(), 2u);
  EXPECT_EQ(msgs[0].role, "system");
  EXPECT_EQ(msgs[0].content, t.system_prompt);
  // Another user sees none of it.
  MemorySession bob(store.get(), "bob", model);
  EXPECT_TRUE(bob.begin_turn("What is my sister called?").shown.empty());
}

TEST_F(MemorySessionTest, ForgottenFactsNeverComeBackAndAreNotExtractedAgain) {
  MemorySession s(store.get(), "alice", model);
  s.remember("User's sister is named Maren.", "my sister is Maren");
  s.remember("User works at Northwind Bank.", "I work at Northwind");
  // Said in this conversation too, then forgotten: reflection must not bring it back.
  MemoryTurn said = s.begin_turn("My sister Maren visited today.");
  s.end_turn(said, "Nice.", {});
  MemoryTurn f = s.begin_turn("Forget that my sister is Maren.");
  ASSERT_TRUE(f.reply.has_value());
  EXPECT_NE(f.reply->find("forgot 1 memory"), std::string::npos);
  s.end_turn(f, *f.reply, {});
  model.replies.push_back(
      R"({"extracted_memories": [{"summary": "User's sister is named Maren.", "reference": [0]}]})");
  const ReflectionReport r = s.end_conversation();
  EXPECT_EQ(r.added + r.merged, 0u);
  for (const Memory& m : store->get_all("alice"))
    EXPECT_EQ(m.summary.find("Maren"), std::string::npos);
  EXPECT_EQ(model.all_asked().find("Maren"), std::string::npos);  // the turn was left out
  MemorySession later(store.get(), "alice", model);
  EXPECT_EQ(later.begin_turn("Who is Maren?").system_prompt.find("Maren"), std::string::npos);
  const MemoryTurn list = later.begin_turn("What do you remember about me?");
  ASSERT_TRUE(list.reply.has_value());
  EXPECT_EQ(list.reply->find("Maren"), std::string::npos);
  EXPECT_NE(list.reply->find("Northwind"), std::string::npos);
}

TEST_F(MemorySessionTest, ReflectionAddsMergesAndKeepsSensitiveStatementsOut) {
  s_add_existing();
  MemorySession s(store.get(), "alice", model);
  for (const char* said : {"My hobby is hiking.", "I was diagnosed with diabetes last year.",
                           "I work at Northwind Bank."}) {
    MemoryTurn t = s.begin_turn(said);
    EXPECT_FALSE(t.reply.has_value());
    s.end_turn(t, "Got it [1].", {1});
  }
  // The model "extracts" three memories, one of them sensitive despite the filtered transcript.
  model.replies.push_back(
      R"({"extracted_memories": [{"summary": "User's hobby is hiking.", "reference": [0]},)"
      R"( {"summary": "User has diabetes.", "reference": [1]},)"
      R"( {"summary": "User works at Northwind Bank.", "reference": [2]}]})");
  model.replies.push_back("Merge(1, \"User's hobbies are chess and hiking.\")");  // hiking
  model.replies.push_back("Add()");                                               // Northwind
  const ReflectionReport r = s.end_conversation();
  EXPECT_TRUE(r.errors.empty()) << r.errors[0];
  EXPECT_EQ(r.extracted, 3u);
  EXPECT_EQ(r.merged, 1u);
  EXPECT_EQ(r.added, 1u);
  EXPECT_EQ(r.skipped_sensitive, 1u);
  EXPECT_EQ(r.turns_left_out, 2u);  // the diagnosis and its answer
  // What the model was shown: the transcript without the diagnosis, under the constraints.
  ASSERT_GE(model.asked.size(), 1u);
  EXPECT_EQ(model.asked[0][0].content, kExtractSystem);
  EXPECT_EQ(model.all_asked().find("diabetes"), std::string::npos);
  for (bool c : model.constrained) EXPECT_TRUE(c);
  const auto all = store->get_all("alice");
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].summary, "User's hobbies are chess and hiking.");
  EXPECT_EQ(all[1].summary, "User works at Northwind Bank.");
  const auto h = store->history("alice", all[0].id);
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[1].event, MemoryEvent::kMerge);
  EXPECT_EQ(h[1].actor, "reflection");
  // A merge prompt shows the similar memory in the documented format.
  bool saw_merge_prompt = false;
  for (const auto& msgs : model.asked)
    if (msgs[0].content == kMergeSystem) {
      saw_merge_prompt = true;
      EXPECT_EQ(msgs[1].content.rfind("Existing memories:\n[1] ", 0), 0u);
    }
  EXPECT_TRUE(saw_merge_prompt);
}

TEST_F(MemorySessionTest, SensitiveStatementsAreStoredWhenTheUserAsks) {
  MemorySession s(store.get(), "alice", model);
  const MemoryTurn t = s.begin_turn("Remember that I was diagnosed with diabetes.");
  ASSERT_TRUE(t.reply.has_value());
  const auto all = store->get_all("alice");
  ASSERT_EQ(all.size(), 1u);
  EXPECT_TRUE(all[0].sensitive);
  EXPECT_TRUE(all[0].explicit_request);
}

TEST_F(MemorySessionTest, ATemporaryChatTouchesNoStoreAndSaysSo) {
  MemorySession s(nullptr, "alice", model);
  EXPECT_TRUE(s.temporary());
  const MemoryTurn r = s.begin_turn("Remember that my sister is Maren.");
  ASSERT_TRUE(r.reply.has_value());
  EXPECT_NE(r.reply->find("temporary"), std::string::npos);
  const MemoryTurn t = s.begin_turn("My sister is Maren.");
  EXPECT_TRUE(t.system_prompt.empty());
  s.end_turn(t, "ok", {});
  EXPECT_EQ(s.pending_turns(), 0u);
  const ReflectionReport rep = s.end_conversation();
  EXPECT_EQ(rep.extracted, 0u);
  EXPECT_TRUE(model.asked.empty());
  EXPECT_THROW(s.remember("x", "x"), Error);
}

TEST_F(MemorySessionTest, BadModelRepliesAndHostileTextAreErrorsNotCrashes) {
  MemorySession s(store.get(), "alice", model);
  // FTS5 syntax, SQL metacharacters, invalid UTF-8, a NUL, an oversized turn.
  const std::string hostile[] = {"NEAR(a b) OR \"x\" * ^col:1", "'; DROP TABLE memories; --",
                                 std::string("bad \xff\xfe utf8 \0 nul", 17),
                                 std::string(300000, 'x')};
  for (const std::string& h : hostile) {
    MemoryTurn t;
    ASSERT_NO_THROW(t = s.begin_turn(h));
    s.end_turn(t, "ok", {});
  }
  model.replies.push_back("garbage");
  const ReflectionReport r = s.end_conversation();
  EXPECT_FALSE(r.errors.empty());
  EXPECT_TRUE(store->get_all("alice").empty());
  // A remember the store refuses (too long) is answered, not thrown.
  const MemoryTurn big = s.begin_turn("remember " + std::string(20000, 'y'));
  ASSERT_TRUE(big.reply.has_value());
  EXPECT_NE(big.reply->find("could not remember"), std::string::npos);
}

// Words of the judge's positive controls (one per category), none of its everyday ones.
const std::vector<std::string> kControlWords = {"4111",     "12345678", "X1234567",   "cancer",
                                                "Catholic", "gay",      "Green Party"};

// The detector's model layer: a statement the rules pass is put to the model, one constrained
// yes/no question per category; a "yes" leaves it out of reflection. A statement the rules flag
// is not shown to the model at all, so its "no" cannot override them.
TEST_F(MemorySessionTest, TheModelsYesAddsCautionAndItsNoNeverOverridesTheRules) {
  model.sensitive_words = kControlWords;
  model.sensitive_words.push_back("hiking");
  model.sensitive_words.push_back("diabetes");
  MemorySessionParams p;
  p.ask_model_if_sensitive = true;
  MemorySession s(store.get(), "alice", model, p);
  for (const char* said : {"My hobby is hiking.", "I was diagnosed with diabetes last year.",
                           "I work at Northwind Bank."}) {
    MemoryTurn t = s.begin_turn(said);
    s.end_turn(t, "Noted.", {});
  }
  model.replies.push_back(
      R"({"extracted_memories": [{"summary": "User works at Northwind Bank.", "reference": [0]},)"
      R"( {"summary": "User goes hiking.", "reference": [0]}]})");
  const ReflectionReport r = s.end_conversation();
  EXPECT_TRUE(r.errors.empty()) << r.errors[0];
  EXPECT_EQ(r.turns_left_out, 4u);      // hiking (the model) and diabetes (the rules), answers too
  EXPECT_EQ(r.skipped_sensitive, 1u);   // "User goes hiking.", on the model's yes
  EXPECT_EQ(r.sensitive_by_model, 2u);  // the hiking turn and the hiking summary
  EXPECT_EQ(r.added, 1u);
  const auto all = store->get_all("alice");
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].summary, "User works at Northwind Bank.");
  EXPECT_EQ(model.all_asked().find("hiking"), std::string::npos);  // not in the extraction
  // The questions: every category of each text the rules passed, in the documented wording,
  // constrained; never the diagnosis.
  ASSERT_FALSE(model.yes_no_asked.empty());
  EXPECT_EQ(model.yes_no_asked.size() % sensitive_questions().size(), 0u);
  for (const auto& q : model.yes_no_asked) {
    ASSERT_EQ(q.size(), 2u);
    EXPECT_EQ(q[1].content.rfind("Does this statement reveal ", 0), 0u) << q[1].content;
    EXPECT_NE(q[1].content.find("?\nStatement: "), std::string::npos) << q[1].content;
    EXPECT_EQ(q[1].content.find("diabetes"), std::string::npos);
  }
  EXPECT_EQ(sensitive_question_messages(SensitiveCategory::kHealth, "User is tired.")[1].content,
            "Does this statement reveal the user's health (an illness, a diagnosis, a treatment, "
            "a pregnancy)?\nStatement: User is tired.");
}

TEST_F(MemorySessionTest, TheSensitiveJudgeAsksOnlyAboutWhatTheModelIsAbleToJudge) {
  const size_t n_cat = sensitive_questions().size();
  // A model that says "no" to everything is not able (it misses every positive control), and is
  // not asked about what the rules flag: the rules alone.
  SensitiveJudge no(&model);
  EXPECT_TRUE(no.judge("I was diagnosed with diabetes").has(SensitiveCategory::kHealth));
  EXPECT_TRUE(no.judge("Card 4111 1111 1111 1111").has(SensitiveCategory::kCardNumber));
  EXPECT_TRUE(model.yes_no_asked.empty());
  EXPECT_FALSE(no.judge("User goes hiking").any());
  EXPECT_FALSE(no.able().any());
  EXPECT_EQ(no.questions_asked(), n_cat);  // one positive control per category, then nothing
  // A model that says "yes" to everything is not able either (the everyday controls).
  model.sensitive_words = {"User"};
  SensitiveJudge yes(&model);
  EXPECT_FALSE(yes.judge("User goes hiking").any());
  EXPECT_FALSE(yes.able().any());
  EXPECT_EQ(yes.ask_model("User goes hiking").names().size(), n_cat);  // its answers, unused
  // A model right on the controls is able: its yes adds the category; answers cached per text.
  model.sensitive_words = kControlWords;
  model.sensitive_words.push_back("hiking");
  SensitiveJudge good(&model);
  EXPECT_EQ(good.able().names().size(), n_cat);
  EXPECT_EQ(good.questions_asked(), 3 * n_cat);
  EXPECT_EQ(good.judge("User goes hiking").names().size(), n_cat);
  EXPECT_EQ(good.judge("User goes hiking").names().size(), n_cat);
  EXPECT_FALSE(good.judge("User likes coffee").any());
  EXPECT_EQ(good.questions_asked(), 5 * n_cat);
  // Only the categories it is able to judge are asked (here: all but health).
  model.sensitive_words = {"4111", "12345678",    "X1234567", "Catholic",
                           "gay",  "Green Party", "hiking"};
  SensitiveJudge most(&model);
  EXPECT_FALSE(most.able().has(SensitiveCategory::kHealth));
  const size_t controls = most.questions_asked();
  EXPECT_EQ(most.judge("User goes hiking").names().size(), n_cat - 1);
  EXPECT_EQ(most.questions_asked(), controls + n_cat - 1);
  // A question that does not fit the context is not asked; the rules stand.
  model.context = 64;
  EXPECT_FALSE(good.judge("User goes hiking " + std::string(400, 'x')).any());
  EXPECT_EQ(good.questions_asked(), 5 * n_cat);
  model.context = 4096;
  // Without a model, or with ask_model_if_sensitive off (the default), the rules alone.
  EXPECT_FALSE(SensitiveJudge(nullptr).judge("User goes hiking").any());
  MemorySession s(store.get(), "alice", model);
  s.end_turn(s.begin_turn("I go hiking on Sundays."), "Nice.", {});
  model.yes_no_asked.clear();
  s.end_conversation();
  EXPECT_TRUE(model.yes_no_asked.empty());
}

// The learned reranker behind the seam: it picks M of the top K, learns from the citations, and
// its parameters are the user's, in the store.
TEST_F(MemorySessionTest, TheLearnedRerankerLearnsFromCitationsPerUser) {
  for (int i = 0; i < 8; ++i) {
    NewMemory m;
    m.summary = "User's fact number " + std::to_string(i) + " is about tea.";
    m.embedding = model.embed(m.summary);
    store->add("alice", m, "test");
  }
  auto reranker = learned_reranker(*store, /*learning=*/true, /*seed=*/7);
  MemorySession s(store.get(), "alice", model, {}, reranker.get());
  for (int turn = 0; turn < 4; ++turn) {
    const MemoryTurn t = s.begin_turn("Tell me about tea.");
    ASSERT_EQ(t.shown.size(), 5u);
    ASSERT_EQ(t.chosen.size(), 5u);
    for (size_t i : t.chosen) EXPECT_LT(i, t.candidates.size());
    s.end_turn(t, "Tea [2].", {2});
    const auto state = store->reranker("alice");
    ASSERT_TRUE(state.has_value());  // saved after every reranking
  }
  // Four rerankings make one batch: one gradient step, persisted for the user only.
  EXPECT_EQ(load_reranker(*store, "alice", 16).steps(), 1);
  EXPECT_FALSE(store->reranker("bob").has_value());
  // Memories without embeddings of the query's size cannot be scored: the retriever's order.
  NewMemory plain;
  plain.summary = "User's plain memory about tea.";
  store->add("carol", plain, "test");
  MemorySession c(store.get(), "carol", model, {}, reranker.get());
  const MemoryTurn t = c.begin_turn("tea");
  EXPECT_EQ(t.chosen, (std::vector<size_t>{0}));
  c.end_turn(t, "ok [1]", {1});
  EXPECT_FALSE(store->reranker("carol").has_value());
}

// The product's defaults are plain SGD (no optimiser state in the stored blob); RMM's parameters
// (--memory-rerank learned-rmm) step with Adam, whose moments are stored with the user's reranker.
TEST_F(MemorySessionTest, TheLearnedRerankerTakesRmmsParametersWhenAsked) {
  for (int i = 0; i < 8; ++i) {
    NewMemory m;
    m.summary = "User's fact number " + std::to_string(i) + " is about tea.";
    m.embedding = model.embed(m.summary);
    for (const char* user : {"sgd", "rmm"}) store->add(user, m, "test");
  }
  auto sgd = learned_reranker(*store, true, 7);
  auto rmm = learned_reranker(*store, true, 7, RerankerParams::rmm());
  for (const auto& [user, reranker] :
       {std::pair<const char*, MemoryReranker*>{"sgd", sgd.get()}, {"rmm", rmm.get()}}) {
    MemorySession s(store.get(), user, model, {}, reranker);
    for (int turn = 0; turn < 4; ++turn) {
      const MemoryTurn t = s.begin_turn("Tell me about tea.");
      s.end_turn(t, "Tea [2].", {2});
    }
  }
  const Reranker a = load_reranker(*store, "sgd", 16), b = load_reranker(*store, "rmm", 16);
  ASSERT_EQ(a.steps(), 1);
  ASSERT_EQ(b.steps(), 1);
  // Adam's four moment matrices of 16 x 16 floats.
  EXPECT_EQ(b.to_bytes().size(), a.to_bytes().size() + 4 * 16 * 16 * sizeof(float));
}

// The server's sessions: one per (user, conversation); ended explicitly or when idle, with the
// clock passed in (no test waits for time to pass).
TEST_F(MemorySessionTest, ServerSessionsEndExplicitlyOrWhenIdle) {
  using Clock = server::MemorySessions::Clock;
  server::MemorySessions sessions(*store, model, std::chrono::seconds(600));
  const Clock::time_point t0{};
  const std::vector<ChatMessage> said = {{"user", "My hobby is chess."}};
  for (const char* conv : {"", "named"}) {
    auto t = sessions.begin("alice", conv, false, said, t0);
    EXPECT_EQ(sessions.show(*t, "Chess is fun [1]"), "Chess is fun");
    EXPECT_EQ(sessions.end(*t), "");
  }
  auto other = sessions.begin("bob", "", false, said, t0 + std::chrono::seconds(500));
  sessions.end(*other);
  EXPECT_EQ(sessions.open_conversations(), 3u);
  // A temporary turn opens no conversation.
  auto tmp = sessions.begin("alice", "", true, said, t0);
  EXPECT_TRUE(tmp->turn.system_prompt.empty());
  sessions.end(*tmp);
  EXPECT_EQ(sessions.open_conversations(), 3u);
  model.replies.push_back(
      R"({"extracted_memories": [{"summary": "User's hobby is chess.", "reference": [0]}]})");
  const ReflectionReport r = sessions.end_conversation("alice", "named");
  EXPECT_EQ(r.extracted, 1u);
  EXPECT_EQ(r.added, 1u);
  EXPECT_EQ(sessions.open_conversations(), 2u);
  EXPECT_EQ(sessions.end_conversation("alice", "nothing").extracted, 0u);
  EXPECT_EQ(sessions.reflect_idle(t0 + std::chrono::seconds(599)), 0u);
  EXPECT_EQ(sessions.reflect_idle(t0 + std::chrono::seconds(600)), 1u);  // alice's unnamed one
  EXPECT_EQ(sessions.open_conversations(), 1u);
  EXPECT_EQ(sessions.reflect_idle(t0 + std::chrono::seconds(1100)), 1u);  // bob's
  EXPECT_EQ(sessions.open_conversations(), 0u);
}

}  // namespace
}  // namespace engram::agent_memory

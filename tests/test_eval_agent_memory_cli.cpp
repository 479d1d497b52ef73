// `engram eval agent-memory` end to end on a small LoCoMo-shaped conversation written here (the
// real data stays in ../shared and is never copied into the repository): figures in [0, 1], the
// oracle-rewarded reranker no worse than the fixed retriever on the half it learned from, the
// same figures from two runs (and from one run of several seeds), and bad data named by file and
// field.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_runner.h"

namespace engram {
namespace {

using testing_cli::run_cli;
using testing_cli::TempFile;

const std::string kChatModel =
    std::string("'") + ENGRAM_SOURCE_DIR + "/models/engram-tiny-chat.gguf'";

// Two speakers, three sessions, facts stated once among small talk, questions about them.
nlohmann::json conversation(int variant) {
  const char* pets[] = {"a cat named Tuna", "a dog named Rex"};
  const char* cities[] = {"Lisbon", "Oslo"};
  const char* jobs[] = {"a nurse", "a baker"};
  nlohmann::json c;
  c["speaker_a"] = "Ann";
  c["speaker_b"] = "Bo";
  const std::vector<std::vector<std::string>> sessions = {
      {"Hi Bo, how are you?", "Great, thanks! And you?",
       std::string("I just adopted ") + pets[variant] + ".", "That is lovely news.",
       "We went to the park today.", "Sounds like fun."},
      {"Good morning!", "Morning, Ann.",
       std::string("I moved to ") + cities[variant] + " last week.",
       "How do you like the new city?", "The harbour is beautiful.", "I would love to visit."},
      {"Hey there.", "Hi!", std::string("I started working as ") + jobs[variant] + ".",
       "Congratulations on the job!", "My first shift is on Monday.", "Good luck with it."},
  };
  for (size_t s = 0; s < sessions.size(); ++s) {
    nlohmann::json turns = nlohmann::json::array();
    for (size_t t = 0; t < sessions[s].size(); ++t)
      turns.push_back({{"speaker", t % 2 ? "Bo" : "Ann"},
                       {"dia_id", "D" + std::to_string(s + 1) + ":" + std::to_string(t + 1)},
                       {"text", sessions[s][t]}});
    c["session_" + std::to_string(s + 1)] = turns;
    c["session_" + std::to_string(s + 1) + "_date_time"] = "1:00 pm on 1 May, 2023";
  }
  c["qa"] = nlohmann::json::array({
      {{"question", "What pet did Ann adopt?"},
       {"answer", pets[variant]},
       {"evidence", {"D1:3"}},
       {"category", 4}},
      {{"question", "Where did Ann move?"},
       {"answer", cities[variant]},
       {"evidence", {"D2:3"}},
       {"category", 4}},
      {{"question", "What is Ann's job?"},
       {"answer", jobs[variant]},
       {"evidence", {"D3:3"}},
       {"category", 4}},
      {{"question", "When is Ann's first shift?"},
       {"answer", "Monday"},
       {"evidence", {"D3:5"}},
       {"category", 2}},
      {{"question", "Where did Ann and her pet go?"},
       {"answer", "the park"},
       {"evidence", {"D1:3", "D1:5"}},
       {"category", 1}},
      {{"question", "What does Bo want to do?"},
       {"answer", "visit"},
       {"evidence", {"D2:6"}},
       {"category", 3}},
      {{"question", "What did Ann say about the harbour?"},
       {"adversarial_answer", "it is ugly"},
       {"evidence", {"D2:5"}},
       {"category", 5}},
      {{"question", "Does Ann have a pet?"},
       {"answer", "yes"},
       {"evidence", {"D1:3"}},
       {"category", 4}},
  });
  return c;
}

void check_figures(const nlohmann::json& j) {
  for (const auto& [key, e] : j.at("recall").items())
    for (const auto& [k, v] : e.items())
      if (k != "n") {
        EXPECT_GE(v.get<double>(), 0.0) << key << " " << k;
        EXPECT_LE(v.get<double>(), 1.0) << key << " " << k;
      }
  for (const char* k : {"fixed_r5", "learned_r5", "oracle_r5", "learned_citation_r5"}) {
    ASSERT_TRUE(j.contains(k)) << k;
    EXPECT_GE(j[k].get<double>(), 0.0);
    EXPECT_LE(j[k].get<double>(), 1.0);
  }
  EXPECT_GE(j["oracle_learn_r5"].get<double>(), j["fixed_learn_r5"].get<double>());
  EXPECT_EQ(j["questions"], 16);
  EXPECT_EQ(j["conversations"], 2);
  EXPECT_EQ(j["recall"]["turns/hybrid/test/r5"]["n"], 8);
  EXPECT_EQ(j["recall"]["turns/rerank-attention/learn/r5"]["n"], 8);
}

TEST(EvalAgentMemoryCli, SmallConversationsGiveSaneAndRepeatableFigures) {
  TempFile dir("locomo_small");
  std::filesystem::create_directories(dir.path());
  for (int v = 0; v < 2; ++v)
    std::ofstream(dir.path() + "/c" + std::to_string(v) + ".json") << conversation(v).dump(1);
  const std::string args =
      "eval agent-memory -q --json -t 1 -m " + kChatModel + " --data '" + dir.path() + "'";
  const auto a = run_cli(args);
  ASSERT_EQ(a.status, 0) << a.err;
  const auto last = [](const std::string& out) {
    const size_t end = out.find_last_not_of('\n');
    return out.substr(out.rfind('\n', end) + 1, end - out.rfind('\n', end));
  };
  nlohmann::json ja = nlohmann::json::parse(last(a.out));
  check_figures(ja);
  EXPECT_NE(a.out.find("turns    bm25"), std::string::npos) << a.out;

  const auto b = run_cli(args);
  ASSERT_EQ(b.status, 0) << b.err;
  nlohmann::json jb = nlohmann::json::parse(last(b.out));
  ja.erase("seconds");
  jb.erase("seconds");
  EXPECT_EQ(ja, jb);  // the same draws, the same rewards, the same figures
}

// The last line of a run's output (its JSON).
nlohmann::json last_json(const std::string& out) {
  const size_t end = out.find_last_not_of('\n');
  const size_t begin = out.rfind('\n', end) + 1;
  return nlohmann::json::parse(out.substr(begin, end + 1 - begin));
}

TEST(EvalAgentMemoryCli, DevProtocolNeverAsksTheHeldOutHalf) {
  TempFile dir("locomo_dev");
  std::filesystem::create_directories(dir.path());
  for (int v = 0; v < 2; ++v)
    std::ofstream(dir.path() + "/c" + std::to_string(v) + ".json") << conversation(v).dump(1);
  const auto a = run_cli("eval agent-memory -q --json -t 1 --no-model-rewards --dev -m " +
                         kChatModel + " --data '" + dir.path() + "' --first-stage --epochs 2" +
                         " --rewards oracle,negative --dense-weight 0.25 --rrf-k 10");
  ASSERT_EQ(a.status, 0) << a.err;
  const nlohmann::json j = last_json(a.out);
  EXPECT_TRUE(j["dev"].get<bool>());
  // 8 questions a conversation: positions 0, 2, 4, 6 are asked; 0 and 4 learn, 2 and 6 test.
  EXPECT_EQ(j["questions"], 8);
  EXPECT_EQ(j["recall"]["turns/hybrid/test/r5"]["n"], 4);
  EXPECT_EQ(j["recall"]["turns/rerank-oracle/learn/r5"]["n"], 4);
  EXPECT_TRUE(j["recall"].contains("turns/rerank-negative/test/r5"));
  EXPECT_FALSE(j["recall"].contains("turns/rerank-random/test/r5"));
  EXPECT_EQ(j["params"]["dense_weight"], 0.25);
  EXPECT_EQ(j["params"]["rrf_k"], 10.0);
  EXPECT_EQ(j["params"]["epochs"], 2);
  EXPECT_EQ(j["rewards"]["oracle"]["draws"], 8);  // 2 epochs over 2 x 2 learning questions

  const auto bad = run_cli("eval agent-memory -q -t 1 --no-model-rewards -m " + kChatModel +
                           " --data '" + dir.path() + "' --rewards oracle,guess");
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.err.find("--rewards 'guess'"), std::string::npos) << bad.err;
  const auto bad_epochs = run_cli("eval agent-memory -q -t 1 --no-model-rewards -m " + kChatModel +
                                  " --data '" + dir.path() + "' --epochs 0");
  EXPECT_EQ(bad_epochs.status, 1);
  EXPECT_NE(bad_epochs.err.find("--epochs 0"), std::string::npos) << bad_epochs.err;
}

// --seeds: the rerankers of several seeds in one run, each exactly as its seed's run alone learns
// it (the same draws, rewards and figures).
TEST(EvalAgentMemoryCli, SeveralSeedsInOneRunEqualTheirRunsAlone) {
  TempFile dir("locomo_seeds");
  std::filesystem::create_directories(dir.path());
  for (int v = 0; v < 2; ++v)
    std::ofstream(dir.path() + "/c" + std::to_string(v) + ".json") << conversation(v).dump(1);
  const std::string args = "eval agent-memory -q --json -t 1 -m " + kChatModel + " --data '" +
                           dir.path() + "' --top-m 3 --top-k 10 --lr 5";
  const auto both = run_cli(args + " --seed 3 --seeds 2");
  const auto first = run_cli(args + " --seed 3");
  const auto second = run_cli(args + " --seed 4");
  ASSERT_EQ(both.status, 0) << both.err;
  ASSERT_EQ(first.status, 0) << first.err;
  ASSERT_EQ(second.status, 0) << second.err;
  const nlohmann::json jb = last_json(both.out), j1 = last_json(first.out),
                       j2 = last_json(second.out);
  ASSERT_EQ(jb["per_seed"].size(), 2u);
  EXPECT_EQ(jb["per_seed"][0], j1["per_seed"][0]);
  EXPECT_EQ(jb["per_seed"][1], j2["per_seed"][0]);
  EXPECT_EQ(jb["per_seed"][1]["seed"], 4);
  for (const char* l : {"oracle", "negative", "random", "attention", "citation"}) {
    const std::string key = std::string("turns/rerank-") + l + "@4/test/r5";
    ASSERT_TRUE(jb["recall"].contains(key)) << key;
    EXPECT_EQ(jb["recall"][key], j2["recall"][std::string("turns/rerank-") + l + "/test/r5"]);
    EXPECT_EQ(jb["recall"][std::string("turns/rerank-") + l + "/learn/r10"],
              j1["recall"][std::string("turns/rerank-") + l + "/learn/r10"]);
    EXPECT_EQ(jb["rewards"][std::string(l) + "@4"], j2["rewards"][l]) << l;
  }
  EXPECT_EQ(jb["learned_r5"], j1["learned_r5"]);
  const auto bad = run_cli(args + " --seeds 0");
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.err.find("--seeds 0"), std::string::npos) << bad.err;
}

// With each draw's mean reward as the baseline, rewards that are all the same teach nothing: the
// all -1 control keeps the fixed order exactly (with the fixed baseline 0.5 it pushes down
// whatever was shown, and the order moves).
TEST(EvalAgentMemoryCli, DrawMeanBaselineLearnsNothingFromEqualRewards) {
  TempFile dir("locomo_draw_baseline");
  std::filesystem::create_directories(dir.path());
  for (int v = 0; v < 2; ++v)
    std::ofstream(dir.path() + "/c" + std::to_string(v) + ".json") << conversation(v).dump(1);
  const std::string args = "eval agent-memory -q --json -t 1 --no-model-rewards -m " + kChatModel +
                           " --data '" + dir.path() +
                           "' --rewards negative --optimizer sgd --lr 10 --top-m 3 --top-k 10";
  const auto fixed = run_cli(args + " --baseline 0.5");
  const auto centred = run_cli(args);  // the default
  ASSERT_EQ(fixed.status, 0) << fixed.err;
  ASSERT_EQ(centred.status, 0) << centred.err;
  const nlohmann::json jf = last_json(fixed.out), jc = last_json(centred.out);
  EXPECT_TRUE(jc["params"]["draw_mean_baseline"].get<bool>());
  EXPECT_FALSE(jf["params"]["draw_mean_baseline"].get<bool>());
  EXPECT_EQ(jf["params"]["baseline"], 0.5);
  // The flag names the default; with a fixed baseline it is a contradiction.
  const auto both = run_cli(args + " --draw-baseline --baseline 0.5");
  EXPECT_NE(both.status, 0);
  for (const char* half : {"learn", "test"})
    for (const char* k : {"r5", "r10"}) {
      const std::string neg = std::string("turns/rerank-negative/") + half + "/" + k;
      const std::string hyb = std::string("turns/hybrid/") + half + "/" + k;
      EXPECT_EQ(jc["recall"][neg], jc["recall"][hyb]) << neg;
    }
  // R@10 of 10 candidates does not depend on their order; R@5 does.
  EXPECT_TRUE(jf["recall"]["turns/rerank-negative/learn/r5"] !=
                  jf["recall"]["turns/hybrid/learn/r5"] ||
              jf["recall"]["turns/rerank-negative/test/r5"] != jf["recall"]["turns/hybrid/test/r5"])
      << jf["recall"]["turns/rerank-negative/learn/r5"] << jf["recall"]["turns/hybrid/learn/r5"];
}

// Topic memories: the shipped chat model's extraction of every session, cached in a file; a
// second run reads the cache and gives the same figures.
TEST(EvalAgentMemoryCli, TopicMemoriesAreExtractedOnceAndScoredByTheirReferences) {
  TempFile dir("locomo_topics");
  std::filesystem::create_directories(dir.path());
  std::ofstream(dir.path() + "/c0.json") << conversation(0).dump(1);
  TempFile cache("locomo_topics.db");
  const std::string args = "eval agent-memory -q --json -t 1 --no-model-rewards -m " + kChatModel +
                           " --data '" + dir.path() + "' --topics-db '" + cache.path() + "'";
  const auto a = run_cli(args);
  ASSERT_EQ(a.status, 0) << a.err;
  nlohmann::json ja = last_json(a.out);
  EXPECT_NE(a.out.find("topics   hybrid"), std::string::npos) << a.out;
  const nlohmann::json& t = ja["topics"];
  EXPECT_EQ(t["reflections"], 6);  // 3 sessions, each speaker once as the user
  EXPECT_EQ(t["cached_conversations"], 0);
  EXPECT_EQ(t["memories"].get<int>(),
            t["added"].get<int>());  // a fresh bank: every memory stored was an add
  EXPECT_GE(t["extracted"].get<int>(),
            t["added"].get<int>() + t["merged"].get<int>() + t["unchanged"].get<int>());
  EXPECT_EQ(ja["recall"]["topics/hybrid/all/r5"]["n"], 8);
  for (const char* k : {"topics/bm25/all/r5", "topics/dense/all/r10", "topics/hybrid/all/r10"}) {
    EXPECT_GE(ja["recall"][k]["all"].get<double>(), 0.0) << k;
    EXPECT_LE(ja["recall"][k]["all"].get<double>(), 1.0) << k;
  }
  const auto b = run_cli(args);
  ASSERT_EQ(b.status, 0) << b.err;
  nlohmann::json jb = last_json(b.out);
  EXPECT_EQ(jb["topics"]["cached_conversations"], 1);
  EXPECT_EQ(jb["recall"]["topics/hybrid/all/r5"], ja["recall"]["topics/hybrid/all/r5"]);
  EXPECT_EQ(jb["recall"]["topics/bm25/all/r10"], ja["recall"]["topics/bm25/all/r10"]);
  EXPECT_EQ(jb["topics"]["wall_seconds"], ja["topics"]["wall_seconds"]);  // the cached record
  // The topics' own store: the turns' and sessions' figures are those of a run without topics.
  const auto c = run_cli("eval agent-memory -q --json -t 1 --no-model-rewards -m " + kChatModel +
                         " --data '" + dir.path() + "'");
  ASSERT_EQ(c.status, 0) << c.err;
  const nlohmann::json jc = last_json(c.out);
  EXPECT_FALSE(jc["recall"].contains("topics/hybrid/all/r5"));
  for (const auto& [key, e] : jc["recall"].items()) EXPECT_EQ(ja["recall"][key], e) << key;
}

TEST(EvalAgentMemoryCli, BadDataIsNamedByFileAndField) {
  TempFile dir("locomo_bad");
  std::filesystem::create_directories(dir.path());
  const std::string base = "eval agent-memory -q -t 1 -m " + kChatModel + " --data '";
  auto r = run_cli(base + dir.path() + "/missing'");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("is not a directory"), std::string::npos) << r.err;
  r = run_cli(base + dir.path() + "'");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("no .json file"), std::string::npos) << r.err;

  nlohmann::json c = conversation(0);
  c["qa"][2]["category"] = "four";
  std::ofstream(dir.path() + "/bad.json") << c.dump();
  r = run_cli(base + dir.path() + "'");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("bad.json.qa[2].category: expected an integer 1-5"), std::string::npos)
      << r.err;
  c = conversation(0);
  c["session_2"][1].erase("text");
  std::ofstream(dir.path() + "/bad.json") << c.dump();
  r = run_cli(base + dir.path() + "'");
  EXPECT_NE(r.err.find("bad.json.session_2[1]: missing field \"text\""), std::string::npos)
      << r.err;
  std::ofstream(dir.path() + "/bad.json") << "{\"qa\": [";
  r = run_cli(base + dir.path() + "'");
  EXPECT_NE(r.err.find("bad.json: not valid JSON"), std::string::npos) << r.err;

  std::ofstream(dir.path() + "/bad.json") << conversation(0).dump();
  r = run_cli(base + dir.path() + "' --top-m 0");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("--top-m 0"), std::string::npos) << r.err;
  // Model rewards need a chat model's ChatML tokens.
  r = run_cli("eval agent-memory -q -t 1 -m '" + std::string(ENGRAM_SOURCE_DIR) +
              "/models/engram-tiny.gguf' --data '" + dir.path() + "'");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("--no-model-rewards"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace engram

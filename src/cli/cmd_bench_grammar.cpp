// `engram bench grammar`: the MaskBench protocol over a directory of MaskBench files.
//
// Each file holds a JSON Schema and test instances ({"data": ..., "valid": bool}). For each
// schema: compile it (timed); for each instance, serialise `data` as Python's
// json.dumps(data, ensure_ascii=False) does (", " and ": " separators), tokenize it without
// BOS, and for every token compute the mask (timed) and commit the token. A valid instance
// must have every token allowed and end in an accepting state; an invalid one must be refused
// at some token (or not be complete at its end). A schema passes when it compiles and all
// its instances behave.
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <time.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "engram/error.h"
#include "engram/gguf.h"
#include "engram/grammar.h"
#include "engram/tokenizer.h"

namespace engram::cli {
namespace {

using ojson = nlohmann::ordered_json;

struct BenchGrammarOptions {
  std::string tokenizer;
  std::string data;
  bool json = false;
  int limit = 0;
  int threads = 1;
  std::string failures;
  bool check = false;
};

// Python's json.dumps(v, ensure_ascii=False) with its default separators.
void py_dumps(const ojson& v, std::string& out) {
  if (v.is_object()) {
    out += '{';
    bool first = true;
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (!first) out += ", ";
      first = false;
      out += ojson(it.key()).dump();
      out += ": ";
      py_dumps(it.value(), out);
    }
    out += '}';
  } else if (v.is_array()) {
    out += '[';
    for (size_t i = 0; i < v.size(); ++i) {
      if (i) out += ", ";
      py_dumps(v[i], out);
    }
    out += ']';
  } else {
    out += v.dump();
  }
}

// CPU time of this thread: on a machine shared with other work it measures the work itself;
// wall time adds the wait for a core.
double thread_cpu_us() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return 1e6 * static_cast<double>(t.tv_sec) + 1e-3 * static_cast<double>(t.tv_nsec);
}

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  const size_t k = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

struct Dist {
  double avg = 0, p50 = 0, p90 = 0, p99 = 0, max = 0;
};

Dist distribution(std::vector<double> v) {
  Dist d;
  if (v.empty()) return d;
  double sum = 0;
  for (double x : v) sum += x;
  d.avg = sum / static_cast<double>(v.size());
  d.max = *std::max_element(v.begin(), v.end());
  d.p50 = percentile(v, 0.50);
  d.p90 = percentile(v, 0.90);
  d.p99 = percentile(v, 0.99);
  return d;
}

void bench_grammar(const BenchGrammarOptions& o) {
  if (o.threads != 1)
    throw Error("bench grammar: only -t 1 is supported (the protocol is single-threaded)");
  if (o.limit < 0) throw Error(fmt::format("bench grammar: --limit must be >= 0, got {}", o.limit));
  namespace fs = std::filesystem;
  if (!fs::is_directory(o.data))
    throw Error(fmt::format("bench grammar: --data {}: not a directory", o.data));
  auto file = GgufFile::open(o.tokenizer);
  auto tok = Tokenizer::from_gguf(*file);
  auto vocab = std::make_shared<GrammarVocab>(*tok);

  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(o.data)) {
    if (e.is_regular_file() && e.path().extension() == ".json") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  if (o.limit > 0 && files.size() > static_cast<size_t>(o.limit)) files.resize(o.limit);
  if (files.empty()) throw Error(fmt::format("bench grammar: no .json files in {}", o.data));

  std::ofstream fail_log;
  if (!o.failures.empty()) {
    fail_log.open(o.failures);
    if (!fail_log)
      throw Error(fmt::format("bench grammar: --failures {}: cannot write", o.failures));
  }
  auto log = [&](const fs::path& f, const char* what, const std::string& msg) {
    if (fail_log) fail_log << f.filename().string() << '\t' << what << '\t' << msg << '\n';
  };

  int64_t schemas = 0, passing = 0, compile_error = 0, validation_error = 0, invalidation_error = 0,
          crashes = 0, tokens = 0, instances = 0;
  std::vector<double> mask_us, compile_us, mask_wall_us, compile_wall_us;
  std::vector<uint64_t> bits;
  using clock = std::chrono::steady_clock;
  const auto t_start = clock::now();
  for (size_t fi = 0; fi < files.size(); ++fi) {
    const fs::path& f = files[fi];
    ojson doc;
    {
      std::ifstream in(f);
      std::stringstream ss;
      ss << in.rdbuf();
      try {
        doc = ojson::parse(ss.str());
      } catch (const std::exception& e) {
        throw Error(fmt::format("bench grammar: {}: not JSON: {}", f.string(), e.what()));
      }
    }
    if (!doc.contains("schema") || !doc.contains("tests")) {
      throw Error(fmt::format("bench grammar: {}: no 'schema' or 'tests'", f.string()));
    }
    ++schemas;
    std::shared_ptr<const Grammar> g;
    const auto c0 = clock::now();
    const double c0_cpu = thread_cpu_us();
    try {
      g = Grammar::from_json_schema(doc["schema"].dump());
    } catch (const Error& e) {
      ++compile_error;
      log(f, "compile_error", e.what());
      continue;
    } catch (const std::exception& e) {
      ++crashes;
      log(f, "crash", std::string("compile: ") + e.what());
      continue;
    }
    compile_us.push_back(thread_cpu_us() - c0_cpu);
    compile_wall_us.push_back(std::chrono::duration<double, std::micro>(clock::now() - c0).count());
    bool pass = true;
    bool crashed = false;
    for (const auto& t : doc["tests"]) {
      ++instances;
      std::string text;
      py_dumps(t["data"], text);
      const bool valid = t.value("valid", false);
      const auto ids = tok->encode(text, false, false);
      try {
        GrammarMatcher m(g, vocab);
        bool refused = false;
        size_t at = 0;
        for (; at < ids.size(); ++at) {
          const auto m0 = clock::now();
          const double m0_cpu = thread_cpu_us();
          m.fill_mask(bits);
          mask_us.push_back(thread_cpu_us() - m0_cpu);
          mask_wall_us.push_back(
              std::chrono::duration<double, std::micro>(clock::now() - m0).count());
          ++tokens;
          const int32_t id = ids[at];
          const bool allowed = (bits[id >> 6] >> (id & 63)) & 1;
          if (o.check && allowed != m.allows(id)) {
            throw std::runtime_error(
                fmt::format("mask and allows() disagree on token {} at {}", id, at));
          }
          if (!allowed) {
            refused = true;
            break;
          }
          if (!m.accept(id))
            throw std::runtime_error("a token in the mask was refused by accept()");
        }
        if (!refused && !m.accepting()) refused = true;
        if (valid && refused) {
          ++validation_error;
          pass = false;
          std::string upto =
              tok->decode(std::span<const int32_t>(ids.data(), std::min(at + 1, ids.size())));
          log(f, "validation_error",
              fmt::format("token {} of {}: ...{}", at, ids.size(),
                          upto.substr(upto.size() > 80 ? upto.size() - 80 : 0)));
          break;
        }
        if (!valid && !refused) {
          ++invalidation_error;
          pass = false;
          log(f, "invalidation_error", text.substr(0, 300));
          break;
        }
      } catch (const std::exception& e) {
        ++crashes;
        crashed = true;
        pass = false;
        log(f, "crash", e.what());
        break;
      }
    }
    (void)crashed;
    if (pass) ++passing;
    const double file_s = std::chrono::duration<double>(clock::now() - c0).count();
    if (file_s > 1.0) log(f, "slow", fmt::format("{:.1f} s", file_s));
    if (!o.json && (fi + 1) % 500 == 0) {
      std::fprintf(stderr, "%zu/%zu files, %lld passing, %.0f s\n", fi + 1, files.size(),
                   static_cast<long long>(passing),
                   std::chrono::duration<double>(clock::now() - t_start).count());
    }
  }
  const Dist mask = distribution(mask_us), comp = distribution(compile_us);
  const Dist mask_wall = distribution(mask_wall_us), comp_wall = distribution(compile_wall_us);
  if (o.json) {
    nlohmann::json j = {
        {"schemas", schemas},
        {"passing", passing},
        {"compile_error", compile_error},
        {"validation_error", validation_error},
        {"invalidation_error", invalidation_error},
        {"crashes", crashes},
        {"instances", instances},
        {"tokens", tokens},
        {"mask_us_avg", mask.avg},
        {"mask_us_p50", mask.p50},
        {"mask_us_p90", mask.p90},
        {"mask_us_p99", mask.p99},
        {"mask_us_max", mask.max},
        {"compile_us_avg", comp.avg},
        {"compile_us_p50", comp.p50},
        {"compile_us_p90", comp.p90},
        {"compile_us_p99", comp.p99},
        {"compile_us_max", comp.max},
        {"mask_wall_us_avg", mask_wall.avg},
        {"mask_wall_us_p99", mask_wall.p99},
        {"compile_wall_us_p50", comp_wall.p50},
        {"compile_wall_us_p99", comp_wall.p99},
    };
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  auto pct = [&](int64_t x) {
    return 100.0 * static_cast<double>(x) / static_cast<double>(schemas);
  };
  std::printf("schemas             %lld\n", static_cast<long long>(schemas));
  std::printf("passing             %lld (%.1f%%)\n", static_cast<long long>(passing), pct(passing));
  std::printf("compile errors      %lld (%.1f%%)\n", static_cast<long long>(compile_error),
              pct(compile_error));
  std::printf("validation errors   %lld (valid instance rejected)\n",
              static_cast<long long>(validation_error));
  std::printf("invalidation errors %lld (invalid instance accepted)\n",
              static_cast<long long>(invalidation_error));
  std::printf("crashes             %lld\n", static_cast<long long>(crashes));
  std::printf("instances %lld, tokens %lld\n", static_cast<long long>(instances),
              static_cast<long long>(tokens));
  std::printf("mask us     avg %.1f  p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n", mask.avg, mask.p50,
              mask.p90, mask.p99, mask.max);
  std::printf("compile us  avg %.1f  p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n", comp.avg, comp.p50,
              comp.p90, comp.p99, comp.max);
  std::printf("(thread CPU time; wall time: mask avg %.1f p99 %.1f, compile p50 %.1f p99 %.1f)\n",
              mask_wall.avg, mask_wall.p99, comp_wall.p50, comp_wall.p99);
}

}  // namespace

void add_bench_grammar_command(CLI::App& bench) {
  auto o = std::make_shared<BenchGrammarOptions>();
  CLI::App* cmd = bench.add_subcommand(
      "grammar", "MaskBench: JSON Schema compile and token-mask correctness and speed");
  cmd->add_option("--tokenizer", o->tokenizer, "GGUF file with the vocabulary (e.g. Llama-3's)")
      ->required();
  cmd->add_option("--data", o->data, "Directory of MaskBench .json files")->required();
  cmd->add_flag("--json", o->json, "Print the totals as one JSON object");
  cmd->add_option("--limit", o->limit, "Only the first N files (sorted by name)");
  cmd->add_option("-t,--threads", o->threads, "Threads (1: the protocol is single-threaded)")
      ->capture_default_str();
  cmd->add_option("--failures", o->failures, "Write one line per failing schema to FILE");
  cmd->add_flag("--check", o->check, "Also check every mask bit taken against allows()");
  cmd->callback([o] { bench_grammar(*o); });
}

}  // namespace engram::cli

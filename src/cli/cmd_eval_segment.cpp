// `engram eval segment`: event boundaries against true document boundaries. Held-out documents
// (separated by blank lines) are concatenated into one stream and read by chunked prefill under
// a memory policy (episodic by default); the surprise of every token and the keys of the upper
// layers are recorded on the way. From them the command builds the segmentations EM-LLM compares
// -- surprise (S), surprise refined by modularity (SM) or conductance (SC), fixed-size with the
// same number of events (F, FM, FC) and random boundaries with that number (R, averaged over
// draws) -- and reports for each the recall of the document boundaries within +-k tokens and the
// graph metrics of its events on the key-similarity graph of consecutive windows of tokens.
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/memory_options.h"
#include "engram/context.h"
#include "engram/error.h"
#include "engram/model.h"
#include "engram/thread_pool.h"
#include "engram/tokenizer.h"
#include "eval/boundaries.h"
#include "eval/document_stream.h"
#include "memory/graph_metrics.h"
#include "memory/segment.h"

namespace engram::cli {
namespace {

struct SegmentOptions {
  std::string model;
  std::string file;
  int64_t max_tokens = 0;
  int64_t k = 2;
  std::vector<int64_t> ks = {0, 1, 2, 4, 8, 16, 32};
  int window = 512;
  int trials = 10;
  int64_t seed = 1;
  std::vector<double> gammas;  // extra surprise thresholds: rows S/F/R@gamma
  std::string separator;       // text between documents; "" = none (each document on its own)
  int threads = 0;
  std::string json_out;
  std::string csv_out;
  bool quiet = false;
  MemoryOptions memory;
};

// Forwards everything to the policy that runs the stream and keeps, as blocks are applied, the
// surprise of every token and its keys (before RoPE) of the upper half of the layers, the layers
// boundary refinement uses.
class RecordingPolicy final : public MemoryPolicy {
 public:
  RecordingPolicy(std::unique_ptr<MemoryPolicy> inner, int n_layer, int kv_dim)
      : inner_(std::move(inner)), l0_(n_layer / 2), n_layer_(n_layer), kv_dim_(kv_dim) {}

  std::string name() const override { return inner_->name(); }
  PolicyNeeds needs() const override {
    PolicyNeeds n = inner_->needs();
    n.qk = true;
    n.surprise = true;
    return n;
  }
  int64_t capacity() const override { return inner_->capacity(); }
  int max_block() const override { return inner_->max_block(); }
  int64_t settled_cells() const override { return inner_->settled_cells(); }
  void plan(int layer, const QueryBlock& block, const std::vector<KvCell>& cells,
            const BlockData& data, AttentionPlan& out) const override {
    inner_->plan(layer, block, cells, data, out);
  }
  void apply(const QueryBlock& block, const std::vector<KvCell>& cells, const BlockData& data,
             Eviction& evict) override {
    const int n = block.n_tokens;
    surprise_.insert(surprise_.end(), data.surprise.begin(), data.surprise.begin() + n);
    for (int i = 0; i < n; ++i) {
      for (int l = l0_; l < n_layer_; ++l) {
        const float* row = data.k[l].data() + size_t(i) * kv_dim_;
        keys_.insert(keys_.end(), row, row + kv_dim_);
      }
    }
    inner_->apply(block, cells, data, evict);
  }
  void reset() override {
    inner_->reset();
    surprise_.clear();
    keys_.clear();
  }
  int64_t units() const override { return inner_->units(); }
  uint64_t bytes() const override { return inner_->bytes(); }

  const std::vector<float>& surprise() const { return surprise_; }
  const std::vector<float>& keys() const { return keys_; }
  int key_dim() const { return (n_layer_ - l0_) * kv_dim_; }

 private:
  std::unique_ptr<MemoryPolicy> inner_;
  int l0_, n_layer_, kv_dim_;
  std::vector<float> surprise_;
  std::vector<float> keys_;  // [token][(n_layer - l0) * kv_dim]
};

// \n, \t and \\ in a command-line value as the characters they name.
std::string unescape(const std::string& in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '\\' || i + 1 == in.size()) {
      out += in[i];
      continue;
    }
    const char c = in[++i];
    if (c == 'n')
      out += '\n';
    else if (c == 't')
      out += '\t';
    else if (c == '\\')
      out += '\\';
    else
      throw Error(fmt::format("eval segment: --separator: unknown escape '\\{}'", c));
  }
  return out;
}

struct Row {
  std::string name;
  std::vector<std::vector<int64_t>> sets;  // one segmentation, or several random draws
  double events = 0;
  std::vector<double> recall;  // per opts.ks
  double modularity = 0, conductance = 0, intra_inter = 0;
  int64_t windows = 0;  // (window, draw) pairs the graph metrics average over
};

void segment(const SegmentOptions& o) {
  if (o.k < 0) throw Error(fmt::format("eval segment: --tolerance must be >= 0, got {}", o.k));
  for (int64_t k : o.ks) {
    if (k < 0) throw Error(fmt::format("eval segment: --tolerances value {} must be >= 0", k));
  }
  if (o.window < 2)
    throw Error(fmt::format("eval segment: --window must be >= 2, got {}", o.window));
  if (o.trials < 1)
    throw Error(fmt::format("eval segment: --trials must be >= 1, got {}", o.trials));
  for (double g : o.gammas) {
    if (!(g >= 0)) throw Error(fmt::format("eval segment: --gammas value {} must be >= 0", g));
  }
  std::vector<int64_t> ks = o.ks;
  if (std::find(ks.begin(), ks.end(), o.k) == ks.end()) ks.push_back(o.k);
  std::sort(ks.begin(), ks.end());

  auto model = Model::load(o.model);
  auto tok = Tokenizer::from_gguf(model->file());
  const std::vector<std::string> docs = split_documents(read_text_file(o.file));
  if (docs.size() < 2) {
    throw Error(
        fmt::format("eval segment: '{}' holds {} document(s); need at least 2 separated "
                    "by a blank line",
                    o.file, docs.size()));
  }
  // The stream; a true boundary is the first token of every document after the first.
  DocumentStream ds = document_stream(*tok, docs, unescape(o.separator));
  std::vector<int32_t>& stream = ds.tokens;
  std::vector<int64_t>& truth = ds.starts;
  if (o.max_tokens > 0 && int64_t(stream.size()) > o.max_tokens) stream.resize(o.max_tokens);
  const int64_t n = static_cast<int64_t>(stream.size());

  const ModelConfig& c = model->config();
  const ModelShape shape = model_shape(model->config());
  MemoryParams resolved = o.memory.params;
  resolved.refine = Refine::none;  // refinement is applied below, per segmentation
  resolved = resolve_memory_params(resolved, shape);
  const SegmenterParams seg{resolved.gamma, resolved.tau, resolved.min_event, resolved.max_event};
  // Events start where the episodic policy starts them: after the initial tokens.
  const int64_t begin = resolved.n_init;
  truth.erase(
      std::remove_if(truth.begin(), truth.end(), [&](int64_t b) { return b <= begin || b >= n; }),
      truth.end());
  if (truth.empty()) {
    throw Error(
        fmt::format("eval segment: no document boundary inside tokens ({}, {}); use more "
                    "text or a larger --max-tokens",
                    begin, n));
  }

  ThreadPool pool(o.threads > 0 ? o.threads : default_thread_count());
  auto recorder = std::make_unique<RecordingPolicy>(make_policy(o.memory, *model, 0), c.n_layer,
                                                    c.n_head_kv * c.head_dim);
  RecordingPolicy& rec = *recorder;
  Context ctx(*model, pool, {}, std::move(recorder));
  if (n > ctx.n_ctx()) {
    throw Error(
        fmt::format("eval segment: memory {} holds {} tokens, the stream has {}; use a "
                    "policy that streams (episodic) or --max-tokens",
                    ctx.policy().name(), ctx.n_ctx(), n));
  }
  const auto t0 = std::chrono::steady_clock::now();
  prefill(ctx, stream, !o.quiet);
  const double prefill_s = seconds_since(t0);
  const int dim = rec.key_dim();
  const float* keys = rec.keys().data();

  // The segmentations.
  std::vector<Row> rows;
  auto add = [&](const char* name, std::vector<std::vector<int64_t>> sets) {
    Row r;
    r.name = name;
    r.sets = std::move(sets);
    rows.push_back(std::move(r));
  };
  const std::vector<int64_t> S = surprise_boundaries(rec.surprise(), begin, seg);
  const int64_t count = static_cast<int64_t>(S.size());
  if (count == 0) throw Error("eval segment: surprise formed a single event; nothing to compare");
  const std::vector<int64_t> F = fixed_boundaries(begin, n, count);
  add("S", {S});
  add("SM", {refine_boundaries(S, begin, n, keys, dim, seg, Refine::modularity)});
  add("SC", {refine_boundaries(S, begin, n, keys, dim, seg, Refine::conductance)});
  add("F", {F});
  add("FM", {refine_boundaries(F, begin, n, keys, dim, seg, Refine::modularity)});
  add("FC", {refine_boundaries(F, begin, n, keys, dim, seg, Refine::conductance)});
  std::vector<std::vector<int64_t>> draws;
  for (int t = 0; t < o.trials; ++t) {
    draws.push_back(random_boundaries(begin, n, count, static_cast<uint64_t>(o.seed) + t));
  }
  add("R", std::move(draws));
  // Other thresholds on the same surprise series: fewer, larger events, and their baselines.
  for (double g : o.gammas) {
    SegmenterParams sg = seg;
    sg.gamma = g;
    const std::vector<int64_t> Sg = surprise_boundaries(rec.surprise(), begin, sg);
    const int64_t cg = static_cast<int64_t>(Sg.size());
    if (cg == 0) continue;
    const std::string tag = fmt::format("@{}", g);
    add(("S" + tag).c_str(), {Sg});
    add(("F" + tag).c_str(), {fixed_boundaries(begin, n, cg)});
    std::vector<std::vector<int64_t>> dg;
    for (int t = 0; t < o.trials; ++t) {
      dg.push_back(random_boundaries(begin, n, cg, static_cast<uint64_t>(o.seed) + t));
    }
    add(("R" + tag).c_str(), std::move(dg));
  }

  // How surprising the first token of a document is, and the token before it (the end of the
  // previous document, or the separator), next to every token of the stream.
  std::vector<float> sorted(rec.surprise().begin() + begin, rec.surprise().end());
  std::sort(sorted.begin(), sorted.end());
  double s_mean = 0, s_var = 0;
  for (float v : sorted) s_mean += v;
  s_mean /= sorted.size();
  for (float v : sorted) s_var += (v - s_mean) * (v - s_mean);
  struct MeanPercentile {
    double mean = 0, percentile = 0;
  };
  auto at_offset = [&](int64_t off) {
    MeanPercentile m;
    for (int64_t b : truth) {
      const float v = rec.surprise()[b + off];
      m.mean += v / truth.size();
      m.percentile += 100.0 *
                      double(std::lower_bound(sorted.begin(), sorted.end(), v) - sorted.begin()) /
                      sorted.size() / truth.size();
    }
    return m;
  };
  const MeanPercentile first = at_offset(0), before = at_offset(-1);

  // Recall of the document boundaries.
  for (Row& r : rows) {
    r.recall.assign(ks.size(), 0.0);
    for (const auto& b : r.sets) {
      r.events += double(b.size() + 1) / r.sets.size();
      for (size_t i = 0; i < ks.size(); ++i) {
        r.recall[i] += boundary_recall(truth, b, ks[i]) / r.sets.size();
      }
    }
  }

  // Graph metrics per window of consecutive tokens, on the same graphs for every segmentation;
  // a (window, segmentation) pair counts only when the window holds at least two events.
  const int64_t n_windows = (n - begin) / o.window;
  std::vector<std::pair<size_t, size_t>> sets;  // (row, set)
  for (size_t r = 0; r < rows.size(); ++r) {
    for (size_t s = 0; s < rows[r].sets.size(); ++s) sets.push_back({r, s});
  }
  struct Acc {
    double mod = 0, con = 0, ratio = 0;
    int64_t n = 0;
  };
  std::vector<Acc> acc(size_t(n_windows) * sets.size());
  const auto t1 = std::chrono::steady_clock::now();
  pool.parallel_for_dynamic(n_windows, 1, [&](int64_t w_lo, int64_t w_hi) {
    for (int64_t w = w_lo; w < w_hi; ++w) {
      const int64_t w0 = begin + w * o.window, w1 = w0 + o.window;
      const std::vector<double> A = key_similarity_graph(keys + size_t(w0) * dim, o.window, dim);
      for (size_t i = 0; i < sets.size(); ++i) {
        const std::vector<int> label =
            window_labels(rows[sets[i].first].sets[sets[i].second], w0, w1);
        if (label.front() == label.back()) continue;
        Acc& a = acc[size_t(w) * sets.size() + i];
        a.mod = partition_modularity(A, o.window, label);
        a.con = partition_conductance(A, o.window, label);
        a.ratio = intra_inter_ratio(A, o.window, label);
        a.n = 1;
      }
    }
  });
  for (int64_t w = 0; w < n_windows; ++w) {
    for (size_t i = 0; i < sets.size(); ++i) {
      const Acc& a = acc[size_t(w) * sets.size() + i];
      Row& r = rows[sets[i].first];
      r.modularity += a.mod;
      r.conductance += a.con;
      r.intra_inter += a.ratio;
      r.windows += a.n;
    }
  }
  for (Row& r : rows) {
    if (r.windows == 0) continue;
    r.modularity /= r.windows;
    r.conductance /= r.windows;
    r.intra_inter /= r.windows;
  }
  const double graph_s = seconds_since(t1);
  const size_t k_at = size_t(std::find(ks.begin(), ks.end(), o.k) - ks.begin());

  std::printf(
      "%lld tokens, %zu documents (%zu boundaries after token %lld), memory %s, %.0f tok/s\n",
      (long long)n, docs.size(), truth.size(), (long long)begin, ctx.policy().name().c_str(),
      n / std::max(prefill_s, 1e-9));
  std::printf("graph metrics over %lld windows of %d tokens; R averaged over %d draws\n",
              (long long)n_windows, o.window, o.trials);
  std::printf("%-6s %8s %10s %11s %12s %12s\n", "seg", "events",
              fmt::format("recall@{}", o.k).c_str(), "modularity", "conductance", "intra/inter");
  for (const Row& r : rows) {
    std::printf("%-6s %8.0f %10.3f %11.4f %12.4f %12.4f\n", r.name.c_str(), r.events,
                r.recall[k_at], r.modularity, r.conductance, r.intra_inter);
  }
  std::printf(
      "surprise: mean %.2f nats (std %.2f); first tokens of documents %.2f (percentile %.0f), "
      "the tokens before them %.2f (percentile %.0f)\n",
      s_mean, std::sqrt(s_var / sorted.size()), first.mean, first.percentile, before.mean,
      before.percentile);
  if (!o.quiet) std::fprintf(stderr, "graph metrics: %.1f s\n", graph_s);

  if (!o.json_out.empty()) {
    nlohmann::json j;
    j["task"] = "segment";
    j["model"] = o.model;
    j["file"] = o.file;
    j["memory"] = ctx.policy().name();
    j["n_tokens"] = n;
    j["n_documents"] = docs.size();
    j["n_boundaries"] = truth.size();
    j["separator"] = o.separator;
    j["begin"] = begin;
    j["k"] = o.k;
    j["ks"] = ks;
    j["window"] = o.window;
    j["n_windows"] = n_windows;
    j["trials"] = o.trials;
    j["seed"] = o.seed;
    j["gamma"] = seg.gamma;
    j["tau"] = seg.tau;
    j["min_event"] = seg.min_event;
    j["max_event"] = seg.max_event;
    j["prefill_tok_per_s"] = n / std::max(prefill_s, 1e-9);
    j["surprise"] = {{"mean", s_mean},
                     {"std", std::sqrt(s_var / sorted.size())},
                     {"at_boundaries_mean", first.mean},
                     {"at_boundaries_percentile", first.percentile},
                     {"before_boundaries_mean", before.mean},
                     {"before_boundaries_percentile", before.percentile}};
    j["rows"] = nlohmann::json::array();
    for (const Row& r : rows) {
      nlohmann::json rec_k = nlohmann::json::object();
      for (size_t i = 0; i < ks.size(); ++i) rec_k[std::to_string(ks[i])] = r.recall[i];
      j["rows"].push_back({{"segmentation", r.name},
                           {"events", r.events},
                           {"mean_event", double(n - begin) / r.events},
                           {"recall", r.recall[k_at]},
                           {"recall_by_k", rec_k},
                           {"modularity", r.modularity},
                           {"conductance", r.conductance},
                           {"intra_inter", r.intra_inter},
                           {"windows", r.windows}});
    }
    std::ofstream f = open_output(o.json_out, "eval segment", "--json");
    f << j.dump(2) << "\n";
  }
  if (!o.csv_out.empty()) {
    std::ofstream f = open_output(o.csv_out, "eval segment", "--csv");
    f << "segmentation,events,k,recall,modularity,conductance,intra_inter,windows\n";
    for (const Row& r : rows) {
      for (size_t i = 0; i < ks.size(); ++i) {
        f << fmt::format("{},{:.1f},{},{:.6f},{:.6f},{:.6f},{:.6f},{}\n", r.name, r.events, ks[i],
                         r.recall[i], r.modularity, r.conductance, r.intra_inter, r.windows);
      }
    }
  }
}

}  // namespace

void add_eval_segment_command(CLI::App* eval) {
  auto o = std::make_shared<SegmentOptions>();
  o->model = default_model_path();
  o->file = std::string(ENGRAM_SOURCE_DIR) + "/build/data/heldout.txt";
  o->memory.params.kind = "episodic";
  CLI::App* cmd = eval->add_subcommand(
      "segment", "Event boundaries vs document boundaries, and graph metrics of the events");
  cmd->add_option("-m,--model", o->model, "GGUF model file")->capture_default_str();
  cmd->add_option("-f,--file", o->file, "Documents separated by blank lines")
      ->capture_default_str();
  cmd->add_option("--max-tokens", o->max_tokens, "Read at most this many tokens (0: all)");
  cmd->add_option("-k,--tolerance", o->k, "Tolerance of the table's recall, in tokens")
      ->capture_default_str();
  cmd->add_option("--tolerances", o->ks, "Tolerances reported in the JSON/CSV")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--window", o->window, "Tokens per key-similarity graph")->capture_default_str();
  cmd->add_option("--trials", o->trials, "Random segmentations averaged")->capture_default_str();
  cmd->add_option("--gammas", o->gammas,
                  "Also rows S/F/R@gamma: surprise boundaries at these thresholds (same run)")
      ->delimiter(',');
  cmd->add_option("--separator", o->separator,
                  "Text between documents, with \\n and \\t escapes (default: none, each "
                  "document tokenized on its own)");
  cmd->add_option("--seed", o->seed, "Seed of the random segmentations")->capture_default_str();
  cmd->add_option("-t,--threads", o->threads, "Threads (default: all cores, at most 8)");
  cmd->add_option("--json", o->json_out, "Write the table as JSON");
  cmd->add_option("--csv", o->csv_out, "Write the table as CSV (one row per segmentation and k)");
  cmd->add_flag("-q,--quiet", o->quiet, "No progress on stderr");
  add_memory_options(cmd, o->memory);
  cmd->callback([o] { segment(*o); });
}

}  // namespace engram::cli

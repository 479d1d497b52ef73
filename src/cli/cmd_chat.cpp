// `engram chat`: an interactive conversation with a model through its chat template, and
// `engram chat-template`: render a template without a model (conformance checks, debugging).
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>

#include "agent_memory/store_input.h"
#include "chat/jinja.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/constraint_options.h"
#include "cli/memory_options.h"
#include "engram/agent_memory.h"
#include "engram/chat_template.h"
#include "engram/context.h"
#include "engram/conversation.h"
#include "engram/error.h"
#include "engram/gguf.h"
#include "engram/grammar.h"
#include "engram/memory_session.h"
#include "engram/model.h"
#include "engram/sampler.h"
#include "engram/session.h"
#include "engram/text_encoder.h"
#include "engram/thread_pool.h"
#include "engram/tokenizer.h"
#include "util/trailing_space.h"

namespace engram::cli {
namespace {

// Ctrl-C count since the last reset. A signal handler can only reach a lock-free atomic with
// static storage, so this is the one piece of global state, private to this file.
std::atomic<int> g_interrupts{0};
static_assert(std::atomic<int>::is_always_lock_free);

extern "C" void on_sigint(int) {
  g_interrupts.fetch_add(1, std::memory_order_relaxed);
}

// Installs the SIGINT handler for the REPL's lifetime. No SA_RESTART, so a Ctrl-C at the
// prompt interrupts the blocking read and the REPL sees it at once.
class SigintGuard {
 public:
  SigintGuard() {
    struct sigaction sa {};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    sigaction(SIGINT, &sa, &old_);
    g_interrupts.store(0);
  }
  ~SigintGuard() { sigaction(SIGINT, &old_, nullptr); }
  SigintGuard(const SigintGuard&) = delete;
  SigintGuard& operator=(const SigintGuard&) = delete;

 private:
  struct sigaction old_ {};
};

enum class ReadResult { Line, Eof, Interrupted };

// One line from stdin without the newline. Reads byte-wise with read(2) so that an EINTR from
// Ctrl-C is seen (iostreams would swallow it); `pending` keeps bytes read past the newline.
ReadResult read_line(std::string& line, std::string& pending) {
  line.clear();
  while (true) {
    const size_t nl = pending.find('\n');
    if (nl != std::string::npos) {
      line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      return ReadResult::Line;
    }
    char buf[4096];
    const ssize_t n = ::read(0, buf, sizeof buf);
    if (n < 0 && errno == EINTR) return ReadResult::Interrupted;
    if (n <= 0) {
      if (pending.empty()) return ReadResult::Eof;
      line.swap(pending);
      pending.clear();
      return ReadResult::Line;
    }
    pending.append(buf, static_cast<size_t>(n));
  }
}

void write_out(std::string_view s) {
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fflush(stdout);
}

struct ChatOptions {
  std::string model;
  std::string chat_template;
  std::string system;
  std::string system_file;  // the system prompt read from a file (a document to talk about)
  std::vector<std::string> stop;
  int n_predict = 512;  // per reply
  int threads = 0;
  int64_t n_ctx = 0;
  int n_batch = 512;
  int64_t seed = -1;
  bool verbose = false;
  SamplerParams sampling;
  MemoryOptions memory;
  std::string session;           // resume from this file if it exists; save there after every reply
  ConstraintOptions constraint;  // every reply constrained (--json-schema | --grammar | --regex)
  // Agent memory across conversations (--memory-db FILE | --pg URL, --user U, --temporary).
  std::string memory_db, memory_pg, user;
  bool temporary = false;
  std::string memory_rerank = "fixed";  // fixed | learned | learned-rmm
  std::string embed_model;  // a `bert` GGUF for memory embeddings ("" : the chat model's)
};

void save_conversation(const std::string& path, const std::string& model, const ChatTemplate& tmpl,
                       const std::vector<ChatMessage>& history) {
  nlohmann::ordered_json j;
  j["model"] = model;
  j["chat_template"] = tmpl.name();
  j["messages"] = nlohmann::ordered_json::array();
  for (const auto& m : history) j["messages"].push_back({{"role", m.role}, {"content", m.content}});
  std::ofstream out(path, std::ios::binary);
  if (!out) throw Error(fmt::format("/save: cannot open '{}' for writing", path));
  // Replace invalid UTF-8 rather than fail: a reply cut by Ctrl-C may end mid-character.
  out << j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";
  if (!out) throw Error(fmt::format("/save: error writing '{}'", path));
}

// The REPL over the library's conversation engine: reading lines, /commands, Ctrl-C, printing.
class ChatSession {
 public:
  ChatSession(const ChatOptions& o, const SamplerParams& sp, const CLI::App& cmd)
      : o_(o),
        model_(Model::load(o.model)),
        tok_(Tokenizer::from_gguf(model_->file())),
        pool_(o.threads > 0 ? o.threads : default_thread_count()),
        constraint_(output_grammar(o.constraint)) {
    if (constraint_) vocab_ = std::make_shared<GrammarVocab>(*tok_);
    ChatTemplate tmpl = ChatTemplate::from_gguf(model_->file(), o.chat_template);
    if (!tmpl.fallback_reason().empty()) {
      std::fprintf(stderr,
                   "engram: note: using the built-in '%s' template instead of the file's: %s\n",
                   tmpl.name().c_str(), tmpl.fallback_reason().c_str());
    }
    std::error_code ec;
    if (!o.session.empty() && std::filesystem::exists(o.session, ec)) {
      resume(cmd, std::move(tmpl), sp);
      return;
    }
    if (!o.session.empty()) check_session_path(o.session);
    conv_ = std::make_unique<Conversation>(*model_, *tok_, std::move(tmpl), pool_,
                                           memory_params(o.memory, o.n_ctx),
                                           ContextParams{o.n_ctx, o.n_batch});
    conv_->set_sampling(sp);
    system_ = o.system;
    if (!o.system_file.empty()) {
      system_ = without_trailing_space(read_text_file(o.system_file));  // as `run -f` reads it
    }
    open_agent_memory();
  }

  ~ChatSession() { end_memory_conversation(); }

  void repl() {
    const bool tty = isatty(0);
    if (tty) {
      std::fprintf(stderr,
                   "engram chat (%s, template %s). /reset, /save FILE, /quit; Ctrl-C stops a "
                   "reply, twice at the prompt exits.\n",
                   o_.model.c_str(), conv_->chat_template().name().c_str());
      if (memory_) {
        std::fprintf(stderr,
                     memory_->temporary()
                         ? "Temporary chat: no memory is read or written.\n"
                         : "Memory of user '%s' is on: /memories lists it, /end ends the "
                           "conversation (what to remember is decided then, and on exit).\n",
                     o_.user.c_str());
      }
    }
    std::string line, pending;
    bool armed_exit = false;  // a Ctrl-C at the prompt arms the exit, a second one exits
    while (true) {
      if (tty) write_out("> ");
      const ReadResult r = read_line(line, pending);
      if (r == ReadResult::Eof) break;
      if (r == ReadResult::Interrupted) {
        g_interrupts.store(0);
        if (armed_exit) break;
        armed_exit = true;
        std::fprintf(stderr, "\n(Ctrl-C again to exit, or type a message)\n");
        continue;
      }
      armed_exit = false;
      if (line.empty()) continue;
      if (line[0] == '/') {
        if (!command(line)) break;
        continue;
      }
      turn(line);
    }
    if (tty) write_out("\n");
  }

 private:
  void resume(const CLI::App& cmd, ChatTemplate tmpl, const SamplerParams& sp) {
    const std::string& path = o_.session;
    refuse_memory_flags(cmd,
                        "--session resumes the conversation with the policy it was saved with");
    if (cmd.count("--ctx") > 0) {
      throw Error("--ctx cannot be used here: --session resumes the saved context size");
    }
    for (const char* flag : {"--system", "--system-file"}) {
      if (cmd.count(flag) > 0) {
        throw Error(fmt::format(
            "{} cannot be used here: the resumed conversation keeps its own system prompt", flag));
      }
    }
    conv_ = Conversation::resume(path, *model_, *tok_, std::move(tmpl), pool_,
                                 ContextParams{o_.n_ctx, o_.n_batch}, o_.memory.params.kv_dir,
                                 o_.memory.params.kv_cache_mib);
    conv_->set_sampling(sp);
    const auto& messages = conv_->messages();
    if (!messages.empty() && messages[0].role == "system") system_ = messages[0].content;
    const Context& ctx = conv_->context();
    std::fprintf(stderr, "[resumed %zu messages from %s: %lld tokens, %s memory, %s]\n",
                 messages.size(), path.c_str(), static_cast<long long>(ctx.n_past()),
                 ctx.policy().name().c_str(), format_bytes(ctx.memory_bytes()).c_str());
  }

  // The conversation so far, or its system prompt when nothing has been said yet.
  std::vector<ChatMessage> history() const {
    std::vector<ChatMessage> h = conv_->messages();
    if (h.empty() && !system_.empty()) h.push_back({"system", system_});
    return h;
  }

  // Writes the session file (when --session is given): the stream and the conversation. A
  // failure is reported and the REPL goes on; the file written last stays as it was.
  void save_session_file() {
    if (o_.session.empty()) return;
    try {
      conv_->save(o_.session);
      if (o_.verbose) {
        std::fprintf(stderr, "[session saved to %s: %lld tokens]\n", o_.session.c_str(),
                     static_cast<long long>(conv_->context().n_past()));
      }
    } catch (const Error& e) {
      std::fprintf(stderr, "engram: error: saving the session: %s\n", e.what());
    }
  }

  // Returns false to end the session.
  bool command(const std::string& line) {
    const size_t sp = line.find(' ');
    const std::string cmd = line.substr(0, sp);
    std::string arg = sp == std::string::npos ? "" : line.substr(sp + 1);
    while (!arg.empty() && arg.back() == ' ') arg.pop_back();
    if (cmd == "/quit" || cmd == "/exit") return false;
    if (cmd == "/end" && memory_) {
      end_memory_conversation();
      dialogue_.clear();
      conv_->reset(true);
      std::fprintf(stderr, "[conversation ended; a new one begins]\n");
    } else if (cmd == "/memories" && memory_) {
      memory_turn("what do you remember about me");
    } else if (cmd == "/reset") {
      dialogue_.clear();
      conv_->reset(true);
      save_session_file();
      std::fprintf(stderr, "[conversation cleared]\n");
    } else if (cmd == "/save") {
      if (arg.empty()) {
        std::fprintf(stderr, "usage: /save FILE\n");
        return true;
      }
      try {
        const std::vector<ChatMessage> h = history();
        save_conversation(arg, o_.model, conv_->chat_template(), h);
        std::fprintf(stderr, "[saved %zu messages to %s]\n", h.size(), arg.c_str());
      } catch (const Error& e) {
        std::fprintf(stderr, "engram: error: %s\n", e.what());
      }
    } else if (cmd == "/help") {
      std::fprintf(stderr, "/reset: clear the conversation; /save FILE: write it as JSON; /quit\n");
      if (memory_) {
        std::fprintf(stderr,
                     "/memories: what is remembered about you; /end: end the conversation "
                     "(memories are extracted); say \"remember ...\" or \"forget ...\"\n");
      }
    } else {
      std::fprintf(stderr, "unknown command %s (try /help)\n", cmd.c_str());
    }
    return true;
  }

  void turn(const std::string& text) {
    if (memory_) {
      memory_turn(text);
      return;
    }
    std::vector<ChatMessage> messages = history();
    messages.push_back({"user", text});
    if (!read_prompt(messages)) return;
    g_interrupts.store(0);
    generate();
    save_session_file();
  }

  // A turn with agent memory: a control is answered by the memory session; otherwise the
  // retrieved memories become the system prompt and the reply's citations are stripped.
  void memory_turn(const std::string& text) {
    agent_memory::MemoryTurn mt;
    try {
      mt = memory_->begin_turn(text);
    } catch (const Error& e) {
      std::fprintf(stderr, "engram: error: memory: %s\n", e.what());
      return;
    }
    if (mt.reply) {
      write_out(*mt.reply + "\n");
      memory_->end_turn(mt, *mt.reply, {});
      return;
    }
    if (o_.verbose) {
      std::fprintf(stderr, "[memory: %zu shown]\n", mt.shown.size());
      for (size_t i = 0; i < mt.shown.size(); ++i) {
        std::fprintf(stderr, "[memory [%zu] %lld: %s]\n", i + 1,
                     static_cast<long long>(mt.shown[i].id), mt.shown[i].summary.c_str());
      }
    }
    std::vector<ChatMessage> dialogue = dialogue_;
    dialogue.push_back({"user", text});
    if (!read_prompt(agent_memory::MemorySession::prompt_messages(mt, system_, dialogue))) return;
    g_interrupts.store(0);
    agent_memory::CitationFilter citations;
    const std::string shown = generate(&citations);
    dialogue_ = std::move(dialogue);
    dialogue_.push_back({"assistant", shown});
    memory_->end_turn(mt, shown, citations.cited());
  }

  // Evaluates the prompt; false (reported) when it cannot.
  bool read_prompt(const std::vector<ChatMessage>& messages) {
    PromptStats stats;
    try {
      // A long turn (a system file, a pasted document) is read under a progress bar.
      const auto t0 = std::chrono::steady_clock::now();
      stats = conv_->prompt(messages, [&](int64_t done, int64_t total) {
        const Context& ctx = conv_->context();
        draw_progress(ctx, fmt::format("{}/{} tokens", done, total), double(done) / total, done,
                      seconds_since(t0));
        if (done == total) std::fputc('\n', stderr);
      });
    } catch (const Error& e) {
      const std::string what = e.what();
      if (what.find("the context holds") != std::string::npos) {
        std::fprintf(stderr, "[%s; /reset to start over]\n", what.c_str());
      } else {
        std::fprintf(stderr, "engram: error: %s\n", what.c_str());
      }
      return false;
    }
    if (o_.verbose) {
      std::fprintf(stderr, "[prompt %lld tokens: %lld reused (prefix match: %s), %lld evaluated]\n",
                   static_cast<long long>(stats.prompt_tokens),
                   static_cast<long long>(stats.cached_tokens), stats.reuse,
                   static_cast<long long>(stats.evaluated));
    }
    return true;
  }

  // Generates and prints a reply; with `citations`, the text goes through it. Returns the
  // reply as shown.
  std::string generate(agent_memory::CitationFilter* citations = nullptr) {
    std::string shown;
    auto show = [&](const std::string& text) {
      const std::string t = citations ? citations->feed(text) : text;
      shown += t;
      write_out(t);
    };
    ReplyParams reply{o_.n_predict, o_.stop, nullptr};
    if (constraint_) reply.grammar = std::make_shared<GrammarMatcher>(constraint_, vocab_);
    conv_->start_reply(reply);
    Conversation::Step step;
    bool interrupted = false;
    while (true) {
      if (g_interrupts.load() > 0) {
        interrupted = true;
        step = conv_->cancel();
        show(step.text);
        break;
      }
      step = conv_->step();
      show(step.text);
      if (step.finish != FinishReason::None) break;
      conv_->eval_pending();
    }
    if (citations) {
      const std::string rest = citations->finish();
      shown += rest;
      write_out(rest);
    }
    conv_->end_reply();
    if (step.finish == FinishReason::ContextFull) {
      std::fprintf(stderr, "\n[context full at %lld tokens]",
                   static_cast<long long>(conv_->context().n_past()));
    }
    write_out("\n");
    if (interrupted) std::fprintf(stderr, "[interrupted]\n");
    g_interrupts.store(0);
    return shown;
  }

  // Opens the user's memory (--memory-db / --pg, --user). A temporary chat opens no store at
  // all, so the store stays byte for byte as it was.
  void open_agent_memory() {
    const bool has_store = !o_.memory_db.empty() || !o_.memory_pg.empty();
    if (!has_store && !o_.temporary) return;
    if (o_.user.empty())
      throw Error("chat: --user is required with --memory-db, --pg or --temporary");
    agent_memory::check_user(o_.user);  // a bad name is an error now, not at every turn
    if (!has_store && o_.temporary) {
      // Nothing to leave untouched; a temporary chat without a store is a plain chat.
    } else if (!o_.temporary) {
      store_ = agent_memory::open_memory_store(o_.memory_db.empty() ? o_.memory_pg
                                                                    : "sqlite:" + o_.memory_db);
    }
    mem_model_ =
        agent_memory::engine_memory_model(*model_, *tok_, conv_->chat_template(), pool_, vocab_);
    // Embeddings from --embed-model, else the chat model's; the store keeps one encoder's.
    std::string identity =
        embedding_identity(model_->file(), "model", model_->config().n_embd, "mean");
    std::string chosen_by = "the model " + o_.model;
    if (!o_.embed_model.empty()) {
      encoder_ = TextEncoder::load(o_.embed_model);
      mem_model_ = agent_memory::with_text_encoder(std::move(mem_model_), *encoder_, pool_);
      identity = encoder_->identity();
      chosen_by = "--embed-model " + o_.embed_model;
    }
    if (store_) agent_memory::claim_embedding_encoder(*store_, identity, chosen_by);
    agent_memory::MemorySessionParams mp;
    mp.actor = "chat";
    mp.ask_model_if_sensitive = true;
    if (store_ && o_.memory_rerank != "fixed")
      reranker_ = agent_memory::learned_reranker(*store_, true, 0,
                                                 o_.memory_rerank == "learned-rmm"
                                                     ? agent_memory::RerankerParams::rmm()
                                                     : agent_memory::RerankerParams{});
    memory_ = std::make_unique<agent_memory::MemorySession>(store_.get(), o_.user, *mem_model_, mp,
                                                            reranker_.get());
  }

  // Prospective reflection over the conversation so far (on /end and at exit).
  void end_memory_conversation() {
    if (!memory_ || memory_->temporary() || memory_->pending_turns() == 0) return;
    std::fprintf(stderr, "[memory: reflecting on the conversation...]\n");
    try {
      const agent_memory::ReflectionReport r = memory_->end_conversation();
      std::fprintf(
          stderr,
          "[memory: %zu extracted, %zu added, %zu merged, %zu already known, %zu sensitive "
          "left out, %zu forgotten left out, %zu turns not shown, %zu texts sensitive by the "
          "model's yes]\n",
          r.extracted, r.added, r.merged, r.unchanged, r.skipped_sensitive, r.skipped_forgotten,
          r.turns_left_out, r.sensitive_by_model);
      for (const std::string& e : r.errors) std::fprintf(stderr, "[memory: %s]\n", e.c_str());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "engram: error: memory reflection: %s\n", e.what());
    }
  }

  const ChatOptions& o_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tok_;
  ThreadPool pool_;
  std::shared_ptr<const Grammar> constraint_;  // null: replies are free
  std::shared_ptr<GrammarVocab> vocab_;
  std::unique_ptr<Conversation> conv_;
  std::string system_;  // the system prompt, kept by /reset (from --system or the session)
  // Agent memory (null: off). dialogue_ is the conversation as the user saw it; the system
  // prompt (the memory block) is made anew for every turn.
  std::unique_ptr<agent_memory::MemoryStore> store_;
  std::unique_ptr<TextEncoder> encoder_;  // --embed-model, or null
  std::unique_ptr<agent_memory::MemoryModel> mem_model_;
  std::unique_ptr<agent_memory::MemoryReranker> reranker_;  // null: the retriever's top M
  std::unique_ptr<agent_memory::MemorySession> memory_;
  std::vector<ChatMessage> dialogue_;
};

void chat(const ChatOptions& o, const CLI::App& cmd) {
  if (o.n_predict < 1) throw Error(fmt::format("chat: -n must be >= 1, got {}", o.n_predict));
  if (o.threads < 0) throw Error(fmt::format("chat: -t must be >= 1, got {}", o.threads));
  SamplerParams sp = o.sampling;
  sp.seed = o.seed >= 0 ? static_cast<uint64_t>(o.seed) : std::random_device{}();
  sp.validate();
  if (!o.session.empty() && (!o.memory_db.empty() || !o.memory_pg.empty() || o.temporary)) {
    throw Error(
        "chat: --session cannot be used with --memory-db, --pg or --temporary (a memory "
        "chat makes its system prompt anew every turn)");
  }
  ChatSession session(o, sp, cmd);
  SigintGuard guard;
  session.repl();
}

struct TemplateOptions {
  std::string model;
  std::string chat_template;
  std::string template_file;
  std::string vars = "";
  bool print_source = false;
};

// Renders a template: a Jinja file with --vars as its variables (the conformance harness), or
// a model's / built-in template with the messages and add_generation_prompt from --vars.
void render_template(const TemplateOptions& o) {
  nlohmann::ordered_json vars = nlohmann::ordered_json::object();
  if (!o.vars.empty()) {
    std::string text;
    if (o.vars == "-") {
      text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    } else {
      text = read_text_file(o.vars);
    }
    try {
      vars = nlohmann::ordered_json::parse(text);
    } catch (const nlohmann::ordered_json::exception& e) {
      throw Error(fmt::format("chat-template: --vars {}: invalid JSON: {}", o.vars, e.what()));
    }
  }
  if (!o.template_file.empty()) {
    chat::jinja::Template t(read_text_file(o.template_file));
    write_out(o.print_source ? t.source() : t.render(vars));
    return;
  }
  std::unique_ptr<GgufFile> file;
  std::optional<ChatTemplate> tmpl;
  if (!o.model.empty()) {
    file = GgufFile::open(o.model);
    tmpl = ChatTemplate::from_gguf(*file, o.chat_template);
  } else if (!o.chat_template.empty()) {
    tmpl = ChatTemplate::builtin(o.chat_template, vars.value("bos_token", ""),
                                 vars.value("eos_token", ""));
  } else {
    throw Error("chat-template: give --template-file, -m MODEL or --chat-template NAME");
  }
  if (o.print_source) {
    write_out(tmpl->source());
    return;
  }
  std::vector<ChatMessage> messages;
  if (vars.contains("messages")) {
    for (const auto& m : vars["messages"]) {
      messages.push_back({m.value("role", ""), m.value("content", "")});
    }
  }
  write_out(tmpl->render(messages, vars.value("add_generation_prompt", false)));
}

}  // namespace

void add_chat_command(CLI::App& app) {
  auto o = std::make_shared<ChatOptions>();
  o->model = default_chat_model_path();
  CLI::App* cmd = app.add_subcommand("chat", "Chat with a model through its chat template");
  cmd->add_option("-m,--model", o->model, "GGUF model file")->capture_default_str();
  cmd->add_option("--chat-template", o->chat_template,
                  "Use a built-in template: llama3, llama2, mistral, chatml");
  CLI::Option* sys = cmd->add_option("--system", o->system, "System prompt");
  cmd->add_option("--system-file", o->system_file,
                  "System prompt read from a file, e.g. a document to talk about (read once "
                  "under a progress bar; with --memory it may be far longer than the context)")
      ->excludes(sys);
  cmd->add_option("--stop", o->stop, "Stop a reply at this text (repeatable)");
  cmd->add_option("-n,--n-predict", o->n_predict, "Max tokens per reply")->capture_default_str();
  cmd->add_option("-t,--threads", o->threads, "Threads (default: all cores, at most 8)");
  cmd->add_option("--ctx", o->n_ctx, "Context size in tokens (default: the model's trained one)");
  cmd->add_option("--batch", o->n_batch, "Prefill chunk size")->capture_default_str();
  add_sampling_options(cmd, o->sampling, o->seed);
  add_constraint_options(cmd, o->constraint);
  cmd->add_flag("-v,--verbose", o->verbose, "Report prompt and cache sizes per turn");
  cmd->add_option("--session", o->session,
                  "Resume the conversation saved in this file if it exists, and save it there "
                  "after every reply (memory flags then come from the file, except "
                  "--kv-dir/--kv-cache)");
  add_memory_options(cmd, o->memory);
  auto* mdb = cmd->add_option("--memory-db", o->memory_db,
                              "Remember the user across conversations in this SQLite store");
  auto* mpg = cmd->add_option("--pg", o->memory_pg,
                              "Remember the user in this PostgreSQL store (postgresql:// URL)");
  mdb->excludes(mpg);
  cmd->add_option("--user", o->user, "Whose memories (with --memory-db / --pg)");
  add_memory_rerank_option(cmd, o->memory_rerank);
  cmd->add_option("--embed-model", o->embed_model,
                  "Embed memories with this bert GGUF (e.g. MiniLM, bge) instead of the chat "
                  "model's mean-pooled hidden state")
      ->check(CLI::ExistingFile);
  cmd->add_flag("--temporary", o->temporary,
                "A temporary chat: no memory is read or written (the store is not even opened)");
  cmd->callback([o, cmd] { chat(*o, *cmd); });

  auto t = std::make_shared<TemplateOptions>();
  CLI::App* tc = app.add_subcommand("chat-template", "Render a chat template (no model run)");
  tc->add_option("-m,--model", t->model, "GGUF file whose tokenizer.chat_template to use");
  tc->add_option("--chat-template", t->chat_template, "Built-in template name");
  tc->add_option("--template-file", t->template_file, "Jinja template file");
  tc->add_option("--vars", t->vars,
                 "JSON file ('-': stdin) with the variables: messages, add_generation_prompt, "
                 "bos_token, ...");
  tc->add_flag("--print-source", t->print_source, "Print the template text instead");
  tc->callback([t] { render_template(*t); });
}

}  // namespace engram::cli

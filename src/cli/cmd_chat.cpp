// `engram chat`: an interactive conversation with a model through its chat template, and
// `engram chat-template`: render a template without a model (conformance checks, debugging).
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>

#include "chat/chat_note.h"
#include "chat/jinja.h"
#include "chat/stop_strings.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/memory_options.h"
#include "engram/chat_template.h"
#include "engram/context.h"
#include "engram/error.h"
#include "engram/gguf.h"
#include "engram/model.h"
#include "engram/sampler.h"
#include "engram/session.h"
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
  std::string session;  // resume from this file if it exists; save there after every reply
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

bool starts_with(const std::vector<int32_t>& a, const std::vector<int32_t>& prefix) {
  return prefix.size() <= a.size() && std::equal(prefix.begin(), prefix.end(), a.begin());
}

class ChatSession {
 public:
  ChatSession(const ChatOptions& o, const SamplerParams& sp, const CLI::App& cmd)
      : o_(o),
        model_(Model::load(o.model)),
        tok_(Tokenizer::from_gguf(model_->file())),
        tmpl_(ChatTemplate::from_gguf(model_->file(), o.chat_template)),
        pool_(o.threads > 0 ? o.threads : default_thread_count()),
        sampler_(sp),
        stops_(o.stop) {
    if (!tmpl_.fallback_reason().empty()) {
      std::fprintf(stderr,
                   "engram: note: using the built-in '%s' template instead of the file's: %s\n",
                   tmpl_.name().c_str(), tmpl_.fallback_reason().c_str());
    }
    const int32_t bos = tok_->bos();
    bos_text_ = bos >= 0 ? tok_->token_text(bos) : "";
    std::error_code ec;
    if (!o.session.empty() && std::filesystem::exists(o.session, ec)) {
      resume(cmd);
      return;
    }
    if (!o.session.empty()) check_session_path(o.session);
    memory_ = memory_params(o.memory, o.n_ctx);
    ctx_ = std::make_unique<Context>(*model_, pool_, ContextParams{o.n_ctx, o.n_batch},
                                     make_memory_policy(memory_, model_shape(model_->config())));
    system_ = o.system;
    if (!o.system_file.empty()) {
      system_ = without_trailing_space(read_text_file(o.system_file));  // as `run -f` reads it
    }
    if (!system_.empty()) history_.push_back({"system", system_});
  }

  void repl() {
    const bool tty = isatty(0);
    if (tty) {
      std::fprintf(stderr,
                   "engram chat (%s, template %s). /reset, /save FILE, /quit; Ctrl-C stops a "
                   "reply, twice at the prompt exits.\n",
                   o_.model.c_str(), tmpl_.name().c_str());
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
  void resume(const CLI::App& cmd) {
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
    LoadedSession loaded = load_session(path, *model_, pool_, ContextParams{o_.n_ctx, o_.n_batch},
                                        o_.memory.params.kv_dir, o_.memory.params.kv_cache_mib);
    memory_ = loaded.memory;
    ctx_ = std::move(loaded.ctx);
    if (loaded.note.empty()) {
      throw Error(fmt::format(
          "'{}' holds a stream saved by `engram run`, not a conversation: chat resumes the "
          "sessions it saved itself",
          path));
    }
    chat::ChatState saved = chat::decode_chat_note(loaded.note, path);
    if (saved.chat_template != tmpl_.name()) {
      throw Error(fmt::format(
          "'{}' was saved with the chat template '{}', this run uses '{}' (pass --chat-template "
          "{} to resume it)",
          path, saved.chat_template, tmpl_.name(), saved.chat_template));
    }
    // The tokens the note lists are the ones the stream went through.
    if (static_cast<int64_t>(saved.tokens.size()) != ctx_->n_past()) {
      throw Error(fmt::format("'{}': the saved conversation lists {} tokens, the stream {}", path,
                              saved.tokens.size(), ctx_->n_past()));
    }
    for (int32_t t : saved.tokens) {
      if (t < 0 || t >= tok_->n_vocab()) {
        throw Error(
            fmt::format("'{}': the saved conversation holds token id {}, out of range", path, t));
      }
    }
    history_ = std::move(saved.history);
    if (!history_.empty() && history_[0].role == "system") system_ = history_[0].content;
    cached_ = std::move(saved.tokens);
    cached_text_ = std::move(saved.text);
    dropped_space_ = saved.dropped_space;
    // Repetition penalties look back over the last tokens, as if the session had not stopped.
    sampler_.accept(cached_);
    std::fprintf(stderr, "[resumed %zu messages from %s: %lld tokens, %s memory, %s]\n",
                 history_.size(), path.c_str(), static_cast<long long>(ctx_->n_past()),
                 ctx_->policy().name().c_str(), format_bytes(ctx_->memory_bytes()).c_str());
  }

  // Writes the session file (when --session is given): the stream and the conversation. A
  // failure is reported and the REPL goes on; the file written last stays as it was.
  void save_session_file() {
    if (o_.session.empty()) return;
    try {
      save_session(
          *ctx_, memory_, o_.session,
          chat::encode_chat_note({tmpl_.name(), history_, cached_, cached_text_, dropped_space_}));
      if (o_.verbose) {
        std::fprintf(stderr, "[session saved to %s: %lld tokens]\n", o_.session.c_str(),
                     static_cast<long long>(ctx_->n_past()));
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
    if (cmd == "/reset") {
      history_.clear();
      if (!system_.empty()) history_.push_back({"system", system_});
      reset_context();
      save_session_file();
      std::fprintf(stderr, "[conversation cleared]\n");
    } else if (cmd == "/save") {
      if (arg.empty()) {
        std::fprintf(stderr, "usage: /save FILE\n");
        return true;
      }
      try {
        save_conversation(arg, o_.model, tmpl_, history_);
        std::fprintf(stderr, "[saved %zu messages to %s]\n", history_.size(), arg.c_str());
      } catch (const Error& e) {
        std::fprintf(stderr, "engram: error: %s\n", e.what());
      }
    } else if (cmd == "/help") {
      std::fprintf(stderr, "/reset: clear the conversation; /save FILE: write it as JSON; /quit\n");
    } else {
      std::fprintf(stderr, "unknown command %s (try /help)\n", cmd.c_str());
    }
    return true;
  }

  void reset_context() {
    ctx_->clear();
    cached_.clear();
    cached_text_.clear();
    dropped_space_ = chat::kNoDroppedSpace;
    sampler_.reset();
  }

  // Length of the cached text that starts `prompt` (0: none). The cached text is what the
  // context's tokens spell; a reply's first token may begin with a space a SentencePiece decoder
  // drops, so that the reply the template renders has it or not depending on the template
  // ("[/INST] " + reply, or "assistant\n" + reply): either spelling matches.
  size_t text_match(const std::string& prompt) const {
    auto starts = [&](std::string_view cached) {
      return !cached.empty() && prompt.size() > cached.size() && prompt.starts_with(cached);
    };
    if (starts(cached_text_)) return cached_text_.size();
    if (dropped_space_ < cached_text_.size() && cached_text_[dropped_space_] == ' ') {
      std::string without = cached_text_;
      without.erase(dropped_space_, 1);
      if (starts(without)) return without.size();
    }
    return 0;
  }

  void turn(const std::string& text) {
    history_.push_back({"user", text});
    std::vector<int32_t> tokens;
    std::string prompt;
    try {
      prompt = tmpl_.render(history_, true);
      // The template writes BOS itself when the model wants it; otherwise add it here.
      const bool add_bos = tok_->add_bos() && (bos_text_.empty() || !prompt.starts_with(bos_text_));
      tokens = tok_->encode(prompt, add_bos, true);
    } catch (const Error& e) {
      history_.pop_back();
      std::fprintf(stderr, "engram: error: %s\n", e.what());
      return;
    }
    if (static_cast<int64_t>(tokens.size()) >= ctx_->n_ctx()) {
      history_.pop_back();
      std::fprintf(stderr,
                   "[the conversation needs %zu tokens, the context holds %lld; /reset to "
                   "start over]\n",
                   tokens.size(), static_cast<long long>(ctx_->n_ctx()));
      return;
    }
    // Evaluate only what is new when the rendered prefix is unchanged: either the cached
    // tokens start the new tokenization, or the cached text starts the new rendering (then
    // the new text is tokenized alone, which may split differently at the seam, as other
    // engines accept). A template that rewrites earlier turns forces a full re-evaluation.
    std::vector<int32_t> fresh;
    const char* how = "none";
    if (!cached_.empty() && starts_with(tokens, cached_) && cached_.size() < tokens.size()) {
      fresh.assign(tokens.begin() + static_cast<std::ptrdiff_t>(cached_.size()), tokens.end());
      how = "tokens";
    } else if (const size_t matched = text_match(prompt); matched > 0) {
      fresh = tok_->encode(std::string_view(prompt).substr(matched), false, true);
      how = "text";
      if (static_cast<int64_t>(cached_.size() + fresh.size()) >= ctx_->n_ctx()) {
        reset_context();  // the seam cost tokens the context does not have
        fresh = tokens;
        how = "none";
      }
    } else {
      reset_context();
      fresh = tokens;
    }
    if (o_.verbose) {
      std::fprintf(stderr, "[prompt %zu tokens: %zu reused (prefix match: %s), %zu evaluated]\n",
                   tokens.size(), cached_.size(), how, fresh.size());
    }
    sampler_.accept(fresh);
    // A long turn (a system file, a pasted document) is read under a progress bar, in slices
    // of whole chunks: the same blocks as one call, so the same result.
    if (fresh.size() > kProgressTokens) {
      prefill(*ctx_, fresh, true);
    } else {
      ctx_->eval(fresh);
    }
    cached_.insert(cached_.end(), fresh.begin(), fresh.end());
    cached_text_ = prompt;
    dropped_space_ = chat::kNoDroppedSpace;

    g_interrupts.store(0);
    std::string reply = generate();
    history_.push_back({"assistant", std::move(reply)});
    save_session_file();
  }

  std::string generate() {
    TokenStreamer streamer(*tok_);
    stops_.reset();
    std::string reply;
    auto emit = [&](const std::string& piece) {
      std::string shown = stops_.push(piece);
      write_out(shown);
      reply += shown;
    };
    int n = 0;
    bool interrupted = false;
    bool reply_started = false;
    while (n < o_.n_predict) {
      if (g_interrupts.load() > 0) {
        interrupted = true;
        break;
      }
      const int32_t next = sampler_.sample(ctx_->logits());
      if (tok_->is_eog(next)) break;
      sampler_.accept(next);
      // The text the context is matched against next turn: the token's bytes, except a
      // control token the model emits mid-reply (a stray BOS), which the reply the template
      // renders next turn will not show either.
      const std::string raw = tok_->token_to_piece(next, false);
      if (!reply_started && !raw.empty()) {  // the streamer's rule for the first piece
        reply_started = true;
        if (tok_->add_space_prefix() && raw[0] == ' ' &&
            tok_->token_type(next) == TokenType::Normal) {
          dropped_space_ = cached_text_.size();  // the reply shows it without this space
        }
      }
      emit(streamer.push(next));
      ++n;
      if (stops_.stopped()) break;
      if (ctx_->n_past() >= ctx_->n_ctx()) {
        std::fprintf(stderr, "\n[context full at %lld tokens]",
                     static_cast<long long>(ctx_->n_past()));
        break;
      }
      const int32_t one[1] = {next};
      ctx_->eval(one);
      cached_.push_back(next);
      cached_text_ += raw;
    }
    emit(streamer.flush());
    const std::string rest = stops_.flush();
    write_out(rest);
    reply += rest;
    write_out("\n");
    if (interrupted) std::fprintf(stderr, "[interrupted]\n");
    g_interrupts.store(0);
    return reply;
  }

  const ChatOptions& o_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tok_;
  ChatTemplate tmpl_;
  ThreadPool pool_;
  MemoryParams memory_;  // what ctx_'s policy was made from (a session records it)
  std::unique_ptr<Context> ctx_;
  Sampler sampler_;
  chat::StopStrings stops_;
  std::vector<ChatMessage> history_;
  static constexpr size_t kProgressTokens = 8192;
  std::string system_;           // the system prompt, kept by /reset (from --system or the session)
  std::vector<int32_t> cached_;  // tokens in the context's memory, in order
  std::string cached_text_;      // the text those tokens spell
  // Where in cached_text_ the last reply began with a space the shown reply drops.
  uint64_t dropped_space_ = chat::kNoDroppedSpace;
  std::string bos_text_;
};

void chat(const ChatOptions& o, const CLI::App& cmd) {
  if (o.n_predict < 1) throw Error(fmt::format("chat: -n must be >= 1, got {}", o.n_predict));
  if (o.threads < 0) throw Error(fmt::format("chat: -t must be >= 1, got {}", o.threads));
  SamplerParams sp = o.sampling;
  sp.seed = o.seed >= 0 ? static_cast<uint64_t>(o.seed) : std::random_device{}();
  sp.validate();
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
  o->model = default_model_path();
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
  cmd->add_flag("-v,--verbose", o->verbose, "Report prompt and cache sizes per turn");
  cmd->add_option("--session", o->session,
                  "Resume the conversation saved in this file if it exists, and save it there "
                  "after every reply (memory flags then come from the file, except "
                  "--kv-dir/--kv-cache)");
  add_memory_options(cmd, o->memory);
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

#include "engram/conversation.h"

#include <fmt/format.h>

#include <algorithm>

#include "chat/chat_note.h"
#include "chat/stop_strings.h"
#include "engram/error.h"
#include "engram/grammar.h"
#include "engram/model.h"
#include "engram/session.h"
#include "engram/tokenizer.h"

namespace engram {

namespace {

// A prompt this long is read in slices, reporting progress (a document as the system prompt).
constexpr size_t kProgressTokens = 8192;

bool starts_with(const std::vector<int32_t>& a, const std::vector<int32_t>& prefix) {
  return prefix.size() <= a.size() && std::equal(prefix.begin(), prefix.end(), a.begin());
}

}  // namespace

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::None:
      return "none";
    case FinishReason::Stop:
      return "stop";
    case FinishReason::Length:
    case FinishReason::ContextFull:
      return "length";
    case FinishReason::Cancelled:
      return "cancelled";
  }
  return "none";
}

size_t stream_slice(const Context& ctx, size_t about) {
  const size_t chunk = static_cast<size_t>(ctx.block_limit());
  return std::max<size_t>(1, about / chunk) * chunk;
}

void eval_in_slices(Context& ctx, std::span<const int32_t> tokens, const ProgressFn& progress) {
  // Slices of a few chunks: small enough for a live bar, large enough to cost nothing.
  const size_t slice = stream_slice(ctx, 2048);
  for (size_t i = 0; i < tokens.size(); i += slice) {
    const size_t n = std::min(slice, tokens.size() - i);
    ctx.eval(tokens.subspan(i, n));
    if (progress) progress(static_cast<int64_t>(i + n), static_cast<int64_t>(tokens.size()));
  }
}

// The state of one reply: its limits, the UTF-8 streamer and the stop strings.
struct Conversation::Reply {
  Reply(const Tokenizer& tok, const ReplyParams& p) : params(p), streamer(tok), stops(p.stop) {}
  ReplyParams params;
  TokenStreamer streamer;
  chat::StopStrings stops;
  std::string shown;  // the reply as the user sees it
  bool started = false;
};

Conversation::Conversation(const Model& model, const Tokenizer& tok, ChatTemplate tmpl,
                           ThreadPool& pool)
    : model_(model),
      tok_(tok),
      tmpl_(std::move(tmpl)),
      pool_(pool),
      dropped_space_(chat::kNoDroppedSpace) {
  const int32_t bos = tok_.bos();
  bos_text_ = bos >= 0 ? tok_.token_text(bos) : "";
}

Conversation::Conversation(const Model& model, const Tokenizer& tok, ChatTemplate tmpl,
                           ThreadPool& pool, const MemoryParams& memory,
                           const ContextParams& params)
    : Conversation(model, tok, std::move(tmpl), pool) {
  memory_ = memory;
  ctx_ = std::make_unique<Context>(model_, pool_, params,
                                   make_memory_policy(memory_, model_shape(model_.config())));
}

Conversation::~Conversation() = default;

std::unique_ptr<Conversation> Conversation::resume(const std::string& path, const Model& model,
                                                   const Tokenizer& tok, ChatTemplate tmpl,
                                                   ThreadPool& pool, const ContextParams& params,
                                                   const std::string& kv_dir, int kv_cache_mib) {
  LoadedSession loaded = load_session(path, model, pool, params, kv_dir, kv_cache_mib);
  if (loaded.note.empty()) {
    throw Error(fmt::format(
        "'{}' holds a stream saved by `engram run`, not a conversation: only conversations "
        "saved by `engram chat` or `engram serve` can be resumed",
        path));
  }
  chat::ChatState saved = chat::decode_chat_note(loaded.note, path);
  if (saved.chat_template != tmpl.name()) {
    throw Error(fmt::format(
        "'{}' was saved with the chat template '{}', this run uses '{}' (pass --chat-template "
        "{} to resume it)",
        path, saved.chat_template, tmpl.name(), saved.chat_template));
  }
  // The tokens the note lists are the ones the stream went through.
  if (static_cast<int64_t>(saved.tokens.size()) != loaded.ctx->n_past()) {
    throw Error(fmt::format("'{}': the saved conversation lists {} tokens, the stream {}", path,
                            saved.tokens.size(), loaded.ctx->n_past()));
  }
  for (int32_t t : saved.tokens) {
    if (t < 0 || t >= tok.n_vocab()) {
      throw Error(
          fmt::format("'{}': the saved conversation holds token id {}, out of range", path, t));
    }
  }
  std::unique_ptr<Conversation> c(new Conversation(model, tok, std::move(tmpl), pool));
  c->memory_ = loaded.memory;
  c->ctx_ = std::move(loaded.ctx);
  c->messages_ = std::move(saved.history);
  c->cached_ = std::move(saved.tokens);
  c->cached_text_ = std::move(saved.text);
  c->dropped_space_ = saved.dropped_space;
  return c;
}

void Conversation::set_sampling(const SamplerParams& params) {
  sampler_.emplace(params);
  // Repetition penalties look back over the last tokens, as if the stream had not stopped.
  sampler_->accept(cached_);
}

void Conversation::clear_stream() {
  ctx_->clear();
  cached_.clear();
  cached_text_.clear();
  dropped_space_ = chat::kNoDroppedSpace;
  if (sampler_) sampler_->reset();
}

void Conversation::reset(bool keep_system) {
  std::vector<ChatMessage> kept;
  if (keep_system && !messages_.empty() && messages_[0].role == "system") {
    kept.push_back(messages_[0]);
  }
  messages_ = std::move(kept);
  reply_.reset();
  pending_ = -1;
  clear_stream();
}

size_t Conversation::text_match(const std::string& prompt) const {
  // The cached text is what the context's tokens spell; a reply's first token may begin with a
  // space a SentencePiece decoder drops, so that the reply the template renders has it or not
  // depending on the template ("[/INST] " + reply, or "assistant\n" + reply): either matches.
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

PromptStats Conversation::prompt(const std::vector<ChatMessage>& messages,
                                 const ProgressFn& progress) {
  const std::string text = tmpl_.render(messages, true);
  // The template writes BOS itself when the model wants it; otherwise it is added here.
  const bool add_bos = tok_.add_bos() && (bos_text_.empty() || !text.starts_with(bos_text_));
  std::vector<int32_t> tokens = tok_.encode(text, add_bos, true);
  PromptStats stats = evaluate(std::move(tokens), text, false, progress);
  messages_ = messages;
  return stats;
}

PromptStats Conversation::prompt_text(const std::string& text, const ProgressFn& progress) {
  std::vector<int32_t> tokens = tok_.encode(text, tok_.add_bos(), false);
  return evaluate(std::move(tokens), text, true, progress);
}

PromptStats Conversation::evaluate(std::vector<int32_t> tokens, std::string text, bool raw,
                                   const ProgressFn& progress) {
  if (!sampler_) set_sampling(SamplerParams{});
  reply_.reset();
  pending_ = -1;
  PromptStats stats;
  stats.prompt_tokens = static_cast<int64_t>(tokens.size());
  if (tokens.empty()) throw Error("the prompt is empty: nothing to evaluate");
  if (stats.prompt_tokens >= ctx_->n_ctx()) {
    throw Error(fmt::format(
        "the conversation needs {} tokens, the context holds {} (memory policy '{}'; one that "
        "outgrows the context, such as episodic, holds more)",
        tokens.size(), ctx_->n_ctx(), ctx_->policy().name()));
  }
  // Evaluate only what is new when the rendered prefix is unchanged: either the cached tokens
  // start the new tokenization, or the cached text starts the new rendering (then the new text
  // is tokenized alone, which may split differently at the seam, as other engines accept). A
  // template that rewrites earlier turns forces a full re-evaluation.
  std::vector<int32_t> fresh;
  if (!cached_.empty() && starts_with(tokens, cached_) && cached_.size() < tokens.size()) {
    fresh.assign(tokens.begin() + static_cast<std::ptrdiff_t>(cached_.size()), tokens.end());
    stats.reuse = "tokens";
  } else if (const size_t matched = text_match(text); matched > 0) {
    fresh = tok_.encode(std::string_view(text).substr(matched), false, !raw);
    stats.reuse = "text";
    if (static_cast<int64_t>(cached_.size() + fresh.size()) >= ctx_->n_ctx()) {
      clear_stream();  // the seam cost tokens the context does not have
      fresh = std::move(tokens);
      stats.reuse = "none";
    }
  } else {
    clear_stream();
    fresh = std::move(tokens);
  }
  stats.cached_tokens = static_cast<int64_t>(cached_.size());
  stats.evaluated = static_cast<int64_t>(fresh.size());
  if (fresh.empty()) return stats;
  sampler_->accept(fresh);
  if (fresh.size() > kProgressTokens && progress) {
    eval_in_slices(*ctx_, fresh, progress);
  } else {
    ctx_->eval(fresh);
  }
  cached_.insert(cached_.end(), fresh.begin(), fresh.end());
  cached_text_ = std::move(text);
  dropped_space_ = chat::kNoDroppedSpace;
  return stats;
}

void Conversation::start_reply(const ReplyParams& params) {
  if (params.max_tokens < 1) {
    throw Error(fmt::format("max_tokens must be >= 1, got {}", params.max_tokens));
  }
  if (cached_.empty()) throw Error("start_reply: no prompt has been evaluated");
  if (!sampler_) set_sampling(SamplerParams{});
  reply_ = std::make_unique<Reply>(tok_, params);
  sampler_->set_grammar(params.grammar);
  pending_ = -1;
  n_generated_ = 0;
}

Conversation::Step Conversation::step() {
  if (!reply_) throw Error("step: no reply in progress (start_reply first)");
  if (pending_ >= 0) throw Error("step: the last token has not been evaluated yet");
  Reply& r = *reply_;
  Step out;
  auto finish = [&](FinishReason why) {
    out.text += r.stops.push(r.streamer.flush());
    out.text += r.stops.flush();
    r.shown += out.text;
    out.finish = why;
    sampler_->set_grammar(nullptr);
    return out;
  };
  // A constrained reply ends where its grammar's output is complete and nothing may follow.
  if (GrammarMatcher* g = sampler_->grammar(); g && g->finished()) {
    return finish(FinishReason::Stop);
  }
  if (n_generated_ >= r.params.max_tokens) return finish(FinishReason::Length);
  const int32_t next = sampler_->sample(ctx_->logits());
  if (tok_.is_eog(next)) return finish(FinishReason::Stop);
  sampler_->accept(next);
  // The text the context is matched against next turn: the token's bytes, except a control
  // token the model emits mid-reply (a stray BOS), which the reply the template renders next
  // turn will not show either.
  const std::string raw = tok_.token_to_piece(next, false);
  if (!r.started && !raw.empty()) {  // the streamer's rule for the first piece
    r.started = true;
    if (tok_.add_space_prefix() && raw[0] == ' ' && tok_.token_type(next) == TokenType::Normal) {
      dropped_space_ = cached_text_.size();  // the reply shows it without this space
    }
  }
  out.text = r.stops.push(r.streamer.push(next));
  r.shown += out.text;
  ++n_generated_;
  if (r.stops.stopped()) return finish(FinishReason::Stop);
  if (ctx_->n_past() >= ctx_->n_ctx()) return finish(FinishReason::ContextFull);
  pending_ = next;
  cached_text_ += raw;
  return out;
}

Conversation::Step Conversation::cancel() {
  if (!reply_) throw Error("cancel: no reply in progress");
  Reply& r = *reply_;
  Step out;
  out.text = r.stops.push(r.streamer.flush());
  out.text += r.stops.flush();
  r.shown += out.text;
  out.finish = FinishReason::Cancelled;
  sampler_->set_grammar(nullptr);
  if (pending_ >= 0) {
    // The stream must hold what cached_text_ spells: evaluate the token already sampled.
    eval_pending();
  }
  return out;
}

void Conversation::eval_pending() {
  if (pending_ < 0) return;
  const int32_t one[1] = {pending_};
  ctx_->eval(one);
  pending_done();
}

void Conversation::pending_done() {
  cached_.push_back(pending_);
  pending_ = -1;
}

std::string Conversation::end_reply() {
  if (!reply_) throw Error("end_reply: no reply in progress");
  if (pending_ >= 0) eval_pending();
  std::string shown = std::move(reply_->shown);
  reply_.reset();
  messages_.push_back({"assistant", shown});
  return shown;
}

void eval_pending(std::span<Conversation* const> conversations) {
  std::vector<Conversation*> with;
  std::vector<Context*> ctxs;
  std::vector<int32_t> tokens;
  for (Conversation* c : conversations) {
    if (c->pending() < 0) continue;
    with.push_back(c);
    ctxs.push_back(&c->context());
    tokens.push_back(c->pending());
  }
  Context::decode_batch(ctxs, tokens);
  for (Conversation* c : with) c->pending_done();
}

void Conversation::save(const std::string& path) const {
  save_session(*ctx_, memory_, path,
               chat::encode_chat_note({tmpl_.name(), messages_, cached_, cached_text_,
                                       static_cast<uint64_t>(dropped_space_)}));
}

}  // namespace engram

#include "server/scheduler.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "engram/context.h"
#include "engram/conversation.h"
#include "engram/error.h"
#include "engram/model.h"
#include "engram/text_encoder.h"
#include "engram/tokenizer.h"
#include "server/memory_sessions.h"

namespace engram::server {

namespace {

using Clock = std::chrono::steady_clock;

uint64_t micros_since(Clock::time_point t0) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count());
}

// A stored message as a client saw it: replies cut mid-character or made of stray bytes reach
// clients with ill-formed UTF-8 replaced (the JSON encoder's rule), and come back that way.
std::string as_sent(const std::string& text) {
  using json = nlohmann::json;
  return json::parse(json(text).dump(-1, ' ', false, json::error_handler_t::replace))
      .get<std::string>();
}

// Whether the client's first n messages are the stored ones.
bool same_messages(const std::vector<ChatMessage>& sent, const std::vector<ChatMessage>& stored,
                   size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (sent[i].role != stored[i].role) return false;
    if (sent[i].content != stored[i].content && sent[i].content != as_sent(stored[i].content)) {
      return false;
    }
  }
  return true;
}

size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

}  // namespace

std::string owner_of_key(const std::string& key) {
  if (key.empty()) return "anonymous";
  // FNV-1a, 64 bits: a name for the key's directory that does not reveal the key.
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : key) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return fmt::format("key-{:016x}", h);
}

struct Scheduler::Slot {
  std::unique_ptr<Conversation> conv;
  std::shared_ptr<Task> task;  // null: free (changed under mu_)
  std::string owner;           // the named conversation the slot holds ("" when unnamed)
  std::string conversation;
  Clock::time_point last_used{};
  Usage usage;
  std::unique_ptr<MemorySessions::Turn> memory;  // the reply's agent-memory turn, or null
};

Scheduler::Scheduler(const Model& model, const Tokenizer& tok, const ChatTemplate& tmpl,
                     ThreadPool& pool, const SchedulerOptions& options, Metrics& metrics)
    : model_(model), tok_(tok), tmpl_(tmpl), pool_(pool), o_(options), metrics_(metrics) {
  if (o_.parallel < 1) throw Error(fmt::format("--parallel must be >= 1, got {}", o_.parallel));
  if (o_.queue < 0) throw Error(fmt::format("--queue must be >= 0, got {}", o_.queue));
  // Check the memory parameters now (a bad flag is an error at start, not at the first request).
  (void)make_memory_policy(o_.memory, model_shape(model_.config()));
  for (int i = 0; i < o_.parallel; ++i) slots_.push_back(std::make_unique<Slot>());
  metrics_.slots_total = o_.parallel;
  embed_ctx_ = std::make_unique<Context>(model_, pool_, ContextParams{0, o_.n_batch});
  if (o_.memory_store) {
    memory_model_ = agent_memory::engine_memory_model(model_, tok_, tmpl_, pool_, nullptr);
    // The store keeps one encoder's embeddings: --embed-model's, else the served model's.
    if (o_.embed_model) {
      memory_model_ =
          agent_memory::with_text_encoder(std::move(memory_model_), *o_.embed_model, pool_);
      agent_memory::claim_embedding_encoder(*o_.memory_store, o_.embed_model->identity(),
                                            "--embed-model " + o_.embed_model_path);
    } else {
      agent_memory::claim_embedding_encoder(
          *o_.memory_store,
          embedding_identity(model_.file(), "model", model_.config().n_embd, "mean"), "the model");
    }
    if (o_.memory_learned_rerank)
      memory_reranker_ =
          agent_memory::learned_reranker(*o_.memory_store, true, 0,
                                         o_.memory_rerank_rmm ? agent_memory::RerankerParams::rmm()
                                                              : agent_memory::RerankerParams{});
    memory_ = std::make_unique<MemorySessions>(*o_.memory_store, *memory_model_,
                                               std::chrono::seconds(o_.memory_idle_seconds),
                                               memory_reranker_.get());
  }
  engine_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() {
  shutdown();
}

void Scheduler::submit(std::shared_ptr<Task> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      throw ApiError(503, "server_error", "the server is shutting down", "", "shutting_down");
    }
    if (queue_.size() >= static_cast<size_t>(o_.queue) + slots_.size()) {
      throw ApiError(
          503, "server_error",
          fmt::format("the server is busy: {} requests are waiting; retry later", queue_.size()),
          "", "queue_full");
    }
    queue_.push_back(std::move(task));
    metrics_.queue_depth = static_cast<int64_t>(queue_.size());
  }
  cv_.notify_one();
}

void Scheduler::shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && !engine_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_one();
  if (engine_.joinable()) engine_.join();
}

std::string Scheduler::conversation_path(const std::string& id) const {
  return (std::filesystem::path(o_.sessions_dir) / (id + ".session")).string();
}

std::string Scheduler::owner_path(const std::string& id) const {
  return (std::filesystem::path(o_.sessions_dir) / (id + ".owner")).string();
}

std::string Scheduler::stored_owner(const std::string& id) const {
  std::ifstream in(owner_path(id));
  std::string owner;
  std::getline(in, owner);
  return owner;
}

ApiError Scheduler::not_found(const std::string& id) {
  return ApiError(404, "invalid_request_error", fmt::format("conversation '{}' not found", id),
                  "conversation", "conversation_not_found");
}

void Scheduler::delete_conversation(const std::string& owner, const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  bool found = false;
  for (auto& s : slots_) {
    if (s->conversation != id) continue;
    if (s->owner != owner) throw not_found(id);
    if (s->task) {
      throw ApiError(
          409, "invalid_request_error",
          fmt::format("conversation '{}' is answering a request; retry when it is done", id),
          "conversation", "conversation_busy");
    }
    s->conv.reset();
    s->owner.clear();
    s->conversation.clear();
    found = true;
  }
  if (!o_.sessions_dir.empty()) {
    const std::string stored = stored_owner(id);
    if (!stored.empty() && stored != owner) throw not_found(id);
    std::error_code ec;
    found = std::filesystem::remove(conversation_path(id), ec) || found;
    std::filesystem::remove(owner_path(id), ec);
  }
  if (!found) throw not_found(id);
}

Scheduler::Slot* Scheduler::choose_slot(const Task& task) {
  const GenerationRequest& r = task.request;
  if (!r.conversation.empty()) {
    for (auto& s : slots_) {
      if (s->conversation == r.conversation) {
        return s->task ? nullptr : s.get();  // its own slot, once the last request is done
      }
    }
  }
  // A free slot: for an unnamed request the one whose cached tokens it extends furthest;
  // slots holding named conversations last (they are saved, but reading one back costs).
  Slot* best = nullptr;
  size_t best_prefix = 0;
  bool best_named = true;
  for (auto& s : slots_) {
    if (s->task) continue;
    const bool named = !s->conversation.empty();
    const size_t prefix = s->conv && r.conversation.empty() && !named
                              ? common_prefix(s->conv->cached_tokens(), task.prompt_tokens)
                              : 0;
    const bool better =
        !best || (best_named && !named) ||
        (best_named == named &&
         (prefix > best_prefix || (prefix == best_prefix && s->last_used < best->last_used)));
    if (better) {
      best = s.get();
      best_prefix = prefix;
      best_named = named;
    }
  }
  return best;
}

void Scheduler::loop() {
  while (true) {
    std::vector<Slot*> starting;
    std::shared_ptr<Task> embed;
    {
      std::unique_lock<std::mutex> lock(mu_);
      auto busy = [&] {
        return std::any_of(slots_.begin(), slots_.end(), [](auto& s) { return s->task; });
      };
      auto work = [&] { return stopping_ || !queue_.empty() || busy(); };
      if (memory_) {
        // Wake now and then to end idle memory conversations.
        cv_.wait_for(lock, std::chrono::seconds(1), work);
      } else {
        cv_.wait(lock, work);
      }
      if (stopping_) {
        for (auto& t : queue_) {
          TaskEvent e;
          e.kind = TaskEvent::Kind::Failed;
          e.error =
              ApiError(503, "server_error", "the server is shutting down", "", "shutting_down");
          t->push(std::move(e));
        }
        queue_.clear();
        metrics_.queue_depth = 0;
        lock.unlock();
        for (auto& s : slots_) {
          if (s->task) {
            s->conv->cancel();
            finish(*s, FinishReason::Cancelled);
          }
        }
        return;
      }
      const auto now = Clock::now();
      for (auto it = queue_.begin(); it != queue_.end();) {
        Task& t = **it;
        if (t.cancelled || now > t.deadline) {
          TaskEvent e;
          e.kind = TaskEvent::Kind::Failed;
          e.error = ApiError(503, "server_error", "the request timed out waiting for a slot", "",
                             "timeout");
          t.push(std::move(e));
          it = queue_.erase(it);
          continue;
        }
        if (t.kind == Task::Kind::Embed || t.kind == Task::Kind::Job) {
          if (!embed) {
            embed = *it;
            it = queue_.erase(it);
          } else {
            ++it;
          }
          continue;
        }
        Slot* s = choose_slot(t);
        if (!s) {
          ++it;
          continue;
        }
        s->task = *it;
        it = queue_.erase(it);
        starting.push_back(s);
      }
      metrics_.queue_depth = static_cast<int64_t>(queue_.size());
      metrics_.slots_busy =
          std::count_if(slots_.begin(), slots_.end(), [](auto& s) { return s->task != nullptr; });
    }
    if (embed) embed->kind == Task::Kind::Job ? run_job(*embed) : run_embedding(*embed);
    for (Slot* s : starting) start(*s);
    decode_step();
    if (memory_) memory_->reflect_idle(Clock::now());
  }
}

void Scheduler::name_slot(Slot& slot, const std::string& owner, const std::string& id) {
  // The engine thread is the only writer; delete_conversation reads these under the lock.
  std::lock_guard<std::mutex> lock(mu_);
  slot.owner = owner;
  slot.conversation = id;
}

void Scheduler::start(Slot& slot) {
  Task& task = *slot.task;
  const GenerationRequest& r = task.request;
  const auto t0 = Clock::now();
  try {
    const ContextParams cp{o_.n_ctx, o_.n_batch};
    std::vector<ChatMessage> messages = r.messages;
    if (!r.conversation.empty()) {
      if (o_.sessions_dir.empty()) {
        throw ApiError(400, "invalid_request_error",
                       "this server keeps no conversations: start it with --sessions-dir DIR",
                       "conversation");
      }
      if (slot.conversation == r.conversation && slot.owner != task.owner) {
        throw not_found(r.conversation);
      }
      if (slot.conversation != r.conversation || !slot.conv) {
        slot.conv.reset();
        name_slot(slot, "", "");
        const std::string path = conversation_path(r.conversation);
        std::error_code ec;
        if (std::filesystem::exists(path, ec)) {
          if (stored_owner(r.conversation) != task.owner) throw not_found(r.conversation);
          slot.conv = Conversation::resume(path, model_, tok_, tmpl_, pool_, cp, o_.memory.kv_dir,
                                           o_.memory.kv_cache_mib);
        } else {
          // A new conversation: claimed for this key before anything is generated.
          std::filesystem::create_directories(o_.sessions_dir);
          std::ofstream owner(owner_path(r.conversation), std::ios::trunc);
          owner << task.owner << "\n";
          if (!owner) {
            throw Error(fmt::format("cannot write '{}'", owner_path(r.conversation)));
          }
        }
        name_slot(slot, task.owner, r.conversation);
      }
      if (slot.conv) {
        // A client may send the whole conversation or only what is new: what repeats the
        // stored messages is not added twice.
        const auto& stored = slot.conv->messages();
        const bool repeats =
            messages.size() > stored.size() && same_messages(messages, stored, stored.size());
        std::vector<ChatMessage> all = stored;
        all.insert(all.end(), messages.begin() + (repeats ? stored.size() : 0), messages.end());
        messages = std::move(all);
      }
    } else if (!slot.conversation.empty()) {
      slot.conv.reset();  // the named conversation is saved; the slot starts afresh
      name_slot(slot, "", "");
    }
    if (!slot.conv) {
      slot.conv = std::make_unique<Conversation>(model_, tok_, tmpl_, pool_, o_.memory, cp);
    }
    slot.memory.reset();
    if (memory_ && !task.memory_user.empty() && r.kind == GenerationRequest::Kind::Chat &&
        !r.messages.empty() && r.messages.back().role == "user") {
      slot.memory =
          memory_->begin(task.memory_user, r.conversation, r.temporary, r.messages, Clock::now());
      if (slot.memory->turn.reply) {
        // A memory control ("remember ...", "forget ...") is answered without the model.
        push_text(slot, *slot.memory->turn.reply);
        memory_->end(*slot.memory);
        slot.memory.reset();
        slot.usage = {};
        TaskEvent ev;
        ev.kind = TaskEvent::Kind::Done;
        ev.finish = FinishReason::Stop;
        task.push(std::move(ev));
        std::lock_guard<std::mutex> lock(mu_);
        slot.task.reset();
        slot.last_used = Clock::now();
        return;
      }
      for (const auto& m : slot.memory->turn.shown) task.memories_shown.push_back(m.id);
      messages = MemorySessions::prompt(*slot.memory, r.messages, messages);
    }
    SamplerParams sp = r.sampling;
    slot.conv->set_sampling(sp);
    PromptStats stats = r.kind == GenerationRequest::Kind::Chat ? slot.conv->prompt(messages)
                                                                : slot.conv->prompt_text(r.prompt);
    slot.usage = {};
    slot.usage.prompt_tokens = stats.prompt_tokens;
    slot.usage.cached_tokens = stats.cached_tokens;
    metrics_.prompt_tokens += static_cast<uint64_t>(stats.prompt_tokens);
    metrics_.prompt_tokens_evaluated += static_cast<uint64_t>(stats.evaluated);
    slot.conv->start_reply({r.max_tokens > 0 ? r.max_tokens : o_.max_tokens, r.stop, task.grammar});
  } catch (const ApiError& e) {
    fail(slot, e);
  } catch (const Error& e) {
    // What the engine refuses here comes from the request: a template that rejects the
    // messages, a prompt the memory policy cannot hold, a conversation file that is damaged.
    fail(slot, ApiError(400, "invalid_request_error", e.what(),
                        r.kind == GenerationRequest::Kind::Chat ? "messages" : "prompt"));
  } catch (const std::exception& e) {
    fail(slot, ApiError(500, "server_error", fmt::format("internal error: {}", e.what())));
  }
  metrics_.prefill_us += micros_since(t0);
}

void Scheduler::fail(Slot& slot, const ApiError& e) {
  TaskEvent ev;
  ev.kind = TaskEvent::Kind::Failed;
  ev.error = e;
  slot.task->push(std::move(ev));
  slot.memory.reset();
  if (!slot.conversation.empty()) {
    // The named conversation may be half-read: drop the slot's copy, the file is as it was.
    slot.conv.reset();
    name_slot(slot, "", "");
  } else if (slot.conv) {
    slot.conv->reset(false);
  }
  std::lock_guard<std::mutex> lock(mu_);
  slot.task.reset();
  slot.last_used = Clock::now();
}

void Scheduler::finish(Slot& slot, FinishReason why) {
  Conversation& c = *slot.conv;
  c.end_reply();
  slot.usage.completion_tokens = c.completion_tokens();
  if (slot.memory) {
    const std::string rest = memory_->end(*slot.memory);
    if (!rest.empty()) slot.task->push(TaskEvent::delta(rest));
    slot.memory.reset();
  }
  if (!slot.conversation.empty() && !o_.sessions_dir.empty()) {
    try {
      c.save(conversation_path(slot.conversation));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "engram serve: error: saving conversation '%s': %s\n",
                   slot.conversation.c_str(), e.what());
    }
  }
  TaskEvent ev;
  ev.kind = TaskEvent::Kind::Done;
  ev.finish = why;
  ev.usage = slot.usage;
  slot.task->push(std::move(ev));
  std::lock_guard<std::mutex> lock(mu_);
  slot.task.reset();
  slot.last_used = Clock::now();
}

void Scheduler::decode_step() {
  const auto t0 = Clock::now();
  const auto now = t0;
  std::vector<Slot*> pending;
  uint64_t generated = 0;
  for (auto& sp : slots_) {
    Slot& s = *sp;
    if (!s.task) continue;
    Task& t = *s.task;
    if (t.cancelled || now > t.deadline) {
      if (!t.cancelled) t.timed_out = true;
      const Conversation::Step step = s.conv->cancel();
      push_text(s, step.text);
      finish(s, FinishReason::Cancelled);
      continue;
    }
    Conversation::Step step;
    try {
      step = s.conv->step();
    } catch (const std::exception& e) {
      fail(s, ApiError(500, "server_error", fmt::format("internal error: {}", e.what())));
      continue;
    }
    if (step.finish == FinishReason::None) ++generated;
    push_text(s, step.text);
    if (step.finish != FinishReason::None) {
      finish(s, step.finish);
      continue;
    }
    pending.push_back(&s);
  }
  if (pending.empty()) return;
  std::vector<Conversation*> convs;
  for (Slot* s : pending) convs.push_back(s->conv.get());
  try {
    eval_pending(convs);
  } catch (const std::exception& e) {
    for (Slot* s : pending) {
      fail(*s, ApiError(500, "server_error", fmt::format("internal error: {}", e.what())));
    }
    return;
  }
  metrics_.completion_tokens += generated;
  metrics_.decode_steps += 1;
  metrics_.decode_us += micros_since(t0);
}

void Scheduler::push_text(Slot& slot, const std::string& text) {
  const std::string shown = slot.memory ? memory_->show(*slot.memory, text) : text;
  if (!shown.empty()) slot.task->push(TaskEvent::delta(shown));
}

void Scheduler::run_job(Task& task) {
  TaskEvent ev;
  try {
    task.job();
    ev.kind = TaskEvent::Kind::Done;
  } catch (const ApiError& e) {
    ev.kind = TaskEvent::Kind::Failed;
    ev.error = e;
  } catch (const Error& e) {
    ev.kind = TaskEvent::Kind::Failed;
    ev.error = ApiError(400, "invalid_request_error", e.what());
  } catch (const std::exception& e) {
    ev.kind = TaskEvent::Kind::Failed;
    ev.error = ApiError(500, "server_error", fmt::format("internal error: {}", e.what()));
  }
  task.push(std::move(ev));
}

void Scheduler::run_with_memory_model(const std::function<void(agent_memory::MemoryModel&)>& fn) {
  if (!memory_model_) throw Error("this server keeps no agent memory");
  auto task = std::make_shared<Task>();
  task->kind = Task::Kind::Job;
  task->job = [this, &fn] { fn(*memory_model_); };
  task->deadline = Clock::now() + std::chrono::hours(24);
  submit(task);
  TaskEvent e;
  while (!task->pop(e, std::chrono::milliseconds(200))) {
  }
  if (e.kind == TaskEvent::Kind::Failed) throw *e.error;
}

agent_memory::ReflectionReport Scheduler::end_memory_conversation(const std::string& user,
                                                                  const std::string& conversation) {
  agent_memory::ReflectionReport report;
  run_with_memory_model(
      [&](agent_memory::MemoryModel&) { report = memory_->end_conversation(user, conversation); });
  return report;
}

void Scheduler::run_embedding(Task& task) {
  try {
    // With --embed-model the inputs are that encoder's tokens (the HTTP thread used its
    // vocabulary) and its positions bound their length.
    const TextEncoder* enc = o_.embed_model;
    const int32_t n_vocab = enc ? enc->config().n_vocab : tok_.n_vocab();
    const int64_t n_ctx = enc ? enc->config().n_ctx_train : embed_ctx_->n_ctx();
    for (const auto& ids : task.embed_inputs) {
      for (int32_t id : ids) {
        if (id >= n_vocab) {
          throw ApiError(400, "invalid_request_error",
                         fmt::format("input holds token id {}, the vocabulary has {}", id, n_vocab),
                         "input");
        }
      }
      if (static_cast<int64_t>(ids.size()) > n_ctx) {
        throw ApiError(400, "invalid_request_error",
                       fmt::format("an input is {} tokens, the {}'s context holds {}", ids.size(),
                                   enc ? "embedding model" : "model", n_ctx),
                       "input");
      }
      task.embeddings.push_back(enc ? enc->embed_tokens(ids, pool_) : embed_ctx_->embed(ids));
    }
    TaskEvent ev;
    ev.kind = TaskEvent::Kind::Done;
    ev.finish = FinishReason::Stop;
    for (const auto& ids : task.embed_inputs) ev.usage.prompt_tokens += ids.size();
    task.push(std::move(ev));
  } catch (const ApiError& e) {
    TaskEvent ev;
    ev.kind = TaskEvent::Kind::Failed;
    ev.error = e;
    task.push(std::move(ev));
  } catch (const std::exception& e) {
    TaskEvent ev;
    ev.kind = TaskEvent::Kind::Failed;
    ev.error = ApiError(500, "server_error", fmt::format("internal error: {}", e.what()));
    task.push(std::move(ev));
  }
}

}  // namespace engram::server

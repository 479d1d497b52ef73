// The slots that run tasks. One engine thread owns the model: it admits queued tasks into free
// slots (a conversation's own slot, or the slot whose cached prompt the request extends), reads
// their prompts, then decodes every active slot together, one forward pass per step, so the
// weights are read once per step for all clients. The HTTP layer only submits and waits.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engram/chat_template.h"
#include "engram/memory.h"
#include "engram/memory_session.h"
#include "server/metrics.h"
#include "server/task.h"

namespace engram {
class Model;
class Tokenizer;
class ThreadPool;
class Conversation;
class Context;
class TextEncoder;
}  // namespace engram

namespace engram::server {

class MemorySessions;

struct SchedulerOptions {
  int parallel = 1;          // slots
  int queue = 64;            // tasks waiting for a slot before new ones get 503
  MemoryParams memory;       // the policy of every slot's stream
  int64_t n_ctx = 0;         // `full`: cells per slot (0: trained)
  int n_batch = 512;         // prefill chunk
  std::string sessions_dir;  // where named conversations are kept ("" : none)
  int max_tokens = 4096;     // a reply's tokens when the request does not say
  // Agent memory (null: off): chat completions of a task with a memory_user use and update it.
  agent_memory::MemoryStore* memory_store = nullptr;
  int memory_idle_seconds = 600;       // a memory conversation ends after this long without a turn
  bool memory_learned_rerank = false;  // RMM's reranker learned from citations (else top-M)
  bool memory_rerank_rmm = false;      // ... with RMM's parameters (RerankerParams::rmm())
  // Embeddings (agent memory, /v1/embeddings) from this encoder instead of the model (null).
  const TextEncoder* embed_model = nullptr;
  std::string embed_model_path;  // named in errors
};

class Scheduler {
 public:
  Scheduler(const Model& model, const Tokenizer& tok, const ChatTemplate& tmpl, ThreadPool& pool,
            const SchedulerOptions& options, Metrics& metrics);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a task. Throws ApiError 503 when the queue is full or the server is stopping.
  void submit(std::shared_ptr<Task> task);
  // Stops admitting, cancels what waits and what runs (conversations are saved), and joins the
  // engine thread.
  void shutdown();

  // Deletes a named conversation of `owner` (slot and files). Throws ApiError 404 when `owner`
  // has none of that id (another key's conversation included), 409 while it is answering.
  void delete_conversation(const std::string& owner, const std::string& id);

  // Runs `fn` with the memory model on the engine thread and waits for it (the memory REST
  // verbs that need embeddings or generation). What `fn` throws is thrown here. Needs memory.
  void run_with_memory_model(const std::function<void(agent_memory::MemoryModel&)>& fn);
  // Ends a memory conversation now (prospective reflection on the engine thread).
  agent_memory::ReflectionReport end_memory_conversation(const std::string& user,
                                                         const std::string& conversation);

 private:
  struct Slot;
  void loop();
  // Picks a free slot for `task`, or null when it must wait. Called with mu_ held.
  Slot* choose_slot(const Task& task);
  void start(Slot& slot);
  // Sets which named conversation the slot holds ("" : none).
  void name_slot(Slot& slot, const std::string& owner,
                 const std::string&
                     id);  // reads the task's prompt; on error the task fails and the slot frees
  void decode_step();      // one token for every active slot
  void finish(Slot& slot, FinishReason why);
  void fail(Slot& slot, const ApiError& e);
  void run_embedding(Task& task);
  void run_job(Task& task);
  // Text of a reply on its way to the client (citations stripped when memory is on).
  void push_text(Slot& slot, const std::string& text);
  // A named conversation is DIR/ID.session, and DIR/ID.owner names the key that made it.
  std::string conversation_path(const std::string& id) const;
  std::string owner_path(const std::string& id) const;
  std::string stored_owner(const std::string& id) const;
  static ApiError not_found(const std::string& id);

  const Model& model_;
  const Tokenizer& tok_;
  ChatTemplate tmpl_;
  ThreadPool& pool_;
  SchedulerOptions o_;
  Metrics& metrics_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::unique_ptr<Context> embed_ctx_;  // a stream of its own for /v1/embeddings
  std::unique_ptr<agent_memory::MemoryModel> memory_model_;        // with memory: the model's side
  std::unique_ptr<agent_memory::MemoryReranker> memory_reranker_;  // null: top-M
  std::unique_ptr<MemorySessions> memory_;                         // engine thread only

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Task>> queue_;
  bool stopping_ = false;
  std::thread engine_;
};

// Owner id of an API key as it appears in file names (a hash: the key itself is never
// written anywhere); "anonymous" when the server has no keys.
std::string owner_of_key(const std::string& key);

}  // namespace engram::server

// A request on its way through the server: what the HTTP thread hands the engine, and the
// events the engine sends back (text as it is generated, then the end or an error). The HTTP
// thread waits on it; the engine never blocks on it.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engram/conversation.h"
#include "server/api_error.h"
#include "server/api_request.h"

namespace engram {
class GrammarMatcher;
}

namespace engram::server {

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t cached_tokens = 0;  // prompt tokens the stream already held
};

struct TaskEvent {
  enum class Kind { Delta, Done, Failed };
  Kind kind = Kind::Delta;
  std::string text;  // Delta: text to show
  FinishReason finish = FinishReason::None;
  Usage usage;                    // Done
  std::optional<ApiError> error;  // Failed

  static TaskEvent delta(std::string text) {
    TaskEvent e;
    e.text = std::move(text);
    return e;
  }
};

class Task {
 public:
  enum class Kind { Generate, Embed, Job };
  Kind kind = Kind::Generate;
  std::function<void()> job;  // Job: run on the engine thread (it owns the model)
  GenerationRequest request;
  std::vector<std::vector<int32_t>> embed_inputs;  // Embed: token ids per input
  std::string owner;                               // the API key's owner id (conversations)
  std::string memory_user;  // whose agent memory a chat completion uses ("" : none)
  // Ids of the memories its prompt showed, set by the engine before the first event.
  std::vector<int64_t> memories_shown;
  // An unnamed request's prompt as tokens: the slot that caches most of it is chosen.
  std::vector<int32_t> prompt_tokens;
  std::shared_ptr<GrammarMatcher> grammar;  // response_format's constraint, or null
  std::chrono::steady_clock::time_point deadline;
  std::atomic<bool> cancelled{false};  // the client went away
  std::atomic<bool> timed_out{false};

  // Engine side.
  void push(TaskEvent e) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      events_.push_back(std::move(e));
    }
    cv_.notify_one();
  }
  std::vector<std::vector<float>> embeddings;  // Embed: the result, set before Done

  // HTTP side: the next event, waiting up to `wait`; false on timeout.
  bool pop(TaskEvent& out, std::chrono::milliseconds wait) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, wait, [&] { return !events_.empty(); })) return false;
    out = std::move(events_.front());
    events_.pop_front();
    return true;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<TaskEvent> events_;
};

}  // namespace engram::server

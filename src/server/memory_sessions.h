// The agent memory of the chat completions a server answers: one MemorySession per (user,
// conversation) -- the conversation named by the request, or the user's unnamed one -- that
// prepares each turn (controls, the memory block) and records it, and is reflected on when it
// ends: on POST /v1/memories/end, or after `idle` without a request. Used only by the
// scheduler's engine thread (it owns the model the sessions run).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engram/memory_session.h"

namespace engram::server {

class MemorySessions {
 public:
  using Clock = std::chrono::steady_clock;
  // `reranker` null: the retriever's top M (TopReranker).
  MemorySessions(agent_memory::MemoryStore& store, agent_memory::MemoryModel& model,
                 std::chrono::seconds idle, agent_memory::MemoryReranker* reranker = nullptr);

  // One chat completion's turn.
  struct Turn {
    agent_memory::MemorySession* session = nullptr;  // null: a temporary chat's own
    std::unique_ptr<agent_memory::MemorySession> temporary;
    agent_memory::MemoryTurn turn;
    agent_memory::CitationFilter citations;
    std::string shown;  // the reply as the client saw it
  };
  // Prepares the answer to `client`'s last message (a user message) for `user`. A temporary
  // request reads and writes no memory.
  std::unique_ptr<Turn> begin(const std::string& user, const std::string& conversation,
                              bool temporary, const std::vector<ChatMessage>& client,
                              Clock::time_point now);
  // The messages to generate from: the memory block after the client's own system text, then
  // the dialogue of `messages` (system messages left out).
  static std::vector<ChatMessage> prompt(const Turn& t, const std::vector<ChatMessage>& client,
                                         const std::vector<ChatMessage>& messages);
  // Text of the reply on its way to the client: citations held back and stripped.
  std::string show(Turn& t, const std::string& text);
  // The reply is done: what is still held back, and the turn is recorded.
  std::string end(Turn& t);

  // Prospective reflection now; an unknown conversation reports nothing.
  agent_memory::ReflectionReport end_conversation(const std::string& user,
                                                  const std::string& conversation);
  // Reflects on every conversation idle since before now - idle. Returns how many.
  size_t reflect_idle(Clock::time_point now);
  size_t open_conversations() const { return sessions_.size(); }

 private:
  struct Entry {
    std::unique_ptr<agent_memory::MemorySession> session;
    Clock::time_point last;
  };
  agent_memory::MemoryStore& store_;
  agent_memory::MemoryModel& model_;
  std::chrono::seconds idle_;
  agent_memory::MemoryReranker* reranker_;
  std::map<std::pair<std::string, std::string>, Entry> sessions_;
};

}  // namespace engram::server

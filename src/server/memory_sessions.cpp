#include "server/memory_sessions.h"

#include <cstdio>

#include "engram/error.h"

namespace engram::server {

using agent_memory::MemorySession;

MemorySessions::MemorySessions(agent_memory::MemoryStore& store, agent_memory::MemoryModel& model,
                               std::chrono::seconds idle, agent_memory::MemoryReranker* reranker)
    : store_(store), model_(model), idle_(idle), reranker_(reranker) {}

std::unique_ptr<MemorySessions::Turn> MemorySessions::begin(const std::string& user,
                                                            const std::string& conversation,
                                                            bool temporary,
                                                            const std::vector<ChatMessage>& client,
                                                            Clock::time_point now) {
  auto t = std::make_unique<Turn>();
  agent_memory::MemorySessionParams p;
  p.actor = "api";
  p.ask_model_if_sensitive = true;
  if (temporary) {
    t->temporary = std::make_unique<MemorySession>(nullptr, user, model_, p);
    t->session = t->temporary.get();
  } else {
    Entry& e = sessions_[{user, conversation}];
    if (!e.session)
      e.session = std::make_unique<MemorySession>(&store_, user, model_, p, reranker_);
    e.last = now;
    t->session = e.session.get();
  }
  t->turn = t->session->begin_turn(client.back().content);
  return t;
}

std::vector<ChatMessage> MemorySessions::prompt(const Turn& t,
                                                const std::vector<ChatMessage>& client,
                                                const std::vector<ChatMessage>& messages) {
  std::string system;
  for (const ChatMessage& m : client)
    if (m.role == "system") system += (system.empty() ? "" : "\n") + m.content;
  return MemorySession::prompt_messages(t.turn, system, messages);
}

std::string MemorySessions::show(Turn& t, const std::string& text) {
  std::string s = t.citations.feed(text);
  t.shown += s;
  return s;
}

std::string MemorySessions::end(Turn& t) {
  std::string rest = t.citations.finish();
  t.shown += rest;
  t.session->end_turn(t.turn, t.turn.reply ? *t.turn.reply : t.shown, t.citations.cited());
  return rest;
}

agent_memory::ReflectionReport MemorySessions::end_conversation(const std::string& user,
                                                                const std::string& conversation) {
  auto it = sessions_.find({user, conversation});
  if (it == sessions_.end()) return {};
  std::unique_ptr<MemorySession> s = std::move(it->second.session);
  sessions_.erase(it);
  return s->end_conversation();
}

size_t MemorySessions::reflect_idle(Clock::time_point now) {
  size_t n = 0;
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (now - it->second.last < idle_) {
      ++it;
      continue;
    }
    std::unique_ptr<MemorySession> s = std::move(it->second.session);
    it = sessions_.erase(it);
    try {
      const auto r = s->end_conversation();
      for (const std::string& e : r.errors)
        std::fprintf(stderr, "engram serve: memory reflection: %s\n", e.c_str());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "engram serve: error: memory reflection: %s\n", e.what());
    }
    ++n;
  }
  return n;
}

}  // namespace engram::server

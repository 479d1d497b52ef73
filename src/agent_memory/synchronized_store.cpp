// A MemoryStore shared by threads: each call runs under one mutex. The backends hold one
// database connection each, which is not safe to use from two threads at once.
#include <mutex>

#include "engram/memory_session.h"

namespace engram::agent_memory {
namespace {

class SynchronizedStore : public MemoryStore {
 public:
  explicit SynchronizedStore(std::unique_ptr<MemoryStore> s) : s_(std::move(s)) {}

  std::string location() const override {
    std::lock_guard<std::mutex> l(mu_);
    return s_->location();
  }
  Memory add(std::string_view user, const NewMemory& m, std::string_view actor) override {
    std::lock_guard<std::mutex> l(mu_);
    return s_->add(user, m, actor);
  }
  std::vector<Memory> add_all(std::string_view user, const std::vector<NewMemory>& ms,
                              std::string_view actor) override {
    std::lock_guard<std::mutex> l(mu_);
    return s_->add_all(user, ms, actor);
  }
  std::optional<Memory> get(std::string_view user, int64_t id) override {
    std::lock_guard<std::mutex> l(mu_);
    return s_->get(user, id);
  }
  std::vector<Memory> get_all(std::string_view user) override {
    std::lock_guard<std::mutex> l(mu_);
    return s_->get_all(user);
  }
  std::vector<SearchHit> search(std::string_view user, std::string_view query,
                                size_t limit) override {
    std::lock_guard<std::mutex> l(mu_);
    return s_->search(user, query, limit);
  }
  Memory update(std::string_view user, int64_t id, std::string_view summary,
                const std::vector<float>* embedding, std::string_view actor) override {
    std::lock_guard<std::mutex> l(mu_);
    return s_->update(user, id, summary, embedding, actor);
  }
  Memory merge(std::string_view user, int64_t id, std::string_view merged_summary,
               const NewMemory& from, std::string_view actor) override {
    std::lock_guard<std::mutex> l(mu_);
    return s_->merge(user, id, merged_summary, from, actor);
  }
  bool remove(std::string_view user, int64_t id, std::string_view actor) override {
    std::lock_guard<std::mutex> l(mu_);
    return s_->remove(user, id, actor);
  }
  std::vector<int64_t> forget_matching(std::string_view user, std::string_view text,
                                       std::string_view actor) override {
    std::lock_guard<std::mutex> l(mu_);
    return s_->forget_matching(user, text, actor);
  }
  size_t wipe(std::string_view user, std::string_view actor) override {
    std::lock_guard<std::mutex> l(mu_);
    return s_->wipe(user, actor);
  }
  std::vector<HistoryEntry> history(std::string_view user, int64_t id) override {
    std::lock_guard<std::mutex> l(mu_);
    return s_->history(user, id);
  }
  std::optional<RerankerState> reranker(std::string_view user) override {
    std::lock_guard<std::mutex> l(mu_);
    return s_->reranker(user);
  }
  void save_reranker(std::string_view user, int32_t version,
                     const std::vector<uint8_t>& blob) override {
    std::lock_guard<std::mutex> l(mu_);
    s_->save_reranker(user, version, blob);
  }
  std::string claim_embedding_encoder(std::string_view identity) override {
    std::lock_guard<std::mutex> l(mu_);
    return s_->claim_embedding_encoder(identity);
  }
  void add_turns(std::string_view user, std::string_view conversation,
                 const std::vector<Turn>& turns) override {
    std::lock_guard<std::mutex> l(mu_);
    s_->add_turns(user, conversation, turns);
  }
  std::vector<Turn> turns(std::string_view user, std::string_view conversation) override {
    std::lock_guard<std::mutex> l(mu_);
    return s_->turns(user, conversation);
  }

 private:
  mutable std::mutex mu_;
  std::unique_ptr<MemoryStore> s_;
};

}  // namespace

std::unique_ptr<MemoryStore> synchronized_store(std::unique_ptr<MemoryStore> store) {
  return std::make_unique<SynchronizedStore>(std::move(store));
}

}  // namespace engram::agent_memory

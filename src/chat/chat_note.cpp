#include "chat/chat_note.h"

#include <fmt/format.h>

#include <cstring>
#include <string_view>

#include "engram/error.h"

namespace engram::chat {

namespace {
constexpr std::string_view kChatNote = "engram-chat 1\n";
}  // namespace

std::string encode_chat_note(const ChatState& c) {
  std::string out(kChatNote);
  auto put_u64 = [&](uint64_t v) { out.append(reinterpret_cast<const char*>(&v), 8); };
  auto put_str = [&](const std::string& x) {
    put_u64(x.size());
    out += x;
  };
  put_str(c.chat_template);
  put_u64(c.history.size());
  for (const ChatMessage& m : c.history) {
    put_str(m.role);
    put_str(m.content);
  }
  put_u64(c.tokens.size());
  out.append(reinterpret_cast<const char*>(c.tokens.data()), c.tokens.size() * sizeof(int32_t));
  put_str(c.text);
  put_u64(c.dropped_space);
  return out;
}

ChatState decode_chat_note(const std::string& note, const std::string& path) {
  auto bad = [&](const std::string& why) {
    return Error(fmt::format("'{}': the saved conversation is unreadable: {}", path, why));
  };
  if (!note.starts_with(kChatNote)) throw bad("not a chat note");
  size_t at = kChatNote.size();
  auto take = [&](uint64_t n, const char* what) {
    if (n > note.size() - at) throw bad(fmt::format("{} runs past the end", what));
    const size_t from = at;
    at += static_cast<size_t>(n);
    return std::string_view(note).substr(from, static_cast<size_t>(n));
  };
  auto get_u64 = [&](const char* what) {
    uint64_t v;
    std::memcpy(&v, take(8, what).data(), 8);
    return v;
  };
  auto get_str = [&](const char* what) { return std::string(take(get_u64(what), what)); };
  ChatState c;
  c.chat_template = get_str("the template name");
  const uint64_t n_messages = get_u64("the message count");
  if (n_messages > (note.size() - at) / 16) throw bad("the message count runs past the end");
  for (uint64_t i = 0; i < n_messages; ++i) {
    ChatMessage m;
    m.role = get_str("a role");
    m.content = get_str("a message");
    c.history.push_back(std::move(m));
  }
  const uint64_t n_tokens = get_u64("the token count");
  if (n_tokens > (note.size() - at) / sizeof(int32_t)) throw bad("the tokens run past the end");
  c.tokens.resize(static_cast<size_t>(n_tokens));
  std::memcpy(c.tokens.data(), take(n_tokens * sizeof(int32_t), "the tokens").data(),
              c.tokens.size() * sizeof(int32_t));
  c.text = get_str("the text");
  c.dropped_space = get_u64("the reply's first space");
  if (at != note.size()) throw bad("bytes follow the text");
  return c;
}

}  // namespace engram::chat

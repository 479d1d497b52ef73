// What `engram chat --session` keeps beside the stream in a saved session (its note): the
// template's name, the conversation, and the tokens and text the context holds, which the next
// turn's rendering is matched against. Strings are stored as length and bytes, not JSON: text
// cut by Ctrl-C may end mid-character and must come back byte for byte.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engram/chat_template.h"

namespace engram::chat {

// ChatState::dropped_space when the last reply did not begin with a dropped space.
constexpr uint64_t kNoDroppedSpace = ~uint64_t(0);

struct ChatState {
  std::string chat_template;
  std::vector<ChatMessage> history;
  std::vector<int32_t> tokens;  // what the context holds, in order
  std::string text;             // the text those tokens spell
  // Where in `text` the last reply began with a space that the reply as shown leaves out
  // (a SentencePiece decoder drops it).
  uint64_t dropped_space = kNoDroppedSpace;
};

std::string encode_chat_note(const ChatState& c);

// Throws engram::Error naming `path` and what is wrong; never reads past `note`.
ChatState decode_chat_note(const std::string& note, const std::string& path);

}  // namespace engram::chat

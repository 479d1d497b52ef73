// Text without its trailing whitespace (spaces, tabs, line ends): a file's final newline is not
// part of what it says, and whatever follows the text -- a question, generated text, a
// conversation -- must follow the text itself (engram-tiny reads what comes after a newline as
// a new document).
#pragma once

#include <string>

namespace engram {

inline std::string without_trailing_space(std::string text) {
  text.erase(text.find_last_not_of(" \t\r\n") + 1);
  return text;
}

}  // namespace engram

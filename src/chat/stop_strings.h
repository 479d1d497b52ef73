// Stop strings over streamed text: feed pieces as they are generated; text that could still
// turn out to be the start of a stop string is held back until it cannot, so a stop string
// is never shown, even when it arrives split across several tokens.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace engram::chat {

class StopStrings {
 public:
  explicit StopStrings(std::vector<std::string> stops = {});

  // Appends `piece`; returns the text that is now safe to show. After a stop string completes,
  // returns the text before it, stopped() becomes true and every later push returns "".
  std::string push(std::string_view piece);
  // At the end of generation: whatever was held back (nothing once stopped()).
  std::string flush();
  void reset();

  bool stopped() const { return stopped_; }
  const std::string& matched() const { return matched_; }  // the stop string that fired
  bool empty() const { return stops_.empty(); }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
  std::string matched_;
};

}  // namespace engram::chat

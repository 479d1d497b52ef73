// Errors raised by the engine. Every message names the thing that was wrong (file, field,
// value, expected range), so a caller can show it as-is; library code never exits.
#pragma once

#include <stdexcept>
#include <string>

namespace engram {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace engram

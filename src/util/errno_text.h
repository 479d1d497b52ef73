// The text of an errno value ("No such file or directory"), for error messages naming a file.
#pragma once

#include <string>
#include <system_error>

namespace engram {

inline std::string errno_text(int err) {
  return std::generic_category().message(err);
}

}  // namespace engram

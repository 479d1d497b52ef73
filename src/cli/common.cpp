#include "cli/common.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engram/error.h"

namespace engram::cli {

std::string default_model_path() {
  const std::string local = "models/engram-tiny.gguf";
  if (std::filesystem::exists(local)) return local;
#ifdef ENGRAM_SOURCE_DIR
  return std::string(ENGRAM_SOURCE_DIR) + "/" + local;
#else
  return local;
#endif
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("cannot open '{}': {}", path, std::strerror(errno)));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error(fmt::format("error reading '{}'", path));
  return ss.str();
}

}  // namespace engram::cli

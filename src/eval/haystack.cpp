#include "eval/haystack.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "engram/error.h"
#include "eval/locomo.h"

namespace engram {
namespace {

namespace fs = std::filesystem;

std::string read_file(const std::string& path, const std::string& spec) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("--haystack '{}': cannot open '{}'", spec, path));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error(fmt::format("--haystack '{}': error reading '{}'", spec, path));
  return ss.str();
}

// "chapter_9.txt" before "chapter_10.txt": digit runs compare as numbers.
bool natural_less(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) &&
        std::isdigit(static_cast<unsigned char>(b[j]))) {
      size_t ie = i, je = j;
      while (ie < a.size() && std::isdigit(static_cast<unsigned char>(a[ie]))) ++ie;
      while (je < b.size() && std::isdigit(static_cast<unsigned char>(b[je]))) ++je;
      const std::string x = a.substr(i, ie - i), y = b.substr(j, je - j);
      if (x.size() != y.size()) return x.size() < y.size();
      if (x != y) return x < y;
      i = ie;
      j = je;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

std::string read_dir(const std::string& dir, const std::string& spec) {
  std::vector<std::string> files;
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
    if (e.is_regular_file() && e.path().extension() == ".txt") files.push_back(e.path().string());
  }
  if (files.empty()) throw Error(fmt::format("--haystack '{}': no .txt files in '{}'", spec, dir));
  std::sort(files.begin(), files.end(), natural_less);
  std::string text;
  for (const std::string& f : files) {
    if (!text.empty()) text += "\n\n";
    text += read_file(f, spec);
    if (text.size() >= kHaystackMaxBytes) break;
  }
  return text;
}

std::string npm_data(const HaystackSources& where, const std::string& package,
                     const std::string& spec) {
  const std::string dir =
      where.source_dir + "/tools/npm-eval/node_modules/@stdlib/" + package + "/data";
  if (!fs::is_directory(dir)) {
    throw Error(fmt::format(
        "--haystack {}: '{}' is missing; install the text with `cd tools/npm-eval && npm install "
        "--ignore-scripts`",
        spec, dir));
  }
  return read_dir(dir, spec);
}

std::string locomo_dialogue(const std::string& dir, const std::string& spec) {
  if (!fs::is_directory(dir)) {
    throw Error(fmt::format(
        "--haystack {}: LoCoMo directory '{}' not found (give it with --locomo DIR)", spec, dir));
  }
  std::string text;
  for (const std::string& path : eval::locomo_files(dir)) {
    for (const eval::LocomoConversation& c : eval::read_locomo_file(path)) {
      for (const eval::LocomoSession& s : c.sessions) {
        for (const eval::LocomoTurn& t : s.turns) text += t.speaker + ": " + t.text + "\n";
      }
      if (text.size() >= kHaystackMaxBytes) return text;
    }
  }
  return text;
}

}  // namespace

Haystack read_haystack(const std::string& spec, const HaystackSources& where) {
  Haystack h{spec, {}};
  if (spec == "brown") {
    h.text = read_file(where.source_dir + "/data/heldout_sample.txt", spec);
  } else if (spec == "moby") {
    h.text = npm_data(where, "datasets-moby-dick", spec);
  } else if (spec == "sotu") {
    h.text = npm_data(where, "datasets-sotu", spec);
  } else if (spec == "informal") {
    h.text = locomo_dialogue(where.locomo_dir, spec);
  } else if (fs::is_directory(spec)) {
    h.text = read_dir(spec, spec);
  } else {
    h.text = read_file(spec, spec);
  }
  if (h.text.size() > kHaystackMaxBytes) {  // at a line end, never inside a UTF-8 sequence
    const size_t nl = h.text.rfind('\n', kHaystackMaxBytes);
    h.text.resize(nl == std::string::npos ? kHaystackMaxBytes : nl);
  }
  return h;
}

}  // namespace engram

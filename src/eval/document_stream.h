// The stream `eval segment` reads: documents concatenated into one token sequence, and where
// each document starts in it (the true event boundaries).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace engram {

class Tokenizer;

struct DocumentStream {
  std::vector<int32_t> tokens;  // BOS (if the vocabulary wants it), then the documents
  std::vector<int64_t> starts;  // index of each document's first token, documents after the first
};

// Documents of a text file: runs of non-blank lines (joined by '\n'), separated by blank lines.
std::vector<std::string> split_documents(const std::string& text);

// With an empty separator every document is tokenized on its own and the token lists are
// concatenated: nothing but the change of content marks a boundary. Otherwise the documents are
// joined by `separator` and tokenized as one text, as a file would be read, and a document
// starts at the token that holds its first byte.
DocumentStream document_stream(const Tokenizer& tok, const std::vector<std::string>& docs,
                               const std::string& separator);

}  // namespace engram

#include "eval/document_stream.h"

#include "engram/tokenizer.h"

namespace engram {

std::vector<std::string> split_documents(const std::string& text) {
  std::vector<std::string> docs;
  std::string cur;
  size_t at = 0;
  while (at <= text.size()) {
    size_t nl = text.find('\n', at);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(at, nl - at);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) {
      if (!cur.empty()) docs.push_back(std::move(cur));
      cur.clear();
    } else {
      if (!cur.empty()) cur += '\n';
      cur += line;
    }
    at = nl + 1;
  }
  if (!cur.empty()) docs.push_back(std::move(cur));
  return docs;
}

DocumentStream document_stream(const Tokenizer& tok, const std::vector<std::string>& docs,
                               const std::string& separator) {
  DocumentStream s;
  if (tok.add_bos() && tok.bos() >= 0) s.tokens.push_back(tok.bos());
  if (separator.empty()) {
    for (size_t d = 0; d < docs.size(); ++d) {
      if (d > 0) s.starts.push_back(static_cast<int64_t>(s.tokens.size()));
      const std::vector<int32_t> ids = tok.encode(docs[d], false, false);
      s.tokens.insert(s.tokens.end(), ids.begin(), ids.end());
    }
    return s;
  }
  std::string text;
  std::vector<size_t> first_byte;  // of each document in `text`
  for (size_t d = 0; d < docs.size(); ++d) {
    if (d > 0) text += separator;
    first_byte.push_back(text.size());
    text += docs[d];
  }
  const std::vector<int32_t> ids = tok.encode(text, false, false);
  const size_t head = s.tokens.size();
  s.tokens.insert(s.tokens.end(), ids.begin(), ids.end());
  // The pieces' bytes run one ahead of the text when the tokenizer prefixes a space.
  const size_t lead = tok.add_space_prefix() ? 1 : 0;
  size_t at = 0, next = 1;
  for (size_t i = 0; i < ids.size() && next < first_byte.size(); ++i) {
    const size_t end = at + tok.token_to_piece(ids[i]).size();
    while (next < first_byte.size() && first_byte[next] + lead < end) {
      s.starts.push_back(static_cast<int64_t>(head + i));
      ++next;
    }
    at = end;
  }
  return s;
}

}  // namespace engram

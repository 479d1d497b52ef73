// User text -> a full-text query that is only ever text. The words of the query (runs of ASCII
// letters and digits, and of non-ASCII bytes) are kept; everything else separates them, so no
// backend query syntax (FTS5's quotes, NEAR, column filters, *, ^, AND/OR/NOT as operators;
// tsquery's & | ! <->) survives. Both backends search for any of the words.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace engram::agent_memory {

// At most kMaxQueryTerms words of at most kMaxTermBytes bytes each (longer ones are dropped:
// no summary word that long is worth a search), lower-cased for ASCII.
constexpr size_t kMaxQueryTerms = 64;
constexpr size_t kMaxTermBytes = 128;
std::vector<std::string> query_terms(std::string_view text);

// FTS5 MATCH expression: every term a quoted string ("a" OR "b"); quotes inside are doubled.
std::string fts5_match_expression(const std::vector<std::string>& terms);

// The terms separated by spaces, for PostgreSQL's plainto_tsquery.
std::string plain_query_text(const std::vector<std::string>& terms);

}  // namespace engram::agent_memory

#include "tokenizer/tokenizer_impl.h"

namespace engram::tok {

std::string nfc_normalize(std::string_view text) {
  return std::string(text);
}

}  // namespace engram::tok

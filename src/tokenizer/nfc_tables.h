// Tables for NFC normalisation (internal; generated into nfc_tables.cpp).
#pragma once

#include <cstddef>
#include <cstdint>

namespace engram::tok {

struct NfcDecomposition {
  uint32_t cp;
  uint16_t offset, length;  // into kNfcDecompositionData
};
struct NfcCombiningClass {
  uint32_t cp;
  uint8_t rank;  // order-preserving stand-in for the canonical combining class
};
struct NfcComposition {
  uint32_t first, second, composite;
};

extern const NfcDecomposition kNfcDecompositions[];
extern const size_t kNfcDecompositions_size;
extern const uint32_t kNfcDecompositionData[];
extern const NfcCombiningClass kNfcCombiningClasses[];
extern const size_t kNfcCombiningClasses_size;
extern const NfcComposition kNfcCompositions[];
extern const size_t kNfcCompositions_size;

}  // namespace engram::tok

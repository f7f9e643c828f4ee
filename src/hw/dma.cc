#include "hw/dma.h"

namespace hw {

const char* DmaAccessName(DmaAccess a) { return a == DmaAccess::kRead ? "read" : "write"; }

const char* DmaFaultReasonName(DmaFaultReason r) {
  switch (r) {
    case DmaFaultReason::kBlocked: return "blocked";
    case DmaFaultReason::kPeerToPeer: return "peer-to-peer to register pages";
    case DmaFaultReason::kNotMapped: return "not-mapped";
    case DmaFaultReason::kPermission: return "permission";
    case DmaFaultReason::kOutOfAperture: return "out-of-aperture";
  }
  return "?";
}

}  // namespace hw

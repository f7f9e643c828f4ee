// Test-only: an hw::InterruptSink that records every delivery as a string ("intx:1", "msi:0",
// "msix:3") for exact comparison. Header-only; not part of vb_hw.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "hw/interrupt_sink.h"

namespace hw::testing {

class RecordingSink : public InterruptSink {
 public:
  void Intx(bool level) override { Push(level ? "intx:1" : "intx:0"); }
  void Msi(uint32_t v) override { Push("msi:" + std::to_string(v)); }
  void MsiX(uint32_t v) override { Push("msix:" + std::to_string(v)); }
  std::vector<std::string> Take() {
    std::lock_guard l(mu_);
    return std::exchange(events_, {});
  }

 private:
  void Push(std::string s) {
    std::lock_guard l(mu_);
    events_.push_back(std::move(s));
  }
  std::mutex mu_;
  std::vector<std::string> events_;
};

using Events = std::vector<std::string>;

}  // namespace hw::testing

// hw::PlatformDevice: a device on the non-PCI platform bus, identified by a name and an IOMMU
// stream id. It exists so that an IOMMU group can span two buses (an SMMU stream id shared by a
// platform device and a PCI function, the seed's odd topology): `shares_group_with` names the PCI
// function whose group it joins; otherwise it gets a group of its own.
#pragma once

#include <cstdint>
#include <string>

#include "hw/device.h"

namespace hw {

class PlatformDevice : public Device {
 public:
  PlatformDevice(std::string name, uint32_t stream_id, std::string shares_group_with = "")
      : Device("platform:" + name, BusType::kPlatform),
        stream_id_(stream_id),
        shares_group_with_(std::move(shares_group_with)) {}

  uint32_t requester_id() const override { return stream_id_; }
  const std::string& shares_group_with() const { return shares_group_with_; }

 private:
  uint32_t stream_id_;
  std::string shares_group_with_;
};

}  // namespace hw

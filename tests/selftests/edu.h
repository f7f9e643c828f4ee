/* edu.h: just enough of QEMU's "edu" device (clients.md appendix) for the selftests: BAR0
 * registers through the device fd, and its DMA engine (4 KiB buffer at device address 0x40000),
 * polled to completion. SPDX-License-Identifier: Apache-2.0 */
#ifndef VFIOBOX_EDU_H
#define VFIOBOX_EDU_H

#include <time.h>

#include "vfio_util.h"

#define EDU_REG_ID 0x00
#define EDU_REG_IRQ_STATUS 0x24
#define EDU_REG_IRQ_RAISE 0x60
#define EDU_REG_IRQ_ACK 0x64
#define EDU_REG_DMA_SRC 0x80
#define EDU_REG_DMA_DST 0x88
#define EDU_REG_DMA_COUNT 0x90
#define EDU_REG_DMA_CMD 0x98
#define EDU_DMA_START 0x1
#define EDU_DMA_TO_RAM 0x2
#define EDU_BUFFER 0x40000ull

static inline int edu_write(int device, uint32_t off, uint64_t v, int size) {
  return pwrite(device, &v, size, ((uint64_t)VFIO_PCI_BAR0_REGION_INDEX << 40) + off) == size ? 0 : -1;
}
static inline uint64_t edu_read(int device, uint32_t off, int size) {
  uint64_t v = 0;
  if (pread(device, &v, size, ((uint64_t)VFIO_PCI_BAR0_REGION_INDEX << 40) + off) != size) return ~0ull;
  return v;
}

/* Memory decode and bus mastering on. */
static inline int edu_enable(int device) {
  uint16_t cmd = 0;
  const uint64_t cfg = (uint64_t)VFIO_PCI_CONFIG_REGION_INDEX << 40;
  if (pread(device, &cmd, 2, cfg + 4) != 2) return -1;
  cmd |= 0x6;
  return pwrite(device, &cmd, 2, cfg + 4) == 2 ? 0 : -1;
}

/* One DMA of `count` bytes, polled until the engine is idle (5 s at most). 0 when it finished. */
static inline int edu_dma(int device, uint64_t src, uint64_t dst, uint64_t count, int to_ram) {
  edu_write(device, EDU_REG_DMA_SRC, src, 8);
  edu_write(device, EDU_REG_DMA_DST, dst, 8);
  edu_write(device, EDU_REG_DMA_COUNT, count, 8);
  edu_write(device, EDU_REG_DMA_CMD, EDU_DMA_START | (to_ram ? EDU_DMA_TO_RAM : 0), 8);
  for (int i = 0; i < 5000; ++i) {
    if (!(edu_read(device, EDU_REG_DMA_CMD, 8) & EDU_DMA_START)) return 0;
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  return -1;
}

/* iova → edu → iova2: what the device reads at iova lands at iova2 (`count` <= 4096). */
static inline int edu_copy(int device, uint64_t iova, uint64_t iova2, uint64_t count) {
  if (edu_dma(device, iova, EDU_BUFFER, count, 0)) return -1;
  return edu_dma(device, EDU_BUFFER, iova2, count, 1);
}

#endif

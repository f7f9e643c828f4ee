/* mmio_forms: every form of CPU access a program makes to a mapped register BAR, checked on both
 * sides: the value the program sees AND the device's own record of the accesses it received (the
 * test endpoint's access log: offset, width, direction, value, order). Built four ways (gcc and
 * clang-19, -O0 and -O2) so that the forms each compiler picks for volatile accesses and
 * read-modify-write all go through vfiobox's trap-and-emulate path; inline asm forces the memory
 * forms a compiler may or may not pick (ALU ops on memory with their flags, test/cmp, string
 * instructions, SSE/AVX/AVX-512 moves, MOVDIR64B), and glibc's memcpy/memset are called as
 * functions. Also the edu's registers through its mapped BAR0.
 *
 * Architectural rules the log assertions encode (design 0008 and faults/bus_access.h):
 *   - a 1/2/4/8-byte operand is one device access of that width at that address, aligned or not;
 *   - a plain store makes no read; a read-modify-write is one read then one write; test/cmp only read;
 *   - a string instruction is one access per element, in the direction DF says;
 *   - a wider operand (16/32/64 bytes) and the enabled bytes of a masked one are split into
 *     naturally aligned pieces of at most 8 bytes in address order (the test endpoint accepts no
 *     wide write, so MOVDIR64B is eight 8-byte writes).
 * SPDX-License-Identifier: Apache-2.0 */
#include <cpuid.h>

#include "mmio_util.h"

#define OPEN_EP(b)                              \
  struct mm_bar b;                              \
  CHECK(mm_open_bar(&b, MM_EP, TE_BAR) == 0);   \
  volatile uint8_t* w = b.bar + TE_WIN;         \
  (void)w

/* A recognisable window content: byte i of the window is pat(i). */
static uint8_t pat(unsigned i) { return (uint8_t)(i * 37u + 11u); }

/* Writes pat() into the whole window (8-byte stores), then empties the log. */
static void win_fill(struct mm_bar* b) {
  for (unsigned i = 0; i < TE_WIN_SIZE; i += 8) {
    uint64_t v = 0;
    for (unsigned k = 0; k < 8; ++k) v |= (uint64_t)pat(i + k) << (8 * k);
    *mm_r64(b, TE_WIN + i) = v;
  }
  mm_log_clear(b);
}

/* The window's bytes (8-byte loads; these are logged, so call after checking the log). */
static void win_read(struct mm_bar* b, uint8_t* out) {
  for (unsigned i = 0; i < TE_WIN_SIZE; i += 8) {
    uint64_t v = *mm_r64(b, TE_WIN + i);
    memcpy(out + i, &v, 8);
  }
}

/* Appends the expected accesses of a `len`-byte operand at window offset `o`: naturally aligned
 * pieces of at most 8 bytes, in address order, with the values from `bytes`. */
static int split(struct mm_access* out, int n, uint32_t o, unsigned len, int write, const uint8_t* bytes) {
  for (unsigned done = 0; done < len;) {
    uint32_t at = TE_WIN + o + done;
    unsigned piece = 8;
    while (piece > 1 && ((at & (piece - 1)) != 0 || piece > len - done)) piece >>= 1;
    uint64_t v = 0;
    memcpy(&v, bytes + done, piece);
    out[n++] = (struct mm_access){at, piece, write, v};
    done += piece;
  }
  return n;
}

/* ------------------------------------------------------------------ plain volatile accesses */

TEST(volatile_loads_and_stores_of_every_width) {
  OPEN_EP(b);
  win_fill(&b);
  *(volatile uint8_t*)(w + 1) = 0xa1;
  *(volatile uint16_t*)(w + 2) = 0xb2c3;
  *(volatile uint32_t*)(w + 4) = 0xd4e5f607;
  *(volatile uint64_t*)(w + 8) = 0x0123456789abcdefull;
  /* unaligned: still one access of the operand's width */
  *(volatile uint16_t*)(w + 0x11) = 0x1122;
  *(volatile uint32_t*)(w + 0x13) = 0x33445566;
  *(volatile uint64_t*)(w + 0x19) = 0x778899aabbccddeeull;
  uint8_t v1 = *(volatile uint8_t*)(w + 1);
  uint16_t v2 = *(volatile uint16_t*)(w + 2);
  uint32_t v4 = *(volatile uint32_t*)(w + 4);
  uint64_t v8 = *(volatile uint64_t*)(w + 8);
  uint16_t u2 = *(volatile uint16_t*)(w + 0x11);
  uint32_t u4 = *(volatile uint32_t*)(w + 0x13);
  uint64_t u8 = *(volatile uint64_t*)(w + 0x19);
  EXPECT_EQ(v1, 0xa1);
  EXPECT_EQ(v2, 0xb2c3);
  EXPECT_EQ(v4, 0xd4e5f607);
  EXPECT_EQ(v8, 0x0123456789abcdefull);
  EXPECT_EQ(u2, 0x1122);
  EXPECT_EQ(u4, 0x33445566);
  EXPECT_EQ(u8, 0x778899aabbccddeeull);
  MM_LOG_IS(&b, "volatile stores then loads",
            WR(1, 1, 0xa1), WR(2, 2, 0xb2c3), WR(4, 4, 0xd4e5f607), WR(8, 8, 0x0123456789abcdefull),
            WR(0x11, 2, 0x1122), WR(0x13, 4, 0x33445566), WR(0x19, 8, 0x778899aabbccddeeull),
            RD(1, 1, 0xa1), RD(2, 2, 0xb2c3), RD(4, 4, 0xd4e5f607), RD(8, 8, 0x0123456789abcdefull),
            RD(0x11, 2, 0x1122), RD(0x13, 4, 0x33445566), RD(0x19, 8, 0x778899aabbccddeeull));
}

/* Sign/zero extension on load: movzx/movsx/movsxd read the narrow operand only. */
TEST(extending_loads_read_the_narrow_width) {
  OPEN_EP(b);
  *(volatile uint64_t*)(w + 0x20) = 0x80f08000fedcba98ull;
  mm_log_clear(&b);
  int64_t s8 = *(volatile int8_t*)(w + 0x27);
  int64_t s16 = *(volatile int16_t*)(w + 0x24);
  int64_t s32 = *(volatile int32_t*)(w + 0x20);
  uint64_t z16 = *(volatile uint16_t*)(w + 0x24);
  uint32_t zb = 0, zw = 0;
  uint64_t sxd = 0;
  __asm__ __volatile__("movzbl %1, %0" : "=r"(zb) : "m"(*(uint8_t*)(w + 0x26)));
  __asm__ __volatile__("movswl %1, %0" : "=r"(zw) : "m"(*(uint16_t*)(w + 0x24)));
  __asm__ __volatile__("movslq %1, %0" : "=r"(sxd) : "m"(*(uint32_t*)(w + 0x20)));
  EXPECT_EQ(s8, (int64_t)(int8_t)0x80);
  EXPECT_EQ(s16, (int64_t)(int16_t)0x8000);
  EXPECT_EQ(s32, (int64_t)(int32_t)0xfedcba98);
  EXPECT_EQ(z16, 0x8000);
  EXPECT_EQ(zb, 0xf0);
  EXPECT_EQ(zw, 0xffff8000u);
  EXPECT_EQ(sxd, 0xfffffffffedcba98ull);
  MM_LOG_IS(&b, "extending loads", RD(0x27, 1, 0x80), RD(0x24, 2, 0x8000), RD(0x20, 4, 0xfedcba98),
            RD(0x24, 2, 0x8000), RD(0x26, 1, 0xf0), RD(0x24, 2, 0x8000), RD(0x20, 4, 0xfedcba98));
}

/* ------------------------------------------------------------ C read-modify-write operators */

/* Whatever form the compiler picked (load/op/store or op-on-memory), the device sees one read of
 * the old value and one write of the new one, at the operand's width. */
#define RMW(T, o, init, stmt, want)                                                                   \
  do {                                                                                                \
    volatile T* p = (volatile T*)(w + (o));                                                           \
    *p = (T)(init);                                                                                   \
    mm_log_clear(&b);                                                                                 \
    stmt;                                                                                             \
    MM_LOG_IS(&b, #T ": " #stmt, RD((o), sizeof(T), (T)(init)), WR((o), sizeof(T), (T)(want)));       \
    EXPECT_EQ(*p, (T)(want));                                                                         \
  } while (0)

TEST(read_modify_write_operators_on_volatiles) {
  OPEN_EP(b);
  volatile uint64_t x = 0x0101010101010101ull; /* a run-time operand, as well as constants */
  RMW(uint8_t, 0x30, 0x0f, *p |= 0xf0, 0xff);
  RMW(uint16_t, 0x32, 0x0f0f, *p |= (uint16_t)x, 0x0f0f);
  RMW(uint32_t, 0x34, 0x0f0f0000, *p |= 0xf0, 0x0f0f00f0);
  RMW(uint64_t, 0x38, 0x8000000000000000ull, *p |= x, 0x8101010101010101ull);
  RMW(uint8_t, 0x40, 0xff, *p += 2, 0x01);
  RMW(uint16_t, 0x42, 0x1234, *p += (uint16_t)x, 0x1335);
  RMW(uint32_t, 0x44, 0xfffffff0, *p += 0x20, 0x10);
  RMW(uint64_t, 0x48, 0xfffffffffffffffeull, *p += x, 0x01010101010100ffull);
  RMW(uint8_t, 0x50, 0x3c, *p &= 0x0f, 0x0c);
  RMW(uint16_t, 0x52, 0xffff, *p &= (uint16_t)x, 0x0101);
  RMW(uint32_t, 0x54, 0x12345678, *p &= 0xffff0000, 0x12340000);
  RMW(uint64_t, 0x58, 0xffffffffffffffffull, *p &= x, 0x0101010101010101ull);
  RMW(uint8_t, 0x60, 0xaa, *p ^= 0xff, 0x55);
  RMW(uint16_t, 0x62, 0x0101, *p ^= (uint16_t)x, 0);
  RMW(uint32_t, 0x64, 0xdeadbeef, *p ^= 0xffffffff, 0x21524110);
  RMW(uint64_t, 0x68, 0, *p ^= x, 0x0101010101010101ull);
  RMW(uint8_t, 0x70, 0xff, (*p)++, 0);
  RMW(uint16_t, 0x72, 0x7fff, ++*p, 0x8000);
  RMW(uint32_t, 0x74, 41, (*p)++, 42);
  RMW(uint64_t, 0x78, 0xffffffff, ++*p, 0x100000000ull);
  RMW(uint8_t, 0x80, 0, (*p)--, 0xff);
  RMW(uint16_t, 0x82, 0x8000, --*p, 0x7fff);
  RMW(uint32_t, 0x84, 1, (*p)--, 0);
  RMW(uint64_t, 0x88, 0x100000000ull, --*p, 0xffffffffull);
  /* The old value as an expression's result: one read, one write, the old value returned. */
  volatile uint32_t* p = (volatile uint32_t*)(w + 0x90);
  *p = 7;
  mm_log_clear(&b);
  uint32_t old = (*p)++;
  EXPECT_EQ(old, 7);
  MM_LOG_IS(&b, "old = (*p)++", RD(0x90, 4, 7), WR(0x90, 4, 8));
}

/* --------------------------------------------------- ALU ops on memory (inline asm) with flags */

/* Each asm below runs the instruction with a memory destination on the window and captures the
 * flags right after it with setcc. */
#define FLAGS_OUT "=q"(cf), "=q"(zf), "=q"(sf), "=q"(of)
#define SET_FLAGS "\n\tsetc %1\n\tsetz %2\n\tsets %3\n\tseto %4"

TEST(alu_ops_on_memory_and_their_flags) {
  OPEN_EP(b);
  uint8_t cf, zf, sf, of;

  volatile uint32_t* m32 = (volatile uint32_t*)(w + 0x00);
  *m32 = 0;
  mm_log_clear(&b);
  __asm__ __volatile__("orl %5, %0" SET_FLAGS : "+m"(*(uint32_t*)m32), FLAGS_OUT : "ri"(0x80000000u) : "cc");
  EXPECT_EQ(*m32, 0x80000000u);
  EXPECT_EQ(zf, 0);
  EXPECT_EQ(sf, 1);
  EXPECT_EQ(cf, 0);
  EXPECT_EQ(of, 0);
  {
    const struct mm_access want[] = {RD(0, 4, 0), WR(0, 4, 0x80000000u), RD(0, 4, 0x80000000u)};
    CHECK(mm_log_is(&b, want, 3, "orl"));
  }

  volatile uint64_t* m64 = (volatile uint64_t*)(w + 0x08);
  *m64 = ~0ull;
  mm_log_clear(&b);
  __asm__ __volatile__("addq %5, %0" SET_FLAGS : "+m"(*(uint64_t*)m64), FLAGS_OUT : "r"(1ull) : "cc");
  EXPECT_EQ(cf, 1);
  EXPECT_EQ(zf, 1);
  EXPECT_EQ(sf, 0);
  EXPECT_EQ(of, 0);
  MM_LOG_IS(&b, "addq", RD(8, 8, ~0ull), WR(8, 8, 0));
  *m64 = 0x7fffffffffffffffull;
  mm_log_clear(&b);
  __asm__ __volatile__("addq $1, %0" SET_FLAGS : "+m"(*(uint64_t*)m64), FLAGS_OUT : : "cc");
  EXPECT_EQ(cf, 0);
  EXPECT_EQ(of, 1);
  EXPECT_EQ(sf, 1);
  MM_LOG_IS(&b, "addq $1", RD(8, 8, 0x7fffffffffffffffull), WR(8, 8, 0x8000000000000000ull));

  /* inc keeps CF (set with stc before); overflow from 0x7fffffff */
  *m32 = 0x7fffffff;
  mm_log_clear(&b);
  __asm__ __volatile__("stc\n\tincl %0" SET_FLAGS : "+m"(*(uint32_t*)m32), FLAGS_OUT : : "cc");
  EXPECT_EQ(cf, 1);
  EXPECT_EQ(of, 1);
  EXPECT_EQ(sf, 1);
  EXPECT_EQ(zf, 0);
  MM_LOG_IS(&b, "incl", RD(0, 4, 0x7fffffff), WR(0, 4, 0x80000000u));
  *m32 = 0x7fffffff;
  mm_log_clear(&b);
  __asm__ __volatile__("clc\n\tincl %0" SET_FLAGS : "+m"(*(uint32_t*)m32), FLAGS_OUT : : "cc");
  EXPECT_EQ(cf, 0);

  volatile uint16_t* m16 = (volatile uint16_t*)(w + 0x12);
  *m16 = 1;
  mm_log_clear(&b);
  __asm__ __volatile__("decw %0" SET_FLAGS : "+m"(*(uint16_t*)m16), FLAGS_OUT : : "cc");
  EXPECT_EQ(zf, 1);
  EXPECT_EQ(sf, 0);
  MM_LOG_IS(&b, "decw 1", RD(0x12, 2, 1), WR(0x12, 2, 0));
  mm_log_clear(&b);
  __asm__ __volatile__("decw %0" SET_FLAGS : "+m"(*(uint16_t*)m16), FLAGS_OUT : : "cc");
  EXPECT_EQ(zf, 0);
  EXPECT_EQ(sf, 1);
  MM_LOG_IS(&b, "decw 0", RD(0x12, 2, 0), WR(0x12, 2, 0xffff));

  volatile uint8_t* m8 = w + 0x15;
  *m8 = 0xf0;
  mm_log_clear(&b);
  __asm__ __volatile__("andb $0x0f, %0" SET_FLAGS : "+m"(*(uint8_t*)m8), FLAGS_OUT : : "cc");
  EXPECT_EQ(zf, 1);
  EXPECT_EQ(cf, 0);
  MM_LOG_IS(&b, "andb $0x0f", RD(0x15, 1, 0xf0), WR(0x15, 1, 0));
  *m8 = 0xf3;
  mm_log_clear(&b);
  __asm__ __volatile__("andb %5, %0" SET_FLAGS : "+m"(*(uint8_t*)m8), FLAGS_OUT : "q"((uint8_t)0x81) : "cc");
  EXPECT_EQ(zf, 0);
  EXPECT_EQ(sf, 1);
  MM_LOG_IS(&b, "andb reg", RD(0x15, 1, 0xf3), WR(0x15, 1, 0x81));

  volatile uint32_t* x32 = (volatile uint32_t*)(w + 0x18);
  *x32 = 0x5a5a5a5a;
  mm_log_clear(&b);
  uint8_t pf;
  __asm__ __volatile__("xorl %2, %0\n\tsetz %1" : "+m"(*(uint32_t*)x32), "=q"(zf) : "r"(0x5a5a5a5au) : "cc");
  EXPECT_EQ(zf, 1);
  MM_LOG_IS(&b, "xorl", RD(0x18, 4, 0x5a5a5a5a), WR(0x18, 4, 0));
  *x32 = 0x00000003;
  mm_log_clear(&b);
  __asm__ __volatile__("xorl $1, %0\n\tsetp %1" : "+m"(*(uint32_t*)x32), "=q"(pf) : : "cc");
  EXPECT_EQ(pf, 0); /* 0x02: one bit set in the low byte: odd parity */
  MM_LOG_IS(&b, "xorl $1", RD(0x18, 4, 3), WR(0x18, 4, 2));

  /* sub with borrow; adc/sbb consume CF; neg and not */
  *m32 = 1;
  mm_log_clear(&b);
  __asm__ __volatile__("subl $2, %0" SET_FLAGS : "+m"(*(uint32_t*)m32), FLAGS_OUT : : "cc");
  EXPECT_EQ(cf, 1);
  EXPECT_EQ(sf, 1);
  MM_LOG_IS(&b, "subl", RD(0, 4, 1), WR(0, 4, 0xffffffffu));
  *m64 = 10;
  mm_log_clear(&b);
  __asm__ __volatile__("stc\n\tadcq $5, %0" SET_FLAGS : "+m"(*(uint64_t*)m64), FLAGS_OUT : : "cc");
  EXPECT_EQ(*m64, 16);
  *m64 = 10;
  mm_log_clear(&b);
  __asm__ __volatile__("stc\n\tsbbq $5, %0" SET_FLAGS : "+m"(*(uint64_t*)m64), FLAGS_OUT : : "cc");
  MM_LOG_IS(&b, "sbbq", RD(8, 8, 10), WR(8, 8, 4));
  *m32 = 5;
  mm_log_clear(&b);
  __asm__ __volatile__("negl %0" SET_FLAGS : "+m"(*(uint32_t*)m32), FLAGS_OUT : : "cc");
  EXPECT_EQ(cf, 1);
  EXPECT_EQ(sf, 1);
  MM_LOG_IS(&b, "negl", RD(0, 4, 5), WR(0, 4, (uint32_t)-5));
  *m64 = 0x00ff00ff00ff00ffull;
  mm_log_clear(&b);
  __asm__ __volatile__("notq %0" : "+m"(*(uint64_t*)m64));
  MM_LOG_IS(&b, "notq", RD(8, 8, 0x00ff00ff00ff00ffull), WR(8, 8, 0xff00ff00ff00ff00ull));

  /* xchg with memory: one read (old value into the register), one write */
  *m32 = 0x11111111;
  mm_log_clear(&b);
  uint32_t r = 0x22222222;
  __asm__ __volatile__("xchgl %0, %1" : "+r"(r), "+m"(*(uint32_t*)m32));
  EXPECT_EQ(r, 0x11111111);
  MM_LOG_IS(&b, "xchgl", RD(0, 4, 0x11111111), WR(0, 4, 0x22222222));

  /* register destination, memory source: only a read */
  *m32 = 40;
  mm_log_clear(&b);
  uint32_t acc = 2;
  __asm__ __volatile__("addl %2, %0\n\tsetz %1" : "+r"(acc), "=q"(zf) : "m"(*(uint32_t*)m32) : "cc");
  EXPECT_EQ(acc, 42);
  EXPECT_EQ(zf, 0);
  MM_LOG_IS(&b, "addl mem, reg", RD(0, 4, 40));
}

/* test/cmp with a memory operand read once and never written; ZF/CF as the CPU computes them. */
TEST(test_and_cmp_with_a_memory_operand) {
  OPEN_EP(b);
  volatile uint32_t* m32 = (volatile uint32_t*)(w + 0x40);
  volatile uint64_t* m64 = (volatile uint64_t*)(w + 0x48);
  volatile uint8_t* m8 = w + 0x51;
  *m32 = 5;
  *m64 = 0x8000000000000001ull;
  *m8 = 0x80;
  mm_log_clear(&b);
  uint8_t zf, cf, sf;
  /* cmpl reg, mem: mem - reg */
  __asm__ __volatile__("cmpl %3, %2\n\tsetz %0\n\tsetc %1" : "=q"(zf), "=q"(cf) : "m"(*(uint32_t*)m32), "r"(7u) : "cc");
  EXPECT_EQ(zf, 0);
  EXPECT_EQ(cf, 1);
  __asm__ __volatile__("cmpl %3, %2\n\tsetz %0\n\tsetc %1" : "=q"(zf), "=q"(cf) : "m"(*(uint32_t*)m32), "r"(5u) : "cc");
  EXPECT_EQ(zf, 1);
  EXPECT_EQ(cf, 0);
  /* cmpq mem, reg: reg - mem */
  __asm__ __volatile__("cmpq %2, %3\n\tsetz %0\n\tsetc %1" : "=q"(zf), "=q"(cf) : "m"(*(uint64_t*)m64), "r"(1ull) : "cc");
  EXPECT_EQ(zf, 0);
  EXPECT_EQ(cf, 1);
  __asm__ __volatile__("cmpb $0x80, %2\n\tsetz %0\n\tsetc %1" : "=q"(zf), "=q"(cf) : "m"(*(uint8_t*)m8) : "cc");
  EXPECT_EQ(zf, 1);
  EXPECT_EQ(cf, 0);
  /* test */
  __asm__ __volatile__("testq %3, %2\n\tsetz %0\n\tsets %1" : "=q"(zf), "=q"(sf) : "m"(*(uint64_t*)m64), "r"(0x8000000000000000ull) : "cc");
  EXPECT_EQ(zf, 0);
  EXPECT_EQ(sf, 1);
  __asm__ __volatile__("testl $2, %1\n\tsetz %0" : "=q"(zf) : "m"(*(uint32_t*)m32) : "cc");
  EXPECT_EQ(zf, 1);
  __asm__ __volatile__("testb %2, %1\n\tsetz %0" : "=q"(zf) : "m"(*(uint8_t*)m8), "q"((uint8_t)0x81) : "cc");
  EXPECT_EQ(zf, 0);
  /* and by branching, as compiled code does */
  int taken = 0;
  __asm__ __volatile__("cmpl $5, %1\n\tjne 1f\n\tmovl $1, %0\n1:" : "+r"(taken) : "m"(*(uint32_t*)m32) : "cc");
  EXPECT_EQ(taken, 1);
  MM_LOG_IS(&b, "test/cmp", RD(0x40, 4, 5), RD(0x40, 4, 5), RD(0x48, 8, 0x8000000000000001ull), RD(0x51, 1, 0x80),
            RD(0x48, 8, 0x8000000000000001ull), RD(0x40, 4, 5), RD(0x51, 1, 0x80), RD(0x40, 4, 5));
  EXPECT_EQ(*m32, 5);
  EXPECT_EQ(*m64, 0x8000000000000001ull);
}

/* -------------------------------------------------------------------- string instructions */

struct str_regs {
  uint64_t rdi, rsi, rcx;
};

static struct str_regs rep_movs(unsigned size, volatile void* dst, const volatile void* src, uint64_t count, int down) {
  struct str_regs r = {(uint64_t)(uintptr_t)dst, (uint64_t)(uintptr_t)src, count};
  if (down) __asm__ __volatile__("std" ::: "cc");
  switch (size) {
    case 1: __asm__ __volatile__("rep movsb" : "+D"(r.rdi), "+S"(r.rsi), "+c"(r.rcx) : : "memory"); break;
    case 2: __asm__ __volatile__("rep movsw" : "+D"(r.rdi), "+S"(r.rsi), "+c"(r.rcx) : : "memory"); break;
    case 4: __asm__ __volatile__("rep movsl" : "+D"(r.rdi), "+S"(r.rsi), "+c"(r.rcx) : : "memory"); break;
    default: __asm__ __volatile__("rep movsq" : "+D"(r.rdi), "+S"(r.rsi), "+c"(r.rcx) : : "memory"); break;
  }
  if (down) __asm__ __volatile__("cld" ::: "cc");
  return r;
}

static struct str_regs rep_stos(unsigned size, volatile void* dst, uint64_t value, uint64_t count) {
  struct str_regs r = {(uint64_t)(uintptr_t)dst, 0, count};
  if (size == 1)
    __asm__ __volatile__("rep stosb" : "+D"(r.rdi), "+c"(r.rcx) : "a"(value) : "memory");
  else
    __asm__ __volatile__("rep stosq" : "+D"(r.rdi), "+c"(r.rcx) : "a"(value) : "memory");
  return r;
}

TEST(rep_movs_ram_to_device) {
  OPEN_EP(b);
  static const unsigned sizes[] = {1, 2, 4, 8};
  uint8_t src[64];
  for (unsigned i = 0; i < sizeof src; ++i) src[i] = (uint8_t)(0xc0 + i);
  for (unsigned s = 0; s < 4; ++s) {
    const unsigned size = sizes[s];
    const uint64_t count = size == 1 ? 7 : 5;
    const uint32_t o = 0x20 + 0x30 * s + (size == 1 ? 3 : 0);
    win_fill(&b);
    struct str_regs r = rep_movs(size, w + o, src, count, 0);
    EXPECT_EQ(r.rcx, 0);
    EXPECT_EQ(r.rdi, (uint64_t)(uintptr_t)(w + o + count * size));
    EXPECT_EQ(r.rsi, (uint64_t)(uintptr_t)(src + count * size));
    struct mm_access want[16];
    for (unsigned i = 0; i < count; ++i) {
      uint64_t v = 0;
      memcpy(&v, src + i * size, size);
      want[i] = (struct mm_access)WR(o + i * size, size, v);
    }
    CHECK(mm_log_is(&b, want, (int)count, "rep movs RAM -> device"));
    uint8_t now[TE_WIN_SIZE];
    win_read(&b, now);
    CHECK(memcmp(now + o, src, count * size) == 0);
  }
}

TEST(rep_movs_device_to_ram) {
  OPEN_EP(b);
  static const unsigned sizes[] = {1, 2, 4, 8};
  for (unsigned s = 0; s < 4; ++s) {
    const unsigned size = sizes[s];
    const uint64_t count = size == 1 ? 9 : 6;
    const uint32_t o = 0x10 + 0x30 * s + (size == 1 ? 1 : 0);
    uint8_t dst[72];
    memset(dst, 0, sizeof dst);
    win_fill(&b);
    struct str_regs r = rep_movs(size, dst, w + o, count, 0);
    EXPECT_EQ(r.rcx, 0);
    EXPECT_EQ(r.rdi, (uint64_t)(uintptr_t)(dst + count * size));
    EXPECT_EQ(r.rsi, (uint64_t)(uintptr_t)(w + o + count * size));
    struct mm_access want[16];
    for (unsigned i = 0; i < count; ++i) {
      uint64_t v = 0;
      for (unsigned k = 0; k < size; ++k) v |= (uint64_t)pat(o + i * size + k) << (8 * k);
      want[i] = (struct mm_access)RD(o + i * size, size, v);
    }
    CHECK(mm_log_is(&b, want, (int)count, "rep movs device -> RAM"));
    for (unsigned i = 0; i < count * size; ++i) EXPECT_EQ(dst[i], pat(o + i));
    EXPECT_EQ(dst[count * size], 0);
  }
}

/* device -> device: each element is a read then a write; and DF=1 walks down. */
TEST(rep_movs_device_to_device_and_backwards) {
  OPEN_EP(b);
  win_fill(&b);
  struct str_regs r = rep_movs(8, w + 0x80, w + 0x00, 2, 0);
  EXPECT_EQ(r.rcx, 0);
  uint64_t p0 = 0, p1 = 0;
  for (unsigned k = 0; k < 8; ++k) {
    p0 |= (uint64_t)pat(k) << (8 * k);
    p1 |= (uint64_t)pat(8 + k) << (8 * k);
  }
  MM_LOG_IS(&b, "rep movsq device -> device", RD(0, 8, p0), WR(0x80, 8, p0), RD(8, 8, p1), WR(0x88, 8, p1));

  /* backwards: RSI/RDI at the last element, DF=1; elements in descending address order */
  uint32_t src[3] = {0xaaaa0001, 0xaaaa0002, 0xaaaa0003};
  mm_log_clear(&b);
  r = rep_movs(4, w + 0x48, &src[2], 3, 1);
  EXPECT_EQ(r.rcx, 0);
  EXPECT_EQ(r.rdi, (uint64_t)(uintptr_t)(w + 0x3c));
  EXPECT_EQ(r.rsi, (uint64_t)(uintptr_t)src - 4);
  MM_LOG_IS(&b, "std; rep movsl", WR(0x48, 4, 0xaaaa0003), WR(0x44, 4, 0xaaaa0002), WR(0x40, 4, 0xaaaa0001));
  uint8_t flags_df;
  __asm__ __volatile__("pushfq\n\tpopq %%rax\n\tshrq $10, %%rax\n\tandb $1, %%al\n\tmovb %%al, %0" : "=m"(flags_df) : : "rax", "cc");
  EXPECT_EQ(flags_df, 0);
  /* a single movs without rep */
  mm_log_clear(&b);
  uint64_t one = 0x1234567890abcdefull;
  r.rdi = (uint64_t)(uintptr_t)(w + 0xf0);
  r.rsi = (uint64_t)(uintptr_t)&one;
  __asm__ __volatile__("movsq" : "+D"(r.rdi), "+S"(r.rsi) : : "memory");
  EXPECT_EQ(r.rdi, (uint64_t)(uintptr_t)(w + 0xf8));
  MM_LOG_IS(&b, "movsq", WR(0xf0, 8, 0x1234567890abcdefull));
}

TEST(rep_stos_to_device) {
  OPEN_EP(b);
  win_fill(&b);
  struct str_regs r = rep_stos(1, w + 0x31, 0x5c, 7);
  EXPECT_EQ(r.rcx, 0);
  EXPECT_EQ(r.rdi, (uint64_t)(uintptr_t)(w + 0x38));
  r = rep_stos(8, w + 0xa0, 0x0102030405060708ull, 3);
  EXPECT_EQ(r.rcx, 0);
  EXPECT_EQ(r.rdi, (uint64_t)(uintptr_t)(w + 0xb8));
  MM_LOG_IS(&b, "rep stos", WR(0x31, 1, 0x5c), WR(0x32, 1, 0x5c), WR(0x33, 1, 0x5c), WR(0x34, 1, 0x5c),
            WR(0x35, 1, 0x5c), WR(0x36, 1, 0x5c), WR(0x37, 1, 0x5c), WR(0xa0, 8, 0x0102030405060708ull),
            WR(0xa8, 8, 0x0102030405060708ull), WR(0xb0, 8, 0x0102030405060708ull));
  uint8_t now[TE_WIN_SIZE];
  win_read(&b, now);
  EXPECT_EQ(now[0x30], pat(0x30));
  EXPECT_EQ(now[0x38], pat(0x38));
  for (unsigned i = 0x31; i < 0x38; ++i) EXPECT_EQ(now[i], 0x5c);
}

/* -------------------------------------------------------------------- glibc memcpy / memset */

/* Called through volatile pointers: the compiler must not inline them into its own moves. */
static void* (*volatile vb_memcpy)(void*, const void*, size_t) = memcpy;
static void* (*volatile vb_memset)(void*, int, size_t) = memset;

/* The log of one glibc call on [o, o + n): only accesses in `write`'s direction, each of 1, 2, 4
 * or 8 bytes inside the range with the right bytes, covering every byte; in address order except
 * for glibc's overlapping head/tail pair (at most one step back). */
static int check_coverage(struct mm_bar* b, uint32_t o, unsigned n, int write, const uint8_t* want, const char* label) {
  struct mm_access log[TE_LOG_ENTRIES];
  int cnt = mm_log_read(b, log, TE_LOG_ENTRIES);
  uint8_t covered[TE_WIN_SIZE] = {0};
  int backs = 0;
  const char* why = NULL;
  if (cnt > TE_LOG_ENTRIES) cnt = TE_LOG_ENTRIES, why = "log overflow";
  for (int i = 0; i < cnt && !why; ++i) {
    const struct mm_access* a = &log[i];
    if (a->write != write) why = write ? "a read in a store-only copy" : "a write in a load-only copy";
    else if (a->size != 1 && a->size != 2 && a->size != 4 && a->size != 8) why = "an access of a size the bus has not";
    else if (a->off < TE_WIN + o || a->off + a->size > TE_WIN + o + n) why = "an access outside the range";
    else {
      uint64_t v = 0;
      memcpy(&v, want + (a->off - TE_WIN - o), a->size);
      if (v != a->value) why = "a value that is not the bytes at that offset";
      for (unsigned k = 0; k < a->size; ++k) covered[a->off - TE_WIN - o + k] = 1;
      if (i > 0 && a->off < log[i - 1].off) ++backs;
    }
  }
  for (unsigned k = 0; k < n && !why; ++k)
    if (!covered[k]) why = "a byte no access covered";
  if (!why && backs > 1) why = "accesses out of address order (more than one step back)";
  if (why) {
    printf("# %s [%#x, +%u): %s\n", label, TE_WIN + o, n, why);
    mm_log_print("device log", log, cnt);
    return 0;
  }
  return 1;
}

static const uint32_t copy_offsets[] = {0x00, 0x05, 0x3b, 0x68};

TEST(glibc_memcpy_ram_to_device_1_to_32) {
  OPEN_EP(b);
  uint8_t src[32], before[TE_WIN_SIZE], now[TE_WIN_SIZE];
  for (unsigned i = 0; i < TE_WIN_SIZE; ++i) before[i] = pat(i);
  for (unsigned oi = 0; oi < sizeof copy_offsets / sizeof copy_offsets[0]; ++oi) {
    const uint32_t o = copy_offsets[oi];
    for (unsigned n = 1; n <= 32; ++n) {
      for (unsigned i = 0; i < n; ++i) src[i] = (uint8_t)(0xf0 ^ (n * 16 + i));
      win_fill(&b);
      vb_memcpy((void*)(w + o), src, n);
      char label[64];
      snprintf(label, sizeof label, "memcpy(win+%#x, ram, %u)", o, n);
      CHECK(check_coverage(&b, o, n, 1, src, label));
      win_read(&b, now);
      uint8_t model[TE_WIN_SIZE];
      memcpy(model, before, sizeof model);
      memcpy(model + o, src, n);
      CHECK(memcmp(now, model, sizeof now) == 0);
    }
  }
}

TEST(glibc_memcpy_device_to_ram_1_to_32) {
  OPEN_EP(b);
  uint8_t dst[40], want[32];
  for (unsigned oi = 0; oi < sizeof copy_offsets / sizeof copy_offsets[0]; ++oi) {
    const uint32_t o = copy_offsets[oi];
    for (unsigned n = 1; n <= 32; ++n) {
      win_fill(&b);
      memset(dst, 0xee, sizeof dst);
      vb_memcpy(dst, (const void*)(w + o), n);
      for (unsigned i = 0; i < n; ++i) want[i] = pat(o + i);
      char label[64];
      snprintf(label, sizeof label, "memcpy(ram, win+%#x, %u)", o, n);
      CHECK(check_coverage(&b, o, n, 0, want, label));
      CHECK(memcmp(dst, want, n) == 0);
      EXPECT_EQ(dst[n], 0xee);
    }
  }
}

TEST(glibc_memset_device_1_to_32) {
  OPEN_EP(b);
  uint8_t want[32], before[TE_WIN_SIZE], now[TE_WIN_SIZE];
  for (unsigned i = 0; i < TE_WIN_SIZE; ++i) before[i] = pat(i);
  for (unsigned oi = 0; oi < sizeof copy_offsets / sizeof copy_offsets[0]; ++oi) {
    const uint32_t o = copy_offsets[oi];
    for (unsigned n = 1; n <= 32; ++n) {
      const int c = (int)(0xa0 + n);
      memset(want, c, sizeof want);
      win_fill(&b);
      vb_memset((void*)(w + o), c, n);
      char label[64];
      snprintf(label, sizeof label, "memset(win+%#x, %#x, %u)", o, c, n);
      CHECK(check_coverage(&b, o, n, 1, want, label));
      win_read(&b, now);
      uint8_t model[TE_WIN_SIZE];
      memcpy(model, before, sizeof model);
      memset(model + o, c, n);
      CHECK(memcmp(now, model, sizeof now) == 0);
    }
  }
}

/* ------------------------------------------------------------------------- vector moves */

static void fill_bytes(uint8_t* p, unsigned n, uint8_t seed) {
  for (unsigned i = 0; i < n; ++i) p[i] = (uint8_t)(seed + 7 * i);
}

/* Checks a `len`-byte vector store of `data` at window offset o, then a load of it back. */
static int expect_wide(struct mm_bar* b, uint32_t o, unsigned len, int write, const uint8_t* data, const char* label) {
  struct mm_access want[64];
  int n = split(want, 0, o, len, write, data);
  return mm_log_is(b, want, n, label);
}

TEST(sse_movdqu_movups_16_bytes) {
  OPEN_EP(b);
  uint8_t src[16], dst[16];
  static const uint32_t offs[] = {0x10, 0x23};
  for (unsigned i = 0; i < 2; ++i) {
    const uint32_t o = offs[i];
    fill_bytes(src, 16, (uint8_t)(0x11 * (i + 1)));
    win_fill(&b);
    __asm__ __volatile__("movdqu (%1), %%xmm0\n\tmovdqu %%xmm0, (%0)" : : "r"(w + o), "r"(src) : "xmm0", "memory");
    CHECK(expect_wide(&b, o, 16, 1, src, "movdqu store"));
    mm_log_clear(&b);
    memset(dst, 0, sizeof dst);
    __asm__ __volatile__("movdqu (%0), %%xmm1\n\tmovdqu %%xmm1, (%1)" : : "r"(w + o), "r"(dst) : "xmm1", "memory");
    CHECK(expect_wide(&b, o, 16, 0, src, "movdqu load"));
    CHECK(memcmp(dst, src, 16) == 0);

    fill_bytes(src, 16, (uint8_t)(0x5a + i));
    mm_log_clear(&b);
    __asm__ __volatile__("movups (%1), %%xmm2\n\tmovups %%xmm2, (%0)" : : "r"(w + o), "r"(src) : "xmm2", "memory");
    CHECK(expect_wide(&b, o, 16, 1, src, "movups store"));
    mm_log_clear(&b);
    memset(dst, 0, sizeof dst);
    __asm__ __volatile__("movups (%0), %%xmm3\n\tmovups %%xmm3, (%1)" : : "r"(w + o), "r"(dst) : "xmm3", "memory");
    CHECK(expect_wide(&b, o, 16, 0, src, "movups load"));
    CHECK(memcmp(dst, src, 16) == 0);
  }
}

__attribute__((target("avx"))) static void avx_store(volatile uint8_t* dev, const uint8_t* src) {
  __asm__ __volatile__("vmovdqu (%1), %%ymm4\n\tvmovdqu %%ymm4, (%0)\n\tvzeroupper" : : "r"(dev), "r"(src) : "xmm4", "memory");
}
__attribute__((target("avx"))) static void avx_load(volatile uint8_t* dev, uint8_t* dst) {
  __asm__ __volatile__("vmovdqu (%0), %%ymm5\n\tvmovdqu %%ymm5, (%1)\n\tvzeroupper" : : "r"(dev), "r"(dst) : "xmm5", "memory");
}

TEST(avx_vmovdqu_ymm_32_bytes) {
  if (!__builtin_cpu_supports("avx")) SKIP("no AVX");
  OPEN_EP(b);
  uint8_t src[32], dst[32];
  static const uint32_t offs[] = {0x40, 0x45};
  for (unsigned i = 0; i < 2; ++i) {
    const uint32_t o = offs[i];
    fill_bytes(src, 32, (uint8_t)(0x31 + i));
    win_fill(&b);
    avx_store(w + o, src);
    CHECK(expect_wide(&b, o, 32, 1, src, "vmovdqu ymm store"));
    mm_log_clear(&b);
    memset(dst, 0, sizeof dst);
    avx_load(w + o, dst);
    CHECK(expect_wide(&b, o, 32, 0, src, "vmovdqu ymm load"));
    CHECK(memcmp(dst, src, 32) == 0);
  }
}

/* EVEX: zmm16 (AVX-512F) and ymm17 (AVX-512VL) need EVEX encodings (registers 16-31). */
__attribute__((target("avx512f"))) static void zmm_store(volatile uint8_t* dev, const uint8_t* src) {
  __asm__ __volatile__("vmovdqu64 (%1), %%zmm16\n\tvmovdqu64 %%zmm16, (%0)" : : "r"(dev), "r"(src) : "xmm16", "memory");
}
__attribute__((target("avx512f"))) static void zmm_load(volatile uint8_t* dev, uint8_t* dst) {
  __asm__ __volatile__("vmovdqu64 (%0), %%zmm17\n\tvmovdqu64 %%zmm17, (%1)" : : "r"(dev), "r"(dst) : "xmm17", "memory");
}
__attribute__((target("avx512f,avx512vl"))) static void ymm16_store(volatile uint8_t* dev, const uint8_t* src) {
  __asm__ __volatile__("vmovdqu32 (%1), %%ymm18\n\tvmovdqu32 %%ymm18, (%0)" : : "r"(dev), "r"(src) : "xmm18", "memory");
}
__attribute__((target("avx512f,avx512vl"))) static void ymm16_load(volatile uint8_t* dev, uint8_t* dst) {
  __asm__ __volatile__("vmovdqu32 (%0), %%ymm19\n\tvmovdqu32 %%ymm19, (%1)" : : "r"(dev), "r"(dst) : "xmm19", "memory");
}
/* Byte-masked store and zero-masked load (AVX-512BW): only the enabled bytes are accessed. */
__attribute__((target("avx512f,avx512bw"))) static void zmm_masked_store(volatile uint8_t* dev, const uint8_t* src,
                                                                          uint64_t mask) {
  __asm__ __volatile__("kmovq %2, %%k1\n\tvmovdqu8 (%1), %%zmm20\n\tvmovdqu8 %%zmm20, (%0)%{%%k1%}"
                       : : "r"(dev), "r"(src), "r"(mask) : "xmm20", "k1", "memory");
}
__attribute__((target("avx512f,avx512bw"))) static void zmm_masked_load(volatile uint8_t* dev, uint8_t* dst,
                                                                         uint64_t mask) {
  __asm__ __volatile__("kmovq %2, %%k2\n\tvmovdqu8 (%0), %%zmm21%{%%k2%}%{z%}\n\tvmovdqu64 %%zmm21, (%1)"
                       : : "r"(dev), "r"(dst), "r"(mask) : "xmm21", "k2", "memory");
}

TEST(evex_zmm_and_ymm16_moves) {
  if (!__builtin_cpu_supports("avx512f")) SKIP("no AVX-512F");
  OPEN_EP(b);
  uint8_t src[64], dst[64];
  fill_bytes(src, 64, 0x71);
  win_fill(&b);
  zmm_store(w + 0x80, src);
  CHECK(expect_wide(&b, 0x80, 64, 1, src, "vmovdqu64 zmm16 store"));
  mm_log_clear(&b);
  memset(dst, 0, sizeof dst);
  zmm_load(w + 0x80, dst);
  CHECK(expect_wide(&b, 0x80, 64, 0, src, "vmovdqu64 zmm17 load"));
  CHECK(memcmp(dst, src, 64) == 0);
  if (__builtin_cpu_supports("avx512vl")) {
    fill_bytes(src, 32, 0x09);
    mm_log_clear(&b);
    ymm16_store(w + 0x13, src);
    CHECK(expect_wide(&b, 0x13, 32, 1, src, "vmovdqu32 ymm18 store"));
    mm_log_clear(&b);
    memset(dst, 0, sizeof dst);
    ymm16_load(w + 0x13, dst);
    CHECK(expect_wide(&b, 0x13, 32, 0, src, "vmovdqu32 ymm19 load"));
    CHECK(memcmp(dst, src, 32) == 0);
  }
  if (__builtin_cpu_supports("avx512bw")) {
    /* bytes 0-1, 4-11, 20-23 and 63 enabled */
    const uint64_t mask = 0x8000000000f00ff3ull;
    fill_bytes(src, 64, 0xd0);
    win_fill(&b);
    zmm_masked_store(w + 0xc0, src, mask);
    struct mm_access want[32];
    int n = 0;
    n = split(want, n, 0xc0, 2, 1, src);
    n = split(want, n, 0xc4, 8, 1, src + 4);
    n = split(want, n, 0xd4, 4, 1, src + 20);
    n = split(want, n, 0xff, 1, 1, src + 63);
    CHECK(mm_log_is(&b, want, n, "vmovdqu8 zmm20{k1} masked store"));
    uint8_t now[TE_WIN_SIZE];
    win_read(&b, now);
    for (unsigned i = 0; i < 64; ++i) EXPECT_EQ(now[0xc0 + i], ((mask >> i) & 1) ? src[i] : pat(0xc0 + i));
    mm_log_clear(&b);
    memset(dst, 0xee, sizeof dst);
    zmm_masked_load(w + 0xc0, dst, mask);
    n = 0;
    n = split(want, n, 0xc0, 2, 0, src);
    n = split(want, n, 0xc4, 8, 0, src + 4);
    n = split(want, n, 0xd4, 4, 0, src + 20);
    n = split(want, n, 0xff, 1, 0, src + 63);
    CHECK(mm_log_is(&b, want, n, "vmovdqu8 zmm21{k2}{z} masked load"));
    for (unsigned i = 0; i < 64; ++i) EXPECT_EQ(dst[i], ((mask >> i) & 1) ? src[i] : 0);
  }
}

static int has_movdir64b(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
  return (c >> 28) & 1;
}

TEST(movdir64b_to_the_window_is_eight_8_byte_writes) {
  if (!has_movdir64b()) SKIP("no MOVDIR64B (CPUID.7.0:ECX[28])");
  OPEN_EP(b);
  uint8_t src[64 + 3];
  fill_bytes(src, sizeof src, 0x42);
  win_fill(&b);
  /* the source needs no alignment; the destination is 64-byte aligned (BAR2+0x140) */
  __asm__ __volatile__("movdir64b (%1), %0" : : "r"(w + 0x40), "r"(src + 3) : "memory");
  CHECK(expect_wide(&b, 0x40, 64, 1, src + 3, "movdir64b"));
  uint8_t now[TE_WIN_SIZE];
  win_read(&b, now);
  CHECK(memcmp(now + 0x40, src + 3, 64) == 0);
  EXPECT_EQ(now[0x3f], pat(0x3f));
  EXPECT_EQ(now[0x80], pat(0x80));
}

/* -------------------------------------------------------------------------------- the edu */

TEST(edu_registers_through_the_mapping) {
  struct mm_bar b;
  CHECK(mm_open_bar(&b, MM_EDU, VFIO_PCI_BAR0_REGION_INDEX) == 0);
  EXPECT_EQ(b.size, 1u << 20);
  EXPECT_EQ(*mm_r32(&b, 0x00), 0x010000edu); /* identification */
  *mm_r32(&b, 0x04) = 0x12345678;            /* liveness: reads back inverted */
  EXPECT_EQ(*mm_r32(&b, 0x04), ~0x12345678u);
  *mm_r32(&b, 0x04) = 0;
  EXPECT_EQ(*mm_r32(&b, 0x04), 0xffffffffu);
  *mm_r64(&b, 0x80) = 0x1122334455667788ull; /* DMA source address: one 8-byte register */
  EXPECT_EQ(*mm_r64(&b, 0x80), 0x1122334455667788ull);
  EXPECT_EQ(*mm_r32(&b, 0x80), 0x55667788u); /* and its low half by a 4-byte access */
  *mm_r32(&b, 0x08) = 5;                     /* factorial, computed by the device */
  for (int i = 0; i < 100000 && (*mm_r32(&b, 0x20) & 1); ++i) usleep(10);
  EXPECT_EQ(*mm_r32(&b, 0x08), 120u);
}

int main(void) {
  st_begin();
  st_run("");
  return st_exit();
}

// QemuProcess: one `vfiobox run [--trace] -- qemu-system-x86_64 ...` for the QEMU tests, with QMP
// on the program's stdin/stdout and the VFIO trace (the program's stderr) in a file. Every wait is
// bounded; the destructor kills the whole process group, so a failing test leaves nothing behind.
// Not thread-safe: one test thread drives it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace qemutest {

// The QEMU binary (qemu-system-x86_64 on PATH), or "" when it is not installed.
std::string FindQemu();

class QemuProcess {
 public:
  struct Options {
    bool trace = true;
    std::vector<std::string> qemu_args;  // after the binary; -qmp stdio is added
  };
  explicit QemuProcess(const Options& options);
  ~QemuProcess();
  QemuProcess(const QemuProcess&) = delete;
  QemuProcess& operator=(const QemuProcess&) = delete;

  bool started() const { return pid_ > 0; }
  // Sends a QMP command; returns its "return" member, or nullopt on an "error" answer, on EOF or
  // after `timeout`. Events read meanwhile are kept in events().
  std::optional<nlohmann::json> Command(const std::string& name, const nlohmann::json& args = nullptr,
                                        std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // An HMP command through QMP's human-monitor-command (its text output).
  std::string Hmp(const std::string& command_line);
  // Waits for the program to exit; its wait status, or nullopt after `timeout`.
  std::optional<int> WaitExit(std::chrono::milliseconds timeout);
  // The trace file so far (the program's stderr: `vfio:` lines, QEMU's messages, the fault log).
  std::string Stderr() const;
  pid_t pid() const { return pid_; }
  const std::vector<nlohmann::json>& events() const { return events_; }

 private:
  std::optional<std::string> ReadLine(std::chrono::steady_clock::time_point deadline);

  pid_t pid_ = -1;
  int to_qemu_ = -1;
  int from_qemu_ = -1;
  std::string stderr_path_;
  std::string pending_;
  std::vector<nlohmann::json> events_;
  bool exited_ = false;
};

// One line of `vfio:` trace, parsed far enough for the tests' questions.
struct TraceMapping {
  uint64_t vaddr, iova, size, flags;
};
struct TraceDma {
  std::string device;
  bool write;
  uint64_t iova, length, host;
};
// MAP_DMA calls that succeeded and were not undone by a later successful UNMAP_DMA of the same
// range before `until_line` (all lines when -1), in order.
std::vector<TraceMapping> LiveMappings(const std::string& trace, long until_line = -1);
// Every `vfio: dma` line, with the index of its line in the trace.
std::vector<std::pair<long, TraceDma>> DmaLines(const std::string& trace);
// Index of the first trace line containing `needle` at or after line `from`, or -1.
long FindLine(const std::string& trace, const std::string& needle, long from = 0);

}  // namespace qemutest

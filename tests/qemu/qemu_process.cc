#include "qemu_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace qemutest {
namespace {

using Clock = std::chrono::steady_clock;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// The value of "key=0x..." (or decimal) in a trace line, if present.
std::optional<uint64_t> Field(const std::string& line, const std::string& key) {
  size_t at = line.find(key + "=");
  if (at == std::string::npos) return std::nullopt;
  return std::strtoull(line.c_str() + at + key.size() + 1, nullptr, 0);
}

}  // namespace

std::string FindQemu() {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    std::string candidate = dir + "/qemu-system-x86_64";
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

QemuProcess::QemuProcess(const Options& options) {
  char tmpl[] = "/tmp/vfiobox-qemu-stderr-XXXXXX";
  int err_fd = mkstemp(tmpl);
  if (err_fd < 0) return;
  stderr_path_ = tmpl;
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) return;
  std::vector<std::string> argv = {VB_VFIOBOX, "run"};
  if (options.trace) argv.push_back("--trace");
  argv.push_back("--");
  argv.push_back(FindQemu());
  for (const std::string& a : options.qemu_args) argv.push_back(a);
  argv.insert(argv.end(), {"-qmp", "stdio"});
  pid_ = fork();
  if (pid_ == 0) {
    setpgid(0, 0);  // our own group: the destructor kills vfiobox run and QEMU together
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(err_fd, 2);
    std::vector<char*> args;
    for (std::string& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  close(err_fd);
  to_qemu_ = in[1];
  from_qemu_ = out[0];
  if (pid_ > 0) setpgid(pid_, pid_);
  // The greeting ({"QMP": ...}), then capabilities negotiation.
  if (!ReadLine(Clock::now() + std::chrono::seconds(30)) || !Command("qmp_capabilities")) {
    std::fprintf(stderr, "qemu did not start; its stderr:\n%s\n", Stderr().c_str());
  }
}

QemuProcess::~QemuProcess() {
  if (pid_ > 0 && !exited_) {
    kill(-pid_, SIGKILL);
    int status;
    waitpid(pid_, &status, 0);
  }
  if (to_qemu_ >= 0) close(to_qemu_);
  if (from_qemu_ >= 0) close(from_qemu_);
  if (!stderr_path_.empty()) unlink(stderr_path_.c_str());
}

std::optional<std::string> QemuProcess::ReadLine(Clock::time_point deadline) {
  for (;;) {
    if (size_t nl = pending_.find('\n'); nl != std::string::npos) {
      std::string line = pending_.substr(0, nl);
      pending_.erase(0, nl + 1);
      return line;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return std::nullopt;
    pollfd p{from_qemu_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char buf[4096];
    ssize_t n = read(from_qemu_, buf, sizeof buf);
    if (n <= 0) return std::nullopt;
    pending_.append(buf, static_cast<size_t>(n));
  }
}

std::optional<nlohmann::json> QemuProcess::Command(const std::string& name, const nlohmann::json& args,
                                                   std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return std::nullopt;
  nlohmann::json cmd = {{"execute", name}};
  if (!args.is_null()) cmd["arguments"] = args;
  std::string text = cmd.dump() + "\n";
  if (write(to_qemu_, text.data(), text.size()) != static_cast<ssize_t>(text.size())) return std::nullopt;
  const auto deadline = Clock::now() + timeout;
  while (auto line = ReadLine(deadline)) {
    nlohmann::json j = nlohmann::json::parse(*line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) continue;
    if (j.contains("return")) return j["return"];
    if (j.contains("error")) return std::nullopt;
    events_.push_back(j);
  }
  return std::nullopt;
}

std::string QemuProcess::Hmp(const std::string& command_line) {
  auto r = Command("human-monitor-command", {{"command-line", command_line}});
  return r && r->is_string() ? r->get<std::string>() : "";
}

std::optional<int> QemuProcess::WaitExit(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (pid_ > 0 && !exited_) {
    int status;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exited_ = true;
      return status;
    }
    if (Clock::now() >= deadline) return std::nullopt;
    usleep(20000);
  }
  return std::nullopt;
}

std::string QemuProcess::Stderr() const {
  std::ifstream f(stderr_path_);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::vector<TraceMapping> LiveMappings(const std::string& trace, long until_line) {
  std::vector<TraceMapping> live;
  std::vector<std::string> lines = Lines(trace);
  for (long i = 0; i < static_cast<long>(lines.size()) && (until_line < 0 || i < until_line); ++i) {
    const std::string& l = lines[i];
    if (l.rfind("vfio: container", 0) != 0 || l.find(" = 0") == std::string::npos) continue;
    auto iova = Field(l, "iova"), size = Field(l, "size");
    if (!iova || !size) continue;
    if (l.find("VFIO_IOMMU_MAP_DMA") != std::string::npos) {
      live.push_back({*Field(l, "vaddr"), *iova, *size, *Field(l, "flags")});
    } else if (l.find("VFIO_IOMMU_UNMAP_DMA") != std::string::npos) {
      std::erase_if(live, [&](const TraceMapping& m) { return m.iova >= *iova && m.iova + m.size <= *iova + *size; });
    }
  }
  return live;
}

std::vector<std::pair<long, TraceDma>> DmaLines(const std::string& trace) {
  std::vector<std::pair<long, TraceDma>> out;
  std::vector<std::string> lines = Lines(trace);
  for (long i = 0; i < static_cast<long>(lines.size()); ++i) {
    char device[64], dir[8];
    unsigned long long iova, len, host;
    if (std::sscanf(lines[i].c_str(), "vfio: dma %63s %7s iova=%llx len=%llu host=%llx", device, dir, &iova, &len,
                    &host) == 5) {
      out.push_back({i, TraceDma{device, std::strcmp(dir, "write") == 0, iova, len, host}});
    }
  }
  return out;
}

long FindLine(const std::string& trace, const std::string& needle, long from) {
  std::vector<std::string> lines = Lines(trace);
  for (long i = from; i < static_cast<long>(lines.size()); ++i) {
    if (lines[i].find(needle) != std::string::npos) return i;
  }
  return -1;
}

}  // namespace qemutest

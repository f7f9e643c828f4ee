// vfiobox: the command-line face of the simulator.
//   vfiobox topology [--json] [--topology FILE]   the PCI tree, like lspci -tv
//   vfiobox groups   [--json] [--topology FILE]   the IOMMU groups, like /sys/kernel/iommu_groups
//   vfiobox run [--topology FILE] [--trace] -- PROGRAM ARGS...   PROGRAM against the machine
//   vfiobox --version
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <limits.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "hw/pci_device.h"
#include "topology/system.h"

// From cmake/install.cmake: the version is project()'s, the preload directory is relative to bin/.
#if !defined(VB_VERSION) || !defined(VB_PRELOAD_RELDIR)
#error "VB_VERSION and VB_PRELOAD_RELDIR come from cmake/install.cmake"
#endif

namespace {

std::string ClassName(uint32_t class_code) {
  switch (class_code >> 8) {
    case 0x0600: return "Host bridge";
    case 0x0604: return "PCI bridge";
    case 0x0200: return "Ethernet controller";
    case 0x0100: return "SCSI storage controller";
    case 0x0108: return "Non-Volatile memory controller";
    case 0x00ff: return "Unclassified device";
    case 0x0880: return "System peripheral";  // lspci's name for 0x0880 (e.g. I/OAT CBDMA)
  }
  switch (class_code >> 16) {
    case 0x02: return "Network controller";
    case 0x01: return "Mass storage controller";
    case 0x06: return "Bridge";
    case 0xff: return "Unassigned class";
  }
  return fmt::format("Class {:04x}", class_code >> 8);
}

std::string DriverName(const hw::Device& d) {
  hw::Driver* drv = d.driver();
  return drv ? std::string(drv->name()) : "";
}

// Pads to `width` display columns (the tree's box-drawing characters are one column, three bytes).
std::string Pad(const std::string& s, size_t width) {
  size_t cols = 0;
  for (unsigned char c : s) cols += (c & 0xc0) != 0x80;
  return cols >= width ? s + " " : s + std::string(width - cols, ' ');
}

struct Ctx {
  topology::System& sys;
};

nlohmann::json DeviceJson(Ctx& ctx, const hw::PciDevice& d) {
  nlohmann::json j;
  j["bdf"] = d.name();
  j["vendor"] = fmt::format("{:04x}", d.vendor_id());
  j["device"] = fmt::format("{:04x}", d.device_id());
  j["class"] = fmt::format("{:06x}", d.class_code());
  j["kind"] = hw::PcieTypeName(d.pcie_type());
  j["multifunction"] = d.multifunction();
  if (auto acs = d.acs_capability()) j["acs"] = {{"cap", *acs}, {"ctrl", d.acs_control().value_or(0)}};
  j["driver"] = DriverName(d);
  j["iommu"] = ctx.sys.IommuNameOf(d);
  if (auto g = ctx.sys.iommu_core().GroupOf(d)) j["iommu_group"] = g->id();
  if (hw::PciBus* sec = d.secondary_bus()) {
    nlohmann::json kids = nlohmann::json::array();
    for (hw::PciDevice* c : sec->devices()) kids.push_back(DeviceJson(ctx, *c));
    j["secondary_bus"] = sec->number();
    j["children"] = kids;
  }
  return j;
}

void PrintBus(Ctx& ctx, const hw::PciBus& bus, const std::string& prefix) {
  auto devs = bus.devices();
  for (size_t i = 0; i < devs.size(); ++i) {
    const hw::PciDevice& d = *devs[i];
    const bool last = i + 1 == devs.size();
    std::string line = fmt::format("{}{}{:02x}.{:x}  {:04x}:{:04x}  {}", prefix, last ? "└─" : "├─",
                                   d.address().device(), d.address().function(), d.vendor_id(), d.device_id(),
                                   ClassName(d.class_code()));
    if (d.is_pcie() || d.is_bridge()) line += fmt::format(" ({})", hw::PcieTypeName(d.pcie_type()));
    if (d.acs_capability()) line += d.acs_control().value_or(0) == hw::kAcsIsolationFlags ? " [ACS]" : " [ACS partial]";
    if (d.multifunction()) line += " [multifunction]";
    std::string meta;
    if (auto g = ctx.sys.iommu_core().GroupOf(d)) meta += fmt::format("group {}", g->id());
    meta += fmt::format(" · {}", ctx.sys.IommuNameOf(d));
    const std::string drv = DriverName(d);
    meta += " · " + (drv.empty() ? std::string("no driver") : drv);
    std::printf("%s%s\n", Pad(line, 74).c_str(), meta.c_str());
    if (hw::PciBus* sec = d.secondary_bus()) {
      std::printf("%s%s  [bus %02x]\n", prefix.c_str(), last ? "   " : "│  ", sec->number());
      PrintBus(ctx, *sec, prefix + (last ? "   " : "│  "));
    }
  }
}

int Topology(topology::System& sys, bool json) {
  Ctx ctx{sys};
  hw::PciBus* root = sys.machine().root_bus();
  if (json) {
    nlohmann::json j;
    nlohmann::json pci = nlohmann::json::array();
    for (hw::PciDevice* d : root->devices()) pci.push_back(DeviceJson(ctx, *d));
    j["pci"] = pci;
    nlohmann::json plat = nlohmann::json::array();
    for (auto& d : sys.machine().Devices()) {
      if (d->bus_type() != hw::BusType::kPlatform) continue;
      nlohmann::json p = {{"name", d->name()}, {"stream_id", d->requester_id()}, {"driver", DriverName(*d)},
                          {"iommu", sys.IommuNameOf(*d)}};
      if (auto g = sys.iommu_core().GroupOf(*d)) p["iommu_group"] = g->id();
      plat.push_back(p);
    }
    j["platform"] = plat;
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("[0000:00] PCI root bus\n");
  PrintBus(ctx, *root, "");
  bool header = false;
  for (auto& d : sys.machine().Devices()) {
    if (d->bus_type() != hw::BusType::kPlatform) continue;
    if (!header) std::printf("[platform] platform bus\n");
    header = true;
    auto g = sys.iommu_core().GroupOf(*d);
    std::string line = fmt::format("└─{}  stream id {:#x}", d->name(), d->requester_id());
    std::printf("%sgroup %d · %s · %s\n", Pad(line, 74).c_str(), g ? g->id() : -1, sys.IommuNameOf(*d).c_str(),
                DriverName(*d).c_str());
  }
  return 0;
}

int Groups(topology::System& sys, bool json) {
  nlohmann::json out = nlohmann::json::array();
  for (auto& g : sys.iommu_core().Groups()) {
    nlohmann::json j;
    j["id"] = g->id();
    j["iommu"] = g->iommu().name();
    // Viable for VFIO: no member bound to a DMA-API kernel driver (§2.2).
    const bool viable = !g->DmaOwnerClaimed();
    j["viable"] = viable;
    j["vfio"] = static_cast<bool>(sys.vfio().FindGroup(g->id()));
    nlohmann::json devs = nlohmann::json::array();
    for (auto& d : g->Devices()) devs.push_back({{"name", d->name()}, {"driver", DriverName(*d)}});
    j["devices"] = devs;
    nlohmann::json reserved = nlohmann::json::array();
    for (auto& r : g->iommu().caps().reserved)
      reserved.push_back({{"start", fmt::format("{:#018x}", r.first)}, {"end", fmt::format("{:#018x}", r.last)},
                          {"type", iommu::ReservedRegionTypeName(r.type)}});
    j["reserved_regions"] = reserved;
    out.push_back(j);
  }
  if (json) {
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  for (auto& j : out) {
    std::string flags = j["vfio"].get<bool>() ? (j["viable"].get<bool>() ? "/dev/vfio/" + std::to_string(j["id"].get<int>()) : "vfio, NOT viable: a kernel driver owns a member")
                                              : "no VFIO device";
    std::printf("IOMMU group %d (%s) — %s\n", j["id"].get<int>(), j["iommu"].get<std::string>().c_str(), flags.c_str());
    for (auto& d : j["devices"]) {
      std::string drv = d["driver"].get<std::string>();
      std::printf("    %-28s %s\n", d["name"].get<std::string>().c_str(), drv.empty() ? "(no driver)" : drv.c_str());
    }
  }
  return 0;
}

volatile pid_t g_run_child = 0;

// The preload library, found relative to this executable (never by a path fixed at build time), so
// that the build tree, an install under any prefix and an unpacked .deb all work: $VFIOBOX_PRELOAD
// if set, else beside the executable (the build tree), else VB_PRELOAD_RELDIR from the executable's
// directory (an install: bin/ -> lib/<multiarch>/vfiobox/, computed by cmake/install.cmake).
// Returns a canonical path (LD_PRELOAD splits on spaces and colons; "../" would be noise), or "".
std::string FindPreloadLibrary() {
  if (const char* env = std::getenv("VFIOBOX_PRELOAD")) return access(env, R_OK) == 0 ? env : "";
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return "";
  self[n] = 0;
  std::string dir(self);
  dir.resize(dir.rfind('/'));
  for (const std::string& candidate :
       {dir + "/libvfiobox-preload.so", dir + "/" VB_PRELOAD_RELDIR "/libvfiobox-preload.so"}) {
    char abs[PATH_MAX];
    if (access(candidate.c_str(), R_OK) == 0 && realpath(candidate.c_str(), abs)) return abs;
  }
  return "";
}

// `vfiobox run`: runs PROGRAM with the preload library, which builds the machine inside the
// program's process (state lives in the process) and serves /dev/vfio and /sys to it.
int Run(const std::string& topology_file, bool trace, const std::vector<std::string>& argv) {
  if (argv.empty()) {
    std::fprintf(stderr, "vfiobox run: no program given (vfiobox run [--topology FILE] [--trace] -- PROGRAM ARGS...)\n");
    return 2;
  }
  std::string preload = FindPreloadLibrary();
  if (preload.empty()) {
    std::fprintf(stderr, "vfiobox run: cannot find libvfiobox-preload.so beside the vfiobox executable or in "
                 "its " VB_PRELOAD_RELDIR "/ (set VFIOBOX_PRELOAD)\n");
    return 2;
  }
  if (!topology_file.empty()) {
    // Validate here so a bad file is one line from us, not a failure inside the program.
    topology::ParseError err;
    if (!topology::LoadTopologyFile(topology_file, &err)) {
      std::fprintf(stderr, "vfiobox: %s\n", err.message.c_str());
      return 2;
    }
    char abs[PATH_MAX];
    if (realpath(topology_file.c_str(), abs)) setenv("VFIOBOX_TOPOLOGY", abs, 1);
  }
  if (trace) setenv("VFIOBOX_TRACE", "1", 1);
  std::string ld = preload;
  if (const char* old = std::getenv("LD_PRELOAD"); old && *old) ld += std::string(":") + old;
  setenv("LD_PRELOAD", ld.c_str(), 1);

  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    std::perror("vfiobox run: fork");
    return 2;
  }
  if (pid == 0) {
    // The program must not outlive `vfiobox run` (a test harness that kills us kills it too).
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(127);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    std::fprintf(stderr, "vfiobox run: %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  // Termination requests to us are the program's: pass them on and keep waiting for it.
  g_run_child = pid;
  struct sigaction forward {};
  forward.sa_handler = [](int sig) { kill(g_run_child, sig); };
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaction(sig, &forward, nullptr);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

}  // namespace

int main(int argc, char** argv) {
  // Named, so that --help says "vfiobox", not argv[0] (the man page is made from it).
  CLI::App app{"vfiobox: the Linux VFIO stack in userspace, on a simulated machine", "vfiobox"};
  app.set_version_flag("--version", "vfiobox " VB_VERSION);
  app.require_subcommand(1);
  std::string topology_file;
  bool json = false;
  auto add_common = [&](CLI::App* sub) {
    sub->add_option("--topology", topology_file, "machine description (JSON); default: the built-in machine");
    sub->add_flag("--json", json, "machine-readable output");
  };
  CLI::App* topo = app.add_subcommand("topology", "show the PCI topology (like lspci -tv)");
  add_common(topo);
  CLI::App* groups = app.add_subcommand("groups", "show the IOMMU groups (like /sys/kernel/iommu_groups)");
  add_common(groups);
  CLI::App* run = app.add_subcommand("run", "run a program against the simulated machine (-- PROGRAM ARGS...)");
  bool trace = false;
  std::vector<std::string> program;
  run->add_option("--topology", topology_file, "machine description (JSON); default: the built-in machine");
  run->add_flag("--trace", trace, "print every VFIO call, decoded, one line each");
  std::string register_bars;
  run->add_option("--register-bars", register_bars,
                  "trap: register BARs mmappable, each access trapped and emulated (as Linux; default); "
                  "no-mmap: register BARs without MMAP, for QEMU with KVM")
      ->check(CLI::IsMember({"trap", "no-mmap"}));
  std::string kernel;
  run->add_option("--kernel", kernel,
                  "which Linux the machine answers as: 6.1 (default) or 6.12 (adds /dev/iommu and the "
                  "VFIO device cdevs); overrides the topology's \"kernel\"")
      ->check(CLI::IsMember({"6.1", "6.12"}));
  run->add_option("program", program, "the program and its arguments (after --)")->required();
  run->prefix_command();
  // Everything after the first "--" of `run` is the program's, verbatim (CLI11's prefix mode would
  // re-order a "--" that the program itself receives).
  int parsed_argc = argc;
  std::vector<std::string> after_dashes;
  if (argc > 1 && std::string_view(argv[1]) == "run") {
    for (int i = 2; i < argc; ++i) {
      if (std::string_view(argv[i]) == "--") {
        parsed_argc = i;
        after_dashes.assign(argv + i + 1, argv + argc);
        break;
      }
    }
    if (parsed_argc != argc) run->get_option("program")->required(false);
  }
  CLI11_PARSE(app, parsed_argc, argv);
  if (*run) {
    if (parsed_argc != argc) {
      program.insert(program.end(), after_dashes.begin(), after_dashes.end());
    } else {
      for (const std::string& extra : run->remaining()) program.push_back(extra);
    }
    if (!register_bars.empty()) setenv("VFIOBOX_REGISTER_BARS", register_bars.c_str(), 1);
    if (!kernel.empty()) setenv("VFIOBOX_KERNEL", kernel.c_str(), 1);
    return Run(topology_file, trace, program);
  }

  topology::TopologySpec spec;
  if (topology_file.empty()) {
    spec = topology::DefaultTopology();
  } else {
    topology::ParseError err;
    auto parsed = topology::LoadTopologyFile(topology_file, &err);
    if (!parsed) {
      std::fprintf(stderr, "vfiobox: %s\n", err.message.c_str());
      return 2;
    }
    spec = std::move(*parsed);
  }
  std::string error;
  auto sys = topology::System::Create(spec, &error);
  if (!sys) {
    std::fprintf(stderr, "vfiobox: %s\n", error.c_str());
    return 2;
  }
  if (*topo) return Topology(*sys, json);
  return Groups(*sys, json);
}

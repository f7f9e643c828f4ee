// hw::Executor: the machine's background worker, where devices do what real hardware does on its
// own time (a DMA engine, a timer). One thread; tasks run in order of their due time. Tests call
// Drain() to wait until nothing is queued or running.
//
// Locks: mu_ (kExecutor) guards the queue. Tasks run with no executor lock held.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <thread>

#include "base/mutex.h"

namespace hw {

class Executor {
 public:
  Executor();
  ~Executor();  // runs nothing more; waits for a running task to finish
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  void Post(std::function<void()> task, std::chrono::nanoseconds delay = {}) EXCLUDES(mu_);
  // Blocks until the queue is empty and no task is running (tasks posted by tasks included).
  void Drain() EXCLUDES(mu_);

 private:
  void Run() EXCLUDES(mu_);

  vb::Mutex mu_{vb::LockRank::kExecutor};  // guards everything below
  vb::CondVar cv_;
  std::multimap<std::chrono::steady_clock::time_point, std::function<void()>> queue_ GUARDED_BY(mu_);
  bool running_task_ GUARDED_BY(mu_) = false;
  bool stop_ GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace hw

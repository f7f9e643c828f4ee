#include "hw/executor.h"

namespace hw {

Executor::Executor() : thread_([this] { Run(); }) {}

Executor::~Executor() {
  {
    vb::MutexLock l(mu_);
    stop_ = true;
    cv_.SignalAll();
  }
  thread_.join();
}

void Executor::Post(std::function<void()> task, std::chrono::nanoseconds delay) {
  vb::MutexLock l(mu_);
  queue_.emplace(std::chrono::steady_clock::now() + delay, std::move(task));
  cv_.SignalAll();
}

void Executor::Drain() {
  vb::MutexLock l(mu_);
  while (!queue_.empty() || running_task_) cv_.Wait(mu_);
}

void Executor::Run() {
  vb::MutexLock l(mu_);
  while (!stop_) {
    if (queue_.empty()) {
      cv_.Wait(mu_);
      continue;
    }
    auto now = std::chrono::steady_clock::now();
    auto it = queue_.begin();
    if (it->first > now) {
      cv_.WaitFor(mu_, std::chrono::duration_cast<std::chrono::nanoseconds>(it->first - now).count());
      continue;
    }
    std::function<void()> task = std::move(it->second);
    queue_.erase(it);
    running_task_ = true;
    mu_.Unlock();
    task();
    mu_.Lock();
    running_task_ = false;
    cv_.SignalAll();
  }
}

}  // namespace hw

#include "kernels/parallel.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace coral {
namespace {

struct Job {
  const std::function<void(size_t)>* fn;
  size_t n;
  std::atomic<size_t> next{0};
  std::atomic<size_t> done{0};
  std::atomic<int> helpers{0};  // pool threads still allowed to join
  std::mutex m;
  std::condition_variable cv;
  std::atomic<bool> failed{false};
  std::exception_ptr error;  // the first exception thrown by fn (guarded by m)

  // Claims indices until none remain. Returns after finishing its share. An
  // exception from fn (say std::bad_alloc on a pool thread) is kept for the
  // caller, and the indices not yet started are skipped.
  void Drain() {
    size_t finished = 0;
    for (;;) {
      size_t i = next.fetch_add(1, std::memory_order_relaxed);
      if (i >= n) break;
      if (!failed.load(std::memory_order_relaxed)) {
        try {
          (*fn)(i);
        } catch (...) {
          std::lock_guard<std::mutex> lk(m);
          if (!error) error = std::current_exception();
          failed = true;
        }
      }
      ++finished;
    }
    if (finished && done.fetch_add(finished) + finished == n) {
      std::lock_guard<std::mutex> lk(m);
      cv.notify_all();
    }
  }
};

class Pool {
 public:
  static Pool& Get() {
    static Pool* p = new Pool();  // leaked on purpose: threads live for the process
    return *p;
  }

  void Submit(const std::shared_ptr<Job>& job, int helpers) {
    {
      std::lock_guard<std::mutex> lk(m_);
      EnsureThreads(helpers);
      for (int i = 0; i < helpers; ++i) queue_.push_back(job);
    }
    cv_.notify_all();
  }

 private:
  void EnsureThreads(int want) {
    while (static_cast<int>(threads_.size()) < want) {
      threads_.emplace_back([this] { Loop(); });
      threads_.back().detach();
    }
  }

  void Loop() {
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [this] { return !queue_.empty(); });
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      job->Drain();
    }
  }

  std::mutex m_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::vector<std::thread> threads_;
};

int DefaultThreads() {
  if (const char* s = std::getenv("CORAL_THREADS")) {
    int v = std::atoi(s);
    if (v >= 1) return std::min(v, 256);
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc ? static_cast<int>(std::min(hc, 256u)) : 1;
}

std::atomic<int> g_max_threads{0};

}  // namespace

int MaxThreads() {
  int v = g_max_threads.load();
  if (v == 0) {
    v = DefaultThreads();
    g_max_threads.store(v);
  }
  return v;
}

void SetMaxThreads(int n) { g_max_threads.store(std::max(1, std::min(n, 256))); }

void ParallelFor(size_t n, const std::function<void(size_t)>& fn, int threads) {
  if (n == 0) return;
  int t = threads > 0 ? threads : MaxThreads();
  if (t <= 1 || n == 1) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  auto job = std::make_shared<Job>();
  job->fn = &fn;
  job->n = n;
  int helpers = static_cast<int>(std::min<size_t>(static_cast<size_t>(t - 1), n - 1));
  Pool::Get().Submit(job, helpers);
  job->Drain();
  std::unique_lock<std::mutex> lk(job->m);
  job->cv.wait(lk, [&] { return job->done.load() == job->n; });
  if (job->error) std::rethrow_exception(job->error);
}

}  // namespace coral

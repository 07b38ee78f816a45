//go:build libtorch

// The C++ side of the libtorch binding: a few hundred lines over
// torch::jit (DESIGN.md §5), behind the C API in shim.h.

#include "shim.h"

#include <torch/script.h>
#include <torch/cuda.h>
#include <torch/version.h>
#include <ATen/Parallel.h>

#include <dlfcn.h>
#include <link.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <functional>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

// executor runs tasks one at a time on a thread of its own; run blocks
// until the task is done and rethrows what it threw. Callers must not
// overlap (oa_module's mu sees to that).
//
// Why a thread of its own: libtorch's CPU kernels run in OpenMP parallel
// regions, and with libgomp every OS thread that starts one gets a pool of
// worker threads of its own. Go runs cgo calls on whichever of its threads
// it likes, so forwards called directly from Go collect one pool per Go
// thread; once libgomp manages more threads than there are CPUs it stops
// letting idle workers spin between parallel regions (it throttles
// GOMP_SPINCOUNT), and every one of the hundreds of small parallel regions
// of a forward then pays a futex wake-up: measured on 2 cores with the
// benchmark's transformer (internal/cmd/torchbench), a forward of one
// series took about 10.5 ms called from Go's threads against 4.8 ms from
// Python's one thread. On one thread per module there is one pool per
// model, as in Python, for the cost of a hand-over (a condition variable)
// each way per call; the forward of one series then took 5.2 ms against
// Python's 4.4 ms on a quiet machine (BENCHMARKS.md, "TorchScript
// throughput", says what is known of the rest).
class executor {
 public:
  executor() : thread_([this] { loop(); }) {}
  ~executor() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  executor(const executor&) = delete;
  executor& operator=(const executor&) = delete;

  void run(const std::function<void()>& f) {
    std::unique_lock<std::mutex> lock(mu_);
    task_ = &f;
    done_ = false;
    failure_ = nullptr;
    cv_.notify_all();
    cv_.wait(lock, [this] { return done_; });
    if (failure_) {
      std::rethrow_exception(failure_);
    }
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [this] { return stop_ || task_ != nullptr; });
      if (stop_) {
        return;
      }
      const std::function<void()>* f = task_;
      task_ = nullptr;
      lock.unlock();
      std::exception_ptr failure;
      try {
        (*f)();
      } catch (...) {
        failure = std::current_exception();
      }
      lock.lock();
      failure_ = failure;
      done_ = true;
      cv_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  const std::function<void()>* task_ = nullptr;
  bool done_ = false;
  bool stop_ = false;
  std::exception_ptr failure_;
  std::thread thread_;  // last: starts once the fields above exist
};

struct oa_module {
  torch::jit::Module module;
  c10::Device device{c10::kCPU};
  int threads = 0;
  // TorchScript's interpreter can run one module from several threads, but
  // on CPU one forward already uses every intra-op thread and on CUDA the
  // calls share one stream, so serialising them costs little and rules out
  // races in modules that keep state in attributes.
  std::mutex mu;
  // Runs every forward of this module (see executor); destroyed, and its
  // thread joined, before the module it uses.
  executor exec;
  // Timing of the forwards (oa_forward_stats), in steady_clock nanoseconds.
  std::atomic<int64_t> calls{0};
  std::atomic<int64_t> forward_ns{0};
  std::atomic<int64_t> call_ns{0};
};

namespace {

// The intra-op thread count of the most recent forward (oa_threads).
std::atomic<int> last_forward_threads{0};

char* dup(const std::string& s) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (p != nullptr) {
    std::memcpy(p, s.c_str(), s.size() + 1);
  }
  return p;
}

// what returns an exception's message without libtorch's C++ backtrace,
// which c10::Error appends and which means nothing to a user.
std::string what(const std::exception& e) {
  if (auto* ce = dynamic_cast<const c10::Error*>(&e)) {
    return ce->what_without_backtrace();
  }
  return e.what();
}

// load_cuda loads libtorch_cuda.so from the directory libtorch_cpu.so came
// from. The binary links only libtorch_cpu, libc10 and libtorch (which need
// no GPU libraries beyond the CUDA runtime), so it starts on machines without
// CUDA; loading libtorch_cuda registers the CUDA backend. It must happen
// before anything asks libtorch about CUDA: the answer is cached. Returns ""
// or why it failed.
std::string load_cuda() {
  static std::once_flag once;
  static std::string failure;
  std::call_once(once, [] {
    std::string path = "libtorch_cuda.so";
    if (void* cpu = dlopen("libtorch_cpu.so", RTLD_NOW | RTLD_NOLOAD)) {
      struct link_map* lm = nullptr;
      if (dlinfo(cpu, RTLD_DI_LINKMAP, &lm) == 0 && lm != nullptr && lm->l_name != nullptr) {
        std::string dir(lm->l_name);
        auto slash = dir.rfind('/');
        if (slash != std::string::npos) {
          path = dir.substr(0, slash + 1) + "libtorch_cuda.so";
        }
      }
    }
    if (dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL) == nullptr) {
      const char* e = dlerror();
      failure = e != nullptr ? e : "dlopen " + path + " failed";
    }
  });
  return failure;
}

c10::Device pick_device(const std::string& name) {
  if (name == "auto" || name.rfind("cuda", 0) == 0) {
    std::string failure = load_cuda();
    if (!failure.empty() && name != "auto") {
      throw std::runtime_error("device " + name + ": cannot load libtorch's CUDA backend: " + failure);
    }
  }
  if (name == "auto") {
    return torch::cuda::is_available() ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  }
  c10::Device d(name);
  if (d.is_cuda()) {
    if (!torch::cuda::is_available()) {
      throw std::runtime_error(
          "device " + name + ": CUDA is not available (no GPU, no driver, or libtorch_cuda.so not loadable)");
    }
    int n = static_cast<int>(torch::cuda::device_count());
    if (d.has_index() && d.index() >= n) {
      std::ostringstream msg;
      msg << "device " << name << ": only " << n << " CUDA device(s)";
      throw std::runtime_error(msg.str());
    }
    if (!d.has_index()) {
      d = c10::Device(c10::kCUDA, 0);
    }
  }
  return d;
}

// forward_inputs describes a forward's inputs (oa_forward_inputs).
struct forward_inputs {
  int n;
  const int* dtypes;
  const int* ndims;
  const int64_t* shapes;
  const void* data[OA_MAX_INPUTS];
};

// run_forward is one forward, on the module's executor thread: the inputs
// into tensors on the device, the graph, the outputs into the caller's
// buffers. Throws on failure; *ran is set once the graph was called.
void run_forward(oa_module* m, const forward_inputs& in,
                 float* out0, int64_t cap0, float* out1, int64_t cap1,
                 int* n_outputs, int* ndims, int64_t* shapes, bool* ran) {
  using clock = std::chrono::steady_clock;
  // The executor thread is the only one that runs this module's forwards.
  // On its first forward it gets what torch's own threads get
  // (at::init_num_threads: OpenMP's count matched to MKL's) and the
  // model's thread count, set even when it already matches: set_num_threads
  // also turns MKL's dynamic adjustment off (so MKL and ATen's OpenMP
  // regions share one team of threads instead of resizing it), as
  // Python's torch.set_num_threads does: the same settings as the Python
  // loop internal/cmd/torchbench compares with (no difference that its
  // noise could show, though).
  thread_local bool initialised = false;
  if (!initialised) {
    at::init_num_threads();
    if (m->threads > 0) {
      at::set_num_threads(m->threads);
    }
    initialised = true;
  } else if (m->threads > 0 && at::get_num_threads() != m->threads) {
    at::set_num_threads(m->threads);
  }
  last_forward_threads.store(at::get_num_threads(), std::memory_order_relaxed);
  c10::InferenceMode guard;
  // copy: no tensor may point into the caller's (Go) memory once this
  // returns, whatever the graph keeps.
  if (in.n < 1 || in.n > OA_MAX_INPUTS) {
    throw std::runtime_error("forward takes 1 to " + std::to_string(OA_MAX_INPUTS) + " inputs, got " +
                             std::to_string(in.n));
  }
  std::vector<torch::jit::IValue> inputs;
  inputs.reserve(in.n);
  for (int i = 0; i < in.n; i++) {
    int nd = in.ndims[i];
    if (nd < 1 || nd > 2 || in.data[i] == nullptr) {
      throw std::runtime_error("input " + std::to_string(i) + ": want 1 or 2 dimensions and data");
    }
    std::vector<int64_t> sizes(in.shapes + i * 2, in.shapes + i * 2 + nd);
    torch::ScalarType t;
    switch (in.dtypes[i]) {
      case OA_FLOAT32:
        t = torch::kFloat32;
        break;
      case OA_INT64:
        t = torch::kInt64;
        break;
      default:
        throw std::runtime_error("input " + std::to_string(i) + ": unknown dtype " + std::to_string(in.dtypes[i]));
    }
    inputs.emplace_back(torch::from_blob(const_cast<void*>(in.data[i]), sizes, t)
                            .to(m->device, /*non_blocking=*/false, /*copy=*/true));
  }
  const auto started = clock::now();
  m->calls.fetch_add(1, std::memory_order_relaxed);
  *ran = true;
  torch::jit::IValue result;
  try {
    result = m->module.forward(inputs);
    if (m->device.is_cuda()) {
      torch::cuda::synchronize(m->device.index());
    }
  } catch (...) {
    m->forward_ns.fetch_add(
        std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - started).count(),
        std::memory_order_relaxed);
    throw;
  }
  m->forward_ns.fetch_add(
      std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - started).count(),
      std::memory_order_relaxed);

  std::vector<at::Tensor> outs;
  if (result.isTensor()) {
    outs.push_back(result.toTensor());
  } else if (result.isTuple()) {
    for (const auto& v : result.toTupleRef().elements()) {
      if (!v.isTensor()) {
        throw std::runtime_error("forward returned a tuple with a " + v.tagKind() + ", want tensors");
      }
      outs.push_back(v.toTensor());
    }
  } else if (result.isTensorList()) {
    for (const at::Tensor& t : result.toTensorVector()) {
      outs.push_back(t);
    }
  } else {
    throw std::runtime_error("forward returned a " + result.tagKind() + ", want a tensor or a tuple of tensors");
  }
  if (outs.empty() || outs.size() > OA_MAX_OUTPUTS) {
    std::ostringstream msg;
    msg << "forward returned " << outs.size() << " outputs, want 1 or " << OA_MAX_OUTPUTS;
    throw std::runtime_error(msg.str());
  }
  *n_outputs = static_cast<int>(outs.size());
  float* bufs[OA_MAX_OUTPUTS] = {out0, out1};
  int64_t caps[OA_MAX_OUTPUTS] = {cap0, cap1};
  for (size_t i = 0; i < outs.size(); i++) {
    const at::Tensor& t = outs[i];
    if (t.dim() > OA_MAX_DIMS) {
      std::ostringstream msg;
      msg << "output " << i << " has " << t.dim() << " dimensions, want at most " << OA_MAX_DIMS;
      throw std::runtime_error(msg.str());
    }
    ndims[i] = static_cast<int>(t.dim());
    for (int64_t d = 0; d < t.dim(); d++) {
      shapes[i * OA_MAX_DIMS + d] = t.size(d);
    }
    if (t.scalar_type() != torch::kFloat32) {
      throw std::runtime_error("output " + std::to_string(i) + " has dtype " +
                               std::string(c10::toString(t.scalar_type())) + ", want float32");
    }
    if (bufs[i] == nullptr || t.numel() != caps[i]) {
      continue;  // the caller sees the shape and reports the mismatch
    }
    auto c = t.to(torch::kCPU).contiguous();
    std::memcpy(bufs[i], c.data_ptr<float>(), sizeof(float) * c.numel());
  }
}

}  // namespace

extern "C" {

const char* oa_torch_version(void) { return TORCH_VERSION; }

int oa_threads(void) {
  int n = last_forward_threads.load(std::memory_order_relaxed);
  return n > 0 ? n : at::get_num_threads();
}

oa_module* oa_load(const char* path, const char* device, int threads, const char* meta_name,
                   char** meta, char** device_out, char** err) {
  *meta = nullptr;
  *device_out = nullptr;
  *err = nullptr;
  try {
    auto m = std::make_unique<oa_module>();
    m->device = pick_device(device);
    m->threads = threads;
    torch::jit::ExtraFilesMap extra{{meta_name, ""}};
    m->module = torch::jit::load(path, m->device, extra);
    m->module.eval();
    *meta = dup(extra[meta_name]);
    *device_out = dup(m->device.str());
    return m.release();
  } catch (const std::exception& e) {
    *err = dup(what(e));
  } catch (...) {
    *err = dup("unknown C++ exception");
  }
  return nullptr;
}

int oa_forward(oa_module* m, const float* in, int64_t b, int64_t l,
               float* out0, int64_t cap0, float* out1, int64_t cap1,
               int* n_outputs, int* ndims, int64_t* shapes, char** err) {
  const int dtype = OA_FLOAT32, nd = 2;
  const int64_t shape[2] = {b, l};
  return oa_forward_inputs(m, 1, &dtype, &nd, shape, in, nullptr, nullptr, out0, cap0, out1, cap1,
                           n_outputs, ndims, shapes, err);
}

int oa_forward_inputs(oa_module* m, int n_inputs, const int* dtypes, const int* in_ndims, const int64_t* in_shapes,
                      const void* in0, const void* in1, const void* in2,
                      float* out0, int64_t cap0, float* out1, int64_t cap1,
                      int* n_outputs, int* ndims, int64_t* shapes, char** err) {
  using clock = std::chrono::steady_clock;
  forward_inputs in{n_inputs, dtypes, in_ndims, in_shapes, {in0, in1, in2}};
  const auto entered = clock::now();
  *err = nullptr;
  *n_outputs = 0;
  bool ran = false;  // the graph ran: the call counts in call_ns
  try {
    std::lock_guard<std::mutex> lock(m->mu);
    m->exec.run([&] { run_forward(m, in, out0, cap0, out1, cap1, n_outputs, ndims, shapes, &ran); });
    m->call_ns.fetch_add(
        std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - entered).count(),
        std::memory_order_relaxed);
    return 0;
  } catch (const std::exception& e) {
    *err = dup(what(e));
  } catch (...) {
    *err = dup("unknown C++ exception");
  }
  if (ran) {
    m->call_ns.fetch_add(
        std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - entered).count(),
        std::memory_order_relaxed);
  }
  return -1;
}

void oa_forward_stats(oa_module* m, int64_t* calls, int64_t* forward_ns, int64_t* call_ns) {
  *calls = m->calls.load(std::memory_order_relaxed);
  *forward_ns = m->forward_ns.load(std::memory_order_relaxed);
  *call_ns = m->call_ns.load(std::memory_order_relaxed);
}

void oa_free(oa_module* m) { delete m; }

}  // extern "C"

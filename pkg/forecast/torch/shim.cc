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

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

struct oa_module {
  torch::jit::Module module;
  c10::Device device{c10::kCPU};
  int threads = 0;
  // TorchScript's interpreter can run one module from several threads, but
  // on CPU one forward already uses every intra-op thread and on CUDA the
  // calls share one stream, so serialising them costs little and rules out
  // races in modules that keep state in attributes.
  std::mutex mu;
};

namespace {

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

}  // namespace

extern "C" {

const char* oa_torch_version(void) { return TORCH_VERSION; }

int oa_threads(void) { return at::get_num_threads(); }

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
  *err = nullptr;
  *n_outputs = 0;
  try {
    std::lock_guard<std::mutex> lock(m->mu);
    // With OpenMP the thread count is a per-OS-thread setting, and Go runs
    // cgo calls on whichever thread it likes: set it on this one.
    if (m->threads > 0 && at::get_num_threads() != m->threads) {
      at::set_num_threads(m->threads);
    }
    c10::InferenceMode guard;
    // clone: the tensor must not point into the caller's (Go) memory once
    // this returns, whatever the graph keeps.
    auto x = torch::from_blob(const_cast<float*>(in), {b, l}, torch::kFloat32)
                 .to(m->device, /*non_blocking=*/false, /*copy=*/true);
    std::vector<torch::jit::IValue> inputs{x};
    auto result = m->module.forward(inputs);

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
    return 0;
  } catch (const std::exception& e) {
    *err = dup(what(e));
  } catch (...) {
    *err = dup("unknown C++ exception");
  }
  return -1;
}

void oa_free(oa_module* m) { delete m; }

}  // extern "C"

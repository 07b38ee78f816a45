// C API of the libtorch shim (shim.cc), called from module_libtorch.go.
// Every function catches all C++ exceptions; on failure it returns an error
// string the caller frees with free(). No pointer passed in is kept after a
// call returns: inputs are copied into tensors libtorch owns, outputs are
// copied into the caller's buffers.
#ifndef OPENANOMALY_TORCH_SHIM_H
#define OPENANOMALY_TORCH_SHIM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// A loaded TorchScript module on one device, with a mutex of its own.
typedef struct oa_module oa_module;

// The most outputs a forward may return (tsfm/v1: quantiles, and a mean).
#define OA_MAX_OUTPUTS 2
// The most dimensions an output may have.
#define OA_MAX_DIMS 4

// oa_torch_version returns the libtorch version, e.g. "2.11.0" (static).
const char* oa_torch_version(void);

// oa_threads returns the intra-op thread count the most recent forward (of
// any module) ran with, on its module's executor thread (shim.cc), or the
// calling thread's count before any forward. Forwards do not run on the
// caller's thread, so its own count says nothing about them.
int oa_threads(void);

// oa_load loads the TorchScript file at path onto device ("cpu", "cuda",
// "cuda:N" or "auto") and reads the archive's extra file meta_name into
// *meta (malloc'd, empty when absent). *device_out (malloc'd) gets the
// device chosen. threads > 0 is the intra-op thread count of this module's
// forwards. Returns NULL and sets *err on failure.
oa_module* oa_load(const char* path, const char* device, int threads, const char* meta_name,
                   char** meta, char** device_out, char** err);

// oa_forward runs forward on a float32 [b, l] batch, on the module's own
// thread (the caller waits for it; see the executor in shim.cc). For each output i the
// caller passes a buffer outs_i of cap_i floats; the shim writes the
// output's rank to ndims[i] and its sizes to shapes[i*OA_MAX_DIMS...], and
// copies the values when the output is float32 and fits. *n_outputs gets
// the number of outputs. Returns 0, or -1 with *err set.
int oa_forward(oa_module* m, const float* in, int64_t b, int64_t l,
               float* out0, int64_t cap0, float* out1, int64_t cap1,
               int* n_outputs, int* ndims, int64_t* shapes, char** err);

// The most inputs a forward may take (tsfm/v1: context, and for files that
// take covariates group_ids and future_covariates), and their dtypes.
#define OA_MAX_INPUTS 3
#define OA_FLOAT32 0
#define OA_INT64 1

// oa_forward_inputs is oa_forward with n_inputs inputs, in the graph's
// order: input i has dtype dtypes[i] (OA_FLOAT32 or OA_INT64), rank
// ndims[i] (1 or 2) and sizes shapes[i*2...], and its values at in_i
// (row-major). Each input is copied into a tensor on the module's device
// before the forward; none is kept.
int oa_forward_inputs(oa_module* m, int n_inputs, const int* dtypes, const int* ndims, const int64_t* shapes,
                      const void* in0, const void* in1, const void* in2,
                      float* out0, int64_t cap0, float* out1, int64_t cap1,
                      int* n_outputs, int* out_ndims, int64_t* out_shapes, char** err);

// oa_forward_stats reads the module's cumulative forward timing, kept by
// oa_forward since the load (the load-time probe included) with a
// monotonic clock (std::chrono::steady_clock):
//   *calls       oa_forward calls that reached the graph;
//   *forward_ns  the sum over those calls of the time of the graph's
//                forward alone: from just before module.forward(inputs),
//                the inputs already tensors on the module's device, to its
//                return (on CUDA, to the end of a device synchronise right
//                after it, so that the kernels it queued are counted);
//   *call_ns     the sum of the whole oa_forward calls, from entry to
//                return: the module's lock, the thread setting, the copy of
//                the inputs into tensors (and to the device), the forward,
//                unpacking the outputs and copying them into the caller's
//                buffers.
// Calls that failed before the forward count in neither. Safe to call
// concurrently with forwards.
void oa_forward_stats(oa_module* m, int64_t* calls, int64_t* forward_ns, int64_t* call_ns);

// oa_free releases the module.
void oa_free(oa_module* m);

#ifdef __cplusplus
}
#endif

#endif

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

// oa_threads returns the intra-op thread count on the calling thread.
int oa_threads(void);

// oa_load loads the TorchScript file at path onto device ("cpu", "cuda",
// "cuda:N" or "auto") and reads the archive's extra file meta_name into
// *meta (malloc'd, empty when absent). *device_out (malloc'd) gets the
// device chosen. threads > 0 is the intra-op thread count of this module's
// forwards. Returns NULL and sets *err on failure.
oa_module* oa_load(const char* path, const char* device, int threads, const char* meta_name,
                   char** meta, char** device_out, char** err);

// oa_forward runs forward on a float32 [b, l] batch. For each output i the
// caller passes a buffer outs_i of cap_i floats; the shim writes the
// output's rank to ndims[i] and its sizes to shapes[i*OA_MAX_DIMS...], and
// copies the values when the output is float32 and fits. *n_outputs gets
// the number of outputs. Returns 0, or -1 with *err set.
int oa_forward(oa_module* m, const float* in, int64_t b, int64_t l,
               float* out0, int64_t cap0, float* out1, int64_t cap1,
               int* n_outputs, int* ndims, int64_t* shapes, char** err);

// oa_free releases the module.
void oa_free(oa_module* m);

#ifdef __cplusplus
}
#endif

#endif

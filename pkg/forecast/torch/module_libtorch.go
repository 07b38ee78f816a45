//go:build libtorch

package torch

// The flags that find libtorch come from the environment (the Makefile's
// build-libtorch and test-libtorch targets set CGO_CFLAGS, CGO_CXXFLAGS and
// CGO_LDFLAGS from LIBTORCH); only what does not depend on where it lives is
// here. Linking libtorch_cpu, libc10 and libtorch, never libtorch_cuda,
// keeps the binary startable without CUDA; shim.cc loads the CUDA backend
// at run time when a model asks for it.

// #cgo CXXFLAGS: -std=c++17 -O2 -D_GLIBCXX_USE_CXX11_ABI=1 -Wno-deprecated-declarations
// #cgo LDFLAGS: -Wl,--no-as-needed -ltorch_cpu -lc10 -Wl,--as-needed -ldl -lstdc++
// #include <stdlib.h>
// #include "shim.h"
import "C"

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// Version is the libtorch version this binary is linked with.
func Version() string { return C.GoString(C.oa_torch_version()) }

// threadsNow returns the intra-op thread count the most recent forward ran
// with. Forwards run on their module's own OS thread in the shim (shim.cc,
// executor), where the model's threads are set, not on the caller's.
func threadsNow() int { return int(C.oa_threads()) }

// cmodule is a module loaded by the shim.
type cmodule struct {
	mu sync.RWMutex // forwards hold it shared, close exclusively
	p  *C.oa_module
}

func loadModule(path, device string, threads int) (module, string, string, string, error) {
	cpath, cdev, cname := C.CString(path), C.CString(device), C.CString(MetadataFile)
	defer C.free(unsafe.Pointer(cpath))
	defer C.free(unsafe.Pointer(cdev))
	defer C.free(unsafe.Pointer(cname))
	var meta, chosen, cerr *C.char
	p := C.oa_load(cpath, cdev, C.int(threads), cname, &meta, &chosen, &cerr)
	defer C.free(unsafe.Pointer(meta))
	defer C.free(unsafe.Pointer(chosen))
	if p == nil {
		return nil, "", "", "", fmt.Errorf("load model file %s on %s: %s", path, device, takeError(cerr))
	}
	return &cmodule{p: p}, C.GoString(meta), C.GoString(chosen), Version(), nil
}

// takeError converts and frees an error string from the shim. An exception
// raised inside a TorchScript graph comes with two tracebacks of the
// graph's code; its last line says what was raised, and that is what a log
// line needs.
func takeError(e *C.char) string {
	if e == nil {
		return "unknown error"
	}
	defer C.free(unsafe.Pointer(e))
	msg := C.GoString(e)
	if strings.Contains(msg, "Traceback of TorchScript") {
		lines := strings.Split(strings.TrimSpace(msg), "\n")
		msg = "TorchScript graph raised " + strings.TrimSpace(lines[len(lines)-1])
	}
	return msg
}

func (m *cmodule) forward(ins []input, outs [][]float32) ([][]int64, error) {
	if len(ins) < 1 || len(ins) > C.OA_MAX_INPUTS {
		return nil, fmt.Errorf("%d inputs, want 1 to %d", len(ins), C.OA_MAX_INPUTS)
	}
	if len(outs) > C.OA_MAX_OUTPUTS {
		return nil, fmt.Errorf("%d output buffers, at most %d", len(outs), C.OA_MAX_OUTPUTS)
	}
	// Go memory passed for the call only (cgo's rules: each pointer is an
	// argument, none is stored in memory passed to C): the shim copies
	// the inputs into tensors and the outputs out of theirs.
	var (
		dtypes [C.OA_MAX_INPUTS]C.int
		ndims  [C.OA_MAX_INPUTS]C.int
		shapes [C.OA_MAX_INPUTS * 2]C.int64_t
		data   [C.OA_MAX_INPUTS]unsafe.Pointer
	)
	for i, in := range ins {
		if len(in.shape) < 1 || len(in.shape) > 2 {
			return nil, fmt.Errorf("input %d has shape %v, want 1 or 2 dimensions", i, in.shape)
		}
		n := int64(1)
		for d, s := range in.shape {
			shapes[i*2+d] = C.int64_t(s)
			n *= s
		}
		ndims[i] = C.int(len(in.shape))
		switch {
		case in.f32 != nil && in.i64 == nil && int64(len(in.f32)) == n && n > 0:
			dtypes[i], data[i] = C.OA_FLOAT32, unsafe.Pointer(&in.f32[0])
		case in.i64 != nil && in.f32 == nil && int64(len(in.i64)) == n && n > 0:
			dtypes[i], data[i] = C.OA_INT64, unsafe.Pointer(&in.i64[0])
		default:
			return nil, fmt.Errorf("input %d: %d float32 and %d int64 values for shape %v", i, len(in.f32), len(in.i64), in.shape)
		}
	}
	var bufs [C.OA_MAX_OUTPUTS]*C.float
	var caps [C.OA_MAX_OUTPUTS]C.int64_t
	for i, o := range outs {
		if len(o) > 0 {
			bufs[i], caps[i] = (*C.float)(unsafe.Pointer(&o[0])), C.int64_t(len(o))
		}
	}
	var (
		n       C.int
		ondims  [C.OA_MAX_OUTPUTS]C.int
		oshapes [C.OA_MAX_OUTPUTS * C.OA_MAX_DIMS]C.int64_t
		cerr    *C.char
	)
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.p == nil {
		return nil, errors.New("model closed")
	}
	rc := C.oa_forward_inputs(m.p, C.int(len(ins)), &dtypes[0], &ndims[0], &shapes[0], data[0], data[1], data[2],
		bufs[0], caps[0], bufs[1], caps[1], &n, &ondims[0], &oshapes[0], &cerr)
	if rc != 0 {
		return nil, errors.New(takeError(cerr))
	}
	out := make([][]int64, int(n))
	for i := range out {
		out[i] = make([]int64, int(ondims[i]))
		for d := range out[i] {
			out[i][d] = int64(oshapes[i*C.OA_MAX_DIMS+d])
		}
	}
	return out, nil
}

// stats returns the shim's cumulative forward timing (oa_forward_stats in
// shim.h says what each interval covers); zero after close.
func (m *cmodule) stats() ShimStats {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.p == nil {
		return ShimStats{}
	}
	var calls, fwd, call C.int64_t
	C.oa_forward_stats(m.p, &calls, &fwd, &call)
	return ShimStats{Calls: int64(calls), Forward: time.Duration(fwd), Call: time.Duration(call)}
}

func (m *cmodule) close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.p != nil {
		C.oa_free(m.p)
		m.p = nil
	}
}

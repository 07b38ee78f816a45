//go:build libtorch

package torch

import "time"

// ShimStats is the C++ shim's cumulative timing of one model's forwards,
// since its load (the load-time probe included), from a monotonic clock
// inside the shim (oa_forward_stats in shim.h).
type ShimStats struct {
	// Calls counts the forwards that reached the graph.
	Calls int64
	// Forward sums the graph's forward alone: from just before
	// module.forward, the input already a tensor on the model's device, to
	// its return (on CUDA, to the end of a device synchronise after it).
	Forward time.Duration
	// Call sums the whole shim calls (oa_forward, entry to return): the
	// module's lock and thread setting, the copy of the input into a
	// tensor, the forward, and the copies of the outputs into Go's
	// buffers. Call - Forward is the shim's own overhead.
	Call time.Duration
}

// Sub returns s - o, the timing between two readings.
func (s ShimStats) Sub(o ShimStats) ShimStats {
	return ShimStats{Calls: s.Calls - o.Calls, Forward: s.Forward - o.Forward, Call: s.Call - o.Call}
}

// ShimForwardStats returns the shim's timing of m's forwards (for
// benchmarks: internal/cmd/torchbench). ok is false when m runs on
// something other than the libtorch binding (a fake module in tests) or
// is closed.
func ShimForwardStats(m *Model) (s ShimStats, ok bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	c, ok := m.mod.(*cmodule)
	if !ok || c == nil {
		return ShimStats{}, false
	}
	return c.stats(), true
}

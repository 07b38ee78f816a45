package torch

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// The batcher puts the rows of every concurrent caller of one Model into
// shared forwards of at most batchSize rows: the rules that share a model
// (and the score and horizon requests of one rule) fill each other's
// batches instead of each running a small last batch of its own.
//
// Callers append a job to the queue; a single worker goroutine, started when
// the queue becomes non-empty and gone when it is empty again (no goroutine
// while the model is idle), takes rows from the head of the queue, several
// jobs' rows in one batch when they fit, runs the forward and hands each
// job its rows' outputs. Forwards of one module never overlap anyway (the
// module's mutex), so one worker loses nothing, and it takes whatever is
// queued when it is free: no waiting for more rows, no added latency.
//
// A failed forward that held rows of more than one job is rerun job by job,
// so that one rule's bad input (a graph that raises on it) fails only that
// rule's request.

type job struct {
	ctx  context.Context
	rows [][]float32
	out  [][]float32
	next int // rows handed to a forward so far (guarded by batcher.mu)
	left int // rows without a result yet (guarded by batcher.mu)
	err  error
	done chan struct{}
}

type batcher struct {
	mu      sync.Mutex
	queue   []*job
	working bool
}

// part is a run of one job's rows inside a batch.
type part struct {
	j      *job
	from   int
	to     int
	offset int // first row of the part in the batch
}

// forward is the Forward the model's family gets.
func (m *Model) forward(ctx context.Context, rows [][]float32) ([][]float32, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	l := m.md.ContextLength
	for i, r := range rows {
		if len(r) != l {
			return nil, fmt.Errorf("row %d has %d points, the model file's context is %d", i, len(r), l)
		}
	}
	j := &job{ctx: ctx, rows: rows, out: make([][]float32, len(rows)), left: len(rows), done: make(chan struct{})}
	b := &m.batch
	b.mu.Lock()
	b.queue = append(b.queue, j)
	if !b.working {
		b.working = true
		go m.work()
	}
	b.mu.Unlock()
	select {
	case <-j.done:
		return j.out, j.err
	case <-ctx.Done():
		// The worker skips the rows it has not started and drops the
		// job when it sees the context done.
		return nil, ctx.Err()
	}
}

// work runs batches until the queue is empty.
func (m *Model) work() {
	b := &m.batch
	l := m.md.ContextLength
	in := make([]float32, 0, m.batchSize*l)
	var parts []part
	for {
		b.mu.Lock()
		parts, in = parts[:0], in[:0]
		n := 0
		for len(b.queue) > 0 && n < m.batchSize {
			j := b.queue[0]
			if j.ctx.Err() != nil {
				// Abandoned by its caller: its rows would be wasted.
				b.queue = b.queue[1:]
				j.left -= len(j.rows) - j.next
				j.next = len(j.rows)
				if j.left == 0 {
					j.err = j.ctx.Err()
					close(j.done)
				}
				continue
			}
			k := min(len(j.rows)-j.next, m.batchSize-n)
			parts = append(parts, part{j: j, from: j.next, to: j.next + k, offset: n})
			j.next += k
			n += k
			if j.next == len(j.rows) {
				b.queue = b.queue[1:]
			}
		}
		if n == 0 {
			b.working = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()

		for _, p := range parts {
			for _, r := range p.j.rows[p.from:p.to] {
				in = append(in, r...)
			}
		}
		res, err := m.timedRun(in, n)
		if err != nil && len(parts) > 1 {
			// Rerun each job's rows alone: only the job whose rows make
			// the graph fail gets the error.
			for _, p := range parts {
				one := in[p.offset*l : (p.offset+p.to-p.from)*l]
				r, err := m.timedRun(one, p.to-p.from)
				m.finish(p, r, 0, err)
			}
			continue
		}
		for _, p := range parts {
			m.finish(p, res, p.offset, err)
		}
	}
}

// timedRun is run with the forward metrics.
func (m *Model) timedRun(in []float32, b int) ([]float32, error) {
	start := time.Now()
	res, err := m.run(in, b)
	m.obs.forward(b, time.Since(start), err)
	if err != nil {
		return nil, fmt.Errorf("forward of %d series: %w", b, err)
	}
	return res, nil
}

// finish hands part p its outputs, rows starting at offset in res, or err.
func (m *Model) finish(p part, res []float32, offset int, err error) {
	b := &m.batch
	size := len(m.md.Quantiles) * m.md.Horizon
	if err == nil {
		for r := p.from; r < p.to; r++ {
			i := offset + r - p.from
			p.j.out[r] = res[i*size : (i+1)*size : (i+1)*size]
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	j := p.j
	if err != nil && j.err == nil {
		j.err = err
		// Fail fast: the job's rows not yet started are dropped.
		for i, q := range b.queue {
			if q == j {
				b.queue = append(b.queue[:i:i], b.queue[i+1:]...)
				j.left -= len(j.rows) - j.next
				j.next = len(j.rows)
				break
			}
		}
	}
	j.left -= p.to - p.from
	if j.left == 0 {
		close(j.done)
	}
}

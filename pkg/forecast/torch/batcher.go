package torch

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"
)

// The batcher puts the tasks of every concurrent caller of one Model into
// shared forwards of at most batchSize rows: the rules that share a model
// (and the score and horizon requests of one rule) fill each other's
// batches instead of each running a small last batch of its own.
//
// A task is a target row with, for a file that takes covariates, its
// covariate rows (Task); a plain forecast is a task per row. Callers append
// a job to the queue; a single worker goroutine, started when the queue
// becomes non-empty and gone when it is empty again (no goroutine while the
// model is idle), takes whole tasks from the head of the queue, several
// jobs' tasks in one batch when they fit (a task of more rows than the batch
// size gets a batch of its own), runs the forward and hands each job its
// tasks' outputs. In a file with group ids, the tasks of a batch are
// numbered 0, 1, ... in it, so rows of different tasks (of different rules)
// never share a group. Forwards of one module never overlap anyway (the
// module's mutex), so one worker loses nothing, and it takes whatever is
// queued when it is free: no waiting for more rows, no added latency.
//
// A failed forward that held tasks of more than one job is rerun job by job,
// so that one rule's bad input (a graph that raises on it) fails only that
// rule's request.

// Task is one forecast through the graph: Rows[:Targets] are the target
// rows, Rows[Targets:] their covariates (each row exactly the file's
// ContextLength). Future, for a file that takes covariates, is nil (every
// row's future unknown) or holds one row of the file's Horizon per row of
// Rows: the known future values of a known-future covariate, NaN elsewhere
// (always NaN for targets and past-only covariates). Files without
// covariate inputs take only tasks of one target row and no Future.
type Task struct {
	Rows    [][]float32
	Future  [][]float32
	Targets int
}

// ForwardTasks runs tasks through the model file's graph, as Forward runs
// rows, and returns the output 0 of every task's rows, in order (task 0's
// rows, then task 1's, ...), each row-major [Q][H]; the targets' are the
// forecasts. It neither modifies nor keeps the tasks.
type ForwardTasks func(ctx context.Context, tasks []Task) ([][]float32, error)

type job struct {
	ctx   context.Context
	tasks []Task
	out   [][]float32 // the rows' outputs, flat over the tasks
	first []int       // index in out of each task's first row
	next  int         // tasks handed to a forward so far (guarded by batcher.mu)
	left  int         // tasks without a result yet (guarded by batcher.mu)
	err   error
	done  chan struct{}
}

type batcher struct {
	mu      sync.Mutex
	queue   []*job
	working bool
}

// part is a run of one job's tasks inside a batch.
type part struct {
	j      *job
	from   int
	to     int
	offset int // first row of the part in the batch
	rows   int // rows of the part
}

// forward is the Forward the model's family gets: a task per row.
func (m *Model) forward(ctx context.Context, rows [][]float32) ([][]float32, error) {
	// A task per row: the outputs are the rows'.
	tasks := make([]Task, len(rows))
	for i := range rows {
		tasks[i] = Task{Rows: rows[i : i+1 : i+1], Targets: 1}
	}
	return m.forwardTasks(ctx, tasks)
}

// forwardTasks is the ForwardTasks a covariate family gets.
func (m *Model) forwardTasks(ctx context.Context, tasks []Task) ([][]float32, error) {
	if len(tasks) == 0 {
		return nil, nil
	}
	l, h := m.md.ContextLength, m.md.Horizon
	cov := m.md.TakesCovariates()
	first := make([]int, len(tasks))
	n := 0
	for i, t := range tasks {
		switch {
		case t.Targets < 1 || t.Targets > len(t.Rows):
			return nil, fmt.Errorf("task %d has %d target rows of %d", i, t.Targets, len(t.Rows))
		case !cov && (len(t.Rows) != 1 || t.Future != nil):
			return nil, fmt.Errorf("task %d has covariates; the model file takes none (inputs %q)", i, m.md.Inputs)
		case t.Future != nil && len(t.Future) != len(t.Rows):
			return nil, fmt.Errorf("task %d has %d future rows for %d rows", i, len(t.Future), len(t.Rows))
		}
		for r, row := range t.Rows {
			if len(row) != l {
				return nil, fmt.Errorf("task %d row %d has %d points, the model file's context is %d", i, r, len(row), l)
			}
		}
		for r, row := range t.Future {
			if len(row) != h {
				return nil, fmt.Errorf("task %d future row %d has %d points, the model file's horizon is %d", i, r, len(row), h)
			}
		}
		first[i] = n
		n += len(t.Rows)
	}
	j := &job{ctx: ctx, tasks: tasks, out: make([][]float32, n), first: first, left: len(tasks), done: make(chan struct{})}
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
		// The worker skips the tasks it has not started and drops the
		// job when it sees the context done.
		return nil, ctx.Err()
	}
}

// batchInputs is a batch's graph inputs, reused between batches.
type batchInputs struct {
	context []float32
	groups  []int64
	future  []float32
}

// add appends task t's rows, in group g.
func (in *batchInputs) add(t Task, g int64, h int, cov bool) {
	for _, r := range t.Rows {
		in.context = append(in.context, r...)
	}
	if !cov {
		return
	}
	nan := float32(math.NaN())
	for r := range t.Rows {
		in.groups = append(in.groups, g)
		if t.Future != nil {
			in.future = append(in.future, t.Future[r]...)
			continue
		}
		for range h {
			in.future = append(in.future, nan)
		}
	}
}

func (in *batchInputs) reset() {
	in.context, in.groups, in.future = in.context[:0], in.groups[:0], in.future[:0]
}

// work runs batches until the queue is empty.
func (m *Model) work() {
	b := &m.batch
	h := m.md.Horizon
	cov := m.md.TakesCovariates()
	var in, one batchInputs
	in.context = make([]float32, 0, m.batchSize*m.md.ContextLength)
	var parts []part
	for {
		b.mu.Lock()
		parts = parts[:0]
		n := 0
	fill:
		for len(b.queue) > 0 && n < m.batchSize {
			j := b.queue[0]
			if j.ctx.Err() != nil {
				// Abandoned by its caller: its rows would be wasted.
				b.queue = b.queue[1:]
				j.left -= len(j.tasks) - j.next
				j.next = len(j.tasks)
				if j.left == 0 {
					j.err = j.ctx.Err()
					close(j.done)
				}
				continue
			}
			p := part{j: j, from: j.next, to: j.next, offset: n}
			for p.to < len(j.tasks) {
				k := len(j.tasks[p.to].Rows)
				if n > 0 && n+k > m.batchSize {
					break
				}
				p.to++
				p.rows += k
				n += k
				if n >= m.batchSize {
					break
				}
			}
			if p.to > p.from {
				parts = append(parts, p)
				j.next = p.to
			}
			if j.next == len(j.tasks) {
				b.queue = b.queue[1:]
			}
			if p.to < len(j.tasks) {
				break fill // the batch is full
			}
		}
		if n == 0 {
			b.working = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()

		in.reset()
		g := int64(0)
		for _, p := range parts {
			for _, t := range p.j.tasks[p.from:p.to] {
				in.add(t, g, h, cov)
				g++
			}
		}
		res, err := m.timedRun(&in, n)
		if err != nil && len(parts) > 1 {
			// Rerun each job's tasks alone: only the job whose tasks make
			// the graph fail gets the error.
			for _, p := range parts {
				one.reset()
				for g, t := range p.j.tasks[p.from:p.to] {
					one.add(t, int64(g), h, cov)
				}
				r, err := m.timedRun(&one, p.rows)
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
func (m *Model) timedRun(in *batchInputs, b int) ([]float32, error) {
	start := time.Now()
	res, err := m.run(in, b)
	m.obs.forward(b, time.Since(start), err)
	if err != nil {
		return nil, fmt.Errorf("forward of %d series: %w", b, err)
	}
	return res, nil
}

// finish hands part p its rows' outputs, starting at offset in res, or err.
func (m *Model) finish(p part, res []float32, offset int, err error) {
	b := &m.batch
	size := len(m.md.Quantiles) * m.md.Horizon
	if err == nil {
		first := p.j.first[p.from]
		for k := range p.rows {
			i := offset + k
			p.j.out[first+k] = res[i*size : (i+1)*size : (i+1)*size]
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	j := p.j
	if err != nil && j.err == nil {
		j.err = err
		// Fail fast: the job's tasks not yet started are dropped.
		for i, q := range b.queue {
			if q == j {
				b.queue = append(b.queue[:i:i], b.queue[i+1:]...)
				j.left -= len(j.tasks) - j.next
				j.next = len(j.tasks)
				break
			}
		}
	}
	j.left -= p.to - p.from
	if j.left == 0 {
		close(j.done)
	}
}

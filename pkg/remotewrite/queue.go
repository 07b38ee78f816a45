package remotewrite

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/openanomaly/openanomaly/pkg/config"
)

// QueueOptions configures a Queue.
type QueueOptions struct {
	// Config is the endpoint; zero queue settings take the defaults of
	// config.DefaultQueueConfig (RetryOnRateLimit is taken as given).
	Config *config.RemoteWriteConfig
	// ExternalLabels are added to every series that lacks the name.
	ExternalLabels labels.Labels
	// Registerer receives the queue's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Client sends the requests; nil builds an HTTP client from Config.
	// Tests inject fakes here.
	Client WriteClient

	// metrics, when set by a Storage, are shared with its other queues.
	metrics *metrics
	// keepMetrics leaves the queue's series in place at Stop: the Storage
	// deletes them once no queue uses the same remote_name and url.
	keepMetrics bool
}

// Queue buffers samples for one remote-write endpoint and sends them.
//
// Samples are sharded by the hash of their label set over MaxShards
// goroutines; each shard sends one request at a time and retries it until
// it is delivered or given up, so the samples of one series reach the
// endpoint in the order they were appended. At most Capacity samples are
// buffered or in flight; more are dropped on arrival and counted, because
// without a WAL the alternative would be to block the evaluator.
type Queue struct {
	name   string
	url    string
	cfg    config.QueueConfig
	client WriteClient
	logger *slog.Logger
	ext    []prompb.Label
	m      *queueMetrics

	keepMetrics bool

	capacity    int64
	pending     atomic.Int64 // buffered or in flight
	highestMu   sync.Mutex
	highestSent int64 // milliseconds; math.MinInt64 before the first send
	// lastFailure is the kind of the last failure ("" after a success), so
	// that a failure episode is logged once, not once per batch.
	lastFailure atomic.Pointer[string]

	shards []*shard

	mu       sync.Mutex // guards running
	running  bool
	stopped  atomic.Bool
	stopOnce sync.Once
	stopping chan struct{}      // closed by Stop: flush, then exit
	ctx      context.Context    // cancelled when the flush deadline passes
	cancel   context.CancelFunc // cancels ctx
	wg       sync.WaitGroup     // shard goroutines
}

// NewQueue creates a queue for one endpoint. Samples can be appended before
// Start; they are sent once it is called.
func NewQueue(opts QueueOptions) (*Queue, error) {
	if opts.Config == nil {
		return nil, errors.New("remote write config is missing")
	}
	cfg := opts.Config
	if cfg.URL == nil || cfg.URL.URL == nil {
		return nil, errors.New("remote write url is missing")
	}
	qc, err := resolveQueueConfig(cfg.QueueConfig)
	if err != nil {
		return nil, err
	}
	name := remoteName(cfg)
	client := opts.Client
	if client == nil {
		if client, err = newHTTPClient(name, cfg); err != nil {
			return nil, err
		}
	}
	m := opts.metrics
	if m == nil {
		if m, err = newMetrics(opts.Registerer); err != nil {
			return nil, err
		}
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// The url label and logs never carry a password from the URL.
	url := cfg.URL.Redacted()
	q := &Queue{
		name:        name,
		url:         url,
		cfg:         qc,
		client:      client,
		logger:      logger.With("remote_name", name, "url", url),
		ext:         externalLabels(opts.ExternalLabels),
		m:           m.forQueue(name, url),
		keepMetrics: opts.keepMetrics,
		capacity:    int64(qc.Capacity),
		stopping:    make(chan struct{}),
	}
	q.ctx, q.cancel = context.WithCancel(context.Background())
	q.highestSent = math.MinInt64
	q.shards = make([]*shard, qc.MaxShards)
	for i := range q.shards {
		q.shards[i] = &shard{q: q, notify: make(chan struct{}, 1)}
	}
	q.m.capacity.Set(float64(qc.Capacity))
	return q, nil
}

// resolveQueueConfig fills zero settings from config.DefaultQueueConfig and
// rejects values the queue cannot work with.
func resolveQueueConfig(c config.QueueConfig) (config.QueueConfig, error) {
	d := config.DefaultQueueConfig
	fillInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	fillDur := func(v *model.Duration, def model.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	fillInt(&c.Capacity, d.Capacity)
	fillInt(&c.MaxShards, d.MaxShards)
	fillInt(&c.MaxSamplesPerSend, d.MaxSamplesPerSend)
	fillDur(&c.BatchSendDeadline, d.BatchSendDeadline)
	fillDur(&c.MinBackoff, d.MinBackoff)
	fillDur(&c.MaxBackoff, d.MaxBackoff)
	fillDur(&c.MaxRetryDuration, d.MaxRetryDuration)
	fillDur(&c.FlushDeadline, d.FlushDeadline)

	var errs []error
	for _, f := range []struct {
		name string
		v    int
	}{{"capacity", c.Capacity}, {"max_shards", c.MaxShards}, {"max_samples_per_send", c.MaxSamplesPerSend}} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("queue_config: %s must be positive, got %d", f.name, f.v))
		}
	}
	for _, f := range []struct {
		name string
		v    model.Duration
	}{
		{"batch_send_deadline", c.BatchSendDeadline}, {"min_backoff", c.MinBackoff}, {"max_backoff", c.MaxBackoff},
		{"max_retry_duration", c.MaxRetryDuration}, {"flush_deadline", c.FlushDeadline},
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("queue_config: %s must be positive, got %s", f.name, time.Duration(f.v)))
		}
	}
	if c.MinBackoff > c.MaxBackoff {
		errs = append(errs, fmt.Errorf("queue_config: min_backoff %s is larger than max_backoff %s", c.MinBackoff, c.MaxBackoff))
	}
	return c, errors.Join(errs...)
}

// remoteName is cfg.Name, or a short hash of the URL when it is empty.
func remoteName(cfg *config.RemoteWriteConfig) string {
	if cfg.Name != "" {
		return cfg.Name
	}
	sum := sha256.Sum256([]byte(cfg.URL.String()))
	return hex.EncodeToString(sum[:3])
}

// Append queues one sample (t in milliseconds). It never blocks: when the
// queue holds Capacity samples, or after Stop, the sample is dropped,
// counted, and false is returned.
func (q *Queue) Append(lset labels.Labels, t int64, v float64) bool {
	q.m.samples.Inc()
	if q.stopped.Load() {
		q.m.dropped(reasonShutdown, 1)
		return false
	}
	// Reserve room first: the counter bounds all shards together, and
	// add-then-undo keeps the bound exact under concurrent appends.
	if q.pending.Add(1) > q.capacity {
		q.pending.Add(-1)
		q.m.dropped(reasonQueueFull, 1)
		return false
	}
	h := lset.Hash()
	s := q.shards[h%uint64(len(q.shards))]
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		q.pending.Add(-1)
		q.m.dropped(reasonShutdown, 1)
		return false
	}
	s.buf = append(s.buf, sample{lset: lset, hash: h, t: t, v: v})
	full := len(s.buf)-s.head >= q.cfg.MaxSamplesPerSend
	s.mu.Unlock()
	q.m.pending.Inc()
	if full {
		select {
		case s.notify <- struct{}{}:
		default: // the shard has a wake-up pending already
		}
	}
	return true
}

// Start launches the shards. Calling it again, or after Stop, does nothing.
func (q *Queue) Start() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.running || q.stopped.Load() {
		return
	}
	q.running = true
	for _, s := range q.shards {
		q.wg.Add(1)
		go s.run()
	}
}

// Stop stops accepting samples and sends what is queued for at most
// FlushDeadline; then in-flight requests are cancelled and what is left is
// dropped and counted with reason "shutdown". Later calls wait for the first
// to finish and do nothing more.
func (q *Queue) Stop() {
	q.stopOnce.Do(func() {
		q.mu.Lock()
		q.stopped.Store(true)
		running := q.running
		q.mu.Unlock()
		close(q.stopping)

		if running {
			done := make(chan struct{})
			go func() {
				q.wg.Wait()
				close(done)
			}()
			deadline := time.NewTimer(time.Duration(q.cfg.FlushDeadline))
			select {
			case <-done:
			case <-deadline.C:
				q.logger.Warn("Flush deadline reached, dropping samples not sent",
					"flush_deadline", q.cfg.FlushDeadline, "samples", q.pending.Load())
			}
			deadline.Stop()
			// Cancelling aborts an in-flight request and any backoff wait;
			// the shards then drop their batch and return.
			q.cancel()
			<-done
		}
		q.cancel()

		// Appends that raced with the shutdown may have landed after the
		// shards exited; closing the shards under their lock catches them.
		n := 0
		for _, s := range q.shards {
			s.mu.Lock()
			s.closed = true
			n += len(s.buf) - s.head
			s.buf, s.head = nil, 0
			s.mu.Unlock()
		}
		q.release(n)
		q.m.dropped(reasonShutdown, n)

		if c, ok := q.client.(interface{ CloseIdleConnections() }); ok {
			c.CloseIdleConnections()
		}
		if !q.keepMetrics {
			q.m.delete()
		}
	})
}

// release takes n samples off the pending count.
func (q *Queue) release(n int) {
	q.pending.Add(-int64(n))
	q.m.pending.Sub(float64(n))
}

// noteFailure logs a failure when it differs from the previous one, so
// that a down endpoint is logged once per episode rather than per batch.
func (q *Queue) noteFailure(level slog.Level, kind string, msg string, args ...any) {
	if old := q.lastFailure.Swap(&kind); old == nil || *old != kind {
		q.logger.Log(context.Background(), level, msg, args...)
	}
}

// noteSuccess ends a failure episode.
func (q *Queue) noteSuccess() {
	if old := q.lastFailure.Swap(nil); old != nil {
		q.logger.Info("Remote write recovered", "previous_failure", *old)
	}
}

// shard owns the series whose hash falls on it.
type shard struct {
	q *Queue

	mu     sync.Mutex
	buf    []sample // buf[head:] is queued, oldest first
	head   int
	closed bool // set by Stop; Append then drops

	notify chan struct{} // a full batch is waiting
}

// queued is the number of buffered samples.
func (s *shard) queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.buf) - s.head
}

// take removes up to n of the oldest samples.
func (s *shard) take(n int) []sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	n = min(n, len(s.buf)-s.head)
	if n == 0 {
		return nil
	}
	batch := make([]sample, n)
	copy(batch, s.buf[s.head:])
	clear(s.buf[s.head : s.head+n]) // let the label strings be collected
	s.head += n
	switch {
	case s.head == len(s.buf) && cap(s.buf) > 4*s.q.cfg.MaxSamplesPerSend:
		s.buf, s.head = nil, 0 // give a drained backlog's memory back
	case s.head == len(s.buf):
		s.buf, s.head = s.buf[:0], 0
	case s.head > len(s.buf)/2:
		k := copy(s.buf, s.buf[s.head:])
		clear(s.buf[k:])
		s.buf, s.head = s.buf[:k], 0
	}
	return batch
}

// run sends batches until the queue stops.
func (s *shard) run() {
	q := s.q
	defer q.wg.Done()
	// A ticker rather than a per-batch timer: a partial batch waits at most
	// one BatchSendDeadline, and an idle shard costs one wake-up per period.
	ticker := time.NewTicker(time.Duration(q.cfg.BatchSendDeadline))
	defer ticker.Stop()
	for q.ctx.Err() == nil {
		// Full batches go out at once; a partial one waits for the deadline
		// so that requests stay large.
		if s.queued() >= q.cfg.MaxSamplesPerSend {
			s.sendBatch()
			continue
		}
		select {
		case <-q.ctx.Done():
		case <-q.stopping:
			// Flush everything, partial batches included. Cancelling ctx at
			// the flush deadline ends this loop.
			for q.ctx.Err() == nil && s.sendBatch() {
			}
			return
		case <-s.notify:
		case <-ticker.C:
			s.sendBatch()
		}
	}
}

// sendBatch sends the next batch, if any, until it is delivered or given
// up. It reports whether there was a batch.
func (s *shard) sendBatch() bool {
	batch := s.take(s.q.cfg.MaxSamplesPerSend)
	if len(batch) == 0 {
		return false
	}
	s.q.deliver(batch)
	return true
}

// deliver sends one batch, retrying as its failures allow. The same bytes
// are sent on every attempt, so a retry after a lost acknowledgement is an
// exact duplicate the receiver can recognise.
func (q *Queue) deliver(batch []sample) {
	n := len(batch)
	body, err := encodeRequest(batch, q.ext)
	if err != nil {
		q.release(n)
		q.m.dropped(reasonEncode, n)
		q.noteFailure(slog.LevelError, "encode", "Failed to encode batch, dropping it", "err", err, "samples", n)
		return
	}
	backoff := time.Duration(q.cfg.MinBackoff)
	var rateLimitedSince time.Time
	for attempt := 0; ; attempt++ {
		if q.ctx.Err() != nil {
			q.release(n)
			q.m.dropped(reasonShutdown, n)
			return
		}
		start := time.Now()
		err := q.client.Store(q.ctx, body, attempt)
		q.m.batchDuration.Observe(time.Since(start).Seconds())
		if err == nil {
			q.sent(batch)
			return
		}
		if q.ctx.Err() != nil {
			// Cancelled by the flush deadline: not the endpoint's fault,
			// so not logged as a failure.
			q.release(n)
			q.m.dropped(reasonShutdown, n)
			return
		}
		out, code, retryAfter := classify(err, q.cfg.RetryOnRateLimit)
		if out == final {
			q.release(n)
			q.m.failed(code, n)
			q.noteFailure(slog.LevelError, "final/"+code, "Remote endpoint rejected batch, dropping it",
				"err", err, "code", code, "samples", n)
			return
		}
		// Equal jitter: between half and all of the backoff, so that shards
		// and sidecars that failed together do not retry in lockstep. A
		// longer Retry-After from the endpoint wins.
		wait := backoff/2 + rand.N(backoff/2+1)
		wait = max(wait, retryAfter)
		if out == retryBounded {
			now := time.Now()
			if rateLimitedSince.IsZero() {
				rateLimitedSince = now
			}
			// Give up now rather than sleep past the bound and drop anyway.
			if now.Sub(rateLimitedSince)+wait > time.Duration(q.cfg.MaxRetryDuration) {
				q.release(n)
				q.m.dropped(reasonRateLimited, n)
				q.noteFailure(slog.LevelError, "rate_limited", "Rate limited for longer than max_retry_duration, dropping batch",
					"err", err, "max_retry_duration", q.cfg.MaxRetryDuration, "samples", n)
				return
			}
		}
		q.noteFailure(slog.LevelWarn, "retry/"+code, "Failed to send batch, retrying", "err", err, "code", code, "samples", n)
		// The wait watches ctx, which the flush deadline cancels, and not
		// the stop signal: during the flush, retries go on until the
		// deadline, as that is what the flush is for.
		if !sleep(q.ctx, wait) {
			q.release(n)
			q.m.dropped(reasonShutdown, n)
			return
		}
		q.m.retried.Add(float64(n))
		backoff = min(2*backoff, time.Duration(q.cfg.MaxBackoff))
	}
}

// sent accounts for a delivered batch.
func (q *Queue) sent(batch []sample) {
	q.release(len(batch))
	q.m.sent.Add(float64(len(batch)))
	newest := batch[0].t
	for _, s := range batch[1:] {
		newest = max(newest, s.t)
	}
	// Shards finish in any order; the lock keeps the gauge at the maximum.
	q.highestMu.Lock()
	if newest > q.highestSent {
		q.highestSent = newest
		q.m.highestSent.Set(float64(newest) / 1000)
	}
	q.highestMu.Unlock()
	q.noteSuccess()
}

// sleep waits for d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

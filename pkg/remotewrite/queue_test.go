package remotewrite

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/openanomaly/openanomaly/pkg/config"
)

// newTestQueue builds a queue on a fake client. Its metrics stay in the
// registry after Stop so that tests can read the final counts.
func newTestQueue(t *testing.T, qc config.QueueConfig, client WriteClient) (*Queue, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	q, err := NewQueue(QueueOptions{
		Config:      testConfig(t, "http://fake.invalid/write", qc),
		Client:      client,
		metrics:     m,
		keepMetrics: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return q, reg
}

func TestBatchBySizeOrDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		qc := fastQueueConfig()
		qc.MaxSamplesPerSend = 100
		qc.BatchSendDeadline = model.Duration(5 * time.Second)
		fc := newFakeClient(t, nil)
		q, _ := newTestQueue(t, qc, fc)
		q.Start()
		defer q.Stop()
		start := time.Now()

		// A full batch leaves at once.
		for i := range 100 {
			q.Append(series(i), 1000, 1)
		}
		synctest.Wait()
		if c := fc.Calls(); len(c) != 1 || c[0].samples != 100 || !c[0].at.Equal(start) {
			t.Fatalf("after a full batch: calls %+v, want one of 100 samples at once", c)
		}

		// A partial batch waits for the deadline.
		for i := range 3 {
			q.Append(series(i), 2000, 1)
		}
		time.Sleep(5*time.Second - time.Millisecond)
		synctest.Wait()
		if c := fc.Calls(); len(c) != 1 {
			t.Fatalf("partial batch sent before the deadline: %+v", c)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		c := fc.Calls()
		if len(c) != 2 || c[1].samples != 3 || c[1].at.Sub(start) != 5*time.Second {
			t.Fatalf("calls %+v, want a second one of 3 samples at 5s", c)
		}
	})
}

func TestBackoffAndRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		name     string
		errs     []error
		wantGaps [][2]time.Duration // allowed [min, max] between attempts
	}{
		{
			name: "exponential with jitter, capped",
			errs: []error{
				&HTTPError{StatusCode: 500}, &HTTPError{StatusCode: 500},
				&HTTPError{StatusCode: 500}, errors.New("connection reset"),
			},
			// backoff 1s, 2s, 4s, 4s (cap); each waited between half and all.
			wantGaps: [][2]time.Duration{{500 * time.Millisecond, time.Second}, {time.Second, 2 * time.Second}, {2 * time.Second, 4 * time.Second}, {2 * time.Second, 4 * time.Second}},
		},
		{
			name:     "longer Retry-After wins",
			errs:     []error{&HTTPError{StatusCode: 503, RetryAfter: 10 * time.Second}},
			wantGaps: [][2]time.Duration{{10 * time.Second, 10 * time.Second}},
		},
		{
			name:     "shorter Retry-After loses to the backoff",
			errs:     []error{&HTTPError{StatusCode: 429, RetryAfter: time.Millisecond}},
			wantGaps: [][2]time.Duration{{500 * time.Millisecond, time.Second}},
		},
		{
			name:     "408 is retried",
			errs:     []error{&HTTPError{StatusCode: 408}, &HTTPError{StatusCode: 408}},
			wantGaps: [][2]time.Duration{{500 * time.Millisecond, time.Second}, {time.Second, 2 * time.Second}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				qc := fastQueueConfig()
				qc.MaxSamplesPerSend = 5
				qc.MinBackoff = model.Duration(time.Second)
				qc.MaxBackoff = model.Duration(4 * time.Second)
				qc.MaxRetryDuration = model.Duration(time.Minute)
				fc := newFakeClient(t, func(_ context.Context, n int) error {
					if n < len(tc.errs) {
						return tc.errs[n]
					}
					return nil
				})
				q, reg := newTestQueue(t, qc, fc)
				q.Start()
				defer q.Stop()
				for i := range 5 {
					q.Append(series(i), 1000, 1)
				}
				time.Sleep(time.Minute)
				synctest.Wait()
				calls := fc.Calls()
				if len(calls) != len(tc.errs)+1 {
					t.Fatalf("%d calls, want %d", len(calls), len(tc.errs)+1)
				}
				for i, g := range tc.wantGaps {
					gap := calls[i+1].at.Sub(calls[i].at)
					if gap < g[0] || gap > g[1] {
						t.Errorf("wait before attempt %d = %s, want in [%s, %s]", i+1, gap, g[0], g[1])
					}
					if calls[i+1].attempt != i+1 {
						t.Errorf("call %d has attempt %d", i+1, calls[i+1].attempt)
					}
				}
				if got, want := metricValue(t, reg, "openanomaly_remote_write_retried_samples_total", nil), float64(5*len(tc.errs)); got != want {
					t.Errorf("retried_samples_total = %v, want %v", got, want)
				}
				if got := metricValue(t, reg, "openanomaly_remote_write_sent_samples_total", nil); got != 5 {
					t.Errorf("sent_samples_total = %v, want 5", got)
				}
				if fc.Total() != 5 {
					t.Errorf("client got %d samples, want 5", fc.Total())
				}
			})
		})
	}
}

func TestRateLimitIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		qc := fastQueueConfig()
		qc.MaxSamplesPerSend = 4
		qc.MaxRetryDuration = model.Duration(time.Minute)
		const limited = 7
		fc := newFakeClient(t, func(_ context.Context, n int) error {
			if n < limited {
				return &HTTPError{StatusCode: 429, RetryAfter: 10 * time.Second}
			}
			return nil
		})
		q, reg := newTestQueue(t, qc, fc)
		q.Start()
		defer q.Stop()
		start := time.Now()
		for i := range 4 {
			q.Append(series(i), 1000, 1)
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		// Attempts at 0, 10, ..., 60 s; the next wait would pass the bound.
		calls := fc.Calls()
		if len(calls) != limited || calls[limited-1].at.Sub(start) != time.Minute {
			t.Fatalf("calls %+v, want %d, the last at 1m", calls, limited)
		}
		if got := metricValue(t, reg, "openanomaly_remote_write_dropped_samples_total", map[string]string{"reason": "rate_limited"}); got != 4 {
			t.Errorf("dropped{rate_limited} = %v, want 4", got)
		}
		if got := metricValue(t, reg, "openanomaly_remote_write_pending_samples", nil); got != 0 {
			t.Errorf("pending_samples = %v, want 0", got)
		}
		// The shard is free again: the next batch goes through.
		for i := range 4 {
			q.Append(series(i), 2000, 1)
		}
		synctest.Wait()
		if fc.Total() != 4 {
			t.Errorf("after the drop the client got %d samples, want 4", fc.Total())
		}
	})
}

func TestRateLimitNotRetriedWhenDisabled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		qc := fastQueueConfig()
		qc.MaxSamplesPerSend = 3
		qc.RetryOnRateLimit = false
		fc := newFakeClient(t, func(context.Context, int) error { return &HTTPError{StatusCode: 429} })
		q, reg := newTestQueue(t, qc, fc)
		q.Start()
		defer q.Stop()
		for i := range 3 {
			q.Append(series(i), 1000, 1)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := len(fc.Calls()); n != 1 {
			t.Errorf("%d calls, want 1", n)
		}
		if got := metricValue(t, reg, "openanomaly_remote_write_failed_samples_total", map[string]string{"code": "429"}); got != 3 {
			t.Errorf("failed{code=429} = %v, want 3", got)
		}
	})
}

func TestQueueFullDropsWithoutBlocking(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		qc := fastQueueConfig()
		qc.Capacity = 100
		qc.MaxSamplesPerSend = 10
		qc.FlushDeadline = model.Duration(time.Second)
		fc := newFakeClient(t, blockUntilDone)
		q, reg := newTestQueue(t, qc, fc)
		q.Start()
		accepted := 0
		for i := range 150 {
			if q.Append(series(i%7), int64(i), 1) {
				accepted++
			}
		}
		synctest.Wait()
		if accepted != 100 {
			t.Errorf("accepted %d, want 100", accepted)
		}
		for name, want := range map[string]float64{
			"openanomaly_remote_write_samples_total":   150,
			"openanomaly_remote_write_pending_samples": 100,
			"openanomaly_remote_write_queue_capacity":  100,
		} {
			if got := metricValue(t, reg, name, nil); got != want {
				t.Errorf("%s = %v, want %v", name, got, want)
			}
		}
		if got := metricValue(t, reg, "openanomaly_remote_write_dropped_samples_total", map[string]string{"reason": "queue_full"}); got != 50 {
			t.Errorf("dropped{queue_full} = %v, want 50", got)
		}
		q.Stop()
		if q.Append(series(0), 999, 1) {
			t.Error("Append after Stop accepted a sample")
		}
		if got := metricValue(t, reg, "openanomaly_remote_write_dropped_samples_total", map[string]string{"reason": "shutdown"}); got != 101 {
			t.Errorf("dropped{shutdown} = %v, want 101 (100 queued, 1 after Stop)", got)
		}
		if got := metricValue(t, reg, "openanomaly_remote_write_pending_samples", nil); got != 0 {
			t.Errorf("pending_samples after Stop = %v, want 0", got)
		}
	})
}

func TestStopRespectsFlushDeadline(t *testing.T) {
	for _, tc := range []struct {
		name        string
		respond     func(context.Context, int) error
		wantElapsed time.Duration
		wantSent    float64
		wantDropped float64
	}{
		{name: "hanging endpoint", respond: blockUntilDone, wantElapsed: time.Minute, wantDropped: 25},
		{name: "endpoint down", respond: func(context.Context, int) error { return errors.New("connection refused") }, wantElapsed: time.Minute, wantDropped: 25},
		{name: "healthy endpoint flushes partial batches at once", wantElapsed: 0, wantSent: 25},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				qc := fastQueueConfig()
				qc.MaxShards = 2
				qc.MaxSamplesPerSend = 10
				qc.BatchSendDeadline = model.Duration(time.Hour)
				qc.FlushDeadline = model.Duration(time.Minute)
				fc := newFakeClient(t, tc.respond)
				q, reg := newTestQueue(t, qc, fc)
				q.Start()
				for i := range 25 {
					q.Append(series(i%5), int64(i), 1)
				}
				synctest.Wait()
				start := time.Now()
				q.Stop()
				if elapsed := time.Since(start); elapsed != tc.wantElapsed {
					t.Errorf("Stop took %s, want %s", elapsed, tc.wantElapsed)
				}
				if got := metricValue(t, reg, "openanomaly_remote_write_sent_samples_total", nil); got != tc.wantSent {
					t.Errorf("sent = %v, want %v", got, tc.wantSent)
				}
				if got := metricValue(t, reg, "openanomaly_remote_write_dropped_samples_total", map[string]string{"reason": "shutdown"}); got != tc.wantDropped {
					t.Errorf("dropped{shutdown} = %v, want %v", got, tc.wantDropped)
				}
				if got := metricValue(t, reg, "openanomaly_remote_write_pending_samples", nil); got != 0 {
					t.Errorf("pending = %v, want 0", got)
				}
			})
		})
	}
}

func TestStopBeforeStartAndTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := newFakeClient(t, nil)
		q, reg := newTestQueue(t, fastQueueConfig(), fc)
		q.Append(series(1), 1, 1)
		q.Stop()
		q.Stop()
		q.Start() // no effect after Stop
		synctest.Wait()
		if len(fc.Calls()) != 0 {
			t.Errorf("a stopped queue sent %d requests", len(fc.Calls()))
		}
		if got := metricValue(t, reg, "openanomaly_remote_write_dropped_samples_total", map[string]string{"reason": "shutdown"}); got != 1 {
			t.Errorf("dropped{shutdown} = %v, want 1", got)
		}
	})
}

func TestStopDeletesMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	fc := newFakeClient(t, nil)
	cfg := testConfig(t, "http://fake.invalid/write", fastQueueConfig())
	cfg.Name = "gone"
	// Two queues on one registry share the collectors.
	q1, err := NewQueue(QueueOptions{Config: cfg, Client: fc, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	cfg2 := testConfig(t, "http://fake.invalid/other", fastQueueConfig())
	cfg2.Name = "stays"
	q2, err := NewQueue(QueueOptions{Config: cfg2, Client: fc, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	q1.Start()
	q2.Start()
	q1.Append(series(1), 1, 1)
	q2.Append(series(1), 1, 1)
	q1.Stop()
	if seriesWith(t, reg, "remote_name", "gone") {
		t.Error("metrics of a stopped queue are still exported")
	}
	if !seriesWith(t, reg, "remote_name", "stays") {
		t.Error("metrics of the running queue disappeared")
	}
	q2.Stop()
}

func TestNewQueueRejectsBadConfig(t *testing.T) {
	qc := fastQueueConfig()
	qc.MinBackoff = model.Duration(time.Minute)
	qc.MaxBackoff = model.Duration(time.Second)
	qc.Capacity = -1
	_, err := NewQueue(QueueOptions{Config: testConfig(t, "http://x.invalid/", qc), Client: newFakeClient(t, nil)})
	if err == nil {
		t.Fatal("NewQueue accepted min_backoff > max_backoff and a negative capacity")
	}
	for _, want := range []string{"min_backoff", "capacity"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if _, err := NewQueue(QueueOptions{Config: testConfig(t, "ftp://x.invalid/", fastQueueConfig())}); err == nil {
		t.Error("NewQueue accepted an ftp URL")
	}
	if _, err := NewQueue(QueueOptions{}); err == nil {
		t.Error("NewQueue accepted a nil config")
	}
}

// TestOrderUnderRandomRetries: 1,000 series x 10 samples, about 30% of
// the requests fail with 500. Every sample arrives, each series in order.
func TestOrderUnderRandomRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		qc := fastQueueConfig()
		qc.MaxShards = 4
		qc.MaxSamplesPerSend = 500
		rnd := rand.New(rand.NewPCG(7, 7))
		// Shards call in parallel; the generator needs the lock.
		fc := newFakeClient(t, lockedRespond(func(context.Context, int) error {
			if rnd.Float64() < 0.3 {
				return &HTTPError{StatusCode: 500}
			}
			return nil
		}))
		q, reg := newTestQueue(t, qc, fc)
		q.Start()
		defer q.Stop()
		for ts := range 10 {
			for s := range 1000 {
				q.Append(series(s), int64(ts), float64(ts))
			}
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		checkOrdered(t, fc, 1000, 10)
		if got := metricValue(t, reg, "openanomaly_remote_write_retried_samples_total", nil); got == 0 {
			t.Error("no retries happened; the test would not catch reordering")
		}
	})
}

func lockedRespond(f func(context.Context, int) error) func(context.Context, int) error {
	ch := make(chan struct{}, 1)
	return func(ctx context.Context, n int) error {
		ch <- struct{}{}
		defer func() { <-ch }()
		return f(ctx, n)
	}
}

func checkOrdered(t *testing.T, fc *fakeClient, nSeries, perSeries int) {
	t.Helper()
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if len(fc.series) != nSeries || fc.total != nSeries*perSeries {
		t.Fatalf("got %d series, %d samples; want %d, %d", len(fc.series), fc.total, nSeries, nSeries*perSeries)
	}
	for k, ss := range fc.series {
		for i := 1; i < len(ss); i++ {
			if ss[i].Timestamp <= ss[i-1].Timestamp {
				t.Fatalf("series %s out of order: %v", k, ss)
			}
		}
	}
}

package remotewrite

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/openanomaly/openanomaly/pkg/config"
	"github.com/openanomaly/openanomaly/pkg/remotewrite/remotewritetest"
)

// startHTTPQueue runs a queue with the real HTTP client against rcv.
func startHTTPQueue(t *testing.T, rcv *remotewritetest.Receiver, edit func(*configEdit)) (*Queue, *prometheus.Registry) {
	t.Helper()
	cfg := rcv.RemoteWriteConfig()
	cfg.Name = "test"
	e := &configEdit{cfg: cfg}
	if edit != nil {
		edit(e)
	}
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	q, err := NewQueue(QueueOptions{
		Config:         cfg,
		ExternalLabels: e.ext,
		metrics:        m,
		keepMetrics:    true,
	})
	if err != nil {
		t.Fatal(err)
	}
	q.Start()
	t.Cleanup(q.Stop)
	return q, reg
}

type configEdit struct {
	cfg *config.RemoteWriteConfig
	ext labels.Labels
}

// TestStatusMatrix sends one batch against each kind of answer and checks
// what was delivered, retried, failed and dropped; then a second batch,
// which must be delivered (the queue goes on after any outcome).
func TestStatusMatrix(t *testing.T) {
	const n = 5 // samples per batch = MaxSamplesPerSend, so one request
	type want struct {
		delivered bool
		attempts  int     // requests the receiver saw for batch 1; 0: don't check
		retried   float64 // retried_samples_total; -1: at least 2n
		failed    string  // code of failed_samples_total, if any
		dropped   string  // reason of dropped_samples_total, if any
		minGap    time.Duration
		notBefore time.Time // the retry must not come before this
	}
	// An HTTP date has whole seconds; the retry may not come before it,
	// however late the first request goes out on a loaded machine (4s:
	// the subtests before this one take a second or two).
	retryDate := time.Now().Add(4 * time.Second).UTC().Truncate(time.Second)
	for _, tc := range []struct {
		name   string
		script []remotewritetest.Response
		def    *remotewritetest.Response // default answer during batch 1
		down   bool                      // connection refused until retries are seen
		edit   func(*configEdit)
		want   want
	}{
		{name: "200", script: st(200), want: want{delivered: true, attempts: 1}},
		{name: "204", script: st(204), want: want{delivered: true, attempts: 1}},
		{name: "400", script: st(400), want: want{attempts: 1, failed: "400"}},
		{name: "401", script: st(401), want: want{attempts: 1, failed: "401"}},
		{name: "404", script: st(404), want: want{attempts: 1, failed: "404"}},
		{name: "413", script: st(413), want: want{attempts: 1, failed: "413"}},
		{name: "415", script: st(415), want: want{attempts: 1, failed: "415"}},
		{name: "408 twice", script: st(408, 408), want: want{delivered: true, attempts: 3, retried: 2 * n}},
		{
			name:   "429 Retry-After seconds",
			script: []remotewritetest.Response{{Status: 429, RetryAfter: "1"}},
			want:   want{delivered: true, attempts: 2, retried: n, minGap: time.Second},
		},
		{
			name: "429 Retry-After HTTP date",
			script: []remotewritetest.Response{{
				Status: 429, RetryAfter: retryDate.Format(http.TimeFormat),
			}},
			want: want{delivered: true, attempts: 2, retried: n, notBefore: retryDate},
		},
		{name: "429 without Retry-After", script: st(429), want: want{delivered: true, attempts: 2, retried: n}},
		{
			name: "429 for longer than max_retry_duration",
			def:  &remotewritetest.Response{Status: 429},
			edit: func(e *configEdit) { e.cfg.QueueConfig.MaxRetryDuration = model.Duration(300 * time.Millisecond) },
			want: want{retried: -1, dropped: "rate_limited"},
		},
		{name: "500", script: st(500, 500), want: want{delivered: true, attempts: 3, retried: 2 * n}},
		{name: "502", script: st(502), want: want{delivered: true, attempts: 2, retried: n}},
		{name: "503", script: st(503), want: want{delivered: true, attempts: 2, retried: n}},
		{name: "504", script: st(504), want: want{delivered: true, attempts: 2, retried: n}},
		{name: "connection refused", down: true, want: want{delivered: true, retried: -1}},
		{
			name:   "connection closed mid-request",
			script: []remotewritetest.Response{{Close: true}},
			want:   want{delivered: true, attempts: 2, retried: n},
		},
		{
			name:   "receiver slower than the timeout",
			script: []remotewritetest.Response{{Delay: 2 * time.Second}},
			edit:   func(e *configEdit) { e.cfg.RemoteTimeout = model.Duration(200 * time.Millisecond) },
			want:   want{delivered: true, attempts: 2, retried: n},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rcv := remotewritetest.NewReceiver(t)
			rcv.Script(tc.script...)
			if tc.def != nil {
				rcv.SetDefault(*tc.def)
			}
			if tc.down {
				rcv.Down()
			}
			q, reg := startHTTPQueue(t, rcv, func(e *configEdit) {
				e.cfg.QueueConfig.MaxShards = 1
				e.cfg.QueueConfig.MaxSamplesPerSend = n
				e.cfg.QueueConfig.MaxRetryDuration = model.Duration(10 * time.Second)
				e.cfg.QueueConfig.BatchSendDeadline = model.Duration(time.Hour)
				if tc.edit != nil {
					tc.edit(e)
				}
			})
			get := func(name string, lbls map[string]string) float64 {
				return metricValue(t, reg, "openanomaly_remote_write_"+name, lbls)
			}
			for i := range n {
				q.Append(series(i), 1000, float64(i))
			}
			if tc.down {
				eventually(t, 10*time.Second, "retries against a down receiver", func() bool {
					return get("retried_samples_total", nil) >= 2*n
				})
				rcv.Up()
			}

			w := tc.want
			switch {
			case w.delivered:
				if !rcv.WaitFor(n, 10*time.Second) {
					t.Fatalf("batch not delivered; receiver has %d samples", rcv.SampleCount())
				}
				eventually(t, 5*time.Second, "sent_samples_total", func() bool { return get("sent_samples_total", nil) == n })
			case w.failed != "":
				eventually(t, 5*time.Second, "failed_samples_total", func() bool {
					return get("failed_samples_total", map[string]string{"code": w.failed}) == n
				})
			case w.dropped != "":
				eventually(t, 5*time.Second, "dropped_samples_total", func() bool {
					return get("dropped_samples_total", map[string]string{"reason": w.dropped}) == n
				})
			}
			reqs := rcv.Requests()
			if w.attempts > 0 && len(reqs) != w.attempts {
				t.Errorf("receiver saw %d requests, want %d", len(reqs), w.attempts)
			}
			switch got := get("retried_samples_total", nil); {
			case w.retried >= 0 && got != w.retried:
				t.Errorf("retried_samples_total = %v, want %v", got, w.retried)
			case w.retried < 0 && got < 2*n:
				t.Errorf("retried_samples_total = %v, want at least %v", got, 2*n)
			}
			if w.minGap > 0 && len(reqs) >= 2 {
				if gap := reqs[1].Time.Sub(reqs[0].Time); gap < w.minGap {
					t.Errorf("retried after %s, before Retry-After (%s)", gap, w.minGap)
				}
			}
			// 10ms for the receiver's clock reading after the client's.
			if !w.notBefore.IsZero() && len(reqs) >= 2 && reqs[1].Time.Before(w.notBefore.Add(-10*time.Millisecond)) {
				t.Errorf("retried at %s, before the Retry-After date %s", reqs[1].Time.UTC().Format(time.RFC3339Nano), w.notBefore.Format(time.RFC3339))
			}
			for i, r := range reqs {
				if !strings.HasPrefix(r.Header.Get("User-Agent"), "OpenAnomaly/") {
					t.Errorf("request %d: User-Agent %q", i, r.Header.Get("User-Agent"))
				}
				if want := retryAttempt(i); w.attempts > 0 && r.Header.Get("Retry-Attempt") != want {
					t.Errorf("request %d: Retry-Attempt %q, want %q", i, r.Header.Get("Retry-Attempt"), want)
				}
			}
			if !w.delivered && rcv.SampleCount() != 0 {
				t.Errorf("receiver recorded %d samples of a batch that was not accepted", rcv.SampleCount())
			}
			if w.failed == "" && get("failed_samples_total", nil) != 0 {
				t.Errorf("failed_samples_total = %v, want 0", get("failed_samples_total", nil))
			}
			if w.dropped == "" && get("dropped_samples_total", nil) != 0 {
				t.Errorf("dropped_samples_total = %v, want 0", get("dropped_samples_total", nil))
			}

			// Whatever happened, the next batch goes through.
			rcv.SetDefault(remotewritetest.Response{})
			before := rcv.SampleCount()
			for i := range n {
				q.Append(series(i), 2000, float64(i))
			}
			if !rcv.WaitFor(before+n, 10*time.Second) {
				t.Fatalf("second batch not delivered")
			}
			eventually(t, time.Second, "pending_samples 0", func() bool { return get("pending_samples", nil) == 0 })
			eventually(t, time.Second, "highest_sent_timestamp_seconds 2", func() bool {
				return get("highest_sent_timestamp_seconds", nil) == 2
			})
		})
	}
}

func st(codes ...int) []remotewritetest.Response {
	out := make([]remotewritetest.Response, len(codes))
	for i, c := range codes {
		out[i] = remotewritetest.Status(c)
	}
	return out
}

func retryAttempt(i int) string {
	if i == 0 {
		return ""
	}
	return itoa(i)
}

// TestHTTPOrderUnderRandomFailures: 1,000 series x 10 samples through the
// real client, about 30% of the requests answered 500.
func TestHTTPOrderUnderRandomFailures(t *testing.T) {
	t.Parallel()
	rcv := remotewritetest.NewReceiver(t)
	rcv.FailRandomly(0.3, remotewritetest.Status(500))
	q, reg := startHTTPQueue(t, rcv, func(e *configEdit) {
		e.cfg.QueueConfig.MaxShards = 4
		e.cfg.QueueConfig.MaxSamplesPerSend = 500
		e.cfg.QueueConfig.MinBackoff = model.Duration(time.Millisecond)
		e.cfg.QueueConfig.MaxBackoff = model.Duration(10 * time.Millisecond)
	})
	for ts := range 10 {
		for s := range 1000 {
			if !q.Append(series(s), int64(ts+1)*1000, float64(ts)) {
				t.Fatal("Append dropped a sample")
			}
		}
	}
	if !rcv.WaitFor(10000, 20*time.Second) {
		t.Fatalf("only %d of 10000 samples delivered", rcv.SampleCount())
	}
	checkReceived(t, rcv, 1000, 10)
	if metricValue(t, reg, "openanomaly_remote_write_retried_samples_total", nil) == 0 {
		t.Error("no retries happened; the test would not catch reordering")
	}
}

// checkReceived asserts the receiver has exactly nSeries series of
// perSeries samples each, in strictly increasing timestamp order.
func checkReceived(t *testing.T, rcv *remotewritetest.Receiver, nSeries, perSeries int) {
	t.Helper()
	got := rcv.Samples()
	if len(got) != nSeries {
		t.Fatalf("receiver has %d series, want %d", len(got), nSeries)
	}
	for k, ss := range got {
		if len(ss) != perSeries {
			t.Errorf("series %s has %d samples, want %d", k, len(ss), perSeries)
		}
		for i := 1; i < len(ss); i++ {
			if ss[i].T <= ss[i-1].T {
				t.Fatalf("series %s out of order: %v", k, ss)
			}
		}
	}
}

// TestReceiverDownThenBack: the receiver is down while more than the
// capacity is appended; the first Capacity samples arrive, in order, once
// it is back, and the rest are counted as dropped.
func TestReceiverDownThenBack(t *testing.T) {
	t.Parallel()
	rcv := remotewritetest.NewReceiver(t)
	rcv.Down()
	q, reg := startHTTPQueue(t, rcv, func(e *configEdit) {
		e.cfg.QueueConfig.Capacity = 100
		e.cfg.QueueConfig.MaxShards = 2
		e.cfg.QueueConfig.MaxSamplesPerSend = 7
	})
	accepted := 0
	for ts := range 15 {
		for s := range 10 {
			if q.Append(series(s), int64(ts+1)*1000, 1) {
				accepted++
			}
		}
		time.Sleep(5 * time.Millisecond) // let batches form and fail
	}
	if accepted != 100 {
		t.Fatalf("accepted %d samples, want the capacity, 100", accepted)
	}
	eventually(t, 5*time.Second, "retries while down", func() bool {
		return metricValue(t, reg, "openanomaly_remote_write_retried_samples_total", nil) > 0
	})
	rcv.Up()
	if !rcv.WaitFor(100, 10*time.Second) {
		t.Fatalf("only %d of 100 samples delivered after the receiver came back", rcv.SampleCount())
	}
	checkReceived(t, rcv, 10, 10)
	if got := metricValue(t, reg, "openanomaly_remote_write_dropped_samples_total", map[string]string{"reason": "queue_full"}); got != 50 {
		t.Errorf("dropped{queue_full} = %v, want 50", got)
	}
}

// TestStopAgainstHangingReceiver: a real HTTP receiver that never answers;
// Stop returns after the flush deadline and counts the batch as dropped.
func TestStopAgainstHangingReceiver(t *testing.T) {
	t.Parallel()
	rcv := remotewritetest.NewReceiver(t)
	rcv.SetDefault(remotewritetest.Response{Hang: true})
	q, reg := startHTTPQueue(t, rcv, func(e *configEdit) {
		e.cfg.QueueConfig.FlushDeadline = model.Duration(300 * time.Millisecond)
		e.cfg.RemoteTimeout = model.Duration(time.Minute)
	})
	for i := range 10 {
		q.Append(series(i), 1000, 1)
	}
	eventually(t, 5*time.Second, "the request to hang", func() bool { return len(rcv.Requests()) > 0 })
	start := time.Now()
	q.Stop()
	if elapsed := time.Since(start); elapsed < 300*time.Millisecond || elapsed > 3*time.Second {
		t.Errorf("Stop took %s, want about the 300ms flush deadline", elapsed)
	}
	if got := metricValue(t, reg, "openanomaly_remote_write_dropped_samples_total", map[string]string{"reason": "shutdown"}); got != 10 {
		t.Errorf("dropped{shutdown} = %v, want 10", got)
	}
}

// TestLabelsOnTheWire: external labels are added where the series lacks
// them; the receiver checks sorting, uniqueness and empty values.
func TestLabelsOnTheWire(t *testing.T) {
	t.Parallel()
	rcv := remotewritetest.NewReceiver(t)
	q, _ := startHTTPQueue(t, rcv, func(e *configEdit) {
		e.ext = labels.FromStrings("cluster", "eu", "replica", "a")
	})
	q.Append(labels.FromStrings("__name__", "m", "zone", "z1", "job", "j"), 1000, 1)
	q.Append(labels.FromStrings("__name__", "m", "cluster", "own", "job", "j"), 1000, 2)
	q.Append(labels.New(labels.Label{Name: "__name__", Value: "m"}, labels.Label{Name: "job", Value: "k"}, labels.Label{Name: "empty", Value: ""}), 1000, 3)
	if !rcv.WaitFor(3, 10*time.Second) {
		t.Fatal("samples not delivered")
	}
	var got []string
	for _, l := range rcv.Series() {
		got = append(got, l.String())
	}
	want := []string{
		`{__name__="m", cluster="eu", job="j", replica="a", zone="z1"}`,
		`{__name__="m", cluster="eu", job="k", replica="a"}`,
		`{__name__="m", cluster="own", job="j", replica="a"}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("series on the wire:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestReceiverDownThreeMinutes: a receiver down for three minutes while
// samples keep coming, then back. Everything the queue accepted arrives, in
// order per series; what did not fit is dropped and counted; and the queue
// backed off instead of hammering the dead endpoint.
func TestReceiverDownThreeMinutes(t *testing.T) {
	if testing.Short() {
		t.Skip("takes three minutes; runs without -short")
	}
	t.Parallel()
	const (
		outage    = 3 * time.Minute
		nSeries   = 5
		capacity  = 500
		perSend   = 50
		shards    = 2
		maxBackof = 5 * time.Second
	)
	rcv := remotewritetest.NewReceiver(t)
	rcv.Down()
	q, reg := startHTTPQueue(t, rcv, func(e *configEdit) {
		e.cfg.QueueConfig.Capacity = capacity
		e.cfg.QueueConfig.MaxShards = shards
		e.cfg.QueueConfig.MaxSamplesPerSend = perSend
		e.cfg.QueueConfig.MinBackoff = model.Duration(30 * time.Millisecond)
		e.cfg.QueueConfig.MaxBackoff = model.Duration(maxBackof)
	})
	// One sample per series every second, as a sidecar evaluating every
	// second would append: 900 samples, more than the capacity.
	accepted, appended := 0, 0
	start := time.Now()
	for ts := int64(1); time.Since(start) < outage; ts++ {
		for s := range nSeries {
			appended++
			if q.Append(series(s), ts*1000, float64(ts)) {
				accepted++
			}
		}
		time.Sleep(time.Second)
	}
	if accepted != capacity {
		t.Fatalf("accepted %d of %d samples during the outage, want the capacity, %d", accepted, appended, capacity)
	}
	// Every attempt is timed in the batch duration histogram. Each shard
	// retries its batch with backoff doubling up to 5s: at most about
	// outage/maxBackoff attempts plus the doubling ones.
	attempts := metricValue(t, reg, "openanomaly_remote_write_sent_batch_duration_seconds", nil)
	maxAttempts := float64(shards) * (outage.Seconds()/(maxBackof.Seconds()/2) + 12)
	if attempts < float64(shards)*outage.Seconds()/maxBackof.Seconds()/2 || attempts > maxAttempts {
		t.Errorf("%v attempts in %s, want about %s/%s per shard and at most %.0f", attempts, outage, outage, maxBackof, maxAttempts)
	}
	rcv.Up()
	if !rcv.WaitFor(capacity, 30*time.Second) {
		t.Fatalf("only %d of %d accepted samples delivered after the receiver came back", rcv.SampleCount(), capacity)
	}
	got := rcv.Samples()
	for k, ss := range got {
		for i := 1; i < len(ss); i++ {
			if ss[i].T <= ss[i-1].T {
				t.Fatalf("series %s out of order after the outage", k)
			}
		}
	}
	total := 0
	for _, ss := range got {
		total += len(ss)
	}
	if total != capacity {
		t.Errorf("received %d samples, want %d", total, capacity)
	}
	if d := metricValue(t, reg, "openanomaly_remote_write_dropped_samples_total", map[string]string{"reason": "queue_full"}); int(d) != appended-accepted {
		t.Errorf("dropped{queue_full} = %v, want %d", d, appended-accepted)
	}
	t.Logf("outage %s: %d appended, %d delivered after it, %d dropped (queue full), %.0f send attempts while down",
		outage, appended, total, appended-accepted, attempts)
}

// TestDropCountersStartAtZero: every drop reason is exported at 0 before
// anything is dropped, so alerts on its increase see the first drop.
func TestDropCountersStartAtZero(t *testing.T) {
	rcv := remotewritetest.NewReceiver(t)
	_, reg := startHTTPQueue(t, rcv, nil)
	for _, reason := range []string{"queue_full", "shutdown", "rate_limited", "encode_error"} {
		if !seriesWith(t, reg, "reason", reason) {
			t.Errorf("openanomaly_remote_write_dropped_samples_total{reason=%q} is not exported", reason)
		}
		if v := metricValue(t, reg, "openanomaly_remote_write_dropped_samples_total", map[string]string{"reason": reason}); v != 0 {
			t.Errorf("dropped{reason=%q} = %v before anything was sent", reason, v)
		}
	}
}

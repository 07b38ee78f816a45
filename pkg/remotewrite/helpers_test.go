package remotewrite

import (
	"context"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"go.uber.org/goleak"

	"github.com/openanomaly/openanomaly/pkg/config"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// metricValue sums the series of a metric whose labels include want.
// Histograms contribute their sample count. A metric that is absent is 0.
func metricValue(t *testing.T, g prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				total += m.Counter.GetValue()
			case m.Gauge != nil:
				total += m.Gauge.GetValue()
			case m.Histogram != nil:
				total += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return total
}

// seriesWith reports whether any series of any metric carries the label.
func seriesWith(t *testing.T, g prometheus.Gatherer, name, value string) bool {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == name && lp.GetValue() == value {
					return true
				}
			}
		}
	}
	return false
}

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testConfig is an endpoint config with the given queue settings.
func testConfig(t *testing.T, rawURL string, qc config.QueueConfig) *config.RemoteWriteConfig {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return &config.RemoteWriteConfig{
		URL:              &commoncfg.URL{URL: u},
		RemoteTimeout:    model.Duration(5 * time.Second),
		QueueConfig:      qc,
		HTTPClientConfig: commoncfg.DefaultHTTPClientConfig,
	}
}

// decodeBody decodes a request body as a receiver would.
func decodeBody(t testing.TB, body []byte) *prompb.WriteRequest {
	t.Helper()
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		t.Fatalf("snappy decode: %v", err)
	}
	var wr prompb.WriteRequest
	if err := wr.Unmarshal(raw); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	return &wr
}

// call is one Store call seen by fakeClient.
type call struct {
	at      time.Time
	attempt int
	samples int
}

// fakeClient is an in-memory WriteClient for synctest tests. respond
// decides the answer of the n-th call (0-based); accepted samples are
// recorded per series.
type fakeClient struct {
	t       testing.TB
	respond func(ctx context.Context, n int) error

	mu     sync.Mutex
	calls  []call
	series map[string][]prompb.Sample
	total  int
}

func newFakeClient(t testing.TB, respond func(ctx context.Context, n int) error) *fakeClient {
	return &fakeClient{t: t, respond: respond, series: map[string][]prompb.Sample{}}
}

func (f *fakeClient) Store(ctx context.Context, req []byte, attempt int) error {
	wr := decodeBody(f.t, req)
	n := 0
	for _, ts := range wr.Timeseries {
		n += len(ts.Samples)
	}
	f.mu.Lock()
	idx := len(f.calls)
	f.calls = append(f.calls, call{at: time.Now(), attempt: attempt, samples: n})
	f.mu.Unlock()
	var err error
	if f.respond != nil {
		err = f.respond(ctx, idx)
	}
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ts := range wr.Timeseries {
		key := labelsKey(ts.Labels)
		f.series[key] = append(f.series[key], ts.Samples...)
		f.total += len(ts.Samples)
	}
	return nil
}

func (f *fakeClient) Calls() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

func (f *fakeClient) Total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.total
}

func labelsKey(ls []prompb.Label) string {
	b := labels.NewScratchBuilder(len(ls))
	for _, l := range ls {
		b.Add(l.Name, l.Value)
	}
	return b.Labels().String()
}

// blockUntilDone is a respond func for an endpoint that never answers.
func blockUntilDone(ctx context.Context, _ int) error {
	<-ctx.Done()
	return ctx.Err()
}

// fastQueueConfig has small, test-friendly settings.
func fastQueueConfig() config.QueueConfig {
	qc := config.DefaultQueueConfig
	qc.MaxShards = 1
	qc.BatchSendDeadline = model.Duration(10 * time.Millisecond)
	qc.MinBackoff = model.Duration(5 * time.Millisecond)
	qc.MaxBackoff = model.Duration(50 * time.Millisecond)
	qc.MaxRetryDuration = model.Duration(time.Second)
	qc.FlushDeadline = model.Duration(5 * time.Second)
	return qc
}

// series returns the label set of test series i.
func series(i int) labels.Labels {
	return labels.FromStrings("__name__", "openanomaly_yhat", "pipeline", "p", "instance", "host-"+itoa(i))
}

func itoa(i int) string {
	const digits = "0123456789"
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{digits[i%10]}, b...)
	}
	return string(b)
}

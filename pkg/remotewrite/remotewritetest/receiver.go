// Package remotewritetest provides a remote-write receiver for tests: it
// checks every request against the remote-write 1.0 spec, records what it
// accepted, and fails on a script (status codes, Retry-After, hung or
// closed connections, an endpoint that is down).
package remotewritetest

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/openanomaly/openanomaly/pkg/config"
)

// Response scripts one answer of the Receiver. The zero Response accepts
// the write with 204 No Content.
type Response struct {
	// Status is the HTTP status; 0 means 204. The samples are recorded
	// only for a 2xx status.
	Status int
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter string
	// Body is the response body.
	Body string
	// Delay waits this long before answering; the answer is not given
	// (and nothing recorded) if the client gives up first.
	Delay time.Duration
	// Hang never answers: the handler returns when the client gives up.
	Hang bool
	// Close reads the request, then closes the connection without an
	// answer, as a load balancer dropping a kept-alive connection does.
	Close bool
}

// Status returns a Response with only a status code.
func Status(code int) Response { return Response{Status: code} }

// Sample is one recorded sample.
type Sample struct {
	T int64
	V float64
}

// Request is what the Receiver saw of one request.
type Request struct {
	// Time is when the request arrived.
	Time time.Time
	// Header holds the request headers.
	Header http.Header
	// Samples is the number of samples in the body.
	Samples int
	// Status is the status answered; 0 when the connection was closed or
	// the client gave up before an answer.
	Status int
}

// Receiver is a remote-write endpoint on a loopback port.
type Receiver struct {
	tb   testing.TB
	addr string

	mu       sync.Mutex
	srv      *httptest.Server
	release  chan struct{} // closed by Down and Close: ends hung handlers
	script   []Response
	def      Response
	failRate float64
	failResp Response
	rnd      *rand.Rand
	series   map[string]*recorded
	total    int
	requests []Request
	changed  chan struct{} // closed and replaced when samples arrive
}

type recorded struct {
	lset    labels.Labels
	samples []Sample
}

// NewReceiver starts a Receiver that accepts every valid write until told
// otherwise. It is closed when the test ends. Spec violations in a request
// are reported with tb.Errorf and answered with 400.
func NewReceiver(tb testing.TB) *Receiver {
	tb.Helper()
	r := &Receiver{
		tb:      tb,
		release: make(chan struct{}),
		series:  map[string]*recorded{},
		changed: make(chan struct{}),
		rnd:     rand.New(rand.NewPCG(1, 2)),
	}
	r.srv = httptest.NewServer(http.HandlerFunc(r.handle))
	r.addr = r.srv.Listener.Addr().String()
	tb.Cleanup(r.Close)
	return r
}

// URL is the write endpoint.
func (r *Receiver) URL() string { return "http://" + r.addr + "/api/v1/write" }

// RemoteWriteConfig returns an endpoint config for this receiver with
// timings short enough for tests: 5 s timeout, 10 ms batch deadline,
// 5-50 ms backoff, 5 s flush deadline.
func (r *Receiver) RemoteWriteConfig() *config.RemoteWriteConfig {
	u, err := url.Parse(r.URL())
	if err != nil {
		r.tb.Fatalf("receiver url: %v", err)
	}
	qc := config.DefaultQueueConfig
	qc.BatchSendDeadline = model.Duration(10 * time.Millisecond)
	qc.MinBackoff = model.Duration(5 * time.Millisecond)
	qc.MaxBackoff = model.Duration(50 * time.Millisecond)
	qc.MaxRetryDuration = model.Duration(time.Second)
	qc.FlushDeadline = model.Duration(5 * time.Second)
	return &config.RemoteWriteConfig{
		URL:              &commoncfg.URL{URL: u},
		RemoteTimeout:    model.Duration(5 * time.Second),
		QueueConfig:      qc,
		HTTPClientConfig: commoncfg.DefaultHTTPClientConfig,
	}
}

// Script queues answers for the next requests, in order; once they are
// used up the default answer (SetDefault) applies.
func (r *Receiver) Script(resps ...Response) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.script = append(r.script, resps...)
}

// SetDefault sets the answer given when the script is used up.
func (r *Receiver) SetDefault(resp Response) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.def = resp
}

// FailRandomly answers a fraction p of the requests with resp instead of
// the script, drawn from a fixed seed.
func (r *Receiver) FailRandomly(p float64, resp Response) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failRate, r.failResp = p, resp
}

// Down closes the listener and every connection, so that writes fail with
// "connection refused" until Up.
func (r *Receiver) Down() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	if srv != nil {
		close(r.release)
	}
	r.mu.Unlock()
	if srv != nil {
		srv.CloseClientConnections()
		srv.Close()
	}
}

// Up listens again on the same address after Down.
func (r *Receiver) Up() {
	r.tb.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.srv != nil {
		return
	}
	l, err := net.Listen("tcp", r.addr)
	if err != nil {
		r.tb.Fatalf("receiver up: listen on %s: %v", r.addr, err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(r.handle))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	r.srv = srv
	r.release = make(chan struct{})
}

// Close stops the receiver; hung handlers return at once.
func (r *Receiver) Close() { r.Down() }

// Samples returns the accepted samples per series, keyed by the label set
// in Prometheus' text form ({__name__="x", a="b"}), in arrival order.
func (r *Receiver) Samples() map[string][]Sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string][]Sample, len(r.series))
	for k, s := range r.series {
		out[k] = append([]Sample(nil), s.samples...)
	}
	return out
}

// Series returns the label sets of the accepted series, sorted.
func (r *Receiver) Series() []labels.Labels {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]labels.Labels, 0, len(r.series))
	for _, s := range r.series {
		out = append(out, s.lset)
	}
	sort.Slice(out, func(i, j int) bool { return labels.Compare(out[i], out[j]) < 0 })
	return out
}

// SeriesCount is the number of series with accepted samples.
func (r *Receiver) SeriesCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.series)
}

// SampleCount is the number of accepted samples.
func (r *Receiver) SampleCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

// Requests returns every request received, accepted or not.
func (r *Receiver) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.requests...)
}

// WaitFor waits until at least n samples were accepted and reports
// whether that happened within timeout.
func (r *Receiver) WaitFor(n int, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		total, changed := r.total, r.changed
		r.mu.Unlock()
		if total >= n {
			return true
		}
		select {
		case <-changed:
		case <-deadline.C:
			return false
		}
	}
}

// handle serves one write.
func (r *Receiver) handle(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	var resp Response
	switch {
	case r.failRate > 0 && r.rnd.Float64() < r.failRate:
		resp = r.failResp
	case len(r.script) > 0:
		resp, r.script = r.script[0], r.script[1:]
	default:
		resp = r.def
	}
	idx := len(r.requests)
	r.requests = append(r.requests, Request{Time: time.Now(), Header: req.Header.Clone()})
	release := r.release
	r.mu.Unlock()

	wr, err := decode(req)
	if err != nil {
		r.tb.Errorf("remotewritetest: invalid request: %v", err)
		r.answer(w, idx, Response{Status: http.StatusBadRequest, Body: err.Error()})
		return
	}
	n := 0
	for _, ts := range wr.Timeseries {
		n += len(ts.Samples)
	}
	r.mu.Lock()
	r.requests[idx].Samples = n
	r.mu.Unlock()

	switch {
	case resp.Close:
		hj, ok := w.(http.Hijacker)
		if !ok {
			r.tb.Errorf("remotewritetest: cannot hijack the connection")
			return
		}
		conn, _, err := hj.Hijack()
		if err == nil {
			_ = conn.Close()
		}
		return
	case resp.Hang:
		select {
		case <-req.Context().Done():
		case <-release:
		}
		return
	case resp.Delay > 0:
		t := time.NewTimer(resp.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-req.Context().Done():
			return
		case <-release:
			return
		}
	}
	status := resp.Status
	if status == 0 {
		status = http.StatusNoContent
	}
	if status/100 == 2 {
		r.record(wr)
	}
	resp.Status = status
	r.answer(w, idx, resp)
}

// answer writes resp and notes the status.
func (r *Receiver) answer(w http.ResponseWriter, idx int, resp Response) {
	r.mu.Lock()
	r.requests[idx].Status = resp.Status
	r.mu.Unlock()
	if resp.RetryAfter != "" {
		w.Header().Set("Retry-After", resp.RetryAfter)
	}
	w.WriteHeader(resp.Status)
	_, _ = io.WriteString(w, resp.Body)
}

// record stores the samples of an accepted write.
func (r *Receiver) record(wr *prompb.WriteRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ts := range wr.Timeseries {
		b := labels.NewScratchBuilder(len(ts.Labels))
		for _, l := range ts.Labels {
			b.Add(l.Name, l.Value)
		}
		lset := b.Labels()
		key := lset.String()
		s, ok := r.series[key]
		if !ok {
			s = &recorded{lset: lset}
			r.series[key] = s
		}
		for _, smp := range ts.Samples {
			s.samples = append(s.samples, Sample{T: smp.Timestamp, V: smp.Value})
		}
		r.total += len(ts.Samples)
	}
	close(r.changed)
	r.changed = make(chan struct{})
}

// decode checks a request against the remote-write 1.0 spec and decodes it.
func decode(req *http.Request) (*prompb.WriteRequest, error) {
	if req.Method != http.MethodPost {
		return nil, fmt.Errorf("method %s, want POST", req.Method)
	}
	for h, want := range map[string]string{
		"Content-Encoding":                  "snappy",
		"X-Prometheus-Remote-Write-Version": "0.1.0",
	} {
		if got := req.Header.Get(h); got != want {
			return nil, fmt.Errorf("header %s is %q, want %q", h, got, want)
		}
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/x-protobuf" &&
		ct != "application/x-protobuf;proto=prometheus.WriteRequest" {
		return nil, fmt.Errorf("header Content-Type is %q, want application/x-protobuf", ct)
	}
	if req.Header.Get("User-Agent") == "" {
		return nil, fmt.Errorf("no User-Agent header")
	}
	compressed, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	// snappy.Decode reads only the block format; the framed (stream)
	// format the spec forbids fails here.
	raw, err := snappy.Decode(nil, compressed)
	if err != nil {
		return nil, fmt.Errorf("snappy block decode: %w", err)
	}
	var wr prompb.WriteRequest
	if err := wr.Unmarshal(raw); err != nil {
		return nil, fmt.Errorf("decode WriteRequest: %w", err)
	}
	for i, ts := range wr.Timeseries {
		if len(ts.Labels) == 0 {
			return nil, fmt.Errorf("series %d has no labels", i)
		}
		for j, l := range ts.Labels {
			if l.Name == "" || l.Value == "" {
				return nil, fmt.Errorf("series %d: label %d has an empty name or value (%q=%q)", i, j, l.Name, l.Value)
			}
			if j > 0 && ts.Labels[j-1].Name >= l.Name {
				return nil, fmt.Errorf("series %d: labels not sorted and unique: %q before %q", i, ts.Labels[j-1].Name, l.Name)
			}
		}
		if len(ts.Samples) == 0 {
			return nil, fmt.Errorf("series %d has no samples", i)
		}
	}
	return &wr, nil
}

package remotewrite

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/openanomaly/openanomaly/pkg/config"
	"github.com/openanomaly/openanomaly/pkg/remotewrite/remotewritetest"
)

// queuesOf returns the running queues by remote name.
func queuesOf(s *Storage) map[string]*Queue {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := map[string]*Queue{}
	for _, sq := range s.queues {
		out[sq.q.name] = sq.q
	}
	return out
}

func TestStorageApplyConfig(t *testing.T) {
	t.Parallel()
	ra, rb := remotewritetest.NewReceiver(t), remotewritetest.NewReceiver(t)
	cfgFor := func(r *remotewritetest.Receiver, name string) *config.RemoteWriteConfig {
		c := r.RemoteWriteConfig()
		c.Name = name
		return c
	}
	ext := labels.FromStrings("replica", "1")
	reg := prometheus.NewRegistry()
	s := NewStorage(reg, nil)
	t.Cleanup(s.Close)

	if err := s.ApplyConfig([]*config.RemoteWriteConfig{cfgFor(ra, "a"), cfgFor(rb, "b")}, ext); err != nil {
		t.Fatal(err)
	}
	s.Append(labels.FromStrings("__name__", "m"), 1000, 1)
	for _, r := range []*remotewritetest.Receiver{ra, rb} {
		if !r.WaitFor(1, 10*time.Second) {
			t.Fatalf("%s got nothing", r.URL())
		}
		if got := r.Series()[0].Get("replica"); got != "1" {
			t.Errorf("external label replica = %q, want 1", got)
		}
	}
	before := queuesOf(s)

	// Equal configs (new pointers): both queues keep running.
	if err := s.ApplyConfig([]*config.RemoteWriteConfig{cfgFor(ra, "a"), cfgFor(rb, "b")}, ext); err != nil {
		t.Fatal(err)
	}
	after := queuesOf(s)
	if after["a"] != before["a"] || after["b"] != before["b"] {
		t.Error("unchanged configs restarted their queues")
	}

	// A changed queue setting replaces b only.
	cb := cfgFor(rb, "b")
	cb.QueueConfig.Capacity = 500
	if err := s.ApplyConfig([]*config.RemoteWriteConfig{cfgFor(ra, "a"), cb}, ext); err != nil {
		t.Fatal(err)
	}
	after = queuesOf(s)
	if after["a"] != before["a"] || after["b"] == before["b"] {
		t.Error("want a kept and b replaced")
	}
	if got := metricValue(t, reg, "openanomaly_remote_write_queue_capacity", map[string]string{"remote_name": "b"}); got != 500 {
		t.Errorf("queue_capacity{b} = %v, want 500", got)
	}
	s.Append(labels.FromStrings("__name__", "m"), 2000, 2)
	if !rb.WaitFor(2, 10*time.Second) {
		t.Fatal("the replaced queue does not send")
	}

	// A changed password, redacted in the YAML form, replaces a.
	ca := cfgFor(ra, "a")
	ca.HTTPClientConfig.BasicAuth = &commoncfg.BasicAuth{Username: "u", Password: "one"}
	if err := s.ApplyConfig([]*config.RemoteWriteConfig{ca, cb}, ext); err != nil {
		t.Fatal(err)
	}
	withOne := queuesOf(s)["a"]
	ca2 := cfgFor(ra, "a")
	ca2.HTTPClientConfig.BasicAuth = &commoncfg.BasicAuth{Username: "u", Password: "two"}
	if err := s.ApplyConfig([]*config.RemoteWriteConfig{ca2, cb}, ext); err != nil {
		t.Fatal(err)
	}
	if queuesOf(s)["a"] == withOne {
		t.Error("a new password did not replace the queue")
	}

	// Changed external labels replace every queue.
	prev := queuesOf(s)
	ext2 := labels.FromStrings("replica", "2")
	if err := s.ApplyConfig([]*config.RemoteWriteConfig{ca2, cb}, ext2); err != nil {
		t.Fatal(err)
	}
	for name, q := range queuesOf(s) {
		if prev[name] == q {
			t.Errorf("queue %s kept after external labels changed", name)
		}
	}

	// A bad config changes nothing.
	prev = queuesOf(s)
	err := s.ApplyConfig([]*config.RemoteWriteConfig{ca2, cfgFor(rb, "a")}, ext2)
	if err == nil || !strings.Contains(err.Error(), `"a" is used by remote_write[0]`) {
		t.Errorf("duplicate names: err = %v", err)
	}
	if got := queuesOf(s); got["a"] != prev["a"] || got["b"] != prev["b"] || len(got) != 2 {
		t.Error("a rejected config changed the running queues")
	}

	// Removing b stops it and deletes its metrics; a's stay.
	if err := s.ApplyConfig([]*config.RemoteWriteConfig{ca2}, ext2); err != nil {
		t.Fatal(err)
	}
	if len(queuesOf(s)) != 1 {
		t.Errorf("%d queues, want 1", len(queuesOf(s)))
	}
	if seriesWith(t, reg, "remote_name", "b") {
		t.Error("metrics of the removed queue b are still exported")
	}
	if !seriesWith(t, reg, "remote_name", "a") {
		t.Error("metrics of queue a are gone")
	}

	s.Close()
	if seriesWith(t, reg, "remote_name", "a") {
		t.Error("metrics still exported after Close")
	}
	s.Append(labels.FromStrings("__name__", "m"), 3000, 3) // ignored, no panic
	if err := s.ApplyConfig([]*config.RemoteWriteConfig{ca2}, ext2); err == nil {
		t.Error("ApplyConfig after Close succeeded")
	}
}

func TestStorageUnnamedEndpoint(t *testing.T) {
	t.Parallel()
	r := remotewritetest.NewReceiver(t)
	reg := prometheus.NewRegistry()
	s := NewStorage(reg, nil)
	defer s.Close()
	cfg := r.RemoteWriteConfig()
	if err := s.ApplyConfig([]*config.RemoteWriteConfig{cfg}, labels.EmptyLabels()); err != nil {
		t.Fatal(err)
	}
	name := remoteName(cfg)
	if len(name) != 6 || queuesOf(s)[name] == nil {
		t.Fatalf("unnamed endpoint got name %q, queues %v", name, queuesOf(s))
	}
	if !seriesWith(t, reg, "url", r.URL()) {
		t.Error("no metric carries the endpoint url")
	}
	// Two storages on one registry (as after a restart of the component)
	// share the collectors instead of failing.
	s2 := NewStorage(reg, nil)
	defer s2.Close()
	if err := s2.ApplyConfig(nil, labels.EmptyLabels()); err != nil {
		t.Errorf("second storage on the same registry: %v", err)
	}
}

func TestStorageReplacedQueueKeepsOrder(t *testing.T) {
	t.Parallel()
	// The old queue is still retrying its samples when the config changes
	// and new samples arrive; they must reach the endpoint after the old.
	r := remotewritetest.NewReceiver(t)
	r.Script(remotewritetest.Status(503), remotewritetest.Status(503), remotewritetest.Status(503))
	s := NewStorage(prometheus.NewRegistry(), nil)
	defer s.Close()
	cfg := r.RemoteWriteConfig()
	cfg.Name = "x"
	cfg.QueueConfig.MinBackoff = model.Duration(50 * time.Millisecond)
	cfg.QueueConfig.MaxBackoff = model.Duration(100 * time.Millisecond)
	if err := s.ApplyConfig([]*config.RemoteWriteConfig{cfg}, labels.EmptyLabels()); err != nil {
		t.Fatal(err)
	}
	old := queuesOf(s)["x"]
	for ts := range 5 {
		s.Append(labels.FromStrings("__name__", "m"), int64(ts+1)*1000, 1)
	}
	eventually(t, 5*time.Second, "the first 503", func() bool { return len(r.Requests()) > 0 })

	cfg2 := *cfg
	cfg2.QueueConfig.Capacity = 1234
	applied := make(chan error)
	go func() { applied <- s.ApplyConfig([]*config.RemoteWriteConfig{&cfg2}, labels.EmptyLabels()) }()
	eventually(t, 5*time.Second, "the new queue", func() bool { return queuesOf(s)["x"] != old })
	for ts := 5; ts < 10; ts++ {
		s.Append(labels.FromStrings("__name__", "m"), int64(ts+1)*1000, 1)
	}
	if err := <-applied; err != nil {
		t.Fatal(err)
	}
	if !r.WaitFor(10, 10*time.Second) {
		t.Fatalf("%d of 10 samples delivered", r.SampleCount())
	}
	checkReceived(t, r, 1, 10)
}

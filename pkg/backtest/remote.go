package backtest

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/openanomaly/openanomaly/pkg/config"
	"github.com/openanomaly/openanomaly/pkg/remotewrite"
)

// RemoteWriter sends a backtest's outputs to a remote-write endpoint (for
// history: VictoriaMetrics; Prometheus' receiver refuses samples older than
// its head block, so load Prometheus from SeriesFile with promtool). Unlike
// the sidecar's queue it never drops a sample for lack of room: Append waits
// until the queue has space, so a replay runs at the endpoint's pace.
type RemoteWriter struct {
	q   *remotewrite.Queue
	reg *prometheus.Registry

	mu      sync.Mutex
	stopped bool
}

// NewRemoteWriter starts a queue for rawURL with the sidecar's defaults.
func NewRemoteWriter(rawURL string, logger *slog.Logger) (*RemoteWriter, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("remote-write url %q is not an absolute URL", rawURL)
	}
	cfg := config.DefaultRemoteWriteConfig
	cfg.URL = &commoncfg.URL{URL: u}
	// A replay may take as long as it needs to drain at shutdown.
	cfg.QueueConfig.FlushDeadline = model.Duration(time.Hour)
	// Batches fill at once during a replay; the last one need not wait
	// the sidecar's 5s.
	cfg.QueueConfig.BatchSendDeadline = model.Duration(500 * time.Millisecond)
	reg := prometheus.NewRegistry()
	q, err := remotewrite.NewQueue(remotewrite.QueueOptions{Config: &cfg, Registerer: reg, Logger: logger})
	if err != nil {
		return nil, err
	}
	q.Start()
	return &RemoteWriter{q: q, reg: reg}, nil
}

// Append implements pipeline.Appender, waiting while the queue is full.
func (w *RemoteWriter) Append(lset labels.Labels, t int64, v float64) {
	for !w.q.Append(lset, t, v) {
		w.mu.Lock()
		stopped := w.stopped
		w.mu.Unlock()
		if stopped {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Close waits until everything queued was sent, rejected or dropped, stops
// the queue and reports how many samples the endpoint accepted; samples it
// rejected or that were given up make an error. (The queue's "dropped"
// count for a full queue is left out: Append retried those.)
func (w *RemoteWriter) Close(ctx context.Context) (sent float64, err error) {
	defer func() {
		w.mu.Lock()
		w.stopped = true
		w.mu.Unlock()
		w.q.Stop()
	}()
	var failed float64
	for {
		var pending float64
		sent, failed, pending, err = w.counts()
		if err != nil {
			return 0, err
		}
		if pending == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return sent, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	if failed > 0 {
		return sent, fmt.Errorf("remote write: %v samples were rejected or dropped, %v sent", failed, sent)
	}
	return sent, nil
}

// counts reads the queue's metrics (they are deleted at Stop).
func (w *RemoteWriter) counts() (sent, failed, pending float64, err error) {
	mfs, err := w.reg.Gather()
	if err != nil {
		return 0, 0, 0, err
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "openanomaly_remote_write_sent_samples_total":
				sent += m.GetCounter().GetValue()
			case "openanomaly_remote_write_failed_samples_total":
				failed += m.GetCounter().GetValue()
			case "openanomaly_remote_write_pending_samples":
				pending += m.GetGauge().GetValue()
			case "openanomaly_remote_write_dropped_samples_total":
				for _, l := range m.GetLabel() {
					if l.GetName() == "reason" && l.GetValue() != "queue_full" {
						failed += m.GetCounter().GetValue()
					}
				}
			}
		}
	}
	return sent, failed, pending, nil
}

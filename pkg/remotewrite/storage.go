package remotewrite

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/prometheus/model/labels"
	"go.yaml.in/yaml/v3"

	"github.com/openanomaly/openanomaly/pkg/config"
)

// Storage fans samples out to one Queue per configured endpoint.
type Storage struct {
	logger     *slog.Logger
	metrics    *metrics
	metricsErr error

	applyMu sync.Mutex // serialises ApplyConfig and Close
	closed  bool

	mu     sync.RWMutex // guards queues; Append only reads
	queues []*storageQueue
}

// storageQueue is a running queue and the hash of what it was built from.
type storageQueue struct {
	q    *Queue
	hash string
}

// NewStorage returns a Storage with no endpoints; ApplyConfig adds them.
// Metrics go to reg (nothing is registered when reg is nil).
func NewStorage(reg prometheus.Registerer, logger *slog.Logger) *Storage {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	return &Storage{logger: logger, metrics: m, metricsErr: err}
}

// Append offers the sample to every queue. It never blocks; a queue that
// is full drops the sample and counts it.
func (s *Storage) Append(lset labels.Labels, t int64, v float64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, sq := range s.queues {
		sq.q.Append(lset, t, v)
	}
}

// ApplyConfig makes the running queues match cfgs. A queue whose config
// and external labels are unchanged keeps running with what it buffered;
// changed and removed ones are stopped (flushing for up to their
// FlushDeadline, so ApplyConfig may take that long) and new ones started.
// Nothing changes when any config is invalid.
func (s *Storage) ApplyConfig(cfgs []*config.RemoteWriteConfig, externalLabels labels.Labels) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if s.closed {
		return errors.New("remote write storage is closed")
	}
	if s.metricsErr != nil {
		return s.metricsErr
	}

	s.mu.RLock()
	current := make(map[string]*storageQueue, len(s.queues))
	for _, sq := range s.queues {
		current[sq.hash] = sq
	}
	s.mu.RUnlock()

	// Check and build everything before touching a running queue, so
	// that a bad config leaves the old set running.
	type planned struct {
		cfg    *config.RemoteWriteConfig
		hash   string
		client WriteClient
		keep   *storageQueue
	}
	var (
		plan  []planned
		errs  []error
		names = map[string]int{}
	)
	for i, cfg := range cfgs {
		if cfg == nil || cfg.URL == nil || cfg.URL.URL == nil {
			errs = append(errs, fmt.Errorf("remote_write[%d]: url is missing", i))
			continue
		}
		name := remoteName(cfg)
		if j, dup := names[name]; dup {
			errs = append(errs, fmt.Errorf("remote_write[%d]: remote write name %q is used by remote_write[%d] too", i, name, j))
			continue
		}
		names[name] = i
		h, err := configHash(cfg, externalLabels)
		if err != nil {
			errs = append(errs, fmt.Errorf("remote_write[%d] %q: %w", i, name, err))
			continue
		}
		if sq, ok := current[h]; ok {
			plan = append(plan, planned{cfg: cfg, hash: h, keep: sq})
			continue
		}
		if _, err := resolveQueueConfig(cfg.QueueConfig); err != nil {
			errs = append(errs, fmt.Errorf("remote_write[%d] %q: %w", i, name, err))
			continue
		}
		client, err := newHTTPClient(name, cfg)
		if err != nil {
			errs = append(errs, fmt.Errorf("remote_write[%d] %q: %w", i, name, err))
			continue
		}
		plan = append(plan, planned{cfg: cfg, hash: h, client: client})
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}

	next := make([]*storageQueue, 0, len(plan))
	var fresh []*Queue
	for _, p := range plan {
		if p.keep != nil {
			next = append(next, p.keep)
			continue
		}
		q, err := NewQueue(QueueOptions{
			Config:         p.cfg,
			ExternalLabels: externalLabels,
			Logger:         s.logger,
			Client:         p.client,
			metrics:        s.metrics,
			keepMetrics:    true,
		})
		if err != nil { // checked above; kept for safety
			return err
		}
		next = append(next, &storageQueue{q: q, hash: p.hash})
		fresh = append(fresh, q)
	}

	s.mu.Lock()
	prev := s.queues
	s.queues = next
	s.mu.Unlock()

	var gone []*Queue
	for _, sq := range prev {
		if !slices.Contains(next, sq) {
			gone = append(gone, sq.q)
		}
	}
	// Old queues flush before the new ones start sending: a changed queue
	// for the same endpoint must not overtake the samples its predecessor
	// still holds, or the endpoint would see series out of order. New
	// queues buffer meanwhile, so Append never waits for this.
	s.stopAll(gone)
	inUse := map[[2]string]bool{}
	for _, sq := range next {
		inUse[[2]string{sq.q.name, sq.q.url}] = true
	}
	for _, q := range gone {
		if !inUse[[2]string{q.name, q.url}] {
			q.m.delete()
		}
	}
	for _, q := range fresh {
		q.Start()
	}
	if len(fresh) > 0 || len(gone) > 0 {
		s.logger.Info("Remote write endpoints updated",
			"endpoints", len(next), "started", len(fresh), "stopped", len(gone))
	}
	return nil
}

// Close stops every queue, flushing each for at most its FlushDeadline,
// and removes their metrics. Appends after Close are ignored.
func (s *Storage) Close() {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	s.mu.Lock()
	prev := s.queues
	s.queues = nil
	s.mu.Unlock()
	qs := make([]*Queue, 0, len(prev))
	for _, sq := range prev {
		qs = append(qs, sq.q)
	}
	s.stopAll(qs)
	for _, q := range qs {
		q.m.delete()
	}
}

// stopAll stops queues in parallel, so that shutdown and reload take one
// flush deadline, not one per endpoint.
func (s *Storage) stopAll(qs []*Queue) {
	var wg sync.WaitGroup
	for _, q := range qs {
		wg.Go(q.Stop)
	}
	wg.Wait()
}

// secretType is the type whose values YAML marshalling redacts.
var secretType = reflect.TypeFor[commoncfg.Secret]()

// configHash identifies an endpoint's config together with the external
// labels. The YAML form redacts secrets and URL passwords, so those are
// hashed separately: a changed password must restart the queue.
func configHash(cfg *config.RemoteWriteConfig, ext labels.Labels) (string, error) {
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return "", fmt.Errorf("hash remote write config: %w", err)
	}
	h := sha256.New()
	h.Write(b)
	h.Write([]byte{0xff})
	h.Write([]byte(cfg.URL.String()))
	h.Write([]byte{0xff})
	hashSecrets(h, reflect.ValueOf(cfg))
	h.Write([]byte{0xff})
	h.Write([]byte(ext.String()))
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashSecrets feeds every commoncfg.Secret reachable from v into h, in a
// deterministic order.
func hashSecrets(h hash.Hash, v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			hashSecrets(h, v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				hashSecrets(h, v.Field(i))
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			hashSecrets(h, v.Index(i))
		}
	case reflect.Map:
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int {
			return strings.Compare(fmt.Sprint(a.Interface()), fmt.Sprint(b.Interface()))
		})
		for _, k := range keys {
			fmt.Fprint(h, k.Interface())
			h.Write([]byte{0})
			hashSecrets(h, v.MapIndex(k))
		}
	case reflect.String:
		if v.Type() == secretType {
			h.Write([]byte(v.String()))
			h.Write([]byte{0})
		}
	}
}

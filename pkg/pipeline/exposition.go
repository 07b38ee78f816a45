package pipeline

import (
	"sort"
	"sync"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/protobuf/proto"
)

// Exposition holds the latest output of every pipeline for /metrics. It is a
// prometheus.Gatherer, so it sits next to the self-monitoring registry in one
// handler. Samples carry no timestamps: the scraping Prometheus stamps them
// and, when a series leaves the exposition, writes the stale marker itself.
type Exposition struct {
	mtx    sync.RWMutex
	byRule map[string][]outSample
}

type outSample struct {
	lset labels.Labels
	v    float64
}

// NewExposition returns an empty exposition.
func NewExposition() *Exposition {
	return &Exposition{byRule: map[string][]outSample{}}
}

// set replaces everything a rule exposes.
func (e *Exposition) set(rule string, samples []outSample) {
	e.mtx.Lock()
	defer e.mtx.Unlock()
	if len(samples) == 0 {
		delete(e.byRule, rule)
		return
	}
	e.byRule[rule] = samples
}

// Gather implements prometheus.Gatherer.
func (e *Exposition) Gather() ([]*dto.MetricFamily, error) {
	e.mtx.RLock()
	defer e.mtx.RUnlock()
	families := map[string]*dto.MetricFamily{}
	for _, samples := range e.byRule {
		for _, s := range samples {
			name := s.lset.Get(labels.MetricName)
			mf, ok := families[name]
			if !ok {
				mf = &dto.MetricFamily{
					Name: proto.String(name),
					Help: proto.String("OpenAnomaly pipeline output."),
					Type: dto.MetricType_GAUGE.Enum(),
				}
				families[name] = mf
			}
			m := &dto.Metric{Gauge: &dto.Gauge{Value: proto.Float64(s.v)}}
			s.lset.Range(func(l labels.Label) {
				if l.Name == labels.MetricName {
					return
				}
				m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(l.Name), Value: proto.String(l.Value)})
			})
			mf.Metric = append(mf.Metric, m)
		}
	}
	out := make([]*dto.MetricFamily, 0, len(families))
	for _, mf := range families {
		out = append(out, mf)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out, nil
}

package remotewrite

import (
	"cmp"
	"slices"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
)

// sample is one buffered sample. hash is lset.Hash(), kept for sharding and
// for grouping samples of one series in a request.
type sample struct {
	lset labels.Labels
	hash uint64
	t    int64
	v    float64
}

// externalLabels converts external labels once per queue; empty values
// mean "no label" and are left out.
func externalLabels(ext labels.Labels) []prompb.Label {
	var out []prompb.Label
	ext.Range(func(l labels.Label) {
		if l.Name != "" && l.Value != "" {
			out = append(out, prompb.Label{Name: l.Name, Value: l.Value})
		}
	})
	return out
}

// protoLabels builds the wire label set of a series: labels with an empty
// name or value left out (the spec forbids them; an empty value means the
// label is absent), external labels added where the series lacks that name
// (the series' own value wins, as in Prometheus), sorted by name, each name
// once.
func protoLabels(lset labels.Labels, ext []prompb.Label) []prompb.Label {
	out := make([]prompb.Label, 0, lset.Len()+len(ext))
	lset.Range(func(l labels.Label) {
		if l.Name != "" && l.Value != "" {
			out = append(out, prompb.Label{Name: l.Name, Value: l.Value})
		}
	})
	n := len(out)
	for _, e := range ext {
		if !slices.ContainsFunc(out[:n], func(l prompb.Label) bool { return l.Name == e.Name }) {
			out = append(out, e)
		}
	}
	// labels.Labels is sorted by construction, but the order on the wire is
	// a MUST of the spec, so it is not left to the caller. The stable sort
	// keeps the first of duplicate names, which is the series' own.
	slices.SortStableFunc(out, func(a, b prompb.Label) int { return cmp.Compare(a.Name, b.Name) })
	return slices.CompactFunc(out, func(a, b prompb.Label) bool { return a.Name == b.Name })
}

// encodeRequest builds the snappy-compressed (block format, as the spec
// requires) remote-write 1.0 request for a batch. Samples of one series are
// grouped into one TimeSeries in the order they were appended.
func encodeRequest(batch []sample, ext []prompb.Label) ([]byte, error) {
	type entry struct {
		idx  int
		lset labels.Labels
	}
	ts := make([]prompb.TimeSeries, 0, len(batch))
	bySeries := make(map[uint64]entry, len(batch))
	for _, s := range batch {
		ps := prompb.Sample{Timestamp: s.t, Value: s.v}
		if e, ok := bySeries[s.hash]; ok && labels.Equal(e.lset, s.lset) {
			ts[e.idx].Samples = append(ts[e.idx].Samples, ps)
			continue
		}
		// On a hash collision the second series simply gets TimeSeries
		// entries of its own; receivers apply entries in order, so the
		// per-series order still holds.
		if _, ok := bySeries[s.hash]; !ok {
			bySeries[s.hash] = entry{idx: len(ts), lset: s.lset}
		}
		ts = append(ts, prompb.TimeSeries{
			Labels:  protoLabels(s.lset, ext),
			Samples: []prompb.Sample{ps},
		})
	}
	req := prompb.WriteRequest{Timeseries: ts}
	raw, err := req.Marshal()
	if err != nil {
		return nil, err
	}
	return snappy.Encode(nil, raw), nil
}

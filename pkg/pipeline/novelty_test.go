package pipeline

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/openanomaly/openanomaly/pkg/rulefmt"
)

func TestScoreMaxWindow(t *testing.T) {
	const window = 3200 // ms: buckets of 100
	var m scoreMax
	if got := m.novelty(1000, window, 5, 1); got != 5 {
		t.Errorf("first point: %v, want 5 (nothing before it, floor 1)", got)
	}
	if got := m.novelty(1500, window, 2, 1); got != 0.4 {
		t.Errorf("second point: %v, want 2/5", got)
	}
	if got := m.novelty(2000, window, 0.5, 1); got != 0.1 {
		t.Errorf("third point: %v, want 0.5/5", got)
	}
	// 1000 leaves the window at 4200 (its bucket [1000, 1100) at 4300).
	if got := m.before(4250, window); got != 5 {
		t.Errorf("at 4250: %v, want 5: an old score may count up to a bucket longer", got)
	}
	if got := m.before(4300, window); got != 2 {
		t.Errorf("at 4300: %v, want 2", got)
	}
	if got := m.before(1000, window); got != 0 {
		t.Errorf("at 1000: %v, want 0: a point's own score is not before it", got)
	}
	// A floor above the past maximum wins.
	if got := m.novelty(2100, window, 6, 10); got != 0.6 {
		t.Errorf("floor: %v, want 6/10", got)
	}
	m.add(100000, window, 1)
	if len(m.start) != 1 {
		t.Errorf("%d buckets kept, want 1: the rest left the window", len(m.start))
	}
}

// With a novelty window, a spike scores 1 or more only if it is larger
// than every spike of the window before it.
func TestRuleNoveltyScores(t *testing.T) {
	spikes := map[time.Duration]float64{3 * time.Minute: 50, 13 * time.Minute: 30, 23 * time.Minute: 30, 33 * time.Minute: 150}
	f := func(t time.Time) float64 {
		v := daily(10, 3)(t)
		return v + spikes[t.Sub(evalTime)]
	}
	q := fakeQuerier(gen{lbls: labels.FromStrings("instance", "a"), f: f})
	app := &recorder{}
	env := testEnv(q, app)
	plain := testRule(t, func(r *rulefmt.Rule) { r.Forecast = "plain"; r.Horizons = nil })
	novel := testRule(t, func(r *rulefmt.Rule) {
		r.Forecast = "novel"
		r.Horizons = nil
		r.Anomaly.Novelty = &rulefmt.Novelty{Window: model.Duration(time.Hour), Floor: 1}
	})
	for m := time.Duration(0); m <= 40*time.Minute; m += time.Minute {
		for _, r := range []*Rule{plain, novel} {
			if err := r.eval(context.Background(), evalTime.Add(m), env); err != nil {
				t.Fatal(err)
			}
		}
	}
	scores := map[string]map[time.Duration]float64{"plain": {}, "novel": {}}
	for _, s := range find(app.reset(), "__name__", "openanomaly_anomaly_score") {
		scores[s.lset.Get("pipeline")][time.UnixMilli(s.t).Sub(evalTime)] = s.v
	}
	for at := range spikes {
		if s := scores["plain"][at]; s <= 1 {
			t.Errorf("plain: spike at +%s scores %.2f, want > 1", at, s)
		}
	}
	for at, want := range map[time.Duration]bool{3 * time.Minute: true, 13 * time.Minute: false, 23 * time.Minute: false, 33 * time.Minute: true} {
		if s := scores["novel"][at]; (s > 1) != want {
			t.Errorf("novel: spike at +%s scores %.2f (plain %.2f), want > 1: %v", at, s, scores["plain"][at], want)
		}
	}
	for at, s := range scores["novel"] {
		if p := scores["plain"][at]; s > p+1e-12 || math.IsNaN(s) {
			t.Errorf("novel at +%s: %v above the plain score %v", at, s, p)
		}
	}
	if len(novel.novelty) != 1 {
		t.Errorf("novelty state for %d series, want 1", len(novel.novelty))
	}
}

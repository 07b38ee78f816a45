package pipeline

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/openanomaly/openanomaly/pkg/rulefmt"
)

// BenchmarkRuleEval measures one pipeline over many series of a day at one
// minute, without a store: what the engine itself costs per evaluation,
// cold (the whole context read and aligned) and steady (one new point).
//
//	go test -run XXX -bench RuleEval -benchtime 3x ./pkg/pipeline
func BenchmarkRuleEval(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		gens := make([]gen, n)
		for i := range gens {
			gens[i] = gen{lbls: labels.FromStrings("instance", fmt.Sprintf("i-%05d", i)), f: daily(float64(1+i%50), float64(i%7))}
		}
		spec := func(r *rulefmt.Rule) { r.Context = model.Duration(24 * time.Hour) }
		b.Run(fmt.Sprintf("series=%d/cold", n), func(b *testing.B) {
			env := testEnv(fakeQuerier(gens...), nil)
			for b.Loop() {
				r := testRule(b, spec)
				if err := r.eval(context.Background(), evalTime, env); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("series=%d/steady", n), func(b *testing.B) {
			env := testEnv(fakeQuerier(gens...), nil)
			r := testRule(b, spec)
			ts := evalTime
			if err := r.eval(context.Background(), ts, env); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				ts = ts.Add(time.Minute)
				if err := r.eval(context.Background(), ts, env); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

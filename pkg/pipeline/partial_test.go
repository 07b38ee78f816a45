package pipeline

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/openanomaly/openanomaly/pkg/datasource"
	"github.com/openanomaly/openanomaly/pkg/rulefmt"
)

// withAnswer wraps a querier so that its results carry warnings and the
// partial flag.
func withAnswer(q datasource.Querier, warnings []string, partial bool) datasource.Querier {
	return datasource.QuerierFunc(func(ctx context.Context, query string, start, end time.Time, step time.Duration) (datasource.Result, error) {
		res, err := q.QueryRange(ctx, query, start, end, step)
		res.Warnings, res.Partial = warnings, partial
		return res, err
	})
}

func TestRulePartialResponseIsSkipped(t *testing.T) {
	app := &recorder{}
	inner := fakeQuerier(gen{lbls: labels.FromStrings("__name__", "load", "instance", "a"), f: daily(10, 3)})
	r := testRule(t, nil)

	// A good evaluation first, so there are outputs that a partial one
	// could disturb.
	env := testEnv(inner, app)
	if err := r.eval(context.Background(), evalTime, env); err != nil {
		t.Fatal(err)
	}
	if len(app.reset()) == 0 {
		t.Fatal("no outputs from the good evaluation")
	}
	if got := r.Status().OutputSeries; got == 0 {
		t.Fatal("no output series remembered")
	}

	env.querier = withAnswer(inner, []string{"vmstorage-2 is down"}, true)
	err := r.eval(context.Background(), evalTime.Add(time.Minute), env)
	if !errors.Is(err, ErrPartialResponse) {
		t.Fatalf("err = %v, want ErrPartialResponse", err)
	}
	st := r.Status()
	if st.Health != HealthErr || !strings.Contains(st.LastError, "partial") {
		t.Errorf("health %q, last error %q; want err naming the partial response", st.Health, st.LastError)
	}
	// Nothing emitted, and no stale markers either: a partial answer says
	// nothing about which series are gone.
	if got := app.reset(); len(got) != 0 {
		t.Errorf("a partial evaluation emitted %d samples", len(got))
	}
	if got := testutil.ToFloat64(env.metrics.partialOrWarned.WithLabelValues(r.Name(), "partial")); got != 1 {
		t.Errorf("partial counter = %v, want 1", got)
	}
	if got := testutil.ToFloat64(env.metrics.failures.WithLabelValues(r.Name())); got != 1 {
		t.Errorf("failures = %v, want 1", got)
	}

	// The store recovers: the rule is healthy again.
	env.querier = inner
	if err := r.eval(context.Background(), evalTime.Add(2*time.Minute), env); err != nil {
		t.Fatal(err)
	}
	if st := r.Status(); st.Health != HealthOK {
		t.Errorf("health %q after recovery", st.Health)
	}
}

func TestRuleWarningsAreCountedAndLogged(t *testing.T) {
	app := &recorder{}
	inner := fakeQuerier(gen{lbls: labels.FromStrings("__name__", "load", "instance", "a"), f: daily(10, 3)})
	var logs bytes.Buffer
	env := testEnv(withAnswer(inner, []string{"PromQL info: metric might not be a counter", "store b timed out"}, false), app)
	env.logger = slog.New(slog.NewTextHandler(&logs, nil))
	r := testRule(t, nil)
	if err := r.eval(context.Background(), evalTime, env); err != nil {
		t.Fatalf("warnings must not fail the evaluation: %v", err)
	}
	if len(app.reset()) == 0 {
		t.Error("no outputs: warnings must not stop the pipeline")
	}
	if got := testutil.ToFloat64(env.metrics.partialOrWarned.WithLabelValues(r.Name(), "warning")); got != 1 {
		t.Errorf("warning counter = %v, want 1", got)
	}
	if got := testutil.ToFloat64(env.metrics.partialOrWarned.WithLabelValues(r.Name(), "partial")); got != 0 {
		t.Errorf("partial counter = %v, want 0", got)
	}
	out := logs.String()
	if strings.Count(out, "\n") != 1 || !strings.Contains(out, "level=WARN") ||
		!strings.Contains(out, "store b timed out") || !strings.Contains(out, "pipeline="+r.Name()) {
		t.Errorf("want one warning line naming the pipeline and the warnings, got:\n%s", out)
	}
}

func TestRuleRemoteReadNeedsSelector(t *testing.T) {
	// Remote read answers only plain selectors; a rule with any other expr
	// fails with an error that says so, before anything is sent.
	q, err := datasource.NewRemoteReadQuerier(datasource.RemoteReadOptions{URL: "http://127.0.0.1:1/api/v1/read"})
	if err != nil {
		t.Fatal(err)
	}
	r := testRule(t, func(r *rulefmt.Rule) { r.Expr = "sum by (job) (rate(http_requests_total[5m]))" })
	err = r.eval(context.Background(), evalTime, testEnv(q, &recorder{}))
	if !errors.Is(err, datasource.ErrNotSelector) {
		t.Fatalf("err = %v, want ErrNotSelector", err)
	}
	if st := r.Status(); st.Health != HealthErr || !strings.Contains(st.LastError, "plain vector selectors") {
		t.Errorf("health %q, last error %q", st.Health, st.LastError)
	}
}

package testenv

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// Point is one value of a query answer.
type Point struct {
	T time.Time
	V float64
}

// Series is one series of a query answer.
type Series struct {
	Labels labels.Labels
	Points []Point
}

// QueryAPI queries a Prometheus-compatible HTTP API. It is deliberately a
// separate, plain implementation from pkg/datasource, so that tests can
// check that package (and the sidecar's output) against it.
type QueryAPI struct {
	// URL is the server's base URL, http://127.0.0.1:port.
	URL string
}

// Query evaluates an instant query at the current time. Each series of the
// answer has one point; a scalar answer is one series without labels.
func (a QueryAPI) Query(t testing.TB, promql string) []Series {
	t.Helper()
	return a.QueryAt(t, promql, time.Now())
}

// QueryAt evaluates an instant query at ts.
func (a QueryAPI) QueryAt(t testing.TB, promql string, ts time.Time) []Series {
	t.Helper()
	return a.query(t, "/api/v1/query", url.Values{
		"query": {promql},
		"time":  {formatSeconds(ts)},
	})
}

// QueryRange evaluates a range query from start to end at step.
func (a QueryAPI) QueryRange(t testing.TB, promql string, start, end time.Time, step time.Duration) []Series {
	t.Helper()
	return a.query(t, "/api/v1/query_range", url.Values{
		"query": {promql},
		"start": {formatSeconds(start)},
		"end":   {formatSeconds(end)},
		"step":  {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)},
	})
}

// WaitForQuery repeats an instant query until it returns at least one
// series, and returns that answer; it fails the test after timeout.
func (a QueryAPI) WaitForQuery(t testing.TB, promql string, timeout time.Duration) []Series {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if res := a.Query(t, promql); len(res) > 0 {
			return res
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: %s: query %q returned nothing for %v", a.URL, promql, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (a QueryAPI) query(t testing.TB, path string, form url.Values) []Series {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, a.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	body := httpDo(t, req, http.StatusOK)

	var resp struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &resp); err != nil || resp.Status != "success" {
		t.Fatalf("testenv: %s %s: status %q, err %v: %s", path, form.Get("query"), resp.Status, err, truncate(body, 1024))
	}
	type jsonSeries struct {
		Metric map[string]string `json:"metric"`
		Value  []any             `json:"value"`
		Values [][]any           `json:"values"`
	}
	var out []Series
	switch resp.Data.ResultType {
	case "scalar":
		var v []any
		if err := json.Unmarshal(resp.Data.Result, &v); err != nil {
			t.Fatalf("testenv: decode scalar: %v", err)
		}
		out = append(out, Series{Labels: labels.EmptyLabels(), Points: []Point{parsePoint(t, v)}})
	case "vector", "matrix":
		var ss []jsonSeries
		if err := json.Unmarshal(resp.Data.Result, &ss); err != nil {
			t.Fatalf("testenv: decode %s: %v", resp.Data.ResultType, err)
		}
		for _, s := range ss {
			series := Series{Labels: labels.FromMap(s.Metric)}
			if s.Value != nil {
				series.Points = append(series.Points, parsePoint(t, s.Value))
			}
			for _, v := range s.Values {
				series.Points = append(series.Points, parsePoint(t, v))
			}
			out = append(out, series)
		}
	default:
		t.Fatalf("testenv: %s %s: unexpected result type %q", path, form.Get("query"), resp.Data.ResultType)
	}
	return out
}

// parsePoint decodes [1435781451.781, "1"].
func parsePoint(t testing.TB, v []any) Point {
	t.Helper()
	if len(v) != 2 {
		t.Fatalf("testenv: bad point %v", v)
	}
	sec, ok1 := v[0].(float64)
	str, ok2 := v[1].(string)
	if !ok1 || !ok2 {
		t.Fatalf("testenv: bad point %v", v)
	}
	f, err := strconv.ParseFloat(str, 64)
	if err != nil {
		t.Fatalf("testenv: bad value in %v: %v", v, err)
	}
	return Point{T: time.UnixMilli(int64(math.Round(sec * 1000))).UTC(), V: f}
}

// formatSeconds formats t as Unix seconds with millisecond precision.
func formatSeconds(t time.Time) string {
	return fmt.Sprintf("%.3f", float64(t.UnixMilli())/1000)
}

package remotewrite

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err        error
		retry429   bool
		want       outcome
		code       string
		retryAfter time.Duration
	}{
		{err: errors.New("connection refused"), want: retryForever, code: "network"},
		{err: &HTTPError{StatusCode: 500}, want: retryForever, code: "500"},
		{err: &HTTPError{StatusCode: 502}, want: retryForever, code: "502"},
		{err: &HTTPError{StatusCode: 503, RetryAfter: 7 * time.Second}, want: retryForever, code: "503", retryAfter: 7 * time.Second},
		{err: &HTTPError{StatusCode: 504}, want: retryForever, code: "504"},
		{err: &HTTPError{StatusCode: 408}, want: retryForever, code: "408"},
		{err: &HTTPError{StatusCode: 429, RetryAfter: time.Second}, retry429: true, want: retryBounded, code: "429", retryAfter: time.Second},
		{err: &HTTPError{StatusCode: 429, RetryAfter: time.Second}, retry429: false, want: final, code: "429"},
		{err: &HTTPError{StatusCode: 300}, want: final, code: "300"},
		{err: &HTTPError{StatusCode: 400}, want: final, code: "400"},
		{err: &HTTPError{StatusCode: 401}, want: final, code: "401"},
		{err: &HTTPError{StatusCode: 404}, want: final, code: "404"},
		{err: &HTTPError{StatusCode: 413}, want: final, code: "413"},
		{err: &HTTPError{StatusCode: 415}, want: final, code: "415"},
		{err: fmt.Errorf("wrapped: %w", &HTTPError{StatusCode: 400}), want: final, code: "400"},
	} {
		t.Run(fmt.Sprintf("%v/429=%v", tc.err, tc.retry429), func(t *testing.T) {
			out, code, ra := classify(tc.err, tc.retry429)
			if out != tc.want || code != tc.code || ra != tc.retryAfter {
				t.Errorf("classify = (%d, %q, %s), want (%d, %q, %s)", out, code, ra, tc.want, tc.code, tc.retryAfter)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 8, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"5", 5 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"0", 0},
		{"-3", 0},
		{"1.5", 0},
		{"soon", 0},
		{"99999999999999999", 24 * time.Hour},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{now.Add(-30 * time.Second).Format(http.TimeFormat), 0},
		{now.Add(90 * time.Second).Format(time.RFC850), 90 * time.Second},
		{now.Add(10 * time.Second).Format(time.ANSIC), 10 * time.Second},
	} {
		if got := parseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestProtoLabels(t *testing.T) {
	l := func(ss ...string) []prompb.Label {
		var out []prompb.Label
		for i := 0; i < len(ss); i += 2 {
			out = append(out, prompb.Label{Name: ss[i], Value: ss[i+1]})
		}
		return out
	}
	for _, tc := range []struct {
		name string
		lset labels.Labels
		ext  labels.Labels
		want []prompb.Label
	}{
		{
			name: "sorted as given",
			lset: labels.FromStrings("z", "1", "__name__", "m", "a", "2"),
			want: l("__name__", "m", "a", "2", "z", "1"),
		},
		{
			name: "external labels merged in order",
			lset: labels.FromStrings("__name__", "m", "job", "j"),
			ext:  labels.FromStrings("replica", "r1", "cluster", "c"),
			want: l("__name__", "m", "cluster", "c", "job", "j", "replica", "r1"),
		},
		{
			name: "series value wins over external label",
			lset: labels.FromStrings("__name__", "m", "cluster", "own"),
			ext:  labels.FromStrings("cluster", "ext"),
			want: l("__name__", "m", "cluster", "own"),
		},
		{
			name: "empty value is absent, external label fills it",
			lset: labels.New(labels.Label{Name: "__name__", Value: "m"}, labels.Label{Name: "cluster", Value: ""}),
			ext:  labels.FromStrings("cluster", "ext"),
			want: l("__name__", "m", "cluster", "ext"),
		},
		{
			name: "empty values dropped, empty external ignored",
			lset: labels.New(labels.Label{Name: "__name__", Value: "m"}, labels.Label{Name: "a", Value: ""}),
			ext:  labels.New(labels.Label{Name: "b", Value: ""}),
			want: l("__name__", "m"),
		},
		{
			name: "duplicate names keep the first",
			lset: labels.New(labels.Label{Name: "a", Value: "1"}, labels.Label{Name: "a", Value: "2"}),
			want: l("a", "1"),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := protoLabels(tc.lset, externalLabels(tc.ext))
			if !slices.EqualFunc(got, tc.want, func(a, b prompb.Label) bool { return a.Name == b.Name && a.Value == b.Value }) {
				t.Errorf("protoLabels = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestEncodeRequest(t *testing.T) {
	a, b := labels.FromStrings("__name__", "a"), labels.FromStrings("__name__", "b")
	stale := math.Float64frombits(value.StaleNaN)
	batch := []sample{
		{lset: a, hash: a.Hash(), t: 1, v: 1},
		{lset: b, hash: b.Hash(), t: 1, v: math.Inf(1)},
		{lset: a, hash: a.Hash(), t: 2, v: stale},
		// Same hash as a, different labels: a collision must not merge.
		{lset: b, hash: a.Hash(), t: 3, v: 3},
	}
	body, err := encodeRequest(batch, externalLabels(labels.FromStrings("replica", "x")))
	if err != nil {
		t.Fatal(err)
	}
	wr := decodeBody(t, body)
	var got []string
	for _, ts := range wr.Timeseries {
		for _, s := range ts.Samples {
			got = append(got, fmt.Sprintf("%s@%d=%x", labelsKey(ts.Labels), s.Timestamp, math.Float64bits(s.Value)))
		}
	}
	want := []string{
		fmt.Sprintf(`{__name__="a", replica="x"}@1=%x`, math.Float64bits(1)),
		fmt.Sprintf(`{__name__="a", replica="x"}@2=%x`, value.StaleNaN),
		fmt.Sprintf(`{__name__="b", replica="x"}@1=%x`, math.Float64bits(math.Inf(1))),
		fmt.Sprintf(`{__name__="b", replica="x"}@3=%x`, math.Float64bits(3)),
	}
	if !slices.Equal(got, want) {
		t.Errorf("decoded\n%v\nwant\n%v", got, want)
	}
	if len(wr.Timeseries) != 3 {
		t.Errorf("got %d TimeSeries, want 3 (a grouped, b twice after the collision)", len(wr.Timeseries))
	}
}

package report

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestJSONRoundTrip(t *testing.T) {
	nan := math.NaN()
	in := &Report{
		Title:     "t",
		Generated: time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC),
		Start:     time.Date(2014, 1, 1, 0, 0, 0, 0, time.UTC),
		End:       time.Date(2014, 2, 1, 0, 0, 0, 0, time.UTC),
		Summary:   []Table{{Title: "nab", Columns: []string{"d", "standard"}, Rows: []Row{{Name: "x", Values: Floats{54.6, nan}}}}},
		Series: []Series{{
			Rule: "r", Labels: map[string]string{"file": "a.csv"},
			Timestamps: []int64{1, 2, 3},
			Actual:     Floats{1, nan, 3}, Median: Floats{nan, nan, nan}, Lower: Floats{0, 0, 0}, Upper: Floats{2, 2, 2}, Score: Floats{0.5, nan, 2},
			LowerLevel: 0.05, UpperLevel: 0.95, Threshold: nan,
			Windows: []Window{{1, 2}}, Detections: []int64{3},
			Metrics: map[string]float64{"mase": 0.8, "wql": nan},
		}},
	}
	var b bytes.Buffer
	if err := WriteJSON(&b, in); err != nil {
		t.Fatalf("WriteJSON: %v", err)
	}
	if strings.Contains(b.String(), "NaN") {
		t.Fatalf("NaN in JSON:\n%s", b.String())
	}
	for _, want := range []string{`"threshold": null`, `"wql": null`, `null,`, "\n  \"title\""} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("JSON lacks %q:\n%s", want, b.String())
		}
	}
	var out Report
	if err := json.Unmarshal(b.Bytes(), &out); err != nil {
		t.Fatalf("read back: %v", err)
	}
	// NaN != NaN, so compare after replacing NaN by a sentinel on both
	// sides, having checked that NaN came back exactly where it was.
	if !reflect.DeepEqual(nanMask(in), nanMask(&out)) {
		t.Fatalf("round trip differs:\nin  %+v\nout %+v", *in, out)
	}
	s := out.Series[0]
	if !math.IsNaN(s.Threshold) || !math.IsNaN(s.Metrics["wql"]) || !math.IsNaN(s.Actual[1]) {
		t.Errorf("null did not read back as NaN: %v %v %v", s.Threshold, s.Metrics["wql"], s.Actual[1])
	}
}

// nanMask returns a copy of r's JSON form with NaN marked, for DeepEqual:
// it marshals through a NaN-free path by construction of WriteJSON, so
// equal masks mean equal numbers and NaN in the same places.
func nanMask(r *Report) any {
	var b bytes.Buffer
	if err := WriteJSON(&b, r); err != nil {
		panic(err)
	}
	var v any
	if err := json.Unmarshal(b.Bytes(), &v); err != nil {
		panic(err)
	}
	return v
}

// TestJSONLayout checks the indentation keeps sample arrays on one line
// and leaves strings alone, brackets, quotes and escapes included.
func TestJSONLayout(t *testing.T) {
	tricky := `a "[b]" {c}, d: \ e` + "\n"
	in := &Report{
		Title:   tricky,
		Summary: []Table{{Title: "t", Columns: []string{tricky, "x"}, Rows: []Row{}}},
		Series: []Series{{
			Rule: "r", Labels: map[string]string{tricky: tricky},
			Timestamps: []int64{1, 2}, Actual: Floats{1.5, math.NaN()},
		}},
	}
	var b bytes.Buffer
	if err := WriteJSON(&b, in); err != nil {
		t.Fatal(err)
	}
	var out Report
	if err := json.Unmarshal(b.Bytes(), &out); err != nil {
		t.Fatalf("invalid JSON: %v\n%s", err, b.String())
	}
	if out.Title != tricky || out.Series[0].Labels[tricky] != tricky || out.Summary[0].Columns[0] != tricky {
		t.Errorf("strings changed: %q", out.Title)
	}
	for _, want := range []string{`"actual": [1.5,null]`, `"timestamps": [1,2]`, `"rows": []`, "\n    {\n      \"rule\": \"r\""} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("JSON lacks %q:\n%s", want, b.String())
		}
	}
}

package testenv

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// VictoriaMetrics is a running single-node VictoriaMetrics.
type VictoriaMetrics struct {
	// QueryAPI holds the base URL, http://127.0.0.1:port; the Prometheus
	// query API is at URL/api/v1/...
	QueryAPI
	// Dir is the server's working directory; the data is in Dir/data.
	Dir string

	proc *process
}

// StartVictoriaMetrics starts VictoriaMetrics and returns once /health
// answers 200. It runs with
//
//	-retentionPeriod=100y       keep data from any year (NAB is from 2013-2015)
//	-search.latencyOffset=0s    show points up to now; by default the last 30s
//	                            are hidden as possibly incomplete
//	-search.disableCache        no response cache, so a query repeated after an
//	                            import sees the new data
//
// extraArgs are appended; a flag given again there overrides the default.
func StartVictoriaMetrics(t testing.TB, extraArgs ...string) *VictoriaMetrics {
	t.Helper()
	bin := lookBinary(t, "OPENANOMALY_VICTORIAMETRICS", "victoria-metrics", "victoria-metrics")
	dir := t.TempDir()
	vm := &VictoriaMetrics{Dir: dir}
	proc, base := startServer(t, "victoria-metrics", bin, dir, "/health", func(addr string) []string {
		return append([]string{
			"-httpListenAddr=" + addr,
			"-storageDataPath=" + filepath.Join(dir, "data"),
			"-retentionPeriod=100y",
			"-search.latencyOffset=0s",
			"-search.disableCache",
		}, extraArgs...)
	})
	vm.proc, vm.URL = proc, base
	return vm
}

// RemoteWriteURL is the URL of the remote-write receiver.
func (vm *VictoriaMetrics) RemoteWriteURL() string { return vm.URL + "/api/v1/write" }

// Stop stops the server now, before the test ends. Calling it again, or
// the cleanup after it, does nothing.
func (vm *VictoriaMetrics) Stop() { vm.proc.stop() }

// Import stores one series through /api/v1/import (JSON lines), flushes so
// that it can be queried at once, and checks that every sample arrived.
//
// VictoriaMetrics 1.79 answers 204 even when it skips a malformed line, and
// silently drops NaN samples, so NaN values fail the test here instead; ±Inf
// are stored. Any timestamp is accepted: years old (the retention is 100y)
// or in the future.
func (vm *VictoriaMetrics) Import(t testing.TB, name string, lbls map[string]string, ts []time.Time, vs []float64) {
	t.Helper()
	if len(ts) != len(vs) {
		t.Fatalf("testenv: Import: %d timestamps, %d values", len(ts), len(vs))
	}
	for i, v := range vs {
		if math.IsNaN(v) {
			t.Fatalf("testenv: Import %s: value %d (at %v) is NaN, which VictoriaMetrics drops without a word", name, i, ts[i])
		}
	}
	metric := map[string]string{"__name__": name}
	for k, v := range lbls {
		metric[k] = v
	}
	metricJSON, err := json.Marshal(metric)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	// Lines of at most 10,000 samples stay far below -import.maxLineLen.
	var body bytes.Buffer
	const perLine = 10000
	for lo := 0; lo < len(ts); lo += perLine {
		hi := min(lo+perLine, len(ts))
		body.WriteString(`{"metric":`)
		body.Write(metricJSON)
		body.WriteString(`,"values":[`)
		for i := lo; i < hi; i++ {
			if i > lo {
				body.WriteByte(',')
			}
			switch {
			case math.IsInf(vs[i], 1):
				body.WriteString("Inf")
			case math.IsInf(vs[i], -1):
				body.WriteString("-Inf")
			default:
				body.WriteString(strconv.FormatFloat(vs[i], 'g', -1, 64))
			}
		}
		body.WriteString(`],"timestamps":[`)
		for i := lo; i < hi; i++ {
			if i > lo {
				body.WriteByte(',')
			}
			body.WriteString(strconv.FormatInt(ts[i].UnixMilli(), 10))
		}
		body.WriteString("]}\n")
	}
	req, _ := http.NewRequest(http.MethodPost, vm.URL+"/api/v1/import", &body)
	httpDo(t, req, http.StatusNoContent, http.StatusOK)
	vm.Flush(t)
	vm.checkImported(t, metric, ts)
}

// Flush makes everything written so far visible to queries. Without it
// VictoriaMetrics 1.79 shows new samples only after about two seconds.
func (vm *VictoriaMetrics) Flush(t testing.TB) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, vm.URL+"/internal/force_flush", nil)
	httpDo(t, req, http.StatusOK)
	req, _ = http.NewRequest(http.MethodGet, vm.URL+"/internal/resetRollupResultCache", nil)
	httpDo(t, req, http.StatusOK)
}

// checkImported fails the test unless every timestamp in ts is stored for
// the series.
func (vm *VictoriaMetrics) checkImported(t testing.TB, metric map[string]string, ts []time.Time) {
	t.Helper()
	if len(ts) == 0 {
		return
	}
	var matchers []string
	for k, v := range metric {
		matchers = append(matchers, k+"="+strconv.Quote(v))
	}
	slices.Sort(matchers)
	lo, hi := slices.MinFunc(ts, time.Time.Compare), slices.MaxFunc(ts, time.Time.Compare)
	form := url.Values{
		"match[]": {"{" + strings.Join(matchers, ",") + "}"},
		"start":   {formatSeconds(lo)},
		"end":     {formatSeconds(hi)},
	}
	req, _ := http.NewRequest(http.MethodPost, vm.URL+"/api/v1/export", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	body := httpDo(t, req, http.StatusOK)

	stored := map[int64]bool{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, len(body)+1)
	for sc.Scan() {
		var line struct {
			Timestamps []int64 `json:"timestamps"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("testenv: decode export line: %v", err)
		}
		for _, ms := range line.Timestamps {
			stored[ms] = true
		}
	}
	var missing []time.Time
	for _, x := range ts {
		if !stored[x.UnixMilli()] {
			missing = append(missing, x)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("testenv: VictoriaMetrics stored %d of %d samples of %s; first missing at %v; log:\n%s",
			len(ts)-len(missing), len(ts), form.Get("match[]"), missing[0], vm.proc.logTail())
	}
}

package nabpeer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/openanomaly/openanomaly/internal/osproc"
)

var httpClient = &http.Client{Timeout: 10 * time.Minute}

// VMArgs are the flags the pipeline needs from VictoriaMetrics, besides
// the listen address and data path:
//
//	-retentionPeriod=100y                 keep NAB's 2011-2015 samples
//	-search.latencyOffset=0s              show every sample
//	-search.disableCache                  no rollup cache, and no alignment of a
//	                                      query_range's start to its step, so
//	                                      evaluations fall on the rows
//	-search.maxPointsPerTimeseries=2000000  one query_range per rule and replay
//	-search.maxQueryDuration=10m          long replays on a busy machine
//	-maxInsertRequestSize=1GB             vmalert pushes a rule's whole range
var VMArgs = []string{
	"-retentionPeriod=100y",
	"-search.latencyOffset=0s",
	"-search.disableCache",
	"-search.maxPointsPerTimeseries=2000000",
	"-search.maxQueryDuration=10m",
	"-maxInsertRequestSize=1GB",
}

// VM is a VictoriaMetrics this package started.
type VM struct {
	URL  string
	proc *osproc.Proc
}

// StartVM starts VictoriaMetrics (bin) with VMArgs on a free loopback port,
// its data and log in dir, and waits for /health.
func StartVM(ctx context.Context, bin, dir string) (*VM, error) {
	var lastErr error
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		addr := l.Addr().String()
		l.Close()
		args := append([]string{"-httpListenAddr=" + addr, "-storageDataPath=" + filepath.Join(dir, "vmdata")}, VMArgs...)
		p, err := osproc.Start("victoria-metrics", dir, bin, args...)
		if err != nil {
			return nil, err
		}
		vm := &VM{URL: "http://" + addr, proc: p}
		if err := vm.waitReady(ctx); err != nil {
			p.Stop()
			lastErr = err
			continue
		}
		return vm, nil
	}
	return nil, lastErr
}

func (vm *VM) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(2 * time.Minute)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-vm.proc.Exited():
			return fmt.Errorf("victoria-metrics exited (%v); log:\n%s", vm.proc.Err(), vm.proc.LogTail(3000))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		resp, err := httpClient.Get(vm.URL + "/health")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("victoria-metrics not ready: %v; log:\n%s", last, vm.proc.LogTail(3000))
}

// Stop stops the server.
func (vm *VM) Stop() { vm.proc.Stop() }

func do(req *http.Request, want ...int) ([]byte, error) {
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(want, resp.StatusCode) {
		if len(body) > 500 {
			body = body[:500]
		}
		return nil, fmt.Errorf("%s %s: HTTP %d: %s", req.Method, req.URL.Path, resp.StatusCode, body)
	}
	return body, nil
}

// Flush makes everything written to the VictoriaMetrics at base visible
// to queries (1.79 shows new samples only after about two seconds).
func Flush(base string) error {
	for _, p := range []string{"/internal/force_flush", "/internal/resetRollupResultCache"} {
		req, _ := http.NewRequest(http.MethodGet, base+p, nil)
		if _, err := do(req, http.StatusOK); err != nil {
			return err
		}
	}
	return nil
}

// Import stores s as nab_value{file=<key>, nab_grid=<grid>} in the
// VictoriaMetrics at base through /api/v1/import and flushes. It returns
// the number of samples stored (one per distinct timestamp).
func Import(base string, s *Series) (int, error) {
	ts, vs := s.Samples()
	metric, err := json.Marshal(map[string]string{"__name__": Metric, "file": s.Key, "nab_grid": s.Grid.Label()})
	if err != nil {
		return 0, err
	}
	var body bytes.Buffer
	const perLine = 10000
	for lo := 0; lo < len(ts); lo += perLine {
		hi := min(lo+perLine, len(ts))
		body.WriteString(`{"metric":`)
		body.Write(metric)
		body.WriteString(`,"values":[`)
		for i := lo; i < hi; i++ {
			if i > lo {
				body.WriteByte(',')
			}
			body.WriteString(strconv.FormatFloat(vs[i], 'g', -1, 64))
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
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/import", &body)
	if _, err := do(req, http.StatusNoContent, http.StatusOK); err != nil {
		return 0, err
	}
	return len(ts), Flush(base)
}

// ExportedSeries is one series of an /api/v1/export answer, sorted by
// time, without repeated timestamps (vmalert's replay evaluates the edge
// of two query chunks twice).
type ExportedSeries struct {
	Labels map[string]string
	Times  []time.Time
	Values []float64
}

// Export reads every series matching match between start and end
// (inclusive) from the VictoriaMetrics at base.
func Export(base, match string, start, end time.Time) ([]ExportedSeries, error) {
	form := url.Values{
		"match[]": {match},
		"start":   {strconv.FormatInt(start.Unix(), 10)},
		"end":     {strconv.FormatInt(end.Unix(), 10)},
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/export", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	body, err := do(req, http.StatusOK)
	if err != nil {
		return nil, err
	}
	var out []ExportedSeries
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, len(body)+1)
	for sc.Scan() {
		var line struct {
			Metric     map[string]string `json:"metric"`
			Values     []any             `json:"values"`
			Timestamps []int64           `json:"timestamps"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return nil, fmt.Errorf("export %s: %v", match, err)
		}
		if len(line.Values) != len(line.Timestamps) {
			return nil, fmt.Errorf("export %s: %d values, %d timestamps", match, len(line.Values), len(line.Timestamps))
		}
		type pt struct {
			t int64
			v float64
		}
		pts := make([]pt, len(line.Values))
		for i, raw := range line.Values {
			v, err := exportValue(raw)
			if err != nil {
				return nil, fmt.Errorf("export %s: %v", match, err)
			}
			pts[i] = pt{line.Timestamps[i], v}
		}
		slices.SortStableFunc(pts, func(a, b pt) int { return int(a.t - b.t) })
		es := ExportedSeries{Labels: line.Metric}
		for i, p := range pts {
			if i+1 < len(pts) && pts[i+1].t == p.t {
				continue
			}
			es.Times = append(es.Times, time.UnixMilli(p.t).UTC())
			es.Values = append(es.Values, p.v)
		}
		// Several lines may carry one series (export splits long ones).
		if k := slices.IndexFunc(out, func(o ExportedSeries) bool { return sameLabels(o.Labels, es.Labels) }); k >= 0 {
			out[k] = mergeSeries(out[k], es)
			continue
		}
		out = append(out, es)
	}
	return out, sc.Err()
}

func exportValue(raw any) (float64, error) {
	switch v := raw.(type) {
	case float64:
		return v, nil
	case string: // "NaN", "Inf", "-Inf"
		switch strings.ToLower(v) {
		case "nan":
			return math.NaN(), nil
		case "inf", "+inf":
			return math.Inf(1), nil
		case "-inf":
			return math.Inf(-1), nil
		}
		return strconv.ParseFloat(v, 64)
	case nil:
		return math.NaN(), nil
	}
	return 0, fmt.Errorf("value %v is not a number", raw)
}

func sameLabels(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func mergeSeries(a, b ExportedSeries) ExportedSeries {
	type pt struct {
		t time.Time
		v float64
	}
	var pts []pt
	for i := range a.Times {
		pts = append(pts, pt{a.Times[i], a.Values[i]})
	}
	for i := range b.Times {
		pts = append(pts, pt{b.Times[i], b.Values[i]})
	}
	slices.SortStableFunc(pts, func(x, y pt) int { return x.t.Compare(y.t) })
	out := ExportedSeries{Labels: a.Labels}
	for i, p := range pts {
		if i+1 < len(pts) && pts[i+1].t.Equal(p.t) {
			continue
		}
		out.Times = append(out.Times, p.t)
		out.Values = append(out.Values, p.v)
	}
	return out
}

// ReplayOptions configure a vmalert replay run.
type ReplayOptions struct {
	// VMAlert is the vmalert binary.
	VMAlert string
	// URL is the VictoriaMetrics read from and written to.
	URL string
	// Dir holds the rendered rules file and vmalert's log.
	Dir string
	// RulesDelay is vmalert's -replay.rulesDelay: how long it waits after
	// each rule so that the next, chained one sees its results. It must
	// exceed -remoteWrite.flushInterval (100ms here) plus the time
	// VictoriaMetrics 1.79 takes to make new samples searchable (about 2s).
	RulesDelay time.Duration
}

// replayArgs are vmalert's flags for replaying r from the rules file rules.
func replayArgs(o ReplayOptions, r Replay, rules string) []string {
	return []string{
		"-rule=" + rules,
		"-datasource.url=" + o.URL,
		"-remoteWrite.url=" + o.URL,
		"-replay.timeFrom=" + r.From.UTC().Format(time.RFC3339),
		"-replay.timeTo=" + r.To.UTC().Format(time.RFC3339),
		// The default 5m would override the groups' interval.
		"-datasource.queryStep=" + fmtDuration(r.Grid.Step),
		// One query_range per rule: no chunk edges evaluated twice.
		"-replay.maxDatapointsPerQuery=" + strconv.Itoa(r.Evaluations()+1),
		"-replay.rulesDelay=" + o.RulesDelay.String(),
		"-replay.disableProgressBar",
		"-remoteWrite.flushInterval=100ms",
		"-remoteWrite.maxQueueSize=1000000",
		"-httpListenAddr=127.0.0.1:0",
		"-loggerLevel=INFO",
	}
}

// RunReplay renders the rules for r's grid into o.Dir and runs vmalert's
// replay over r.From..r.To; it returns when vmalert has exited (it
// flushes its remote-write queue first) and VictoriaMetrics is flushed.
func RunReplay(ctx context.Context, o ReplayOptions, r Replay, name string) error {
	rules := filepath.Join(o.Dir, name+".rules.yml")
	if err := os.WriteFile(rules, []byte(RenderRules(r.Grid)), 0o644); err != nil {
		return err
	}
	p, err := osproc.Start(name+".vmalert", o.Dir, o.VMAlert, replayArgs(o, r, rules)...)
	if err != nil {
		return err
	}
	select {
	case <-p.Exited():
	case <-ctx.Done():
		p.Stop()
		return ctx.Err()
	}
	p.Stop() // exited: closes the log
	if p.Err() != nil {
		return fmt.Errorf("vmalert replay %s (%s, %s..%s): %v; log:\n%s", name, r.Grid, r.From.Format(time.RFC3339), r.To.Format(time.RFC3339), p.Err(), p.LogTail(3000))
	}
	return Flush(o.URL)
}

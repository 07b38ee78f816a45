package bench

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// peerRulesYAML is ../shared/bench/peer-rules.yml as of the benchmark's
// definition: the recording rules a Prometheus user would write instead.
//
//go:embed peer-rules.yml
var peerRulesYAML []byte

type ruleGroup struct {
	Name     string           `yaml:"name"`
	Interval string           `yaml:"interval,omitempty"`
	Rules    []map[string]any `yaml:"rules"`
}

// peerGroups returns the groups of the peer rules, each as its own rule
// file, with the interval replaced when interval > 0.
func peerGroups(src []byte, interval time.Duration) ([]string, map[string]string, error) {
	var f struct {
		Groups []ruleGroup `yaml:"groups"`
	}
	if err := yaml.Unmarshal(src, &f); err != nil {
		return nil, nil, fmt.Errorf("peer rules: %w", err)
	}
	var names []string
	files := map[string]string{}
	for _, g := range f.Groups {
		if interval > 0 {
			g.Interval = interval.String()
		}
		b, err := yaml.Marshal(map[string]any{"groups": []ruleGroup{g}})
		if err != nil {
			return nil, nil, err
		}
		names = append(names, g.Name)
		files[g.Name] = string(b)
	}
	if len(names) == 0 {
		return nil, nil, fmt.Errorf("peer rules: no groups")
	}
	return names, files, nil
}

const emptyRules = "groups: []\n"

// PeerEval is one evaluation of a peer rule group.
type PeerEval struct {
	// Wall is the duration the engine reports for the evaluation
	// (prometheus_rule_group_last_duration_seconds; the increase of
	// vmalert_iteration_duration_seconds_sum).
	Wall float64 `json:"wall_s"`
	// CPU is the engine's CPU time between the end of the previous
	// evaluation and the end of this one (Prometheus; VictoriaMetrics plus
	// vmalert): one evaluation plus the idle interval. NaN for the first
	// evaluation after a group was loaded.
	CPU float64 `json:"cpu_s"`
}

type peerKey struct{ engine, group string }

// peerRunner loads one peer group at a time into one engine, measures a few
// evaluations and unloads it, rotating over engines and groups.
type peerRunner struct {
	b        *bench
	groups   []string
	files    map[string]string
	combos   []peerKey
	next     int
	results  map[peerKey][]PeerEval
	expected map[peerKey]float64 // median wall so far, to plan the gaps
	perLoad  int
	interval time.Duration
}

func newPeerRunner(b *bench, groups []string, files map[string]string, interval time.Duration) *peerRunner {
	p := &peerRunner{b: b, groups: groups, files: files, results: map[peerKey][]PeerEval{},
		expected: map[peerKey]float64{}, perLoad: 3, interval: interval}
	// Interleaved: engines alternate, and so do the groups within each.
	for _, g := range groups {
		for _, e := range []string{enginePrometheus, engineVM} {
			p.combos = append(p.combos, peerKey{e, g})
		}
	}
	return p
}

const (
	enginePrometheus = "prometheus"
	engineVM         = "victoriametrics+vmalert"
)

func (p *peerRunner) need(k peerKey) time.Duration {
	exp := p.expected[k]
	if exp == 0 {
		exp = 3
	}
	// Load, wait for up to one interval to the first slot, two more
	// evaluations, unload.
	return 2*p.interval + time.Duration(exp*float64(time.Second)) + 2*time.Second
}

func (p *peerRunner) done(target int) bool {
	for _, k := range p.combos {
		if len(p.results[k]) < target {
			return false
		}
	}
	return true
}

// runUntil measures peers until deadline; it returns at deadline at the
// latest with every peer group unloaded. With fill set it returns early
// once every combination has target evaluations.
func (p *peerRunner) runUntil(ctx context.Context, deadline time.Time, target int, fill bool) error {
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if fill && p.done(target) {
			return nil
		}
		// The next combination that fits in the time left, in rotation.
		var k peerKey
		found := false
		for i := range p.combos {
			c := p.combos[(p.next+i)%len(p.combos)]
			if fill && len(p.results[c]) >= target {
				continue
			}
			if len(p.results[c]) >= 3*target && !fill {
				continue
			}
			if time.Until(deadline) >= p.need(c) {
				k, found = c, true
				p.next = (p.next + i + 1) % len(p.combos)
				break
			}
		}
		if !found {
			sleepUntil(ctx, deadline)
			return ctx.Err()
		}
		evals, err := p.measure(ctx, k, deadline)
		if err != nil {
			return err
		}
		p.results[k] = append(p.results[k], evals...)
		for _, e := range evals {
			p.b.logf("peer %s/%s: %.2fs, CPU %.2fs", k.engine, k.group, e.Wall, e.CPU)
		}
		var ws []float64
		for _, e := range p.results[k] {
			ws = append(ws, e.Wall)
		}
		p.expected[k] = median(ws)
	}
}

func (p *peerRunner) measure(ctx context.Context, k peerKey, deadline time.Time) ([]PeerEval, error) {
	switch k.engine {
	case enginePrometheus:
		return p.measureProm(ctx, k, deadline)
	default:
		return p.measureVM(ctx, k, deadline)
	}
}

func (p *peerRunner) measureProm(ctx context.Context, k peerKey, deadline time.Time) ([]PeerEval, error) {
	b := p.b
	if err := b.setPromRules(p.files[k.group]); err != nil {
		return nil, err
	}
	defer func() {
		if err := b.setPromRules(emptyRules); err != nil {
			b.logf("unload Prometheus rules: %v", err)
		}
	}()
	loaded := time.Now()
	var out []PeerEval
	var lastEval string
	prevCPU := math.NaN()
	for len(out) < p.perLoad {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		le, err := b.promGroupLastEval(k.group)
		if err != nil {
			return out, err
		}
		if le != "" && le != lastEval && !strings.HasPrefix(le, "0001-") {
			lastEval = le
			cpu, _ := cpuSeconds(b.prom.Pid())
			ms, err := scrape(b.promURL + "/metrics")
			if err != nil {
				return out, err
			}
			wall, ok := findSuffix(ms, "prometheus_rule_group_last_duration_seconds", "rule_group", ";"+k.group)
			if !ok {
				return out, fmt.Errorf("prometheus_rule_group_last_duration_seconds for group %s not found", k.group)
			}
			out = append(out, PeerEval{Wall: wall, CPU: cpu - prevCPU})
			prevCPU = cpu
		}
		if time.Now().Add(p.interval + time.Duration(p.expected[k]*1e9) + time.Second).After(deadline) {
			break
		}
		if time.Since(loaded) > 3*p.interval+time.Minute {
			b.logf("warning: Prometheus group %s did not evaluate within %v", k.group, time.Since(loaded).Round(time.Second))
			break
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
	return out, nil
}

func (p *peerRunner) measureVM(ctx context.Context, k peerKey, deadline time.Time) ([]PeerEval, error) {
	b := p.b
	if err := b.setVMAlertRules(p.files[k.group]); err != nil {
		return nil, err
	}
	defer func() {
		if err := b.setVMAlertRules(emptyRules); err != nil {
			b.logf("unload vmalert rules: %v", err)
		}
	}()
	loaded := time.Now()
	var out []PeerEval
	lbl := map[string]string{"group": k.group}
	prevCount, prevSum := -1.0, 0.0
	prevCPU := math.NaN()
	for len(out) < p.perLoad {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		ms, err := scrape(b.vmalertURL + "/metrics")
		if err != nil {
			return out, err
		}
		cnt, _ := find(ms, "vmalert_iteration_duration_seconds_count", lbl)
		sum, _ := find(ms, "vmalert_iteration_duration_seconds_sum", lbl)
		switch {
		case prevCount < 0:
			// Baseline: what the previous load of this group left.
			prevCount, prevSum = cnt, sum
			if time.Since(loaded) > time.Second {
				// Already evaluated under us? Count from zero.
				prevCount, prevSum = 0, 0
			}
		case cnt < prevCount:
			// The group was recreated and its metrics started over.
			prevCount, prevSum = 0, 0
			fallthrough
		case cnt > prevCount:
			if cnt > prevCount {
				c1, _ := cpuSeconds(b.vm.Pid())
				c2, _ := cpuSeconds(b.vmalert.Pid())
				cpu := c1 + c2
				n := cnt - prevCount
				out = append(out, PeerEval{Wall: (sum - prevSum) / n, CPU: (cpu - prevCPU) / n})
				prevCount, prevSum, prevCPU = cnt, sum, cpu
			}
		}
		if time.Now().Add(p.interval + time.Duration(p.expected[k]*1e9) + time.Second).After(deadline) {
			break
		}
		if time.Since(loaded) > 3*p.interval+time.Minute {
			b.logf("warning: vmalert group %s did not evaluate within %v", k.group, time.Since(loaded).Round(time.Second))
			break
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
	return out, nil
}

func findSuffix(ss []metricSample, name, label, suffix string) (float64, bool) {
	for _, s := range ss {
		if s.name == name && strings.HasSuffix(s.labels[label], suffix) {
			return s.value, true
		}
	}
	return 0, false
}

// promGroupLastEval returns the lastEvaluation of the Prometheus rule group
// from /api/v1/rules ("" when the group is not loaded).
func (b *bench) promGroupLastEval(group string) (string, error) {
	body, err := httpGet(b.promURL + "/api/v1/rules?type=record")
	if err != nil {
		return "", err
	}
	var r struct {
		Data struct {
			Groups []struct {
				Name           string `json:"name"`
				LastEvaluation string `json:"lastEvaluation"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return "", err
	}
	for _, g := range r.Data.Groups {
		if g.Name == group {
			return g.LastEvaluation, nil
		}
	}
	return "", nil
}

func (b *bench) setPromRules(content string) error {
	if _, err := writeFile(b.promDir, "rules.yml", content); err != nil {
		return err
	}
	_, err := httpPost(b.promURL+"/-/reload", "text/plain", nil)
	return err
}

func (b *bench) setVMAlertRules(content string) error {
	if _, err := writeFile(b.vmalertDir, "rules.yml", content); err != nil {
		return err
	}
	_, err := httpPost(b.vmalertURL+"/-/reload", "text/plain", nil)
	return err
}

func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func sleepUntil(ctx context.Context, t time.Time) { sleepCtx(ctx, time.Until(t)) }

func urlEscape(s string) string { return url.QueryEscape(s) }

func scalarFromQuery(b []byte) (float64, error) {
	var r struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return 0, err
	}
	if len(r.Data.Result) == 0 {
		return 0, nil
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	var v float64
	_, err := fmt.Sscan(s, &v)
	return v, err
}

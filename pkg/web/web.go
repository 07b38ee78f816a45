// Package web serves the sidecar's HTTP endpoints: /metrics, the lifecycle
// endpoints, /api/v1/rules and Go's profiles under /debug/pprof/.
package web

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/openanomaly/openanomaly/pkg/pipeline"
)

// Options configure the handler.
type Options struct {
	// Gatherer serves /metrics: the self-monitoring registry and the
	// pipeline outputs together.
	Gatherer prometheus.Gatherer
	// Manager answers /api/v1/rules.
	Manager *pipeline.Manager
	// Reload is called by POST /-/reload and returns the reload's error.
	Reload func() error
	Logger *slog.Logger
}

// Handler serves the endpoints. It reports not ready until SetReady(true).
type Handler struct {
	opts  Options
	ready atomic.Bool
	mux   *http.ServeMux
}

// New returns the HTTP handler.
func New(o Options) *Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{opts: o, mux: http.NewServeMux()}
	h.mux.Handle("/metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{ErrorLog: slogAdapter{o.Logger}}))
	h.mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "OpenAnomaly is Healthy.")
	})
	h.mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !h.ready.Load() {
			http.Error(w, "OpenAnomaly is not ready.", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "OpenAnomaly is Ready.")
	})
	h.mux.HandleFunc("/-/reload", h.reload)
	h.mux.HandleFunc("/api/v1/rules", h.rules)
	// Go's profiles, as Prometheus, Alertmanager and the exporters serve
	// them (behind the same web config file: TLS and basic auth).
	h.mux.HandleFunc("/debug/pprof/", pprof.Index)
	h.mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	h.mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	h.mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	h.mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, `<html><head><title>OpenAnomaly</title></head><body><h1>OpenAnomaly</h1>
<ul><li><a href="/metrics">/metrics</a></li><li><a href="/api/v1/rules">/api/v1/rules</a></li>
<li><a href="/-/healthy">/-/healthy</a></li><li><a href="/-/ready">/-/ready</a></li>
<li><a href="/debug/pprof/">/debug/pprof/</a></li></ul></body></html>`)
	})
	return h
}

// SetReady marks the process ready (after the first config load).
func (h *Handler) SetReady(v bool) { h.ready.Store(v) }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

func (h *Handler) reload(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		w.Header().Set("Allow", "POST, PUT")
		http.Error(w, "Only POST or PUT requests allowed.", http.StatusMethodNotAllowed)
		return
	}
	if err := h.opts.Reload(); err != nil {
		http.Error(w, fmt.Sprintf("failed to reload config: %s", err), http.StatusInternalServerError)
		return
	}
	fmt.Fprintln(w, "Reloaded.")
}

// ruleGroup is one group in the /api/v1/rules answer, shaped like
// Prometheus' own rules API so existing tooling can read it.
type ruleGroup struct {
	Name           string            `json:"name"`
	File           string            `json:"file"`
	Interval       float64           `json:"interval"`
	LastEvaluation time.Time         `json:"lastEvaluation"`
	EvaluationTime float64           `json:"evaluationTime"`
	Rules          []pipeline.Status `json:"rules"`
}

func (h *Handler) rules(w http.ResponseWriter, _ *http.Request) {
	groups := []ruleGroup{}
	if h.opts.Manager != nil {
		for _, g := range h.opts.Manager.Groups() {
			last, dur := g.LastEvaluation()
			rg := ruleGroup{Name: g.Name(), File: g.File(), Interval: g.Interval().Seconds(),
				LastEvaluation: last, EvaluationTime: dur.Seconds(), Rules: []pipeline.Status{}}
			for _, r := range g.Rules() {
				rg.Rules = append(rg.Rules, r.Status())
			}
			groups = append(groups, rg)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"status": "success",
		"data":   map[string]any{"groups": groups},
	})
}

type slogAdapter struct{ l *slog.Logger }

func (s slogAdapter) Println(v ...any) { s.l.Error(fmt.Sprint(v...)) }

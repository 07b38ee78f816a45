package web

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func get(t *testing.T, h http.Handler, method, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body)
}

// TestEndpoints checks the lifecycle endpoints, reload's answers and the
// profiles.
func TestEndpoints(t *testing.T) {
	reloadErr := errors.New("pipelines.yml:3:5: bad")
	var fail bool
	h := New(Options{
		Gatherer: prometheus.NewRegistry(),
		Reload: func() error {
			if fail {
				return reloadErr
			}
			return nil
		},
	})
	for _, tc := range []struct {
		method, path string
		before       func()
		code         int
		body         string
	}{
		{"GET", "/-/healthy", nil, 200, "Healthy"},
		{"GET", "/-/ready", nil, 503, "not ready"},
		{"GET", "/-/ready", func() { h.SetReady(true) }, 200, "Ready"},
		{"GET", "/-/reload", nil, 405, ""},
		{"POST", "/-/reload", nil, 200, ""},
		{"POST", "/-/reload", func() { fail = true }, 500, "pipelines.yml:3:5: bad"},
		{"GET", "/debug/pprof/", nil, 200, "goroutine"},
		{"GET", "/debug/pprof/heap?debug=1", nil, 200, "heap profile"},
		{"GET", "/nope", nil, 404, ""},
	} {
		if tc.before != nil {
			tc.before()
		}
		code, body := get(t, h, tc.method, tc.path)
		if code != tc.code || !strings.Contains(body, tc.body) {
			t.Errorf("%s %s: %d %q, want %d and %q", tc.method, tc.path, code, body, tc.code, tc.body)
		}
	}
}

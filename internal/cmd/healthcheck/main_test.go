package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("OK")) })
	mux.HandleFunc("/broken", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "down", http.StatusServiceUnavailable) })
	mux.HandleFunc("/hang", func(http.ResponseWriter, *http.Request) { <-release })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer close(release)

	for _, tc := range []struct {
		path string
		want string // substring of the error; "" for healthy
	}{
		{"/-/healthy", ""},
		{"/broken", "503 Service Unavailable: down"},
		{"/hang", "context deadline exceeded"},
	} {
		err := check(context.Background(), srv.URL+tc.path, 200*time.Millisecond)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v, want healthy", tc.path, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one containing %q", tc.path, err, tc.want)
		}
	}
	// Nothing listening.
	if err := check(context.Background(), "http://127.0.0.1:1/-/healthy", time.Second); err == nil {
		t.Error("no server: got healthy")
	}
}

package remotewrite

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/version"
	"github.com/prometheus/prometheus/storage/remote"

	"github.com/openanomaly/openanomaly/pkg/config"
)

// httpClient is the WriteClient built from a RemoteWriteConfig. Prometheus'
// own client builds the request (headers, Retry-Attempt, bounded error body,
// per-request timeout); observingTransport underneath it tells us the status
// code and Retry-After, which Prometheus' RecoverableError keeps unexported.
type httpClient struct {
	prom *remote.Client
	http *http.Client
}

// newHTTPClient builds the client for one endpoint.
func newHTTPClient(name string, cfg *config.RemoteWriteConfig) (*httpClient, error) {
	if cfg.URL == nil || cfg.URL.URL == nil {
		return nil, errors.New("remote write url is missing")
	}
	if s := cfg.URL.Scheme; s != "http" && s != "https" {
		return nil, fmt.Errorf("remote write url %q: scheme must be http or https", cfg.URL.Redacted())
	}
	timeout := cfg.RemoteTimeout
	if timeout <= 0 {
		timeout = config.DefaultRemoteTimeout
	}
	wc, err := remote.NewWriteClient(name, &remote.ClientConfig{
		URL:              cfg.URL,
		Timeout:          timeout,
		HTTPClientConfig: cfg.HTTPClientConfig,
		// Recoverability is decided by classify from the status code;
		// this only keeps Prometheus' error text consistent for 429.
		RetryOnRateLimit: true,
		// WriteProtoMsg left empty selects remote-write 1.0
		// (prometheus.WriteRequest, version header 0.1.0).
	})
	if err != nil {
		return nil, fmt.Errorf("remote write client: %w", err)
	}
	prom, ok := wc.(*remote.Client)
	if !ok {
		return nil, fmt.Errorf("remote write client: unexpected type %T", wc)
	}
	// Replace the HTTP client Prometheus built: its tracing transport
	// hides CloseIdleConnections, and we need our transport on top to read
	// the status and set headers. Auth and TLS come from the same config.
	hc, err := commoncfg.NewClientFromConfig(cfg.HTTPClientConfig, "remote_write")
	if err != nil {
		return nil, fmt.Errorf("remote write client: %w", err)
	}
	hc.Transport = &observingTransport{
		next:      hc.Transport,
		headers:   cfg.Headers,
		userAgent: userAgent(),
	}
	prom.Client = hc
	return &httpClient{prom: prom, http: hc}, nil
}

// userAgent is "OpenAnomaly/<version>", as the spec asks for a
// "<name>/<version>" User-Agent.
func userAgent() string {
	v := version.Version
	if v == "" {
		v = "dev"
	}
	return "OpenAnomaly/" + v
}

// Store implements WriteClient.
func (c *httpClient) Store(ctx context.Context, req []byte, attempt int) error {
	info := &responseInfo{}
	_, err := c.prom.Store(context.WithValue(ctx, responseInfoKey{}, info), req, attempt)
	if err == nil {
		return nil
	}
	if info.status != 0 && info.status/100 != 2 {
		return &HTTPError{
			StatusCode: info.status,
			RetryAfter: parseRetryAfter(info.retryAfter, time.Now()),
			Err:        err,
		}
	}
	return err
}

// CloseIdleConnections closes kept-alive connections, so that a stopped
// queue leaves no connection goroutines behind.
func (c *httpClient) CloseIdleConnections() { c.http.CloseIdleConnections() }

// responseInfoKey is the context key of *responseInfo.
type responseInfoKey struct{}

// responseInfo is filled by observingTransport with the final answer of one
// Store call. Client.Do calls RoundTrip on the caller's goroutine, so no
// locking is needed.
type responseInfo struct {
	status     int
	retryAfter string
}

// observingTransport sets the user's headers and our User-Agent and records
// the status and Retry-After of each answer in the request's responseInfo.
type observingTransport struct {
	next      http.RoundTripper
	headers   map[string]string
	userAgent string
}

// RoundTrip implements http.RoundTripper.
func (t *observingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	// A RoundTripper must not modify the request it was given.
	req = req.Clone(req.Context())
	for k, v := range t.headers {
		// Headers the protocol needs (Content-Type, Content-Encoding,
		// the version header) are set already and are never replaced.
		if req.Header.Get(k) == "" {
			req.Header.Set(k, v)
		}
	}
	req.Header.Set("User-Agent", t.userAgent)
	resp, err := t.next.RoundTrip(req)
	if err == nil {
		if info, ok := req.Context().Value(responseInfoKey{}).(*responseInfo); ok {
			info.status = resp.StatusCode
			info.retryAfter = resp.Header.Get("Retry-After")
		}
	}
	return resp, err
}

// CloseIdleConnections forwards to the wrapped transport.
func (t *observingTransport) CloseIdleConnections() {
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

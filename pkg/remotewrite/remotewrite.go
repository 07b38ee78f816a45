// Package remotewrite sends the sidecar's output to Prometheus-compatible
// stores over the remote-write 1.0 protocol.
//
// A Queue serves one endpoint: a bounded in-memory buffer (there is no WAL,
// so a full buffer drops new samples and counts them), sharded by series so
// that each series is sent in timestamp order, batched by size or deadline,
// retried with capped exponential backoff, and flushed for a bounded time at
// shutdown. A Storage fans samples out to one Queue per configured endpoint
// and swaps queues on config reload.
package remotewrite

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// WriteClient sends one snappy-compressed prompb.WriteRequest to an
// endpoint. attempt is 0 for the first try of a request and counts up on
// each retry of the same bytes.
//
// A non-2xx answer must be returned as an *HTTPError so that the queue can
// tell final answers from retryable ones; every other error is treated as a
// network error and retried.
type WriteClient interface {
	Store(ctx context.Context, req []byte, attempt int) error
}

// WriteClientFunc adapts a function to WriteClient.
type WriteClientFunc func(ctx context.Context, req []byte, attempt int) error

// Store calls f.
func (f WriteClientFunc) Store(ctx context.Context, req []byte, attempt int) error {
	return f(ctx, req, attempt)
}

// HTTPError reports that the endpoint answered a write with a non-2xx status.
type HTTPError struct {
	// StatusCode is the HTTP status of the answer.
	StatusCode int
	// RetryAfter is the wait the endpoint asked for in its Retry-After
	// header; 0 when the header is absent, unparsable or in the past.
	RetryAfter time.Duration
	// Err describes the answer (status line and the start of the body).
	Err error
}

// Error implements error.
func (e *HTTPError) Error() string {
	if e.Err != nil {
		return e.Err.Error()
	}
	return fmt.Sprintf("server returned HTTP status %d %s", e.StatusCode, http.StatusText(e.StatusCode))
}

// Unwrap returns the underlying error.
func (e *HTTPError) Unwrap() error { return e.Err }

// outcome is what the queue does with a batch after a failed attempt.
type outcome int

const (
	// retryForever: 5xx, 408 and network errors. The spec says a sender MUST
	// retry 5xx; the data is kept until it is delivered or the queue stops.
	retryForever outcome = iota
	// retryBounded: 429 with retries allowed. Retrying a rate limit forever
	// stalls every other series on the shard (prometheus#8474), so the time
	// spent on one batch is bounded by MaxRetryDuration.
	retryBounded
	// final: every other answer. The spec says other 4xx MUST NOT be retried:
	// the receiver will reject the same bytes again.
	final
)

// codeNetwork is the code label of failures without an HTTP answer.
const codeNetwork = "network"

// classify decides what a failed Store means for the batch and returns the
// code for metrics and logs and the wait the endpoint asked for.
func classify(err error, retryOnRateLimit bool) (outcome, string, time.Duration) {
	var he *HTTPError
	if !errors.As(err, &he) {
		// Refused or reset connections, timeouts, DNS failures: transient
		// by nature, so they are retried like 5xx.
		return retryForever, codeNetwork, 0
	}
	code := strconv.Itoa(he.StatusCode)
	switch {
	case he.StatusCode/100 == 5:
		return retryForever, code, he.RetryAfter
	case he.StatusCode == http.StatusRequestTimeout:
		// Proxies and load balancers answer 408 when they gave up waiting
		// for the upstream; the write did not happen and a retry is safe.
		// Prometheus drops these (prometheus#12409), losing data.
		return retryForever, code, he.RetryAfter
	case he.StatusCode == http.StatusTooManyRequests && retryOnRateLimit:
		return retryBounded, code, he.RetryAfter
	default:
		return final, code, 0
	}
}

// parseRetryAfter reads a Retry-After header, in delay-seconds or as an
// HTTP-date, relative to now. An absent or unparsable header, or a date in
// the past, gives 0: the caller then uses its own backoff.
func parseRetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if s, err := strconv.ParseInt(h, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		// Cap before converting so that absurd values cannot overflow.
		const maxSeconds = int64(24 * time.Hour / time.Second)
		return time.Duration(min(s, maxSeconds)) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

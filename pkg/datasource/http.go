package datasource

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	commoncfg "github.com/prometheus/common/config"

	"github.com/openanomaly/openanomaly/pkg/config"
)

const (
	queryRangePath = "api/v1/query_range"

	// maxErrorBody bounds how much of a non-2xx answer is read to find a
	// JSON error; errorSnippet is how much of a non-JSON body an error quotes.
	maxErrorBody = 64 << 10
	errorSnippet = 512
	// maxDrain bounds how much of an unread body is discarded before the
	// body is closed. Reading the rest lets the connection be reused; past
	// this much it is cheaper to drop the connection than to read on.
	maxDrain = 256 << 10
)

// HTTPOptions configures an HTTPQuerier.
type HTTPOptions struct {
	// URL is the store's base URL, the part before /api/v1/...: for example
	// http://prometheus:9090, http://prometheus:9090/prom for a Prometheus
	// started with --web.route-prefix=/prom, or
	// http://vmselect:8481/select/0/prometheus for a VictoriaMetrics cluster.
	// Query parameters in it (such as VictoriaMetrics' extra_label) are sent
	// with every query.
	URL string
	// HTTPClientConfig holds auth, TLS and proxy settings, as in Prometheus.
	HTTPClientConfig commoncfg.HTTPClientConfig
	// Timeout bounds each query; a shorter deadline on the query's context
	// wins. Zero means config.DefaultQueryTimeout.
	Timeout time.Duration
	// UserAgent is sent with every request.
	UserAgent string
}

// HTTPQuerier evaluates range queries through the Prometheus HTTP query API
// (POST /api/v1/query_range), which Prometheus, VictoriaMetrics, Thanos,
// Mimir and Cortex all serve. It is safe for concurrent use.
type HTTPQuerier struct {
	client  *http.Client
	url     *url.URL // full query_range endpoint, query parameters included
	timeout time.Duration
}

// NewHTTPQuerier returns a querier for the store at opts.URL.
func NewHTTPQuerier(opts HTTPOptions) (*HTTPQuerier, error) {
	if opts.URL == "" {
		return nil, errors.New("datasource url is empty")
	}
	base, err := url.Parse(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("datasource url: %w", err)
	}
	if base.Scheme != "http" && base.Scheme != "https" {
		return nil, fmt.Errorf("datasource url %q: scheme must be http or https", base.Redacted())
	}
	if base.Host == "" {
		return nil, fmt.Errorf("datasource url %q: no host", base.Redacted())
	}
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("datasource query timeout %v is negative", opts.Timeout)
	}
	if opts.Timeout == 0 {
		opts.Timeout = time.Duration(config.DefaultQueryTimeout)
	}
	// Validate works on a copy: it may rewrite deprecated fields.
	hc := opts.HTTPClientConfig
	if err := hc.Validate(); err != nil {
		return nil, fmt.Errorf("datasource http client config: %w", err)
	}
	var clientOpts []commoncfg.HTTPClientOption
	if opts.UserAgent != "" {
		clientOpts = append(clientOpts, commoncfg.WithUserAgent(opts.UserAgent))
	}
	client, err := commoncfg.NewClientFromConfig(hc, "datasource", clientOpts...)
	if err != nil {
		return nil, fmt.Errorf("datasource http client: %w", err)
	}
	// JoinPath keeps a path prefix (/select/0/prometheus, a route prefix)
	// and copes with a trailing slash on it.
	return &HTTPQuerier{
		client:  client,
		url:     base.JoinPath(queryRangePath),
		timeout: opts.Timeout,
	}, nil
}

// Error is an error answer from the query API: a non-2xx status, or a body
// whose status is "error".
type Error struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// Type is the API's errorType (bad_data, execution, timeout, canceled,
	// internal, unavailable, not_found; VictoriaMetrics sends the status
	// code, e.g. "422"); empty when the body was not a JSON error.
	Type string
	// Msg is the API's error text, or the start of a non-JSON body.
	Msg string
}

// Error implements error.
func (e *Error) Error() string {
	status := strconv.Itoa(e.StatusCode)
	if text := http.StatusText(e.StatusCode); text != "" {
		status += " " + text
	}
	if e.Type == "" {
		return fmt.Sprintf("%s: %s", status, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", status, e.Type, e.Msg)
}

// QueryRange evaluates query at every step from start to end (both
// included) and returns the matrix, its series sorted by labels.
func (q *HTTPQuerier) QueryRange(ctx context.Context, query string, start, end time.Time, step time.Duration) (Result, error) {
	if step <= 0 {
		return Result{}, fmt.Errorf("query_range: step %v is not positive", step)
	}
	if end.Before(start) {
		return Result{}, fmt.Errorf("query_range: end %v is before start %v", end, start)
	}
	res, err := q.queryRange(ctx, query, start, end, step)
	if err != nil {
		return Result{}, fmt.Errorf("query_range %s: %w", q.url.Redacted(), err)
	}
	return res, nil
}

func (q *HTTPQuerier) queryRange(ctx context.Context, query string, start, end time.Time, step time.Duration) (Result, error) {
	// WithTimeout keeps the parent's deadline when it is earlier.
	ctx, cancel := context.WithTimeout(ctx, q.timeout)
	defer cancel()

	form := url.Values{
		"query": {query},
		"start": {formatTime(start)},
		"end":   {formatTime(end)},
		"step":  {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)},
	}
	// Tell the server how long we will wait, so it gives up (and frees its
	// resources) when we do rather than finishing a query nobody reads.
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl).Truncate(time.Millisecond); left > 0 {
			form.Set("timeout", strconv.FormatFloat(left.Seconds(), 'f', -1, 64))
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, q.url.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return Result{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")

	resp, err := q.client.Do(req)
	if err != nil {
		return Result{}, err
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
		_ = resp.Body.Close()
	}()

	if resp.StatusCode/100 != 2 {
		return Result{}, readError(resp)
	}
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	// A proxy or login page answering 200 with HTML would otherwise show up
	// as "invalid character '<'"; quote it instead.
	if first, err := peekNonSpace(br); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return Result{}, fmt.Errorf("read response: %w: %v", ctxErr, err)
		}
		return Result{}, fmt.Errorf("read response: %w", err)
	} else if first != '{' {
		head, _ := br.Peek(errorSnippet)
		return Result{}, fmt.Errorf("response is not JSON (HTTP %d, Content-Type %q): %s",
			resp.StatusCode, resp.Header.Get("Content-Type"), snippet(head))
	}
	res, err := decodeResponse(br)
	if err != nil {
		// A deadline that cuts the body shows up as a read error on a
		// closed connection; name the cause.
		if ctxErr := ctx.Err(); ctxErr != nil {
			return Result{}, fmt.Errorf("%w: %v", ctxErr, err)
		}
		var apiErr *Error
		if errors.As(err, &apiErr) {
			apiErr.StatusCode = resp.StatusCode
		}
		return Result{}, err
	}
	return res, nil
}

// readError turns a non-2xx answer into an *Error, using the JSON error
// body when there is one.
func readError(resp *http.Response) error {
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if err != nil && len(body) == 0 {
		return fmt.Errorf("HTTP %d, reading body: %w", resp.StatusCode, err)
	}
	var e struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return &Error{StatusCode: resp.StatusCode, Type: e.ErrorType, Msg: e.Error}
	}
	return &Error{StatusCode: resp.StatusCode, Msg: snippet(body)}
}

// peekNonSpace skips JSON whitespace and returns the next byte unread.
func peekNonSpace(br *bufio.Reader) (byte, error) {
	for {
		b, err := br.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return 0, io.ErrUnexpectedEOF
			}
			return 0, err
		}
		switch b {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return b, br.UnreadByte()
	}
}

// snippet returns the start of a body, printable in one log line.
func snippet(b []byte) string {
	if len(b) > errorSnippet {
		b = b[:errorSnippet]
	}
	// A UTF-8 sequence cut in half becomes U+FFFD.
	s := strings.ToValidUTF8(string(bytes.TrimSpace(b)), "\uFFFD")
	if s == "" {
		return "(empty body)"
	}
	return s
}

// formatTime formats t as Unix seconds with millisecond precision, exactly.
func formatTime(t time.Time) string {
	ms := t.UnixMilli()
	sign := ""
	if ms < 0 {
		sign, ms = "-", -ms
	}
	return fmt.Sprintf("%s%d.%03d", sign, ms/1000, ms%1000)
}

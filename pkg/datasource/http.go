package datasource

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/prometheus/model/labels"

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
	// MaxPointsPerQuery is the most points per series one request may ask
	// for; longer ranges are split into several requests whose answers are
	// merged. Zero means DefaultMaxPointsPerQuery, Prometheus' own limit.
	MaxPointsPerQuery int
	// SplitInterval, when positive, also splits ranges longer than it into
	// pieces at most that long, as Thanos' query frontend does: a day read
	// at once makes one long single-threaded evaluation and one huge answer
	// in the store, while pieces of hours are evaluated concurrently and
	// bound the store's memory. Zero does not split by time.
	SplitInterval time.Duration
	// Concurrency is how many pieces of a split range are requested at
	// once. Zero means DefaultSplitConcurrency.
	Concurrency int
}

const (
	// DefaultMaxPointsPerQuery is Prometheus' limit on the points per series
	// of one range query ("exceeded maximum resolution of 11,000 points per
	// timeseries"); VictoriaMetrics allows 30,000 by default.
	DefaultMaxPointsPerQuery = 11000
	// DefaultSplitConcurrency keeps a split query from hitting the store
	// with more than a few requests at once: the pieces are big, and
	// Prometheus runs at most 20 queries concurrently for all its clients.
	DefaultSplitConcurrency = 2
)

// HTTPQuerier evaluates range queries through the Prometheus HTTP query API
// (POST /api/v1/query_range), which Prometheus, VictoriaMetrics, Thanos,
// Mimir and Cortex all serve. It is safe for concurrent use.
type HTTPQuerier struct {
	client        *http.Client
	url           *url.URL // full query_range endpoint, query parameters included
	timeout       time.Duration
	maxPoints     int
	splitInterval time.Duration
	concurrency   int
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
	if opts.SplitInterval < 0 {
		return nil, fmt.Errorf("datasource split interval %v is negative", opts.SplitInterval)
	}
	if opts.MaxPointsPerQuery < 0 || opts.Concurrency < 0 {
		return nil, fmt.Errorf("datasource: max points per query (%d) and concurrency (%d) must not be negative",
			opts.MaxPointsPerQuery, opts.Concurrency)
	}
	if opts.MaxPointsPerQuery == 0 {
		opts.MaxPointsPerQuery = DefaultMaxPointsPerQuery
	}
	if opts.Concurrency == 0 {
		opts.Concurrency = DefaultSplitConcurrency
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
		client:        client,
		url:           base.JoinPath(queryRangePath),
		timeout:       opts.Timeout,
		maxPoints:     opts.MaxPointsPerQuery,
		splitInterval: opts.SplitInterval,
		concurrency:   opts.Concurrency,
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
//
// A range with more points per series than the store allows, or longer than
// the split interval, is split into pieces on the same step grid, requested with small bounded concurrency
// and merged per series; the warnings of every piece are kept and the
// result is partial when any piece was. Each piece has its own timeout; the
// caller's deadline bounds the whole.
func (q *HTTPQuerier) QueryRange(ctx context.Context, query string, start, end time.Time, step time.Duration) (Result, error) {
	if step <= 0 {
		return Result{}, fmt.Errorf("query_range: step %v is not positive", step)
	}
	if end.Before(start) {
		return Result{}, fmt.Errorf("query_range: end %v is before start %v", end, start)
	}
	maxPoints := q.maxPoints
	if q.splitInterval > 0 {
		maxPoints = min(maxPoints, max(1, int(q.splitInterval/step)))
	}
	pieces := splitRange(start, end, step, maxPoints)
	if len(pieces) == 1 {
		res, err := q.queryRange(ctx, query, start, end, step)
		if err != nil {
			return Result{}, fmt.Errorf("query_range %s: %w", q.url.Redacted(), err)
		}
		return res, nil
	}
	results, err := q.queryPieces(ctx, query, pieces, step)
	if err != nil {
		return Result{}, fmt.Errorf("query_range %s: %w", q.url.Redacted(), err)
	}
	return mergeResults(results), nil
}

// timeRange is one piece of a split range; both ends are on the step grid
// of the whole, except that the last piece keeps the caller's end.
type timeRange struct{ start, end time.Time }

// splitRange cuts [start, end] into pieces of at most maxPoints points of
// the grid start + k·step each. Pieces do not share grid points, so a
// well-behaved store returns every point once.
func splitRange(start, end time.Time, step time.Duration, maxPoints int) []timeRange {
	// Number of grid points minus one, in integer arithmetic: the grid is
	// exact in nanoseconds, and a float would lose points at the seams.
	last := int64(end.Sub(start) / step)
	if last < int64(maxPoints) {
		return []timeRange{{start, end}}
	}
	var out []timeRange
	for first := int64(0); first <= last; first += int64(maxPoints) {
		r := timeRange{start: start.Add(time.Duration(first) * step)}
		if stop := first + int64(maxPoints) - 1; stop < last {
			r.end = start.Add(time.Duration(stop) * step)
		} else {
			r.end = end
		}
		out = append(out, r)
	}
	return out
}

// queryPieces requests every piece, at most q.concurrency at once, and
// returns their results in piece order. The first error cancels the rest.
func (q *HTTPQuerier) queryPieces(ctx context.Context, query string, pieces []timeRange, step time.Duration) ([]Result, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	results := make([]Result, len(pieces))
	sem := make(chan struct{}, q.concurrency)
	var (
		wg       sync.WaitGroup
		mtx      sync.Mutex
		firstErr error
	)
	for i, p := range pieces {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			res, err := q.queryRange(ctx, query, p.start, p.end, step)
			if err != nil {
				mtx.Lock()
				// Only the first error is news; the others are
				// mostly "context canceled" caused by it.
				if firstErr == nil {
					firstErr = fmt.Errorf("piece %d of %d (%s to %s): %w", i+1, len(pieces),
						p.start.UTC().Format(time.RFC3339Nano), p.end.UTC().Format(time.RFC3339Nano), err)
					cancel(firstErr)
				}
				mtx.Unlock()
				return
			}
			results[i] = res
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		// The caller's context ended between pieces.
		return nil, context.Cause(ctx)
	}
	return results, nil
}

// mergeResults joins the answers to consecutive pieces of one range: series
// with the same labels are concatenated, and a sample at or before the
// newest one already taken is dropped, so a store that widens a piece to its
// own grid (VictoriaMetrics aligns start and end to the step) cannot
// duplicate the points at a seam. Warnings are kept once each, in order.
func mergeResults(results []Result) Result {
	var (
		out      Result
		byHash   = map[uint64][]int{}
		seenWarn = map[string]bool{}
	)
	for _, r := range results {
		out.Partial = out.Partial || r.Partial
		for _, w := range r.Warnings {
			if !seenWarn[w] {
				seenWarn[w] = true
				out.Warnings = append(out.Warnings, w)
			}
		}
		for _, s := range r.Series {
			h := s.Labels.Hash()
			idx := -1
			for _, i := range byHash[h] {
				if labels.Equal(out.Series[i].Labels, s.Labels) {
					idx = i
					break
				}
			}
			if idx < 0 {
				byHash[h] = append(byHash[h], len(out.Series))
				out.Series = append(out.Series, Series{Labels: s.Labels, Samples: s.Samples})
				continue
			}
			dst := &out.Series[idx]
			samples := s.Samples
			if n := len(dst.Samples); n > 0 {
				lastT := dst.Samples[n-1].T
				k, _ := slices.BinarySearchFunc(samples, lastT+1, func(a Sample, t int64) int { return cmp.Compare(a.T, t) })
				samples = samples[k:]
			}
			dst.Samples = append(dst.Samples, samples...)
		}
	}
	slices.SortFunc(out.Series, func(a, b Series) int { return labels.Compare(a.Labels, b.Labels) })
	return out
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
		return Result{}, withoutURL(err)
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

// withoutURL drops the URL that net/http puts into its errors (Post
// "http://…": dial tcp …): the caller's message names the endpoint already,
// and a log line should not carry it twice.
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue == err {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

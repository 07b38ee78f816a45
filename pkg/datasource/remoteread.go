package datasource

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/gogo/protobuf/proto"
	"github.com/golang/snappy"
	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	promql "github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/openanomaly/openanomaly/pkg/config"
)

const (
	// DefaultLookbackDelta is how far back a grid point looks for a raw
	// sample, as Prometheus' --query.lookback-delta.
	DefaultLookbackDelta = 5 * time.Minute
	// DefaultMaxFrameBytes bounds one frame of a streamed answer, as
	// Prometheus' own remote-read client does (remote.DefaultChunkedReadLimit).
	// Prometheus servers send frames of about 1 MiB.
	DefaultMaxFrameBytes = 50 << 20
	// DefaultMaxSampledBytes bounds a sampled (non-streamed) answer, which
	// has to be held in memory whole, compressed and then decompressed.
	DefaultMaxSampledBytes = 512 << 20

	contentTypeSampled  = "application/x-protobuf"
	contentTypeStreamed = "application/x-streamed-protobuf"
	// protoStreamed is the proto parameter of a streamed answer's
	// Content-Type.
	protoStreamed = "prometheus.ChunkedReadResponse"
)

// RemoteReadOptions configures a RemoteReadQuerier.
type RemoteReadOptions struct {
	// URL is the full remote-read endpoint, for example
	// http://prometheus:9090/api/v1/read.
	URL string
	// HTTPClientConfig holds auth, TLS and proxy settings, as in Prometheus.
	HTTPClientConfig commoncfg.HTTPClientConfig
	// Timeout bounds each read; a shorter deadline on the context wins.
	// Zero means config.DefaultQueryTimeout.
	Timeout time.Duration
	// UserAgent is sent with every request.
	UserAgent string
	// LookbackDelta is how far before a grid point a raw sample still
	// counts for it. Zero means DefaultLookbackDelta.
	LookbackDelta time.Duration
	// MaxFrameBytes bounds one frame of a streamed answer. Zero means
	// DefaultMaxFrameBytes.
	MaxFrameBytes int
	// MaxSampledBytes bounds a sampled answer, compressed and
	// decompressed. Zero means DefaultMaxSampledBytes.
	MaxSampledBytes int
}

// RemoteReadQuerier reads raw samples through Prometheus' remote-read
// protocol and turns them into the same step-aligned series a query_range
// of the same selector returns.
//
// Remote read returns the raw samples of a series selector, not the result
// of a PromQL expression, so this querier accepts only a plain vector
// selector (`up`, `http_requests_total{job="api",code=~"5.."}`), without
// offset or @; CheckExpr says whether an expression is one. Each point
// t = start + k·step gets the newest sample in (t − lookback, t], as
// Prometheus 3 evaluates an instant vector selector; a stale marker there,
// or no sample, leaves a gap. Series keep their __name__, as query_range
// keeps it for a selector.
//
// It asks for streamed XOR chunks first and falls back to the sampled
// answer for stores that only have that. It is safe for concurrent use.
type RemoteReadQuerier struct {
	client          *http.Client
	url             *url.URL
	timeout         time.Duration
	lookback        time.Duration
	maxFrameBytes   int
	maxSampledBytes int
}

// NewRemoteReadQuerier returns a querier for the remote-read endpoint at
// opts.URL.
func NewRemoteReadQuerier(opts RemoteReadOptions) (*RemoteReadQuerier, error) {
	if opts.URL == "" {
		return nil, errors.New("remote_read_url is empty")
	}
	u, err := url.Parse(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("remote_read_url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("remote_read_url %q: scheme must be http or https", u.Redacted())
	}
	if u.Host == "" {
		return nil, fmt.Errorf("remote_read_url %q: no host", u.Redacted())
	}
	if opts.Timeout < 0 || opts.LookbackDelta < 0 || opts.MaxFrameBytes < 0 || opts.MaxSampledBytes < 0 {
		return nil, errors.New("remote read: timeout, lookback and size limits must not be negative")
	}
	q := &RemoteReadQuerier{
		url:             u,
		timeout:         cmp.Or(opts.Timeout, time.Duration(config.DefaultQueryTimeout)),
		lookback:        cmp.Or(opts.LookbackDelta, DefaultLookbackDelta),
		maxFrameBytes:   cmp.Or(opts.MaxFrameBytes, DefaultMaxFrameBytes),
		maxSampledBytes: cmp.Or(opts.MaxSampledBytes, DefaultMaxSampledBytes),
	}
	hc := opts.HTTPClientConfig
	if err := hc.Validate(); err != nil {
		return nil, fmt.Errorf("datasource http client config: %w", err)
	}
	var clientOpts []commoncfg.HTTPClientOption
	if opts.UserAgent != "" {
		clientOpts = append(clientOpts, commoncfg.WithUserAgent(opts.UserAgent))
	}
	if q.client, err = commoncfg.NewClientFromConfig(hc, "datasource", clientOpts...); err != nil {
		return nil, fmt.Errorf("datasource http client: %w", err)
	}
	return q, nil
}

// ErrNotSelector is returned for an expression that remote read cannot
// answer: anything but a plain vector selector.
var ErrNotSelector = errors.New("the remote_read datasource reads only plain vector selectors such as up{job=\"api\"}; " +
	"use read_method query_range for PromQL expressions")

// CheckExpr reports whether expr can be read through remote read, with an
// error wrapping ErrNotSelector that says why not. Config loading calls it
// for every rule, so a bad rule fails the load instead of every evaluation.
func (q *RemoteReadQuerier) CheckExpr(expr string) error {
	_, err := selectorMatchers(expr)
	return err
}

// ExprChecker is implemented by queriers that accept only some expressions
// (RemoteReadQuerier); the config loader calls CheckExpr for every rule.
type ExprChecker interface {
	CheckExpr(expr string) error
}

var _ ExprChecker = (*RemoteReadQuerier)(nil)

// selectorMatchers parses expr and returns its matchers if it is a plain
// vector selector.
func selectorMatchers(expr string) ([]*labels.Matcher, error) {
	e, err := promql.NewParser(promql.Options{}).ParseExpr(expr)
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w", expr, err)
	}
	for {
		p, ok := e.(*promql.ParenExpr)
		if !ok {
			break
		}
		e = p.Expr
	}
	vs, ok := e.(*promql.VectorSelector)
	if !ok {
		return nil, fmt.Errorf("%w; %q is a %s", ErrNotSelector, expr, describeExpr(e))
	}
	if vs.OriginalOffset != 0 || vs.OriginalOffsetExpr != nil || vs.Timestamp != nil || vs.StartOrEnd != 0 {
		return nil, fmt.Errorf("%w; %q has an offset or @ modifier", ErrNotSelector, expr)
	}
	if vs.Anchored || vs.Smoothed {
		return nil, fmt.Errorf("%w; %q has a modifier", ErrNotSelector, expr)
	}
	return vs.LabelMatchers, nil
}

func describeExpr(e promql.Expr) string {
	switch e := e.(type) {
	case *promql.Call:
		return "call of " + e.Func.Name + "()"
	case *promql.AggregateExpr:
		return "aggregation (" + e.Op.String() + ")"
	case *promql.BinaryExpr:
		return "binary expression"
	case *promql.MatrixSelector:
		return "range selector"
	case *promql.SubqueryExpr:
		return "subquery"
	case *promql.NumberLiteral, *promql.StringLiteral:
		return "literal"
	}
	return "PromQL expression"
}

// QueryRange reads the raw samples of the selector query from
// start − lookback to end and aligns them to the grid start + k·step.
func (q *RemoteReadQuerier) QueryRange(ctx context.Context, query string, start, end time.Time, step time.Duration) (Result, error) {
	if step <= 0 {
		return Result{}, fmt.Errorf("remote read: step %v is not positive", step)
	}
	if end.Before(start) {
		return Result{}, fmt.Errorf("remote read: end %v is before start %v", end, start)
	}
	matchers, err := selectorMatchers(query)
	if err != nil {
		return Result{}, err
	}
	res, err := q.read(ctx, matchers, start, end, step)
	if err != nil {
		return Result{}, fmt.Errorf("remote read %s: %w", q.url.Redacted(), err)
	}
	return res, nil
}

func (q *RemoteReadQuerier) read(ctx context.Context, matchers []*labels.Matcher, start, end time.Time, step time.Duration) (Result, error) {
	pm, err := remote.ToLabelMatchers(matchers)
	if err != nil {
		return Result{}, err
	}
	g := grid{start: start.UnixMilli(), end: end.UnixMilli(), step: step.Milliseconds(), lookback: q.lookback.Milliseconds()}
	if g.step <= 0 {
		return Result{}, fmt.Errorf("step %v is shorter than a millisecond", step)
	}
	// The lookback window of the first point is open on the left.
	readStart := g.start - g.lookback + 1
	req := &prompb.ReadRequest{
		Queries: []*prompb.Query{{
			StartTimestampMs: readStart,
			EndTimestampMs:   g.end,
			Matchers:         pm,
			Hints:            &prompb.ReadHints{StepMs: g.step, StartMs: readStart, EndMs: g.end},
		}},
		// The server picks the first type it supports; Prometheus since
		// 2.13 streams, other stores may only sample.
		AcceptedResponseTypes: []prompb.ReadRequest_ResponseType{
			prompb.ReadRequest_STREAMED_XOR_CHUNKS, prompb.ReadRequest_SAMPLES,
		},
	}
	raw, err := proto.Marshal(req)
	if err != nil {
		return Result{}, fmt.Errorf("marshal request: %w", err)
	}

	ctx, cancel := context.WithTimeout(ctx, q.timeout)
	defer cancel()
	httpReq, err := http.NewRequestWithContext(ctx, http.MethodPost, q.url.String(), bytes.NewReader(snappy.Encode(nil, raw)))
	if err != nil {
		return Result{}, err
	}
	httpReq.Header.Set("Content-Encoding", "snappy")
	httpReq.Header.Set("Accept-Encoding", "snappy")
	httpReq.Header.Set("Content-Type", contentTypeSampled)
	httpReq.Header.Set("X-Prometheus-Remote-Read-Version", "0.1.0")

	resp, err := q.client.Do(httpReq)
	if err != nil {
		return Result{}, withoutURL(err)
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
		_ = resp.Body.Close()
	}()
	if resp.StatusCode/100 != 2 {
		// Remote-read errors are plain text.
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return Result{}, &Error{StatusCode: resp.StatusCode, Msg: snippet(body)}
	}

	ct := resp.Header.Get("Content-Type")
	mediaType, params, _ := mime.ParseMediaType(ct)
	var series []Series
	switch {
	case mediaType == contentTypeStreamed && params["proto"] == protoStreamed:
		series, err = q.readStreamed(resp.Body, g)
	case mediaType == contentTypeSampled:
		series, err = q.readSampled(resp.Body, g)
	default:
		return Result{}, fmt.Errorf("unsupported content type %q (HTTP %d)", ct, resp.StatusCode)
	}
	if err != nil {
		// A deadline that cuts the stream shows up as a read error; name
		// the cause.
		if ctxErr := ctx.Err(); ctxErr != nil {
			return Result{}, fmt.Errorf("%w: %v", ctxErr, err)
		}
		return Result{}, err
	}
	slices.SortFunc(series, func(a, b Series) int { return labels.Compare(a.Labels, b.Labels) })
	return Result{Series: series}, nil
}

// readStreamed reads a streamed answer: frames of uvarint length,
// big-endian CRC-32 (Castagnoli) and a ChunkedReadResponse. A series that
// does not fit one frame continues in the next frames with the same labels;
// each series is aligned as soon as it is complete, so only one series'
// raw samples are held at a time.
func (q *RemoteReadQuerier) readStreamed(body io.Reader, g grid) ([]Series, error) {
	cr := remote.NewChunkedReader(body, uint64(q.maxFrameBytes), nil)
	var (
		out     []Series
		seen    = map[uint64]bool{}
		curLbls labels.Labels
		cur     []Sample
		have    bool
		b       labels.ScratchBuilder
	)
	flush := func() {
		if have {
			if s := g.align(curLbls, cur); len(s.Samples) > 0 {
				out = append(out, s)
			}
		}
		cur, have = cur[:0], false
	}
	for frame := 0; ; frame++ {
		var msg prompb.ChunkedReadResponse
		err := cr.NextProto(&msg)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("stream cut short in frame %d: %w", frame, err)
			}
			return nil, fmt.Errorf("frame %d: %w", frame, err)
		}
		if msg.QueryIndex != 0 {
			return nil, fmt.Errorf("frame %d answers query %d; only query 0 was asked", frame, msg.QueryIndex)
		}
		for _, cs := range msg.ChunkedSeries {
			lset, err := toLabels(&b, cs.Labels)
			if err != nil {
				return nil, fmt.Errorf("frame %d: %w", frame, err)
			}
			if !have || !labels.Equal(lset, curLbls) {
				flush()
				h := lset.Hash()
				if seen[h] {
					return nil, fmt.Errorf("frame %d: series %s was already streamed", frame, lset)
				}
				seen[h] = true
				curLbls, have = lset, true
			}
			for _, c := range cs.Chunks {
				if cur, err = appendChunk(cur, c, g.readStart(), g.end); err != nil {
					return nil, fmt.Errorf("frame %d: series %s: %w", frame, lset, err)
				}
			}
		}
	}
	flush()
	return out, nil
}

// readSampled reads a sampled answer: one snappy-compressed ReadResponse.
func (q *RemoteReadQuerier) readSampled(body io.Reader, g grid) ([]Series, error) {
	compressed, err := io.ReadAll(io.LimitReader(body, int64(q.maxSampledBytes)+1))
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	if len(compressed) > q.maxSampledBytes {
		return nil, fmt.Errorf("sampled response is larger than %d bytes; narrow the selector or use a store that streams", q.maxSampledBytes)
	}
	n, err := snappy.DecodedLen(compressed)
	if err != nil {
		return nil, fmt.Errorf("decompress response: %w", err)
	}
	if n > q.maxSampledBytes {
		return nil, fmt.Errorf("sampled response decompresses to %d bytes, more than %d", n, q.maxSampledBytes)
	}
	raw, err := snappy.Decode(nil, compressed)
	if err != nil {
		return nil, fmt.Errorf("decompress response: %w", err)
	}
	var msg prompb.ReadResponse
	if err := proto.Unmarshal(raw, &msg); err != nil {
		return nil, fmt.Errorf("decode response: %w", err)
	}
	if len(msg.Results) != 1 {
		return nil, fmt.Errorf("%d results for 1 query", len(msg.Results))
	}
	var (
		out  []Series
		seen = map[uint64]bool{}
		b    labels.ScratchBuilder
		buf  []Sample
	)
	for _, ts := range msg.Results[0].Timeseries {
		lset, err := toLabels(&b, ts.Labels)
		if err != nil {
			return nil, err
		}
		h := lset.Hash()
		if seen[h] {
			return nil, fmt.Errorf("duplicate series %s in result", lset)
		}
		seen[h] = true
		if len(ts.Histograms) > 0 {
			return nil, fmt.Errorf("series %s has native histogram samples; remote read can only give the models floats", lset)
		}
		buf = buf[:0]
		for _, s := range ts.Samples {
			if s.Timestamp >= g.readStart() && s.Timestamp <= g.end {
				buf = append(buf, Sample{T: s.Timestamp, V: s.Value})
			}
		}
		if s := g.align(lset, buf); len(s.Samples) > 0 {
			out = append(out, s)
		}
	}
	return out, nil
}

// appendChunk decodes one XOR chunk and appends its samples within
// [mint, maxt]. Chunks may reach beyond the asked range and may overlap
// each other; align sorts that out.
func appendChunk(dst []Sample, c prompb.Chunk, mint, maxt int64) ([]Sample, error) {
	if c.MaxTimeMs < mint || c.MinTimeMs > maxt {
		return dst, nil
	}
	switch c.Type {
	case prompb.Chunk_XOR, prompb.Chunk_XOR2:
	case prompb.Chunk_HISTOGRAM, prompb.Chunk_FLOAT_HISTOGRAM, prompb.Chunk_HISTOGRAM_ST, prompb.Chunk_FLOAT_HISTOGRAM_ST:
		return nil, errors.New("native histogram chunk; remote read can only give the models floats")
	default:
		return nil, fmt.Errorf("unknown chunk encoding %v", c.Type)
	}
	// prompb's encodings number the same as chunkenc's.
	chk, err := chunkenc.FromData(chunkenc.Encoding(c.Type), c.Data)
	if err != nil {
		return nil, err
	}
	it := chk.Iterator(nil)
	for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
		if vt != chunkenc.ValFloat {
			return nil, fmt.Errorf("chunk holds %v samples, want floats", vt)
		}
		t, v := it.At()
		if t > maxt {
			break
		}
		if t >= mint {
			dst = append(dst, Sample{T: t, V: v})
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("decode chunk: %w", err)
	}
	return dst, nil
}

// toLabels checks a series' labels as Prometheus' client does (valid,
// non-empty names and values, no name twice) and copies them: the frame's
// buffer is reused for the next frame.
func toLabels(b *labels.ScratchBuilder, pl []prompb.Label) (labels.Labels, error) {
	b.Reset()
	for _, l := range pl {
		// Prometheus 3 allows any UTF-8 label name.
		if l.Name == "" || !utf8.ValidString(l.Name) || !utf8.ValidString(l.Value) {
			return labels.EmptyLabels(), fmt.Errorf("invalid label name %q", l.Name)
		}
		if l.Value == "" {
			// An empty value is the same as no label.
			continue
		}
		b.Add(l.Name, l.Value)
	}
	b.Sort()
	lset := b.Labels()
	if name, dup := lset.HasDuplicateLabelNames(); dup {
		return labels.EmptyLabels(), fmt.Errorf("label %q twice in series %s", name, lset)
	}
	return lset, nil
}

// grid is the step grid a remote read is aligned to; all times in ms.
type grid struct {
	start, end, step, lookback int64
}

// readStart is the oldest sample time any grid point can use.
func (g grid) readStart() int64 { return g.start - g.lookback + 1 }

// align turns raw samples into the series query_range would return for a
// selector: for each grid point t, the newest sample in (t − lookback, t],
// unless that sample is a stale marker. raw may be unsorted (overlapping
// chunks); at equal timestamps the first sample read wins.
func (g grid) align(lset labels.Labels, raw []Sample) Series {
	if !slices.IsSortedFunc(raw, func(a, b Sample) int { return cmp.Compare(a.T, b.T) }) {
		slices.SortStableFunc(raw, func(a, b Sample) int { return cmp.Compare(a.T, b.T) })
	}
	raw = slices.CompactFunc(raw, func(a, b Sample) bool { return a.T == b.T })
	s := Series{Labels: lset}
	i := -1 // newest raw sample at or before t
	for t := g.start; t <= g.end; t += g.step {
		for i+1 < len(raw) && raw[i+1].T <= t {
			i++
		}
		if i < 0 || raw[i].T <= t-g.lookback || value.IsStaleNaN(raw[i].V) {
			continue
		}
		s.Samples = append(s.Samples, Sample{T: t, V: raw[i].V})
	}
	return s
}

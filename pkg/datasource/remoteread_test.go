package datasource

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

var staleNaN = math.Float64frombits(value.StaleNaN)

func TestSelectorMatchers(t *testing.T) {
	for _, expr := range []string{
		`up`,
		`up{job="api"}`,
		`{__name__=~"http_.*",code!="200"}`,
		`(up)`,
	} {
		if _, err := selectorMatchers(expr); err != nil {
			t.Errorf("%s: %v", expr, err)
		}
	}
	for expr, want := range map[string]string{
		`rate(x[5m])`:      "call of rate()",
		`sum by (a) (x)`:   "aggregation (sum)",
		`x / y`:            "binary expression",
		`x[5m]`:            "range selector",
		`x offset 5m`:      "offset or @",
		`x @ 1700000000`:   "offset or @",
		`rate(x[5m])[1h:]`: "subquery",
		`1`:                "literal",
	} {
		_, err := selectorMatchers(expr)
		if !errors.Is(err, ErrNotSelector) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want ErrNotSelector mentioning %q", expr, err, want)
		}
	}
	if _, err := selectorMatchers(`up{`); err == nil || errors.Is(err, ErrNotSelector) {
		t.Errorf("parse error: err = %v", err)
	}
	q, err := NewRemoteReadQuerier(RemoteReadOptions{URL: "http://127.0.0.1:1/api/v1/read"})
	if err != nil {
		t.Fatal(err)
	}
	var c ExprChecker = q
	if err := c.CheckExpr(`sum(up)`); !errors.Is(err, ErrNotSelector) {
		t.Errorf("CheckExpr(sum(up)) = %v", err)
	}
	// QueryRange refuses before sending anything (port 1 would fail).
	if _, err := q.QueryRange(context.Background(), `sum(up)`, testStart, testEnd, time.Second); !errors.Is(err, ErrNotSelector) {
		t.Errorf("QueryRange(sum(up)) = %v", err)
	}
}

func TestGridAlign(t *testing.T) {
	const m = 60_000
	g := grid{start: 10 * m, end: 20 * m, step: m, lookback: 5 * m}
	raw := []Sample{
		{5*m + 1, 1},    // the newest for 10m: inside (5m, 10m]
		{10*m + 30, 99}, // overlapping chunk repeats it below, first wins
		{12 * m, 2},
		{10*m + 30, 3},
		{13*m + 1, staleNaN}, // ends the series: 14m has a gap
		{15 * m, 4},          // comes back at 15m
		{15 * m, 5},          // duplicate timestamp: first wins
	}
	s := g.align(labels.FromStrings("a", "b"), raw)
	want := []Sample{
		{10 * m, 1}, {11 * m, 99}, {12 * m, 2}, {13 * m, 2},
		// 14m: the newest sample is the stale marker.
		{15 * m, 4}, {16 * m, 4}, {17 * m, 4}, {18 * m, 4}, {19 * m, 4},
		// 20m: 15m is exactly 5m before, outside the open window.
	}
	if fmt.Sprint(s.Samples) != fmt.Sprint(want) {
		t.Errorf("aligned\n %v\nwant\n %v", s.Samples, want)
	}
	if g.readStart() != 5*m+1 {
		t.Errorf("readStart = %d", g.readStart())
	}
}

// xorChunk encodes samples as one XOR chunk.
func xorChunk(t *testing.T, samples ...Sample) prompb.Chunk {
	t.Helper()
	c := chunkenc.NewXORChunk()
	app, err := c.Appender()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range samples {
		app.Append(0, s.T, s.V)
	}
	return prompb.Chunk{
		MinTimeMs: samples[0].T, MaxTimeMs: samples[len(samples)-1].T,
		Type: prompb.Chunk_XOR, Data: c.Bytes(),
	}
}

// frame encodes one streamed frame: uvarint size, CRC-32C, payload.
func frame(t *testing.T, msg *prompb.ChunkedReadResponse) []byte {
	t.Helper()
	payload, err := proto.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.Write(binary.AppendUvarint(nil, uint64(len(payload))))
	_ = binary.Write(&b, binary.BigEndian, crc32.Checksum(payload, crc32.MakeTable(crc32.Castagnoli)))
	b.Write(payload)
	return b.Bytes()
}

func promLabels(kv ...string) []prompb.Label {
	var out []prompb.Label
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

// remoteReadServer answers every read with status, contentType and body,
// and keeps the last request.
type remoteReadServer struct {
	t           *testing.T
	status      int
	contentType string
	body        []byte
	lastReq     *prompb.ReadRequest
	lastHeader  http.Header
}

func (s *remoteReadServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	compressed, _ := io.ReadAll(r.Body)
	raw, err := snappy.Decode(nil, compressed)
	if err != nil {
		s.t.Errorf("request is not snappy: %v", err)
	}
	var req prompb.ReadRequest
	if err := proto.Unmarshal(raw, &req); err != nil {
		s.t.Errorf("request is not a ReadRequest: %v", err)
	}
	s.lastReq, s.lastHeader = &req, r.Header.Clone()
	w.Header().Set("Content-Type", s.contentType)
	w.WriteHeader(s.status)
	_, _ = w.Write(s.body)
}

func (s *remoteReadServer) querier(t *testing.T, opts RemoteReadOptions) *RemoteReadQuerier {
	t.Helper()
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	opts.URL = srv.URL + "/api/v1/read"
	q, err := NewRemoteReadQuerier(opts)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

const streamedCT = "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse"

// The range all scripted reads ask for: 10 points a minute apart.
var (
	rrStart = time.UnixMilli(1_700_000_040_000)
	rrEnd   = rrStart.Add(9 * time.Minute)
	rrStep  = time.Minute
)

func rrT(minutes float64) int64 { return rrStart.UnixMilli() + int64(minutes*60_000) }

func TestRemoteReadStreamed(t *testing.T) {
	// Series a is split over two frames, its chunks overlap and reach
	// beyond the range on both sides; it has a stale marker.
	a1 := xorChunk(t, Sample{rrT(-10), 100}, Sample{rrT(-1), 1}, Sample{rrT(0.5), 2}, Sample{rrT(2), 3})
	a2 := xorChunk(t, Sample{rrT(2), 3}, Sample{rrT(3.5), staleNaN}, Sample{rrT(5.5), 4})
	a3 := xorChunk(t, Sample{rrT(6), 5}, Sample{rrT(9.5), 6}, Sample{rrT(30), 7})
	b1 := xorChunk(t, Sample{rrT(8), 8})
	body := append(frame(t, &prompb.ChunkedReadResponse{ChunkedSeries: []*prompb.ChunkedSeries{
		{Labels: promLabels("__name__", "m", "s", "a"), Chunks: []prompb.Chunk{a1, a2}},
	}}), frame(t, &prompb.ChunkedReadResponse{ChunkedSeries: []*prompb.ChunkedSeries{
		{Labels: promLabels("__name__", "m", "s", "a"), Chunks: []prompb.Chunk{a3}},
	}})...)
	body = append(body, frame(t, &prompb.ChunkedReadResponse{ChunkedSeries: []*prompb.ChunkedSeries{
		{Labels: promLabels("__name__", "m", "s", "b"), Chunks: []prompb.Chunk{b1}},
		// A series with no sample in any lookback window is left out, as
		// query_range leaves it out.
		{Labels: promLabels("__name__", "m", "s", "c"), Chunks: []prompb.Chunk{xorChunk(t, Sample{rrT(-6), 1})}},
	}})...)
	srv := &remoteReadServer{t: t, status: 200, contentType: streamedCT, body: body}
	q := srv.querier(t, RemoteReadOptions{UserAgent: "openanomaly/test"})
	res, err := q.QueryRange(context.Background(), `m{s=~"a|b|c"}`, rrStart, rrEnd, rrStep)
	if err != nil {
		t.Fatal(err)
	}

	// The request.
	h := srv.lastHeader
	if h.Get("Content-Encoding") != "snappy" || h.Get("X-Prometheus-Remote-Read-Version") != "0.1.0" ||
		h.Get("Content-Type") != "application/x-protobuf" || h.Get("User-Agent") != "openanomaly/test" {
		t.Errorf("request headers %v", h)
	}
	req := srv.lastReq
	if len(req.Queries) != 1 || len(req.AcceptedResponseTypes) != 2 ||
		req.AcceptedResponseTypes[0] != prompb.ReadRequest_STREAMED_XOR_CHUNKS || req.AcceptedResponseTypes[1] != prompb.ReadRequest_SAMPLES {
		t.Fatalf("request %v", req)
	}
	if rq := req.Queries[0]; rq.StartTimestampMs != rrT(-5)+1 || rq.EndTimestampMs != rrEnd.UnixMilli() || len(rq.Matchers) != 2 {
		t.Errorf("query %v, want [%d, %d] with 2 matchers", rq, rrT(-5)+1, rrEnd.UnixMilli())
	}

	want := []Series{
		{Labels: labels.FromStrings("__name__", "m", "s", "a"), Samples: []Sample{
			{rrT(0), 1}, {rrT(1), 2}, {rrT(2), 3}, {rrT(3), 3},
			// 4 and 5: stale marker at 3.5.
			{rrT(6), 5}, {rrT(7), 5}, {rrT(8), 5}, {rrT(9), 5},
		}},
		{Labels: labels.FromStrings("__name__", "m", "s", "b"), Samples: []Sample{{rrT(8), 8}, {rrT(9), 8}}},
	}
	if fmt.Sprint(res.Series) != fmt.Sprint(want) {
		t.Errorf("series\n %v\nwant\n %v", res.Series, want)
	}
	if res.Partial || len(res.Warnings) > 0 {
		t.Errorf("partial %v warnings %q", res.Partial, res.Warnings)
	}
}

func TestRemoteReadSampled(t *testing.T) {
	resp := &prompb.ReadResponse{Results: []*prompb.QueryResult{{Timeseries: []*prompb.TimeSeries{
		{Labels: promLabels("__name__", "m", "s", "b"), Samples: []prompb.Sample{
			{Timestamp: rrT(-7), Value: 1}, {Timestamp: rrT(1), Value: 2}, {Timestamp: rrT(1.5), Value: staleNaN},
			{Timestamp: rrT(4), Value: 3},
		}},
		{Labels: promLabels("__name__", "m", "s", "a", "empty", ""), Samples: []prompb.Sample{{Timestamp: rrT(9), Value: 9}}},
	}}}}
	raw, err := proto.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	srv := &remoteReadServer{t: t, status: 200, contentType: "application/x-protobuf", body: snappy.Encode(nil, raw)}
	q := srv.querier(t, RemoteReadOptions{})
	res, err := q.QueryRange(context.Background(), `m`, rrStart, rrEnd, rrStep)
	if err != nil {
		t.Fatal(err)
	}
	want := []Series{
		{Labels: labels.FromStrings("__name__", "m", "s", "a"), Samples: []Sample{{rrT(9), 9}}},
		{Labels: labels.FromStrings("__name__", "m", "s", "b"), Samples: []Sample{
			{rrT(1), 2}, {rrT(4), 3}, {rrT(5), 3}, {rrT(6), 3}, {rrT(7), 3}, {rrT(8), 3},
		}},
	}
	if fmt.Sprint(res.Series) != fmt.Sprint(want) {
		t.Errorf("series\n %v\nwant\n %v", res.Series, want)
	}
}

func TestRemoteReadFaults(t *testing.T) {
	good := frame(t, &prompb.ChunkedReadResponse{ChunkedSeries: []*prompb.ChunkedSeries{
		{Labels: promLabels("__name__", "m"), Chunks: []prompb.Chunk{xorChunk(t, Sample{rrT(1), 1}, Sample{rrT(2), 2})}},
	}})
	badCRC := bytes.Clone(good)
	badCRC[len(badCRC)-3] ^= 0xff // a byte of the payload
	sampled := func(resp *prompb.ReadResponse) []byte {
		raw, err := proto.Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		return snappy.Encode(nil, raw)
	}
	for _, tc := range []struct {
		name        string
		status      int
		contentType string
		body        []byte
		opts        RemoteReadOptions
		want        string
		wantStatus  int
	}{
		{name: "bad crc", status: 200, contentType: streamedCT,
			body: append(bytes.Clone(good), badCRC...), want: "frame 1: chunkedReader: corrupted frame; checksum mismatch"},
		{name: "oversized frame", status: 200, contentType: streamedCT,
			body: good, opts: RemoteReadOptions{MaxFrameBytes: 16}, want: "message size exceeded the limit 16 bytes"},
		{name: "truncated in the payload", status: 200, contentType: streamedCT,
			body: append(bytes.Clone(good), good[:len(good)-5]...), want: "stream cut short in frame 1"},
		{name: "truncated in the checksum", status: 200, contentType: streamedCT,
			body: append(bytes.Clone(good), good[:2]...), want: "stream cut short in frame 1"},
		{name: "other query index", status: 200, contentType: streamedCT,
			body: frame(t, &prompb.ChunkedReadResponse{QueryIndex: 3}), want: "answers query 3"},
		{name: "duplicate label", status: 200, contentType: streamedCT,
			body: frame(t, &prompb.ChunkedReadResponse{ChunkedSeries: []*prompb.ChunkedSeries{
				{Labels: promLabels("__name__", "m", "a", "1", "a", "2")},
			}}), want: `label "a" twice`},
		{name: "series streamed twice", status: 200, contentType: streamedCT,
			body: append(append(bytes.Clone(good), frame(t, &prompb.ChunkedReadResponse{ChunkedSeries: []*prompb.ChunkedSeries{
				{Labels: promLabels("__name__", "other")}}})...), good...),
			want: "already streamed"},
		{name: "histogram chunk", status: 200, contentType: streamedCT,
			body: frame(t, &prompb.ChunkedReadResponse{ChunkedSeries: []*prompb.ChunkedSeries{
				{Labels: promLabels("__name__", "m"), Chunks: []prompb.Chunk{{MinTimeMs: rrT(1), MaxTimeMs: rrT(1), Type: prompb.Chunk_HISTOGRAM}}},
			}}), want: "native histogram"},
		{name: "sampled result count", status: 200, contentType: "application/x-protobuf",
			body: sampled(&prompb.ReadResponse{}), want: "0 results for 1 query"},
		{name: "sampled not snappy", status: 200, contentType: "application/x-protobuf",
			body: []byte("hello"), want: "decompress response"},
		{name: "sampled too big", status: 200, contentType: "application/x-protobuf",
			body: sampled(&prompb.ReadResponse{Results: []*prompb.QueryResult{{Timeseries: []*prompb.TimeSeries{
				{Labels: promLabels("__name__", strings.Repeat("m", 100))}}}}}),
			opts: RemoteReadOptions{MaxSampledBytes: 8}, want: "larger than 8 bytes"},
		{name: "sampled decompresses too big", status: 200, contentType: "application/x-protobuf",
			body: sampled(&prompb.ReadResponse{Results: []*prompb.QueryResult{{Timeseries: []*prompb.TimeSeries{
				{Labels: promLabels("__name__", strings.Repeat("m", 100))}}}}}),
			opts: RemoteReadOptions{MaxSampledBytes: 64}, want: "decompresses to 118 bytes, more than 64"},
		{name: "html", status: 200, contentType: "text/html", body: []byte("<html>login</html>"),
			want: `unsupported content type "text/html"`},
		{name: "400", status: 400, contentType: "text/plain",
			body: []byte("exceeded sample limit (50000000)\n"), want: "400 Bad Request: exceeded sample limit (50000000)", wantStatus: 400},
		{name: "503", status: 503, contentType: "text/plain",
			body: []byte("too many concurrent reads"), want: "503 Service Unavailable: too many concurrent reads", wantStatus: 503},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := &remoteReadServer{t: t, status: tc.status, contentType: tc.contentType, body: tc.body}
			q := srv.querier(t, tc.opts)
			res, err := q.QueryRange(context.Background(), `m`, rrStart, rrEnd, rrStep)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v (result %v), want one containing %q", err, res, tc.want)
			}
			if tc.wantStatus != 0 {
				var apiErr *Error
				if !errors.As(err, &apiErr) || apiErr.StatusCode != tc.wantStatus {
					t.Errorf("err = %#v, want an *Error with status %d", err, tc.wantStatus)
				}
			}
		})
	}
}

func TestRemoteReadHang(t *testing.T) {
	// A server that sends one good frame and then nothing: the read
	// timeout ends it.
	release := make(chan struct{})
	defer close(release)
	good := frame(t, &prompb.ChunkedReadResponse{ChunkedSeries: []*prompb.ChunkedSeries{
		{Labels: promLabels("__name__", "m"), Chunks: []prompb.Chunk{xorChunk(t, Sample{rrT(1), 1})}},
	}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", streamedCT)
		_, _ = w.Write(good)
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	q, err := NewRemoteReadQuerier(RemoteReadOptions{URL: srv.URL + "/api/v1/read", Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	_, err = q.QueryRange(context.Background(), `m`, rrStart, rrEnd, rrStep)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want a deadline error", err)
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestNewRemoteReadQuerier(t *testing.T) {
	for _, tc := range []struct {
		url, want string
	}{
		{"", "remote_read_url is empty"},
		{"ftp://x/api/v1/read", "scheme must be http or https"},
		{"http:///api/v1/read", "no host"},
	} {
		if _, err := NewRemoteReadQuerier(RemoteReadOptions{URL: tc.url}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.url, err, tc.want)
		}
	}
	q, err := NewRemoteReadQuerier(RemoteReadOptions{URL: "http://x/api/v1/read"})
	if err != nil {
		t.Fatal(err)
	}
	if q.lookback != DefaultLookbackDelta || q.maxFrameBytes != DefaultMaxFrameBytes || q.timeout != 30*time.Second {
		t.Errorf("defaults: %+v", q)
	}
}

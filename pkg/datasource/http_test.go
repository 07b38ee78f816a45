package datasource

import (
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/openanomaly/openanomaly/pkg/config"
)

var (
	testStart = time.Unix(1700000000, 0)
	testEnd   = testStart.Add(time.Minute)
)

// newTestQuerier serves h under prefix and returns a querier pointed at it.
func newTestQuerier(t *testing.T, h http.HandlerFunc, opts HTTPOptions) *HTTPQuerier {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	opts.URL = srv.URL + opts.URL
	q, err := NewHTTPQuerier(opts)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func answer(status int, contentType, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

func TestQueryRangeRequest(t *testing.T) {
	var got *http.Request
	var form url.Values
	q := newTestQuerier(t, func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			t.Error(err)
		}
		got, form = r, r.PostForm
		io.WriteString(w, `{"status":"success","data":{"resultType":"matrix","result":[]}}`)
	}, HTTPOptions{
		// A VictoriaMetrics cluster path with a trailing slash and a
		// query parameter that must travel with every query.
		URL:       "/select/0/prometheus/?extra_label=team%3Da",
		UserAgent: "openanomaly/test",
		Timeout:   time.Minute,
		HTTPClientConfig: commoncfg.HTTPClientConfig{
			BasicAuth: &commoncfg.BasicAuth{Username: "u", Password: "p"},
		},
	})
	res, err := q.QueryRange(context.Background(), `rate(x[5m])`, testStart.Add(250*time.Millisecond), testEnd, 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Series) != 0 || res.Partial || len(res.Warnings) != 0 {
		t.Errorf("result = %+v, want empty", res)
	}
	if got.Method != http.MethodPost || got.URL.Path != "/select/0/prometheus/api/v1/query_range" {
		t.Errorf("request %s %s", got.Method, got.URL.Path)
	}
	if v := got.URL.Query().Get("extra_label"); v != "team=a" {
		t.Errorf("extra_label = %q, want it kept from the URL", v)
	}
	if ct := got.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		t.Errorf("Content-Type = %q", ct)
	}
	if ua := got.Header.Get("User-Agent"); ua != "openanomaly/test" {
		t.Errorf("User-Agent = %q", ua)
	}
	if u, p, ok := got.BasicAuth(); !ok || u != "u" || p != "p" {
		t.Errorf("basic auth = %q %q %v, want it from the HTTP client config", u, p, ok)
	}
	for k, want := range map[string]string{
		"query": `rate(x[5m])`,
		"start": "1700000000.250",
		"end":   "1700000060.000",
		"step":  "15",
	} {
		if form.Get(k) != want {
			t.Errorf("form %s = %q, want %q", k, form.Get(k), want)
		}
	}
	// The server is told how long we wait: a bit under a minute by now.
	if f, err := strconv.ParseFloat(form.Get("timeout"), 64); err != nil || f <= 50 || f > 60 {
		t.Errorf("timeout = %q, want about 60 seconds", form.Get("timeout"))
	}
}

func TestQueryRangeDecode(t *testing.T) {
	// Keys in an unusual order, unknown keys, infos, series out of order,
	// an empty label value, special values and fractional timestamps.
	const body = `{
	  "data": {
	    "stats": {"timings": {"evalTotalTime": 0.1}, "samples": [1, 2]},
	    "result": [
	      {"metric": {"__name__": "m", "job": "b", "empty": ""},
	       "values": [[1700000000, "1"], [1700000015.5, "NaN"], [1700000030.001, "+Inf"], [1700000045, "-Inf"], [1700000060, "-2.5e-3"]]},
	      {"metric": {"__name__": "m", "job": "a"}, "values": []},
	      {"metric": {}, "values": [ [ 1700000000 , "0" ] ]}
	    ],
	    "resultType": "matrix"
	  },
	  "infos": ["PromQL info: metric might not be a counter"],
	  "warnings": ["PromQL warning: something"],
	  "isPartial": true,
	  "status": "success"
	}`
	q := newTestQuerier(t, answer(200, "application/json", body), HTTPOptions{})
	res, err := q.QueryRange(context.Background(), "m", testStart, testEnd, 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Partial {
		t.Error("Partial = false, want true from isPartial")
	}
	if len(res.Warnings) != 1 || res.Warnings[0] != "PromQL warning: something" {
		t.Errorf("Warnings = %q, want the one warning and no infos", res.Warnings)
	}
	wantLabels := []labels.Labels{
		labels.EmptyLabels(),
		labels.FromStrings("__name__", "m", "job", "a"),
		labels.FromStrings("__name__", "m", "job", "b"),
	}
	if len(res.Series) != len(wantLabels) {
		t.Fatalf("got %d series, want %d", len(res.Series), len(wantLabels))
	}
	for i, want := range wantLabels {
		if !labels.Equal(res.Series[i].Labels, want) {
			t.Errorf("series %d labels = %s, want %s (sorted, empty values dropped)", i, res.Series[i].Labels, want)
		}
	}
	if s := res.Series[1].Samples; len(s) != 0 {
		t.Errorf("series job=a has %d samples, want 0", len(s))
	}
	want := []Sample{
		{1700000000000, 1},
		{1700000015500, math.NaN()},
		{1700000030001, math.Inf(1)},
		{1700000045000, math.Inf(-1)},
		{1700000060000, -2.5e-3},
	}
	got := res.Series[2].Samples
	if len(got) != len(want) {
		t.Fatalf("got %d samples, want %d", len(got), len(want))
	}
	for i := range want {
		// NaN compares by bits: the query API only ever sends plain NaN.
		if got[i].T != want[i].T || math.Float64bits(got[i].V) != math.Float64bits(want[i].V) {
			t.Errorf("sample %d = %v, want %v", i, got[i], want[i])
		}
	}
}

func TestQueryRangeErrors(t *testing.T) {
	html := "<html><head><title>503 Service Unavailable</title></head><body>" + strings.Repeat("x", 2000) + "</body></html>"
	for _, tc := range []struct {
		name     string
		handler  http.HandlerFunc
		status   int    // wanted Error.StatusCode; 0: no *Error
		errType  string // wanted Error.Type
		contains []string
		absent   string
	}{
		{
			name:     "400 bad_data",
			handler:  answer(400, "application/json", `{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected end of input"}`),
			status:   400,
			errType:  "bad_data",
			contains: []string{"400 Bad Request", "bad_data", "1:5: parse error: unexpected end of input"},
		},
		{
			name:     "422 execution",
			handler:  answer(422, "application/json", `{"status":"error","errorType":"execution","error":"no StoreAPIs matched for this query"}`),
			status:   422,
			errType:  "execution",
			contains: []string{"422", "execution", "no StoreAPIs matched"},
		},
		{
			name:     "503 HTML",
			handler:  answer(503, "text/html", html),
			status:   503,
			contains: []string{"503 Service Unavailable", "<html><head><title>503"},
			absent:   strings.Repeat("x", 600), // only the first 512 bytes are quoted
		},
		{
			name:     "200 status error",
			handler:  answer(200, "application/json", `{"status":"error","errorType":"timeout","error":"query timed out"}`),
			status:   200,
			errType:  "timeout",
			contains: []string{"timeout", "query timed out"},
		},
		{
			name:     "200 HTML",
			handler:  answer(200, "text/html", "<!doctype html><title>Sign in</title>"),
			contains: []string{"not JSON", "text/html", "Sign in"},
		},
		{
			name:     "vector",
			handler:  answer(200, "application/json", `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"1"]}]}}`),
			contains: []string{`result type is "vector", want matrix`},
		},
		{
			name:     "scalar",
			handler:  answer(200, "application/json", `{"status":"success","data":{"resultType":"scalar","result":[1700000000,"1"]}}`),
			contains: []string{`result type is "scalar", want matrix`},
		},
		{
			name: "duplicate series",
			handler: answer(200, "application/json", `{"status":"success","data":{"resultType":"matrix","result":[
				{"metric":{"a":"1","b":""},"values":[[1700000000,"1"]]},
				{"metric":{"a":"1"},"values":[[1700000000,"2"]]}]}}`),
			contains: []string{`duplicate series {a="1"}`},
		},
		{
			name:     "truncated",
			handler:  answer(200, "application/json", `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1700000000,"1"]`),
			contains: []string{"decode response"},
		},
		{
			name:     "bad value",
			handler:  answer(200, "application/json", `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1700000000,"one"]]}]}}`),
			contains: []string{`sample value "one"`},
		},
		{
			name:     "timestamps backwards",
			handler:  answer(200, "application/json", `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1700000015,"1"],[1700000000,"2"]]}]}}`),
			contains: []string{"not in increasing time order"},
		},
		{
			name:     "native histograms",
			handler:  answer(200, "application/json", `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"h"},"histograms":[[1700000000,{"count":"1","sum":"1"}]]}]}}`),
			contains: []string{"native histogram"},
		},
		{
			name:     "no status",
			handler:  answer(200, "application/json", `{"data":{"resultType":"matrix","result":[]}}`),
			contains: []string{"no status"},
		},
		{
			name:     "empty body",
			handler:  answer(200, "application/json", ``),
			contains: []string{"unexpected EOF"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := newTestQuerier(t, tc.handler, HTTPOptions{})
			_, err := q.QueryRange(context.Background(), "up", testStart, testEnd, time.Minute)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			for _, s := range tc.contains {
				if !strings.Contains(msg, s) {
					t.Errorf("error %q does not contain %q", msg, s)
				}
			}
			if tc.absent != "" && strings.Contains(msg, tc.absent) {
				t.Errorf("error is %d bytes long, want the body cut", len(msg))
			}
			var apiErr *Error
			if got := errors.As(err, &apiErr); got != (tc.status != 0) {
				t.Fatalf("errors.As(*Error) = %v, want %v (%v)", got, tc.status != 0, err)
			}
			if apiErr != nil && (apiErr.StatusCode != tc.status || apiErr.Type != tc.errType) {
				t.Errorf("Error{StatusCode: %d, Type: %q}, want %d %q", apiErr.StatusCode, apiErr.Type, tc.status, tc.errType)
			}
		})
	}
}

func TestQueryRangeHang(t *testing.T) {
	// A store that accepts the query and never answers must not stall the
	// caller past its timeout, whichever of the two deadlines is shorter.
	// The handler reads the form first: a server notices a closed connection
	// (and cancels r.Context()) only once the request body has been read.
	hang := func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}
	for _, tc := range []struct {
		name       string
		optTimeout time.Duration
		ctxTimeout time.Duration
	}{
		{"option timeout", 200 * time.Millisecond, time.Minute},
		{"context deadline", time.Minute, 200 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := newTestQuerier(t, hang, HTTPOptions{Timeout: tc.optTimeout})
			ctx, cancel := context.WithTimeout(context.Background(), tc.ctxTimeout)
			defer cancel()
			begin := time.Now()
			_, err := q.QueryRange(ctx, "up", testStart, testEnd, time.Minute)
			took := time.Since(begin)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err = %v, want context.DeadlineExceeded", err)
			}
			if took < 150*time.Millisecond || took > 2*time.Second {
				t.Errorf("took %v, want about 200ms", took)
			}
		})
	}
}

func TestQueryRangeSlowBody(t *testing.T) {
	// Headers arrive at once, the body never finishes: the deadline must
	// still cut the read.
	q := newTestQuerier(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{"status":"success","data":{"resultType":"matrix","result":[`)
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}, HTTPOptions{Timeout: 200 * time.Millisecond})
	begin := time.Now()
	_, err := q.QueryRange(context.Background(), "up", testStart, testEnd, time.Minute)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want context.DeadlineExceeded", err)
	}
	if took := time.Since(begin); took > 2*time.Second {
		t.Errorf("took %v", took)
	}
}

func TestQueryRangeReusesConnections(t *testing.T) {
	// Bodies are drained and closed, on errors too, so keep-alive
	// connections are reused rather than leaked.
	var conns atomic.Int32
	var n atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) % 3 {
		case 0:
			io.WriteString(w, `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1700000000,"1"]]}]},"trailing":[1,2,3]}`)
		case 1:
			w.WriteHeader(503)
			io.WriteString(w, strings.Repeat("busy ", 1000))
		case 2:
			io.WriteString(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"1"]}]}}`)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	q, err := NewHTTPQuerier(HTTPOptions{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	for range 9 {
		_, _ = q.QueryRange(context.Background(), "up", testStart, testEnd, time.Minute)
	}
	if c := conns.Load(); c != 1 {
		t.Errorf("%d connections for 9 sequential queries, want 1", c)
	}
}

func TestQueryRangeArguments(t *testing.T) {
	q := newTestQuerier(t, func(w http.ResponseWriter, r *http.Request) {
		t.Error("no request should be sent")
	}, HTTPOptions{})
	if _, err := q.QueryRange(context.Background(), "up", testStart, testEnd, 0); err == nil {
		t.Error("step 0: no error")
	}
	if _, err := q.QueryRange(context.Background(), "up", testEnd, testStart, time.Minute); err == nil {
		t.Error("end before start: no error")
	}
}

func TestNewHTTPQuerier(t *testing.T) {
	for _, tc := range []struct {
		opts HTTPOptions
		err  string
	}{
		{HTTPOptions{}, "url is empty"},
		{HTTPOptions{URL: "prometheus:9090"}, "scheme must be http or https"},
		{HTTPOptions{URL: "ftp://prometheus:9090"}, "scheme must be http or https"},
		{HTTPOptions{URL: "http:///api"}, "no host"},
		{HTTPOptions{URL: "http://p:9090", Timeout: -time.Second}, "negative"},
		{HTTPOptions{URL: "http://user:secret@p:9090", HTTPClientConfig: commoncfg.HTTPClientConfig{
			BasicAuth:     &commoncfg.BasicAuth{Username: "u"},
			Authorization: &commoncfg.Authorization{Credentials: "x"},
		}}, "http client config"},
	} {
		_, err := NewHTTPQuerier(tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("NewHTTPQuerier(%+v) = %v, want error containing %q", tc.opts.URL, err, tc.err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("error leaks the password: %v", err)
		}
	}
	q, err := NewHTTPQuerier(HTTPOptions{URL: "http://p:9090/prom/"})
	if err != nil {
		t.Fatal(err)
	}
	if got := q.url.String(); got != "http://p:9090/prom/api/v1/query_range" {
		t.Errorf("endpoint = %s", got)
	}
	if q.timeout != time.Duration(config.DefaultQueryTimeout) {
		t.Errorf("default timeout = %v", q.timeout)
	}
}

func TestFromConfig(t *testing.T) {
	var got *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		io.WriteString(w, `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"b"},"values":[[1700000000,"4"]]}]}}`)
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL + "/prefix")

	cfg := config.DatasourceConfig{
		URL:              &commoncfg.URL{URL: u},
		QueryTimeout:     model.Duration(5 * time.Second),
		HTTPClientConfig: commoncfg.HTTPClientConfig{Authorization: &commoncfg.Authorization{Credentials: "tok"}},
	}
	q, err := FromConfig(cfg, "openanomaly/1.0")
	if err != nil {
		t.Fatal(err)
	}
	res, err := q.QueryRange(context.Background(), "x", testStart, testEnd, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Series) != 1 || res.Series[0].Samples[0] != (Sample{1700000000000, 4}) {
		t.Errorf("result = %+v", res)
	}
	if got.URL.Path != "/prefix/api/v1/query_range" || got.Header.Get("Authorization") != "Bearer tok" || got.Header.Get("User-Agent") != "openanomaly/1.0" {
		t.Errorf("request: path %s, headers %v", got.URL.Path, got.Header)
	}
	if hq := q.(*HTTPQuerier); hq.timeout != 5*time.Second {
		t.Errorf("timeout = %v, want query_timeout", hq.timeout)
	}

	for _, tc := range []struct {
		cfg config.DatasourceConfig
		err string
	}{
		{config.DatasourceConfig{URL: &commoncfg.URL{URL: u}, ReadMethod: config.ReadRemoteRead}, "remote_read_url is required"},
		{config.DatasourceConfig{URL: &commoncfg.URL{URL: u}, ReadMethod: "graphite"}, `read_method "graphite" is unknown`},
		{config.DatasourceConfig{}, "url is required"},
	} {
		if _, err := FromConfig(tc.cfg, ""); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("FromConfig(%q) = %v, want error containing %q", tc.cfg.ReadMethod, err, tc.err)
		}
	}
}

func TestFormatTime(t *testing.T) {
	for _, tc := range []struct {
		in   time.Time
		want string
	}{
		{time.UnixMilli(1700000000123), "1700000000.123"},
		{time.UnixMilli(5), "0.005"},
		{time.UnixMilli(-1500), "-1.500"},
		{time.Unix(1700000000, 999999999), "1700000000.999"},
	} {
		if got := formatTime(tc.in); got != tc.want {
			t.Errorf("formatTime(%v) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// TestQueryRangeDownStoreNamesItOnce: a store where nothing listens gives an
// error that names the URL once (net/http repeats it) and says what failed.
func TestQueryRangeDownStoreNamesItOnce(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	q, err := NewHTTPQuerier(HTTPOptions{URL: "http://" + addr, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	_, err = q.QueryRange(context.Background(), "up", now.Add(-time.Minute), now, time.Minute)
	if err == nil {
		t.Fatal("query against a closed port succeeded")
	}
	msg := err.Error()
	if n := strings.Count(msg, "http://"+addr); n != 1 || !strings.Contains(msg, "connection refused") {
		t.Errorf("error names the URL %d times, want once, and says connection refused: %s", n, msg)
	}
}

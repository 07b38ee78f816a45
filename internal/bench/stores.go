package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// exporter serves the live tail: the value of every series at the current
// minute, without timestamps, so each store stamps it at scrape time.
type exporter struct {
	gen  *generator
	srv  *http.Server
	addr string

	mu      sync.Mutex
	minute  int64
	payload []byte
}

func startExporter(gen *generator) (*exporter, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	e := &exporter{gen: gen, addr: l.Addr().String(), minute: -1}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write(e.body(time.Now()))
	})
	e.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = e.srv.Serve(l) }()
	return e, nil
}

func (e *exporter) body(now time.Time) []byte {
	m := now.Unix() / 60
	e.mu.Lock()
	defer e.mu.Unlock()
	if m != e.minute {
		buf := make([]byte, 0, len(e.gen.params)*40+64)
		buf = append(buf, "# HELP load Synthetic load (openanomaly benchmark).\n# TYPE load gauge\n"...)
		for i := range e.gen.params {
			buf = append(buf, `load{instance="`...)
			buf = append(buf, instance(i)...)
			buf = append(buf, `"} `...)
			buf = strconv.AppendFloat(buf, e.gen.value(i, m), 'f', -1, 64)
			buf = append(buf, '\n')
		}
		e.minute, e.payload = m, buf
	}
	return e.payload
}

func (e *exporter) stop() {
	if e != nil {
		_ = e.srv.Close()
	}
}

// scrapeConfig is the scrape job both stores use for the exporter: the
// series keep exactly the labels they were imported with (the job label is
// dropped, the exporter's instance label kept).
func scrapeConfig(exporterAddr string, interval time.Duration) string {
	iv := interval.String()
	return fmt.Sprintf(`scrape_configs:
  - job_name: load
    scrape_interval: %s
    scrape_timeout: %s
    honor_labels: true
    static_configs:
      - targets: [%q]
    metric_relabel_configs:
      - action: labeldrop
        regex: job
`, iv, iv, exporterAddr)
}

// historyMinutes are the minutes of the history: n minutes ending at end.
func historyMinutes(end time.Time, n int) (first, last int64) {
	last = end.Unix() / 60
	return last - int64(n) + 1, last
}

// writeOpenMetrics writes the history as an OpenMetrics file for promtool.
func writeOpenMetrics(path string, gen *generator, first, last int64, progress func(done int)) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	_, _ = w.WriteString("# HELP load Synthetic load (openanomaly benchmark).\n# TYPE load gauge\n")
	buf := make([]byte, 0, 128)
	for i := range gen.params {
		inst := instance(i)
		for m := first; m <= last; m++ {
			buf = append(buf[:0], `load{instance="`...)
			buf = append(buf, inst...)
			buf = append(buf, `"} `...)
			buf = strconv.AppendFloat(buf, gen.value(i, m), 'f', -1, 64)
			buf = append(buf, ' ')
			buf = strconv.AppendInt(buf, m*60, 10)
			buf = append(buf, '\n')
			_, _ = w.Write(buf)
		}
		if progress != nil {
			progress(i + 1)
		}
	}
	_, _ = w.WriteString("# EOF\n")
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// createBlocks runs promtool tsdb create-blocks-from openmetrics. Blocks of
// up to a day keep the number of passes over the input small (promtool
// reads the whole file once per block) and leave the Prometheus compactor
// nothing to merge at start.
func createBlocks(ctx context.Context, promtool, input, outDir string, logf func(string, ...any)) error {
	cmd := exec.CommandContext(ctx, promtool, "tsdb", "create-blocks-from", "openmetrics",
		"--max-block-duration=24h", input, outDir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("promtool: %v\n%s", err, tail(out, 3000))
	}
	logf("promtool: %s", lastLine(out))
	return nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func lastLine(b []byte) string {
	s := string(b)
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == ' ') {
		s = s[:len(s)-1]
	}
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' {
			return s[i+1:]
		}
	}
	return s
}

// importVM loads the history into VictoriaMetrics through /api/v1/import
// (JSON lines, one line per series), in a few parallel streams.
func importVM(ctx context.Context, vmURL string, gen *generator, first, last int64, progress func(done int)) error {
	const streams = 2
	n := len(gen.params)
	var done atomic.Int64
	errs := make(chan error, streams)
	for s := range streams {
		lo, hi := s*n/streams, (s+1)*n/streams
		pr, pw := io.Pipe()
		go func() {
			w := bufio.NewWriterSize(pw, 1<<20)
			buf := make([]byte, 0, 64<<10)
			for i := lo; i < hi; i++ {
				buf = append(buf[:0], `{"metric":{"__name__":"load","instance":"`...)
				buf = append(buf, instance(i)...)
				buf = append(buf, `"},"values":[`...)
				for m := first; m <= last; m++ {
					if m > first {
						buf = append(buf, ',')
					}
					buf = strconv.AppendFloat(buf, gen.value(i, m), 'f', -1, 64)
				}
				buf = append(buf, `],"timestamps":[`...)
				for m := first; m <= last; m++ {
					if m > first {
						buf = append(buf, ',')
					}
					buf = strconv.AppendInt(buf, m*60000, 10)
				}
				buf = append(buf, "]}\n"...)
				if _, err := w.Write(buf); err != nil {
					pw.CloseWithError(err)
					return
				}
				if d := done.Add(1); progress != nil {
					progress(int(d))
				}
			}
			pw.CloseWithError(w.Flush())
		}()
		go func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, vmURL+"/api/v1/import", pr)
			resp, err := httpClient.Do(req)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode/100 != 2 {
					err = fmt.Errorf("VictoriaMetrics import: HTTP %d: %.300s", resp.StatusCode, b)
				}
			}
			pr.CloseWithError(err)
			errs <- err
		}()
	}
	var firstErr error
	for range streams {
		if err := <-errs; err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		return firstErr
	}
	if _, err := httpGet(vmURL + "/internal/force_flush"); err != nil {
		return err
	}
	return nil
}

// countSeries asks a store how many series and samples of load it holds in
// [start, end] (an instant query at end over the window).
func countSamples(baseURL string, end time.Time, window time.Duration) (float64, error) {
	q := fmt.Sprintf("sum(count_over_time(load[%ds]))", int(window.Seconds()))
	b, err := httpGet(baseURL + "/api/v1/query?query=" + urlEscape(q) + "&time=" + strconv.FormatInt(end.Unix(), 10))
	if err != nil {
		return 0, err
	}
	return scalarFromQuery(b)
}

func writeFile(dir, name, content string) (string, error) {
	p := filepath.Join(dir, name)
	return p, os.WriteFile(p, []byte(content), 0o644)
}

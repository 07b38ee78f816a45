package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/openanomaly/openanomaly/internal/osproc"
)

// waitReady polls url until it answers 200, or p exits.
func waitReady(ctx context.Context, p *osproc.Proc, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-p.Exited():
			return fmt.Errorf("%s exited (%v); log:\n%s", p.Name, p.Err(), p.LogTail(3000))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		resp, err := httpClient.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready at %s after %v: %v; log:\n%s", p.Name, url, timeout, last, p.LogTail(3000))
}

// startServer starts a server on a free loopback port and waits for
// readyPath; it retries with another port when the port was taken.
func startServer(ctx context.Context, name, dir, bin, readyPath string, args func(addr string) []string) (*osproc.Proc, string, error) {
	var lastErr error
	for range 3 {
		addr, err := freeAddr()
		if err != nil {
			return nil, "", err
		}
		p, err := osproc.Start(name, dir, bin, args(addr)...)
		if err != nil {
			return nil, "", err
		}
		base := "http://" + addr
		if err := waitReady(ctx, p, base+readyPath, 3*time.Minute); err != nil {
			p.Stop()
			lastErr = err
			if strings.Contains(err.Error(), "address already in use") {
				continue
			}
			return nil, "", err
		}
		return p, base, nil
	}
	return nil, "", lastErr
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

var clkTck = 100.0 // USER_HZ; 100 on every Linux the benchmark runs on

// cpuSeconds is the user+system CPU time of pid, from /proc/<pid>/stat.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may contain spaces: split after ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// Fields after ')' start at field 3 (state); utime is field 14, stime 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	u, err1 := strconv.ParseFloat(f[11], 64)
	s, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	return (u + s) / clkTck, nil
}

// memStatus returns VmHWM and VmRSS of pid in bytes.
func memStatus(pid int) (hwm, rss int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		for _, k := range []struct {
			key string
			dst *int64
		}{{"VmHWM:", &hwm}, {"VmRSS:", &rss}} {
			if strings.HasPrefix(line, k.key) {
				fs := strings.Fields(line[len(k.key):])
				if len(fs) > 0 {
					kb, _ := strconv.ParseInt(fs[0], 10, 64)
					*k.dst = kb << 10
				}
			}
		}
	}
	return hwm, rss, sc.Err()
}

var httpClient = &http.Client{Timeout: 5 * time.Minute}

func httpGet(url string) ([]byte, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("GET %s: HTTP %d: %.300s", url, resp.StatusCode, b)
	}
	return b, nil
}

func httpPost(url, contentType string, body io.Reader) ([]byte, error) {
	resp, err := httpClient.Post(url, contentType, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("POST %s: HTTP %d: %.300s", url, resp.StatusCode, b)
	}
	return b, nil
}

// metricSample is one line of a text exposition.
type metricSample struct {
	name   string
	labels map[string]string
	value  float64
}

// parseMetrics reads the Prometheus text format leniently (vmalert 1.79
// writes a space after the comma between labels, which strict parsers
// reject).
func parseMetrics(b []byte) []metricSample {
	var out []metricSample
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		var s metricSample
		rest := line
		if i := strings.IndexByte(line, '{'); i >= 0 {
			j := strings.LastIndexByte(line, '}')
			if j < i {
				continue
			}
			s.name = line[:i]
			s.labels = parseLabels(line[i+1 : j])
			rest = strings.TrimSpace(line[j+1:])
		} else {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			s.name, rest = f[0], f[1]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		s.value = v
		out = append(out, s)
	}
	return out
}

func parseLabels(s string) map[string]string {
	m := map[string]string{}
	for len(s) > 0 {
		s = strings.TrimLeft(s, " ,")
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			break
		}
		k := strings.TrimSpace(s[:eq])
		s = s[eq+1:]
		if len(s) == 0 || s[0] != '"' {
			break
		}
		// Find the closing quote, honouring escapes.
		j := 1
		for j < len(s) && s[j] != '"' {
			if s[j] == '\\' {
				j++
			}
			j++
		}
		if j >= len(s) {
			break
		}
		v, err := strconv.Unquote(s[:j+1])
		if err != nil {
			v = s[1:j]
		}
		m[k] = v
		s = s[j+1:]
	}
	return m
}

// find returns the value of the first sample named name whose labels
// include match, and whether there was one.
func find(ss []metricSample, name string, match map[string]string) (float64, bool) {
	for _, s := range ss {
		if s.name != name {
			continue
		}
		ok := true
		for k, v := range match {
			if s.labels[k] != v {
				ok = false
				break
			}
		}
		if ok {
			return s.value, true
		}
	}
	return 0, false
}

func scrape(url string) ([]metricSample, error) {
	b, err := httpGet(url)
	if err != nil {
		return nil, err
	}
	return parseMetrics(b), nil
}

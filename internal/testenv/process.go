// Package testenv starts real servers for tests: Prometheus,
// VictoriaMetrics and node_exporter, each on a free loopback port in its own
// t.TempDir(), ready to answer when the Start function returns and stopped
// by t.Cleanup. It also loads the NAB data set from ../shared/data.
//
// The servers come from Debian packages (CI installs them with
// `apt-get install prometheus victoria-metrics prometheus-node-exporter`).
// A missing binary fails the test with that hint; nothing is skipped. The
// environment variables OPENANOMALY_PROMETHEUS, OPENANOMALY_VICTORIAMETRICS
// and OPENANOMALY_NODE_EXPORTER name other binaries (for example a
// Prometheus 3 built from source).
//
// Children run in their own process group, which is killed on cleanup, on
// SIGINT/SIGTERM to the test binary and (Linux) when the test binary dies.
package testenv

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// readyTimeout bounds how long a server may take to become ready. The
	// CI machines are small and run test packages in parallel.
	readyTimeout = 60 * time.Second
	// stopTimeout is how long a server gets to exit after SIGTERM before
	// it is killed.
	stopTimeout = 10 * time.Second
	// startAttempts is how often a start is tried when the port picked by
	// FreePort was taken by someone else in the meantime.
	startAttempts = 3
)

const installHint = "apt-get install prometheus victoria-metrics prometheus-node-exporter"

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// Another process may take it before it is used; the Start functions retry
// with a new port when that happens.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// lookBinary finds a server binary: $envVar if set, else the first of names
// in PATH.
func lookBinary(t testing.TB, envVar, pkg string, names ...string) string {
	t.Helper()
	if p := os.Getenv(envVar); p != "" {
		names = []string{p}
	}
	for _, name := range names {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	t.Fatalf("testenv: %s not found in PATH: install the Debian package %s (`%s`) or set %s to the binary",
		strings.Join(names, " or "), pkg, installHint, envVar)
	return ""
}

// process is one running server.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	exited  chan struct{} // closed when Wait returned
	waitErr error

	stopOnce sync.Once
}

// startProcess starts bin with args, its output in dir/<name>.log.
func startProcess(name, bin string, args []string, dir string) (*process, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = sysProcAttr()
	// Registered before Start so that an interrupt arriving in between
	// still finds the group once its pid is known.
	installSignalHandler()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	track(cmd.Process.Pid)
	p := &process{name: name, cmd: cmd, logPath: logPath, logFile: f, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// stop ends the process group: SIGTERM, then SIGKILL after stopTimeout.
func (p *process) stop() {
	p.stopOnce.Do(func() {
		pid := p.cmd.Process.Pid
		defer untrack(pid)
		defer p.logFile.Close()
		select {
		case <-p.exited:
			// The leader is gone; make sure nothing it started lingers.
			killGroup(pid, true)
			return
		default:
		}
		killGroup(pid, false)
		select {
		case <-p.exited:
		case <-time.After(stopTimeout):
			killGroup(pid, true)
			<-p.exited
		}
	})
}

// hasExited reports whether the process is gone.
func (p *process) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// logTail returns the last lines of the server's log.
func (p *process) logTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", p.logPath, err)
	}
	const maxBytes = 4 << 10
	if len(b) > maxBytes {
		b = b[len(b)-maxBytes:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return "(empty log)"
	}
	return string(b)
}

// waitReady polls url until it answers 200, the process exits or
// readyTimeout passes.
func (p *process) waitReady(url string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(readyTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		if p.hasExited() {
			return fmt.Errorf("%s exited before it was ready (%v)", p.name, p.waitErr)
		}
		resp, err := client.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		lastErr = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready at %s after %v: %v", p.name, url, readyTimeout, lastErr)
}

// startServer starts a server on a free port and waits until readyPath
// answers 200. args gets the address to listen on (127.0.0.1:port). If the
// port was taken in the meantime it tries again with another one.
func startServer(t testing.TB, name, bin, dir, readyPath string, args func(addr string) []string) (*process, string) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		addr := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
		p, err := startProcess(name, bin, args(addr), dir)
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		base := "http://" + addr
		err = p.waitReady(base + readyPath)
		if err == nil {
			t.Cleanup(func() {
				p.stop()
				if t.Failed() {
					t.Logf("testenv: last lines of the %s log (%s):\n%s", name, p.logPath, p.logTail())
				}
			})
			return p, base
		}
		p.stop()
		tail := p.logTail()
		if attempt < startAttempts && strings.Contains(tail, "address already in use") {
			t.Logf("testenv: %s: port of %s was taken, retrying", name, addr)
			continue
		}
		t.Fatalf("testenv: %v\ncommand: %s\nlast lines of %s:\n%s", err, p.cmd, p.logPath, tail)
	}
}

// Process groups alive now, killed if the test binary is interrupted.
var (
	groupsMu sync.Mutex
	groups   = map[int]struct{}{}
	sigOnce  sync.Once
)

func track(pid int) {
	groupsMu.Lock()
	groups[pid] = struct{}{}
	groupsMu.Unlock()
}

func untrack(pid int) {
	groupsMu.Lock()
	delete(groups, pid)
	groupsMu.Unlock()
}

// installSignalHandler makes SIGINT and SIGTERM kill the tracked process
// groups and then act as they would have: children sit in their own process
// group, so a Ctrl-C at the terminal does not reach them.
func installSignalHandler() {
	sigOnce.Do(func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
		go func() {
			sig := <-ch
			groupsMu.Lock()
			for pid := range groups {
				killGroup(pid, true)
			}
			groupsMu.Unlock()
			signal.Reset(os.Interrupt, syscall.SIGTERM)
			if self, err := os.FindProcess(os.Getpid()); err == nil {
				_ = self.Signal(sig)
			}
		}()
	})
}

// httpDo runs a request with a bounded time and returns the body, failing
// the test on transport errors or a status other than want.
func httpDo(t testing.TB, req *http.Request, want ...int) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(req.Context(), 60*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("testenv: %s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("testenv: %s %s: read body: %v", req.Method, req.URL, err)
	}
	for _, w := range want {
		if resp.StatusCode == w {
			return body
		}
	}
	t.Fatalf("testenv: %s %s: HTTP %d, want %v: %s", req.Method, req.URL, resp.StatusCode, want, truncate(body, 1024))
	return nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// Package osproc starts the servers and tools the benchmark harnesses run
// (Prometheus, VictoriaMetrics, vmalert, the sidecar): each in its own
// process group, its output in a log file, killed if the harness dies.
// Tests use internal/testenv instead, which ties processes to a testing.T.
package osproc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Proc is one started process.
type Proc struct {
	Name    string
	cmd     *exec.Cmd
	logPath string
	log     *os.File
	exited  chan struct{}
	waitErr error
}

// Start runs bin with args in dir, stdout and stderr to dir/<name>.log, in
// its own process group, with SIGKILL as its parent-death signal.
func Start(name, dir, bin string, args ...string) (*Proc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &Proc{Name: name, cmd: cmd, logPath: logPath, log: f, exited: make(chan struct{})}
	go func() { p.waitErr = cmd.Wait(); close(p.exited) }()
	return p, nil
}

// Pid returns the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Exited is closed when the process has exited; Err then says how.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Err is the process' exit error, valid once Exited is closed.
func (p *Proc) Err() error { return p.waitErr }

// Stop sends SIGTERM to the group, then SIGKILL after 20s, and closes the
// log. A nil Proc is a no-op.
func (p *Proc) Stop() {
	if p == nil {
		return
	}
	pid := p.Pid()
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-p.exited
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL) // anything it left behind
	p.log.Close()
}

// LogTail returns the last n bytes of the log.
func (p *Proc) LogTail(n int) string {
	b, _ := os.ReadFile(p.logPath)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

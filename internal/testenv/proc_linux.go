//go:build linux

package testenv

import "syscall"

// sysProcAttr puts a server in its own process group and asks the kernel to
// kill it when the test binary dies, even by SIGKILL (go test's -timeout, an
// OOM kill), where no cleanup runs.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

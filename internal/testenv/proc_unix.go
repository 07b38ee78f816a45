//go:build unix

package testenv

import "syscall"

// killGroup signals the process group led by pid: SIGTERM, or SIGKILL when
// force is set.
func killGroup(pid int, force bool) {
	sig := syscall.SIGTERM
	if force {
		sig = syscall.SIGKILL
	}
	// A negative pid addresses the whole group.
	_ = syscall.Kill(-pid, sig)
}

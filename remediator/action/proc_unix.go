//go:build unix

package action

import (
	"os/exec"
	"syscall"
)

// setProcessGroup starts the program in its own process group and, on timeout, kills the whole
// group, so that what it started does not outlive the step.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

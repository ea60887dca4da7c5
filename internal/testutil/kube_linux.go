package testutil

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal ends the process with the test binary, even when a panic or a test
// timeout skips Stop: a stray API server holds a quarter of a gigabyte.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}

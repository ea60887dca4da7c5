//go:build !unix

package action

import "os/exec"

func setProcessGroup(*exec.Cmd) {}

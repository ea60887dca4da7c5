package store

import (
	"os"
	"syscall"
)

// fdatasync flushes the file's data and the size that reading it back needs, not its times.
func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}

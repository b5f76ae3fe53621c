//go:build unix

package runtime

import (
	"syscall"
	"time"
)

// processCPUTime returns the CPU time, user and system, that the process
// has used so far, with ok false where it cannot be read.
func processCPUTime() (d time.Duration, ok bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}

//go:build !unix

package runtime

import "time"

// processCPUTime returns the CPU time that the process has used so far;
// here it cannot be read, so ok is false.
func processCPUTime() (d time.Duration, ok bool) { return 0, false }

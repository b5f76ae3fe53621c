// Package rss measures the memory and CPU time of the running process for
// benchmarks: the peak resident set size, which the kernel tracks and can
// reset, and the user and system time so far. Speed and memory figures are
// for benchmarks only, never for tests.
package rss

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ResetPeak resets the kernel's high-water mark of the resident set
// (VmHWM, from which getrusage's maxrss is also read), so that the next
// Peak covers only what runs after it.
func ResetPeak() error {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		return fmt.Errorf("resetting the peak RSS: %w", err)
	}
	return nil
}

// Peak is the peak resident set size in bytes since the process started
// or the last ResetPeak: VmHWM of /proc/self/status.
func Peak() (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmHWM %q: %w", rest, err)
			}
			return kb * 1024, nil
		}
	}
	if err := s.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no VmHWM in /proc/self/status")
}

// MaxRSS is getrusage's maxrss of the process in bytes (Linux counts
// kibibytes). It follows ResetPeak as Peak does.
func MaxRSS() (int64, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return ru.Maxrss * 1024, nil
}

// CPUTime is the user and system time the process has used, which other
// processes on the machine disturb less than the wall time.
func CPUTime() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

package rss

import (
	"runtime"
	"runtime/debug"
	"testing"
)

// TestPeak checks that touching 64 MB raises the peak by about that much
// after a reset, and maxrss with it.
func TestPeak(t *testing.T) {
	// Return freed memory to the system first, or the reset keeps the
	// pages of an earlier run resident in the new peak.
	debug.FreeOSMemory()
	if err := ResetPeak(); err != nil {
		t.Skip(err) // not Linux, or /proc is not mounted
	}
	before, err := Peak()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 64<<20)
	for i := range b {
		b[i] = byte(i)
	}
	after, err := Peak()
	if err != nil {
		t.Fatal(err)
	}
	maxRSS, err := MaxRSS()
	if err != nil {
		t.Fatal(err)
	}
	if grew := after - before; grew < 60<<20 {
		t.Errorf("the peak grew by %d bytes after touching %d", grew, len(b))
	}
	// maxrss is updated as the kernel accounts the pages, which may lag
	// VmHWM by a few.
	if maxRSS < 60<<20 {
		t.Errorf("maxrss %d after touching %d bytes", maxRSS, len(b))
	}
	runtime.KeepAlive(b)
	if cpu, err := CPUTime(); err != nil || cpu <= 0 {
		t.Errorf("CPU time %v, %v", cpu, err)
	}
}

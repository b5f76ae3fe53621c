package onnx_test

import (
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"onnxopt/internal/rss"
	"onnxopt/internal/testmodels"
	"onnxopt/onnx"
)

// BenchmarkLoadSaveGPT400MB reads a GPT-shaped model of 390 MB of float32
// initializers and writes it back, inline. Besides the time it reports the
// model size and the peak memory of one load and save: the largest
// HeapInuse and HeapSys seen after the load and after the save, and the
// peak resident set size of the process (VmHWM, which is reset before each
// iteration, and getrusage's maxrss, which follows it), each also as a
// multiple of the model size, and the CPU time (user and system) of the
// load and save, which other processes on the machine disturb less than
// the wall time, and the wall time of the load and of the save. The target
// is 0.5 s and 1.3× the model.
func BenchmarkLoadSaveGPT400MB(b *testing.B) {
	dir := b.TempDir()
	path, size, err := testmodels.WriteGPT(dir, testmodels.GPT400MB())
	if err != nil {
		b.Fatal(err)
	}
	out := filepath.Join(dir, "out.onnx")
	var heapInuse, heapSys uint64
	var hwm, maxRSS int64
	var cpu time.Duration                 // user and system time of the timed parts
	var readWall, writeWall time.Duration // wall time of each half
	cpuTime := func() time.Duration {
		t, err := rss.CPUTime()
		if err != nil {
			b.Fatal(err)
		}
		return t
	}
	sample := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		heapInuse = max(heapInuse, ms.HeapInuse)
		heapSys = max(heapSys, ms.HeapSys)
	}
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		runtime.GC()
		debug.FreeOSMemory()
		if err := rss.ResetPeak(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start, wall := cpuTime(), time.Now()

		m, err := onnx.ReadModel(path)
		if err != nil {
			b.Fatal(err)
		}
		readWall += time.Since(wall)
		cpu += cpuTime() - start
		b.StopTimer()
		sample()
		b.StartTimer()
		start, wall = cpuTime(), time.Now()
		if err := onnx.WriteModel(out, m, onnx.WriteOptions{}); err != nil {
			b.Fatal(err)
		}
		writeWall += time.Since(wall)
		cpu += cpuTime() - start

		b.StopTimer()
		sample()
		peak, err := rss.Peak()
		if err != nil {
			b.Fatal(err)
		}
		ru, err := rss.MaxRSS()
		if err != nil {
			b.Fatal(err)
		}
		hwm, maxRSS = max(hwm, peak), max(maxRSS, ru)
		runtime.KeepAlive(m)
		b.StartTimer()
	}
	b.StopTimer()
	if fi, err := os.Stat(out); err != nil || fi.Size() != size {
		b.Fatalf("written model: %v, %d bytes, want %d", err, fi.Size(), size)
	}
	mb := func(n int64) float64 { return float64(n) / 1e6 }
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(readWall.Milliseconds())/float64(b.N), "read-ms/op")
	b.ReportMetric(float64(writeWall.Milliseconds())/float64(b.N), "write-ms/op")
	b.ReportMetric(mb(size), "model-MB")
	b.ReportMetric(mb(int64(heapInuse)), "peak-HeapInuse-MB")
	b.ReportMetric(mb(int64(heapSys)), "peak-HeapSys-MB")
	b.ReportMetric(mb(hwm), "peak-RSS-MB")
	b.ReportMetric(float64(hwm)/float64(size), "peak-RSS/model")
	b.ReportMetric(mb(maxRSS), "maxrss-MB")
	b.ReportMetric(float64(maxRSS)/float64(size), "maxrss/model")
}

package runtime

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	goruntime "runtime"
	"testing"

	"onnxopt/graph"
	"onnxopt/internal/suite"
	"onnxopt/onnx"
)

// The model benchmarks compare with ONNX Runtime 1.30 on one thread on
// this project's machine (runtime/ort's BenchmarkORTDigitsCNN and
// BenchmarkORTResNet18): 3.6 ms for the digits CNN at batch 397 and
// 24.8 ms for ResNet-18 at 1×3×224×224 when the machine is quiet. Large
// float32 products split between goroutines when there is more than one
// P, so measure with one and two. Set GOMAXPROCS in the environment: with
// go1.26 the -cpu flag left GOMAXPROCS at 2 for -cpu 1 (measured). Under
// -tags purego the products go through gonum, as on CPUs without AVX2.
//
//	GOMAXPROCS=1 go test ./runtime -run '^$' -bench '^Benchmark(DigitsCNN|ResNet18|Gemm)$'
//	GOMAXPROCS=2 go test ./runtime -run '^$' -bench '^Benchmark(DigitsCNN|ResNet18|Gemm)$'
//
// The machine is shared, so wall time also counts other processes' turns:
// the benchmarks report the process's CPU time per run as cpu-ns/op
// (including the garbage collector's and, with two Ps, both threads').

// reportCPUTime starts measuring the process's CPU time; the function it
// returns, called after the benchmark's loop, reports it per iteration.
func reportCPUTime(b *testing.B) func() {
	start, ok := processCPUTime()
	return func() {
		end, _ := processCPUTime()
		if ok && b.N > 0 {
			b.ReportMetric(float64(end-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

// loadPlan compiles the model at path.
func loadPlan(tb testing.TB, path string) *Plan {
	tb.Helper()
	m, err := graph.Load(path)
	if err != nil {
		tb.Fatal(err)
	}
	p, err := Compile(m.Graph)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// digitsCNN returns the digits CNN's plan and its 397-sample test input.
func digitsCNN(tb testing.TB) (*Plan, string, *Tensor) {
	dir := filepath.Join(suite.SharedModels(tb), "digits_cnn")
	p := loadPlan(tb, filepath.Join(dir, "model.onnx"))
	x, err := ReadTensorFile(filepath.Join(dir, "test_data_set_0", "input_0.pb"))
	if err != nil {
		tb.Fatal(err)
	}
	return p, p.Inputs()[0].Name, x
}

func BenchmarkDigitsCNN(b *testing.B) {
	p, name, x := digitsCNN(b)
	feeds := map[string]*Tensor{name: x}
	if _, err := p.Run(feeds); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	report := reportCPUTime(b)
	for b.Loop() {
		if _, err := p.Run(feeds); err != nil {
			b.Fatal(err)
		}
	}
	report()
}

func BenchmarkResNet18(b *testing.B) {
	p := loadPlan(b, filepath.Join(suite.SharedModels(b), "perf", "resnet18.onnx"))
	x := randomTensor(rand.New(rand.NewPCG(1, 18)), onnx.TensorProto_FLOAT, 1, 3, 224, 224)
	feeds := map[string]*Tensor{p.Inputs()[0].Name: x}
	if _, err := p.Run(feeds); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	report := reportCPUTime(b)
	for b.Loop() {
		if _, err := p.Run(feeds); err != nil {
			b.Fatal(err)
		}
	}
	report()
}

// BenchmarkGemm measures sgemmInto, with scratch kept across calls as
// the kernels keep it, on the shapes of the two models' convolutions as
// im2col products (M output channels, K = input channels × kernel volume,
// N output positions), reporting GFLOP/s.
func BenchmarkGemm(b *testing.B) {
	for _, s := range []struct {
		name    string
		m, k, n int
	}{
		{"resnet18 conv1 7x7", 64, 147, 12544},
		{"resnet18 layer1 3x3", 64, 576, 3136},
		{"resnet18 layer2 3x3", 128, 1152, 784},
		{"resnet18 layer3 3x3", 256, 2304, 196},
		{"resnet18 layer4 3x3", 512, 4608, 49},
		{"resnet18 layer2 downsample 1x1", 128, 64, 784},
		{"digits conv2 per 1024 columns", 32, 144, 1024},
		{"digits conv3 per 1024 columns", 64, 288, 1024},
	} {
		b.Run(fmt.Sprintf("%s/M=%d,K=%d,N=%d", s.name, s.m, s.k, s.n), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			x := randomTensor(rng, onnx.TensorProto_FLOAT, s.m*s.k+s.k*s.n).Data.([]float32)
			a, bm := x[:s.m*s.k], x[s.m*s.k:]
			c := make([]float32, s.m*s.n)
			var scratch sgemmScratch
			b.ResetTimer()
			for b.Loop() {
				sgemmInto(&scratch, false, false, s.m, s.n, s.k, 1, a, s.k, bm, s.n, 0, c, s.n)
			}
			flops := 2 * float64(s.m) * float64(s.k) * float64(s.n) * float64(b.N)
			b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// TestDigitsCNNRepeatedRunsKeepMemory runs one digits CNN plan 1,000 times
// on a batch of 8 and checks that the heap in use does not grow: the
// plan's buffers and the kernels' scratch are reused, and what a run
// allocates (the outputs it returns) is garbage afterwards.
func TestDigitsCNNRepeatedRunsKeepMemory(t *testing.T) {
	p, name, x := digitsCNN(t)
	const batch = 8
	per := x.Len() / x.Shape[0]
	small := &Tensor{DType: x.DType, Shape: append([]int{batch}, x.Shape[1:]...), Data: x.Data.([]float32)[:batch*per]}
	feeds := map[string]*Tensor{name: small}
	run := func() {
		if _, err := p.Run(feeds); err != nil {
			t.Fatal(err)
		}
	}
	// The first runs allocate the buffers that later ones reuse.
	for range 10 {
		run()
	}
	heapInUse := func() uint64 {
		goruntime.GC()
		var ms goruntime.MemStats
		goruntime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	before := heapInUse()
	for range 1000 {
		run()
	}
	after := heapInUse()
	// A leak of one output tensor per run (8×10 float32) would add 320 KB.
	const bound = 256 << 10
	if after > before+bound {
		t.Errorf("heap in use grew from %d to %d bytes over 1000 runs (bound %d)", before, after, bound)
	}
	t.Logf("heap in use: %d bytes before, %d after 1000 runs", before, after)
}

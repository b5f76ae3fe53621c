//go:build large

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"onnxopt/internal/testmodels"
	"onnxopt/onnx"
)

// minFreeDisk is the free space TestLargeModel needs: the 3.1 GB model,
// two converted copies of it and a quantized one, one or two at a time.
const minFreeDisk = 10e9

// A measured run is one onnxopt subprocess with its peak memory (the
// child's maximum resident set, which counts the pages of mapped files it
// touched) and wall time.
type measured struct {
	args           []string
	stdout, stderr string
	code           int
	wall           time.Duration
	peakRSS        int64 // bytes
}

// runMeasured runs the binary and measures it. A child started by Go
// shares its parent's memory until exec, and Linux folds the parent's
// peak RSS into the child's Maxrss, so the figure is only the child's when
// it is above the test process's own peak, which runMeasured checks stays
// small.
func runMeasured(t *testing.T, bin string, args ...string) measured {
	t.Helper()
	floor := selfPeakRSS(t)
	if floor > 100e6 {
		t.Fatalf("the test process's peak RSS is %s: the children's figures would include it", byteSize(floor))
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := measured{args: args, stdout: stdout.String(), stderr: stderr.String(), wall: time.Since(start)}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("onnxopt %s: %v", strings.Join(args, " "), err)
	}
	r.code = cmd.ProcessState.ExitCode()
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		t.Fatal("no rusage for the child")
	}
	r.peakRSS = maxrssBytes(ru)
	t.Logf("onnxopt %s: exit %d, %.1f s, peak RSS %s (floor %s)", strings.Join(args, " "), r.code, r.wall.Seconds(), byteSize(r.peakRSS), byteSize(floor))
	return r
}

// selfPeakRSS is the test process's peak RSS.
func selfPeakRSS(t *testing.T) int64 {
	var self syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &self); err != nil {
		t.Fatal(err)
	}
	return maxrssBytes(&self)
}

// maxrssBytes is Rusage.Maxrss in bytes: Linux counts kibibytes.
func maxrssBytes(ru *syscall.Rusage) int64 { return ru.Maxrss * 1024 }

// folderSize is the total size of the files in dir, which holds one model
// and its data file. The model is not read: one without external data
// would be read whole into the test process.
func folderSize(t *testing.T, dir string) int64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

// TestLargeModel builds a GPT of 3.1 GB of float32 weights with external
// data and runs inspect, convert, quantize --mode weight and verify on it
// as a user would, each in its own process, checking what they write and
// how much memory they take. Run it with
//
//	go test -tags large -run TestLargeModel -v -timeout 60m ./cmd/onnxopt
func TestLargeModel(t *testing.T) {
	dir := t.TempDir()
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		t.Fatal(err)
	}
	if free := int64(fs.Bavail) * int64(fs.Bsize); free < minFreeDisk {
		t.Skipf("%s has %s free; the large-model test needs %s", dir, byteSize(free), byteSize(minFreeDisk))
	}

	bin := filepath.Join(dir, "onnxopt")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	c := testmodels.GPT3GB()
	modelDir := filepath.Join(dir, "gpt")
	if err := os.Mkdir(modelDir, 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	model, err := testmodels.WriteGPTExternal(modelDir, c)
	if err != nil {
		t.Fatal(err)
	}
	modelSize := folderSize(t, modelDir)
	t.Logf("WriteGPTExternal %+v: %s in %.1f s; the test process's peak RSS so far %s",
		c, byteSize(modelSize), time.Since(start).Seconds(), byteSize(selfPeakRSS(t)))
	wantTensors := 16*c.Layers + 4 // every float initializer but the attention's scale
	wantBytes := 4 * c.Params()

	t.Run("inspect", func(t *testing.T) {
		r := runMeasured(t, bin, "inspect", model, "--json")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		var report inspectReport
		if err := json.Unmarshal([]byte(r.stdout), &report); err != nil {
			t.Fatalf("output is not JSON: %v", err)
		}
		want := []externalJSON{{File: "model.onnx.data", Tensors: wantTensors, Bytes: wantBytes}}
		if fmt.Sprint(report.External) != fmt.Sprint(want) {
			t.Errorf("external data %+v, want %+v", report.External, want)
		}
		if report.Parameters.NonZero != -1 {
			t.Errorf("non-zero parameters %d, want -1 (external data not read)", report.Parameters.NonZero)
		}
		if limit := int64(100e6); r.peakRSS > limit {
			t.Errorf("peak RSS %s, more than %s", byteSize(r.peakRSS), byteSize(limit))
		}
	})

	t.Run("convert --external-data", func(t *testing.T) {
		out := filepath.Join(dir, "converted", "model.onnx")
		if err := os.Mkdir(filepath.Dir(out), 0o755); err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(filepath.Dir(out))
		r := runMeasured(t, bin, "convert", model, "-o", out, "--external-data")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		t.Logf("peak RSS %.2fx the model's %s", float64(r.peakRSS)/float64(modelSize), byteSize(modelSize))
		if limit := 2 * modelSize; r.peakRSS >= limit {
			t.Errorf("peak RSS %s, not under twice the model's size", byteSize(r.peakRSS))
		}
		checkRefs(t, out, wantTensors, wantBytes)
		compareModels(t, model, out)
	})

	t.Run("convert past 2 GiB", func(t *testing.T) {
		out := filepath.Join(dir, "auto", "model.onnx")
		if err := os.Mkdir(filepath.Dir(out), 0o755); err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(filepath.Dir(out))
		r := runMeasured(t, bin, "convert", model, "-o", out)
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		if !strings.Contains(r.stderr, "external data") || !strings.Contains(r.stderr, "model.onnx.data") {
			t.Errorf("stderr does not say the data went to model.onnx.data: %q", r.stderr)
		}
		checkRefs(t, out, wantTensors, wantBytes)
	})

	t.Run("quantize --mode weight", func(t *testing.T) {
		if r := runMeasured(t, bin, "help"); !strings.Contains(r.stdout, "quantize") {
			t.Skip("onnxopt has no quantize command yet")
		}
		out := filepath.Join(dir, "quantized", "model.onnx")
		if err := os.Mkdir(filepath.Dir(out), 0o755); err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(filepath.Dir(out))
		r := runMeasured(t, bin, "quantize", model, "-o", out, "--mode", "weight")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		t.Logf("peak RSS %.2fx the model's %s", float64(r.peakRSS)/float64(modelSize), byteSize(modelSize))
		if limit := modelSize * 3 / 2; r.peakRSS > limit {
			t.Errorf("peak RSS %s, more than 1.5 times the model's size", byteSize(r.peakRSS))
		}
		quantSize := folderSize(t, filepath.Dir(out))
		ratio := float64(modelSize) / float64(quantSize)
		t.Logf("quantized model %s, %.2fx smaller", byteSize(quantSize), ratio)
		// int8 weights take a quarter of float32's bytes; the biases, layer
		// norms and scales that stay float add under 1%.
		if ratio < 3.9 || ratio > 4 {
			t.Errorf("quantized model %.2fx smaller, want about 4x", ratio)
		}
		// The quantized model loads, passes graph.Verify and runs in
		// onnxopt's runtime next to the float one; int8 weights move the
		// logits a little, so outputs are held to cosine similarity.
		r = runMeasured(t, bin, "verify", model, out, "--dim", "batch=1", "--dim", "seq=8", "--range", fmt.Sprintf("0,%d", c.Vocab),
			"--atol", "inf", "--min-cosine", "0.99", "--json")
		if r.code != 0 {
			t.Fatalf("exit %d: %s\n%s", r.code, r.stderr, r.stdout)
		}
	})

	t.Run("verify", func(t *testing.T) {
		r := runMeasured(t, bin, "verify", model, model, "--dim", "batch=1", "--dim", "seq=8", "--range", fmt.Sprintf("0,%d", c.Vocab), "--json")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		var report struct{ Pass bool }
		if err := json.Unmarshal([]byte(r.stdout), &report); err != nil {
			t.Fatalf("output is not JSON: %v", err)
		}
		if !report.Pass {
			t.Errorf("the model does not match itself:\n%s", r.stdout)
		}
	})
}

// checkRefs checks that the model at path keeps its tensors in external
// data at aligned offsets, as many and as large as wanted.
func checkRefs(t *testing.T, path string, tensors int, size int64) {
	t.Helper()
	_, refs, err := onnx.ReadModelRefs(path)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, r := range refs {
		if r.Offset%4096 != 0 {
			t.Errorf("%s: tensor %q at offset %d, not a multiple of 4096", path, r.Tensor, r.Offset)
		}
		total += r.Length
	}
	if len(refs) != tensors || total != size {
		t.Errorf("%s: %d external tensors of %d bytes, want %d of %d", path, len(refs), total, tensors, size)
	}
}

// compareModels checks that the models at a and b are equal: their
// protobuf parts, with external references set aside, and each external
// tensor's bytes, read from the data files a chunk at a time. The test
// process reads rather than maps the data: a child started by Go shares
// its parent's memory until it calls exec, and Linux counts the parent's
// peak RSS at that point in the child's Maxrss, so mapping 6 GB here
// would be reported as the peak of every later subprocess.
func compareModels(t *testing.T, a, b string) {
	t.Helper()
	ma, refsA, err := onnx.ReadModelRefs(a)
	if err != nil {
		t.Fatal(err)
	}
	mb, refsB, err := onnx.ReadModelRefs(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(refsA) != len(refsB) {
		t.Fatalf("%d external tensors, want %d", len(refsB), len(refsA))
	}
	files := map[string]*os.File{}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	open := func(model, location string) *os.File {
		path := filepath.Join(filepath.Dir(model), location)
		if f := files[path]; f != nil {
			return f
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		files[path] = f
		return f
	}
	bufA, bufB := make([]byte, 4<<20), make([]byte, 4<<20)
	for i, ra := range refsA {
		rb := refsB[i]
		if ra.Tensor != rb.Tensor || ra.Length != rb.Length {
			t.Fatalf("external tensor %d is %q of %d bytes, want %q of %d", i, rb.Tensor, rb.Length, ra.Tensor, ra.Length)
		}
		fa, fb := open(a, ra.Location), open(b, rb.Location)
		for done := int64(0); done < ra.Length; {
			n := min(int64(len(bufA)), ra.Length-done)
			if _, err := fa.ReadAt(bufA[:n], ra.Offset+done); err != nil {
				t.Fatal(err)
			}
			if _, err := fb.ReadAt(bufB[:n], rb.Offset+done); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(bufA[:n], bufB[:n]) {
				t.Fatalf("tensor %q differs in bytes %d to %d", ra.Tensor, done, done+n)
			}
			done += n
		}
	}
	for _, m := range []*onnx.ModelProto{ma, mb} {
		for _, init := range m.Graph.Initializer {
			init.ExternalData = nil
		}
	}
	if !proto.Equal(ma, mb) {
		t.Error("the models differ outside their external data")
	}
}

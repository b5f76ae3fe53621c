package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/schollz/progressbar/v3"
)

// observed is one step of progress a command reported.
type observed struct {
	desc        string
	done, total int64
}

// observeRun runs a command line with stderr a file, which is not a
// terminal, and returns its status, its stdout, the progress it reported
// and what it wrote to stderr.
func observeRun(t *testing.T, args ...string) (int, string, []observed, string) {
	t.Helper()
	stderr, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	var stdout bytes.Buffer
	var steps []observed
	c := &cli{stdout: &stdout, stderr: stderr, observeProgress: func(desc string, done, total int64) {
		steps = append(steps, observed{desc, done, total})
	}}
	code := c.run(args)
	written, err := os.ReadFile(stderr.Name())
	if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), steps, string(written)
}

// stages splits steps into runs of the same description, in order.
func stages(steps []observed) (descs []string, runs [][]observed) {
	for i, s := range steps {
		if i == 0 || s.desc != steps[i-1].desc {
			descs = append(descs, s.desc)
			runs = append(runs, nil)
		}
		runs[len(runs)-1] = append(runs[len(runs)-1], s)
	}
	return descs, runs
}

// checkBytes checks the steps of reading or writing a file: from 0 to
// want bytes, growing, with the total the same throughout.
func checkBytes(t *testing.T, run []observed, want int64) {
	t.Helper()
	for i, s := range run {
		if s.total != want || i > 0 && s.done <= run[i-1].done {
			t.Errorf("%s: step %d of %v: want done growing towards %d", s.desc, i, run, want)
			return
		}
	}
	if first, last := run[0], run[len(run)-1]; first.done != 0 || last.done != want {
		t.Errorf("%s: from %d to %d bytes, want 0 to %d", first.desc, first.done, last.done, want)
	}
}

// checkSteps checks a stage of work counted in steps: 1, 2, ... total.
func checkSteps(t *testing.T, run []observed, total int64) {
	t.Helper()
	if int64(len(run)) != total {
		t.Errorf("%s: %d steps %v, want %d", run[0].desc, len(run), run, total)
		return
	}
	for i, s := range run {
		if s.done != int64(i+1) || s.total != total {
			t.Errorf("%s: step %d is %d of %d, want %d of %d", s.desc, i, s.done, s.total, i+1, total)
		}
	}
}

// TestPruneProgress prunes the digits MLP by gradient saliency with
// reconstruction, writing external data, with stderr not a terminal: the
// command reports reading the model, the four calibration batches of
// saliency, the three layers refitted and writing the two files, each
// counted to its end, and prints nothing to stderr.
func TestPruneProgress(t *testing.T) {
	out := filepath.Join(t.TempDir(), "pruned.onnx")
	code, stdout, steps, stderr := observeRun(t, "prune", digitsMLP, "-o", out, "--method", "gradient", "--sparsity", "0.5",
		"--calibration", digitsMLPCalibration, "--batch-size", "64", "--reconstruct", "--external-data", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if stderr != "" {
		t.Errorf("stderr, not a terminal, holds %q", stderr)
	}
	var r pruneReport
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatal(err)
	}
	descs, runs := stages(steps)
	if want := []string{"read model.onnx", "saliency", "reconstruct", "write pruned.onnx"}; !slices.Equal(descs, want) {
		t.Fatalf("progress in stages %q, want %q", descs, want)
	}
	in, err := os.Stat(digitsMLP)
	if err != nil {
		t.Fatal(err)
	}
	checkBytes(t, runs[0], in.Size())
	checkSteps(t, runs[1], int64(r.Calibration.Batches))
	checkSteps(t, runs[2], int64(len(r.Weights)))
	checkBytes(t, runs[3], fileSize(out)+fileSize(out+".data"))
	if r.Calibration.Batches != 4 || len(r.Weights) != 3 || fileSize(out+".data") <= 0 {
		t.Errorf("%d batches, %d weights, data file of %d bytes; want 4, 3 and a data file", r.Calibration.Batches, len(r.Weights), fileSize(out+".data"))
	}
}

// TestQuantizeProgress: static quantization reports reading, its
// calibration batches and writing.
func TestQuantizeProgress(t *testing.T) {
	out := filepath.Join(t.TempDir(), "int8.onnx")
	code, _, steps, stderr := observeRun(t, "quantize", digitsMLP, "-o", out, "--calibration", digitsMLPCalibration, "--batch-size", "128")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q; want 0 and nothing", code, stderr)
	}
	descs, runs := stages(steps)
	if want := []string{"read model.onnx", "calibrate", "write int8.onnx"}; !slices.Equal(descs, want) {
		t.Fatalf("progress in stages %q, want %q", descs, want)
	}
	checkSteps(t, runs[1], 2)
	checkBytes(t, runs[2], fileSize(out))
}

// TestProgressBarStages drives a bar through two stages as a pass
// reports them: each stage starts the bar over with its own description
// and length, although the first filled it.
func TestProgressBarStages(t *testing.T) {
	var shown bytes.Buffer
	p := &progress{
		bar:    progressbar.NewOptions(0, progressbar.OptionSetWriter(&shown), progressbar.OptionShowCount()),
		c:      &cli{},
		stage:  -1,
		stages: []string{"saliency", "reconstruct"},
	}
	for _, s := range []struct {
		done, total int
		desc        string
	}{{1, 3, "saliency"}, {2, 3, "saliency"}, {3, 3, "saliency"}, {1, 2, "reconstruct"}, {2, 2, "reconstruct"}} {
		p.Step(s.done, s.total)
		st := p.bar.State()
		if st.Description != s.desc || st.CurrentNum != int64(s.done) || st.Max != int64(s.total) {
			t.Errorf("after step %d of %d: bar %q at %d of %d, want %q", s.done, s.total, st.Description, st.CurrentNum, st.Max, s.desc)
		}
	}
	if !bytes.Contains(shown.Bytes(), []byte("reconstruct")) || !bytes.Contains(shown.Bytes(), []byte("2/2")) {
		t.Errorf("the bar showed %q", shown.String())
	}
}

package runtime

import (
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"onnxopt/internal/suite"
	"onnxopt/onnx"
)

// TestConformance runs every case of the ONNX conformance suite's node,
// pytorch-converted, pytorch-operator and simple folders as a subtest
// (TestConformance/node/test_add), comparing outputs with rtol 1e-3 and
// atol 1e-7. A wrong output or an error fails; a case needing an op or a
// value type the runtime lacks is skipped, and the share of passing cases
// per folder must reach conformanceTargets when the whole folder runs.
func TestConformance(t *testing.T) {
	suite.Dir(t)
	var (
		mu      sync.Mutex
		results = map[string][]CaseResult{}
	)
	t.Cleanup(func() { logCoverage(t, results) })
	for _, folder := range suite.Folders {
		t.Run(folder, func(t *testing.T) {
			cases := suite.Cases(t, folder)
			// Cleanup runs after the parallel subtests finish.
			t.Cleanup(func() {
				mu.Lock()
				defer mu.Unlock()
				checkTarget(t, folder, len(cases), results[folder])
			})
			for _, dir := range cases {
				t.Run(filepath.Base(dir), func(t *testing.T) {
					t.Parallel()
					res := RunCase(dir)
					mu.Lock()
					results[folder] = append(results[folder], res)
					mu.Unlock()
					if known, ok := knownDivergent[res.Name]; ok {
						if res.Status == StatusPass || !strings.Contains(res.Err, known.err) {
							t.Fatalf("known divergence changed: now %s %q; want an error containing %q (%s)", res.Status, res.Err, known.err, known.why)
						}
						t.Skipf("known divergence: %s", known.why)
					}
					switch res.Status {
					case StatusPass:
					case StatusUnsupported:
						t.Skip(res.Err)
					default:
						t.Errorf("%s (ops %s): %s", res.Status, strings.Join(res.Ops, " "), res.Err)
					}
				})
			}
		})
	}
}

// knownDivergent lists the cases where the suite's data, not the runtime,
// is wrong by the current spec. Each must keep failing with err; the
// subtest fails if one starts passing, so the list cannot go stale.
var knownDivergent = map[string]struct{ err, why string }{
	"test_cast_FLOAT_to_BFLOAT16": {"max abs err 0.00390625",
		"ONNX 1.12 generated the expected bfloat16 values by truncating float32; Cast rounds to nearest even, as the spec says since ONNX 1.14"},
	"test_castlike_FLOAT_to_BFLOAT16":          {`input "like": got rank 1 [1], want rank 2 [3,4]`, castLikeData},
	"test_castlike_FLOAT_to_BFLOAT16_expanded": {`input "like": got rank 1 [1], want rank 2 [3,4]`, castLikeData},
	"test_castlike_BFLOAT16_to_FLOAT":          {`input "like": got rank 1 [1], want rank 2 [3,4]`, castLikeData},
	"test_castlike_BFLOAT16_to_FLOAT_expanded": {`input "like": got rank 1 [1], want rank 2 [3,4]`, castLikeData},
	"test_adam_multiple": {`output 0 "X1_new": got float[1], want float[1], max abs err 0.00317`,
		"the model omits the epsilon=0.01 its expected outputs were computed with (onnx/onnx#7749, fixed upstream by adding the attribute)"},
}

const castLikeData = "the test data gives input \"like\" shape [1] where the model declares [3,4]; the runtime checks inputs against declared shapes"

// conformanceTargets is the share of each folder's cases that must pass.
var conformanceTargets = map[string]float64{
	"node":              0.70,
	"pytorch-converted": 1,
	"pytorch-operator":  1,
	"simple":            1,
}

// checkTarget fails when a folder that ran in full passes fewer cases than
// its target, listing the cases that did not pass.
func checkTarget(t *testing.T, folder string, total int, results []CaseResult) {
	target, ok := conformanceTargets[folder]
	if !ok || len(results) != total {
		return // no target, or a -run filter selected part of the folder
	}
	var missed []string
	for _, r := range results {
		if r.Status != StatusPass {
			missed = append(missed, r.Name)
		}
	}
	if pass := total - len(missed); float64(pass) < target*float64(total) {
		sort.Strings(missed)
		t.Errorf("%d of %d cases pass, the target is %.0f%%; not passing: %s",
			pass, total, 100*target, strings.Join(missed, " "))
	}
}

// logCoverage logs the counts per folder, the passing share of the cases
// that use each op, and the unsupported ops that block the most cases.
func logCoverage(t *testing.T, results map[string][]CaseResult) {
	blocked := map[string]int{}
	type usage struct{ pass, cases int }
	byOp := map[string]*usage{}
	for _, folder := range suite.Folders {
		counts := map[string]int{}
		for _, r := range results[folder] {
			counts[r.Status]++
			for _, op := range r.Ops {
				u := byOp[op]
				if u == nil {
					u = &usage{}
					byOp[op] = u
				}
				u.cases++
				if r.Status == StatusPass {
					u.pass++
				}
			}
			if r.Status == StatusUnsupported {
				op := r.Op
				if op == "" {
					op = "(non-tensor values)"
				}
				blocked[op]++
			}
		}
		if len(results[folder]) == 0 {
			continue
		}
		t.Logf("%-18s %4d cases: %4d pass, %d fail, %d error, %4d unsupported (%.1f%% pass)",
			folder, len(results[folder]), counts[StatusPass], counts[StatusFail], counts[StatusError],
			counts[StatusUnsupported], 100*float64(counts[StatusPass])/float64(len(results[folder])))
	}
	used := make([]string, 0, len(byOp))
	for op := range byOp {
		used = append(used, op)
	}
	sort.Strings(used)
	var cov strings.Builder
	for _, op := range used {
		fmt.Fprintf(&cov, " %s:%d/%d", op, byOp[op].pass, byOp[op].cases)
	}
	if len(used) > 0 {
		t.Logf("passing cases per op:%s", cov.String())
	}
	ops := make([]string, 0, len(blocked))
	for op := range blocked {
		ops = append(ops, op)
	}
	sort.Slice(ops, func(i, j int) bool {
		if blocked[ops[i]] != blocked[ops[j]] {
			return blocked[ops[i]] > blocked[ops[j]]
		}
		return ops[i] < ops[j]
	})
	var b strings.Builder
	for i, op := range ops {
		if i == 40 {
			fmt.Fprintf(&b, " ... %d more", len(ops)-i)
			break
		}
		fmt.Fprintf(&b, " %s:%d", op, blocked[op])
	}
	if len(ops) > 0 {
		t.Logf("unsupported ops by cases blocked:%s", b.String())
	}
}

func TestCompare(t *testing.T) {
	f32 := func(shape []int, v ...float32) *Tensor {
		return &Tensor{DType: onnx.TensorProto_FLOAT, Shape: shape, Data: v}
	}
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	tests := []struct {
		name      string
		got, want *Tensor
		ok        bool
	}{
		{"equal", f32([]int{2}, 1, 2), f32([]int{2}, 1, 2), true},
		// 1e-7 + 1e-3*1000 = 1.0000001 allows 1000 vs 1001.
		{"within rtol", f32([]int{1}, 1000.9), f32([]int{1}, 1000), true},
		{"beyond rtol", f32([]int{1}, 1001.5), f32([]int{1}, 1000), false},
		{"within atol at zero", f32([]int{1}, 5e-8), f32([]int{1}, 0), true},
		{"beyond atol at zero", f32([]int{1}, 1e-6), f32([]int{1}, 0), false},
		{"nan matches nan", f32([]int{1}, nan), f32([]int{1}, nan), true},
		{"nan is not a number", f32([]int{1}, nan), f32([]int{1}, 1), false},
		{"number is not nan", f32([]int{1}, 1), f32([]int{1}, nan), false},
		{"inf matches inf", f32([]int{1}, inf), f32([]int{1}, inf), true},
		{"inf is not -inf", f32([]int{1}, inf), f32([]int{1}, -inf), false},
		{"shape", f32([]int{2, 1}, 1, 2), f32([]int{1, 2}, 1, 2), false},
		{"rank-0 vs rank-1", f32(nil, 1), f32([]int{1}, 1), false},
		{"dtype", &Tensor{DType: onnx.TensorProto_DOUBLE, Shape: []int{1}, Data: []float64{1}}, f32([]int{1}, 1), false},
		{"data type unlike dtype", &Tensor{DType: onnx.TensorProto_FLOAT, Shape: []int{1}, Data: []float64{1}}, f32([]int{1}, 1), false},
		{"short data", f32([]int{2}, 1), f32([]int{2}, 1, 2), false},
		{"float16", &Tensor{DType: onnx.TensorProto_FLOAT16, Shape: []int{1}, Data: []float32{0.5}},
			&Tensor{DType: onnx.TensorProto_FLOAT16, Shape: []int{1}, Data: []float32{0.5}}, true},
		{"int64 exact", &Tensor{DType: onnx.TensorProto_INT64, Shape: []int{1}, Data: []int64{1 << 60}},
			&Tensor{DType: onnx.TensorProto_INT64, Shape: []int{1}, Data: []int64{1<<60 + 1}}, false},
		{"uint8 equal", &Tensor{DType: onnx.TensorProto_UINT8, Shape: []int{2}, Data: []uint8{1, 255}},
			&Tensor{DType: onnx.TensorProto_UINT8, Shape: []int{2}, Data: []uint8{1, 255}}, true},
		{"bool", &Tensor{DType: onnx.TensorProto_BOOL, Shape: []int{1}, Data: []bool{true}},
			&Tensor{DType: onnx.TensorProto_BOOL, Shape: []int{1}, Data: []bool{false}}, false},
		{"string", &Tensor{DType: onnx.TensorProto_STRING, Shape: []int{1}, Data: []string{"a"}},
			&Tensor{DType: onnx.TensorProto_STRING, Shape: []int{1}, Data: []string{"a"}}, true},
		{"empty", f32([]int{0, 3}), f32([]int{0, 3}), true},
		{"nil got", nil, f32([]int{1}, 1), false},
	}
	for _, tt := range tests {
		_, _, ok := Compare(tt.got, tt.want, ConformanceRTol, ConformanceATol)
		if ok != tt.ok {
			t.Errorf("%s: Compare ok = %v, want %v", tt.name, ok, tt.ok)
		}
	}
	maxAbs, maxRel, _ := Compare(f32([]int{2}, 1.5, 4), f32([]int{2}, 1, 5), ConformanceRTol, ConformanceATol)
	if maxAbs != 1 || maxRel != 0.5 {
		t.Errorf("Compare errors = %g, %g; want 1, 0.5", maxAbs, maxRel)
	}
}

func TestRunCaseMissingModel(t *testing.T) {
	res := RunCase(filepath.Join(t.TempDir(), "test_nothing"))
	if res.Status != StatusError || res.Name != "test_nothing" {
		t.Errorf("RunCase on an empty folder = %+v, want status error", res)
	}
}

// TestRunSuite checks that RunSuite visits every case of a folder once and
// reports each as RunCase does.
func TestRunSuite(t *testing.T) {
	dir := filepath.Join(suite.Dir(t), "simple")
	cases := suite.Cases(t, "simple")
	var calls, lastDone int
	results := RunSuite([]string{dir}, func(done, total int) {
		calls++
		lastDone = done
		if total != len(cases) {
			t.Errorf("progress total = %d, want %d", total, len(cases))
		}
	})
	if len(results) != len(cases) || calls != len(cases) || lastDone != len(cases) {
		t.Fatalf("RunSuite: %d results, %d progress calls ending at %d; want %d", len(results), calls, lastDone, len(cases))
	}
	for i, r := range results {
		if r.Dir != cases[i] {
			t.Errorf("result %d is for %s, want %s", i, r.Dir, cases[i])
			continue
		}
		if want := RunCase(cases[i]); r.Status != want.Status || r.Op != want.Op {
			t.Errorf("%s: RunSuite says %s %s, RunCase %s %s", r.Name, r.Status, r.Op, want.Status, want.Op)
		}
	}
}

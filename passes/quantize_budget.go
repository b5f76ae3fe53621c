package passes

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"

	"onnxopt/graph"
	"onnxopt/onnx"
	"onnxopt/runtime"
)

// An accuracyBudget bounds how far quantization may move a model's
// outputs from the float model's on the calibration data. Layers are kept
// in float, the most sensitive first, until the bound holds.
type accuracyBudget struct {
	MaxError float64 // the largest |quantized − float| over every output element; 0 bounds nothing
	MinTop1  float64 // the least top-1 agreement of classifier outputs; 0 bounds nothing
}

func (b *accuracyBudget) flags(fs *pflag.FlagSet) {
	fs.Float64Var(&b.MaxError, "max-error", 0, "keep the layers most sensitive to quantization in float until no output differs from the float model's by more than this on the calibration data (0: no bound)")
	fs.Float64Var(&b.MinTop1, "min-top1", 0, "keep the most sensitive layers in float until this fraction of the calibration samples keep the float model's top-1 class, in outputs shaped [N, C] (0: no bound)")
}

func (b *accuracyBudget) active() bool { return b.MaxError > 0 || b.MinTop1 > 0 }

func (b *accuracyBudget) check(env *Env) error {
	switch {
	case b.MaxError < 0 || math.IsNaN(b.MaxError):
		return fmt.Errorf("--max-error %g is negative", b.MaxError)
	case !(b.MinTop1 >= 0 && b.MinTop1 <= 1):
		return fmt.Errorf("--min-top1 %g is not in [0, 1]", b.MinTop1)
	case b.active() && len(env.Calibration) == 0:
		return errors.New("--max-error and --min-top1 are measured on calibration data, and none was given")
	}
	return nil
}

// bounds describes the bounds, for notes.
func (b *accuracyBudget) bounds() string {
	var parts []string
	if b.MaxError > 0 {
		parts = append(parts, fmt.Sprintf("--max-error %g", b.MaxError))
	}
	if b.MinTop1 > 0 {
		parts = append(parts, fmt.Sprintf("--min-top1 %g", b.MinTop1))
	}
	return strings.Join(parts, " and ")
}

// outputError is how far a model's outputs are from the float model's
// over the calibration batches.
type outputError struct {
	maxAbs      float64
	agree, rows int // rows of [N, C] float outputs and those with the same argmax
}

func (e outputError) top1() float64 {
	if e.rows == 0 {
		return 1
	}
	return float64(e.agree) / float64(e.rows)
}

func (e outputError) String() string {
	s := "up to " + formatError(e.maxAbs)
	if e.rows > 0 {
		s += fmt.Sprintf(", top-1 agreement %.2f%%", 100*e.top1())
	}
	return s
}

func formatError(x float64) string { return fmt.Sprintf("%.3g", x) }

func (b *accuracyBudget) holds(e outputError) bool {
	return (b.MaxError == 0 || e.maxAbs <= b.MaxError) && (b.MinTop1 == 0 || e.top1() >= b.MinTop1)
}

// moreSensitive orders the errors layers cause alone, the greatest first:
// by top-1 disagreement when the budget bounds it, then by the largest
// error.
func (b *accuracyBudget) moreSensitive(x, y outputError) int {
	if b.MinTop1 > 0 {
		if c := cmp.Compare(x.top1(), y.top1()); c != 0 {
			return c
		}
	}
	return cmp.Compare(y.maxAbs, x.maxAbs)
}

// A quantizer rewrites the given layers of m, which are nodes of its
// root graph, as a quantization pass does.
type quantizer func(m *graph.Model, layers []*graph.Node, env *Env) (Result, error)

// quantizeWithin quantizes the layers of plan in m with quantize. Under an
// active budget it first measures, on clones of m, the error of every
// layer quantized, then of each layer quantized alone, and keeps the most
// sensitive layers in float, one more at a time, until the budget holds.
// m's root graph must be sorted.
func (b *accuracyBudget) quantizeWithin(m *graph.Model, plan layerPlan, env *Env, quantize quantizer) (Result, error) {
	if !b.active() || len(plan.layers) == 0 {
		res, err := quantize(m, plan.layers, env)
		res.Notes = append(plan.notes, res.Notes...)
		return res, err
	}
	ev, err := newBudgetEvaluator(m, env.Calibration, quantize)
	if err != nil {
		return Result{}, err
	}
	if b.MinTop1 > 0 && ev.rows == 0 {
		return Result{}, errors.New("--min-top1: no output is shaped [N, C] like a classifier's scores")
	}
	layers := plan.layers
	all, err := ev.measure(layers)
	if err != nil {
		return Result{}, err
	}
	notes := []string{fmt.Sprintf("budget %s on %d calibration samples: with every layer quantized the outputs differ from float by %s", b.bounds(), ev.samples, all)}
	keep := 0 // the number of most sensitive layers kept in float
	var order []int
	var alone []outputError
	if !b.holds(all) {
		alone = make([]outputError, len(layers))
		for i, n := range layers {
			if alone[i], err = ev.measure([]*graph.Node{n}); err != nil {
				return Result{}, err
			}
		}
		order = make([]int, len(layers))
		for i := range order {
			order[i] = i
		}
		slices.SortStableFunc(order, func(i, j int) int { return b.moreSensitive(alone[i], alone[j]) })
		var sens []string
		for _, i := range order {
			sens = append(sens, fmt.Sprintf("%s %s", layers[i], alone[i]))
		}
		notes = append(notes, "outputs with each layer quantized alone, most sensitive first: "+strings.Join(sens, "; "))
		for keep = 1; keep < len(layers); keep++ {
			e, err := ev.measure(remove(layers, order[:keep]))
			if err != nil {
				return Result{}, err
			}
			if b.holds(e) {
				notes = append(notes, fmt.Sprintf("with the %d most sensitive layers in float the outputs differ by %s: within the budget", keep, e))
				break
			}
		}
		for rank, i := range order[:keep] {
			notes = append(notes, fmt.Sprintf("%s kept in float by the budget: quantized alone it moves the outputs by %s, the %s of %d layers",
				layers[i], alone[i], sensitivityRank(rank+1), len(layers)))
		}
		if keep == len(layers) {
			notes = append(notes, "the budget holds only with every layer in float: nothing is quantized")
		}
	}
	res, err := quantize(m, remove(layers, order[:keep]), env)
	res.Notes = append(append(plan.notes, notes...), res.Notes...)
	return res, err
}

// remove returns layers without those at the given indices.
func remove(layers []*graph.Node, drop []int) []*graph.Node {
	var kept []*graph.Node
	for i, n := range layers {
		if !slices.Contains(drop, i) {
			kept = append(kept, n)
		}
	}
	return kept
}

// sensitivityRank says "most sensitive", "2nd most sensitive"...
func sensitivityRank(n int) string {
	if n == 1 {
		return "most sensitive"
	}
	suffix := "th"
	switch {
	case n%100 >= 11 && n%100 <= 13:
	case n%10 == 1:
		suffix = "st"
	case n%10 == 2:
		suffix = "nd"
	case n%10 == 3:
		suffix = "rd"
	}
	return fmt.Sprintf("%d%s most sensitive", n, suffix)
}

// A budgetEvaluator measures the error of quantizing sets of layers of a
// model against the float model's outputs on calibration batches.
type budgetEvaluator struct {
	// model is the float model, copied for each evaluation, and index
	// the position of each of its nodes in the root graph.
	model     *onnx.ModelProto
	index     map[*graph.Node]int
	batches   []map[string]*runtime.Tensor
	reference []map[string]*runtime.Tensor // the float model's outputs, by batch
	quantize  quantizer
	samples   int
	rows      int // rows of [N, C] float outputs over all batches
}

func newBudgetEvaluator(m *graph.Model, batches []map[string]*runtime.Tensor, quantize quantizer) (*budgetEvaluator, error) {
	plan, err := runtime.Compile(m.Graph)
	if err != nil {
		return nil, err
	}
	ev := &budgetEvaluator{model: m.ToProto(), index: map[*graph.Node]int{}, batches: batches, quantize: quantize}
	for i, n := range m.Graph.Nodes {
		ev.index[n] = i
	}
	for b, batch := range batches {
		out, err := plan.Run(batch)
		if err != nil {
			return nil, fmt.Errorf("budget: float model, calibration batch %d: %w", b, err)
		}
		ev.reference = append(ev.reference, out)
		for _, t := range batch {
			ev.samples += t.Shape[0]
			break
		}
		for _, t := range out {
			if classifierRows(t) > 0 {
				ev.rows += t.Shape[0]
			}
		}
	}
	return ev, nil
}

// measure quantizes the given layers (nodes of the model the evaluator was
// made from) in a copy of it and returns its error.
func (ev *budgetEvaluator) measure(layers []*graph.Node) (outputError, error) {
	m, err := graph.FromProto(proto.CloneOf(ev.model))
	if err != nil {
		return outputError{}, err
	}
	copied := make([]*graph.Node, len(layers))
	for i, n := range layers {
		j, ok := ev.index[n]
		if !ok || j >= len(m.Graph.Nodes) || m.Graph.Nodes[j].OpType != n.OpType || m.Graph.Nodes[j].Name != n.Name {
			return outputError{}, fmt.Errorf("budget: %s is not in the copy of the model", n)
		}
		copied[i] = m.Graph.Nodes[j]
	}
	if _, err := ev.quantize(m, copied, &Env{}); err != nil {
		return outputError{}, err
	}
	if err := m.Graph.Sort(); err != nil {
		return outputError{}, err
	}
	plan, err := runtime.Compile(m.Graph)
	if err != nil {
		return outputError{}, fmt.Errorf("budget: quantized model: %w", err)
	}
	var e outputError
	for b, batch := range ev.batches {
		out, err := plan.Run(batch)
		if err != nil {
			return outputError{}, fmt.Errorf("budget: quantized model, calibration batch %d: %w", b, err)
		}
		for name, ref := range ev.reference[b] {
			got := out[name]
			maxAbs, _, _ := runtime.Compare(got, ref, 0, 0)
			e.maxAbs = max(e.maxAbs, maxAbs)
			if classes := classifierRows(ref); classes > 0 {
				e.rows += ref.Shape[0]
				if classifierRows(got) == classes && got.Shape[0] == ref.Shape[0] {
					e.agree += sameArgmax(ref.Data.([]float32), got.Data.([]float32), classes)
				}
			}
		}
	}
	return e, nil
}

// classifierRows is the row length of a classifier's scores, [N, C]
// float32 with C > 1, or 0 for other tensors.
func classifierRows(t *runtime.Tensor) int {
	if _, ok := t.Data.([]float32); !ok || t.Rank() != 2 || t.Shape[1] < 2 {
		return 0
	}
	return t.Shape[1]
}

// sameArgmax counts the rows of length classes whose largest element is
// in the same column in a and b.
func sameArgmax(a, b []float32, classes int) int {
	same := 0
	for lo := 0; lo+classes <= len(a); lo += classes {
		if argmax(a[lo:lo+classes]) == argmax(b[lo:lo+classes]) {
			same++
		}
	}
	return same
}

func argmax(xs []float32) int {
	best := 0
	for i, x := range xs {
		if x > xs[best] {
			best = i
		}
	}
	return best
}

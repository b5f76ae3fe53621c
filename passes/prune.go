package passes

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path"
	"slices"

	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"

	"onnxopt/graph"
	"onnxopt/onnx"
	"onnxopt/runtime"
)

// Unstructured pruning zeroes single weights of the layers that hold most
// of a network's parameters. This file holds what every pruning pass
// shares: finding the weights (PrunableWeights, which structured pruning
// uses too), the options that choose which layers to prune and how much,
// ranking scores into masks, and the per-weight report (PruneReport).
// Pruned weights stay dense: the file keeps its size, and only a runtime
// with sparse kernels, or compression of the file, turns the zeros into
// savings.

// prunableOps names the operators whose constant weights pruning treats,
// for messages.
const prunableOps = "Conv, ConvTranspose, Gemm, MatMul, LSTM, GRU or RNN"

// A PrunableWeight is one constant weight tensor and the layers that read
// it as their weight.
type PrunableWeight struct {
	// Value holds the numbers: an initializer no graph input overrides,
	// or the output of a Constant node.
	Value *graph.Value
	// Layers are the nodes reading Value as a weight, in topological
	// order (the root graph's nodes before those of subgraphs). Every one
	// reads it at the same input with the same layout, so pruning the
	// tensor once prunes it consistently for all of them.
	Layers []*graph.Node
	// Input is the input slot of the layers that holds the weight: 1 for
	// the weight of Conv, ConvTranspose, Gemm and MatMul (0 for a MatMul
	// whose left operand is the constant), 1 (W) or 2 (R) for LSTM, GRU
	// and RNN.
	Input int
	// OutAxis is the axis of the weight's shape along which the layer's
	// output channels lie, −1 for a MatMul by a constant vector; InAxis
	// is the axis that is summed over (input channels, Gemm's and
	// MatMul's K):
	//
	//	Conv           [Cout, Cin/group, k...]   out 0, in 1
	//	ConvTranspose  [Cin, Cout/group, k...]   out 1, in 0
	//	Gemm           [K, N], transB: [N, K]    out 1, in 0; transB: out 0, in 1
	//	MatMul B       [..., K, N]               out r−1, in r−2
	//	MatMul A       [..., M, K]               out r−2, in r−1
	//	LSTM/GRU/RNN   [dirs, gates·H, I or H]   out 1, in 2
	OutAxis, InAxis int
}

// Name is the name of the value holding the weight.
func (w *PrunableWeight) Name() string { return w.Value.Name }

// Layer is the first layer reading the weight, which names it in reports.
func (w *PrunableWeight) Layer() *graph.Node { return w.Layers[0] }

// Tensor returns the weight's data: the initializer, or the Constant
// node's value attribute.
func (w *PrunableWeight) Tensor() *onnx.TensorProto { return constantTensor(w.Value) }

// Dims is the weight's shape.
func (w *PrunableWeight) Dims() []int64 { return w.Tensor().GetDims() }

// Float64s decodes the weight.
func (w *PrunableWeight) Float64s() ([]float64, error) {
	vals, err := onnx.Float64s(w.Tensor())
	if err != nil {
		return nil, fmt.Errorf("weight %q: %w", w.Name(), err)
	}
	return vals, nil
}

// SetFloat64s replaces the weight's numbers, keeping its name, shape and
// element type (narrower types round to nearest). A zero stays exactly
// zero in every floating-point type.
func (w *PrunableWeight) SetFloat64s(vals []float64) error {
	return setConstantValues(w.Value, vals)
}

// constantTensor returns the tensor v holds when v is a constant (an
// initializer no graph input overrides, or the output of a Constant node
// with a tensor value), else nil.
func constantTensor(v *graph.Value) *onnx.TensorProto {
	switch {
	case v == nil:
		return nil
	case v.IsConstant():
		return v.Init
	case v.Producer != nil && v.Producer.OpType == "Constant" && isStandard(v.Producer):
		return v.Producer.AttrTensor("value")
	}
	return nil
}

// setConstantValues replaces the numbers of the constant v, as constantTensor
// finds it, with vals of the same count.
func setConstantValues(v *graph.Value, vals []float64) error {
	old := constantTensor(v)
	if old == nil {
		return fmt.Errorf("%q is not a constant", v.Name)
	}
	t, err := floatTensor(v.Name, onnx.DataType(old.GetDataType()), old.GetDims(), vals)
	if err != nil {
		return fmt.Errorf("weight %q: %w", v.Name, err)
	}
	if v.Init != nil {
		v.SetInit(t)
		return nil
	}
	t.Name = nil // a Constant's value is named by the node's output
	v.Producer.SetAttr(&onnx.AttributeProto{Name: proto.String("value"), Type: onnx.AttributeProto_TENSOR.Enum(), T: t})
	return nil
}

// weightSlot says where a layer of op type n.OpType reads a weight.
type weightSlot struct {
	input, outAxis, inAxis, minRank int
}

// weightSlots lists the inputs of n that hold weights.
func weightSlots(n *graph.Node) []weightSlot {
	if !isStandard(n) {
		return nil
	}
	switch n.OpType {
	case "Conv":
		return []weightSlot{{1, 0, 1, 3}}
	case "ConvTranspose":
		return []weightSlot{{1, 1, 0, 3}}
	case "Gemm":
		if n.AttrInt("transB", 0) != 0 {
			return []weightSlot{{1, 0, 1, 2}}
		}
		return []weightSlot{{1, 1, 0, 2}}
	case "MatMul":
		// The constant operand is the weight: B as a rule, A when only
		// A is constant.
		if b := constantTensor(n.Input(1)); b != nil {
			r := len(b.GetDims())
			if r == 1 {
				return []weightSlot{{1, -1, 0, 1}}
			}
			return []weightSlot{{1, r - 1, r - 2, 2}}
		}
		if a := constantTensor(n.Input(0)); a != nil && len(a.GetDims()) >= 2 {
			r := len(a.GetDims())
			return []weightSlot{{0, r - 2, r - 1, 2}}
		}
		return nil
	case "LSTM", "GRU", "RNN":
		return []weightSlot{{1, 1, 2, 3}, {2, 1, 2, 3}}
	}
	return nil
}

// PrunableWeights returns the weights of m's prunable layers (Conv,
// ConvTranspose, Gemm, MatMul, LSTM, GRU and RNN, subgraphs included) that can be pruned: constant, floating point, with
// their data loaded. They come in topological order of their first layer,
// each tensor once however many layers read it. The notes name the
// weights left alone and why: computed rather than constant, overridable
// by a graph input, integer, stored outside the model and not loaded, or
// read by two layers in different layouts. m's graphs are sorted first.
func PrunableWeights(m *graph.Model) ([]*PrunableWeight, []string, error) {
	if err := m.Graph.Sort(); err != nil {
		return nil, nil, err
	}
	var weights []*PrunableWeight
	var notes []string
	byValue := map[*graph.Value]*PrunableWeight{}
	conflicts := map[*PrunableWeight]bool{}
	m.Graph.Walk(func(g *graph.Graph) bool {
		for _, n := range g.Nodes {
			for _, s := range weightSlots(n) {
				v := n.Input(s.input)
				if v == nil {
					continue
				}
				if w := byValue[v]; w != nil {
					if w.Input != s.input || w.OutAxis != s.outAxis || w.InAxis != s.inAxis {
						if !conflicts[w] {
							notes = append(notes, fmt.Sprintf("weight %q left alone: %s and %s read it in different layouts", v.Name, w.Layer(), n))
						}
						conflicts[w] = true
					}
					w.Layers = append(w.Layers, n)
					continue
				}
				if why := unprunable(v, s); why != "" {
					notes = append(notes, fmt.Sprintf("weight of %s left alone: %s", n, why))
					continue
				}
				w := &PrunableWeight{Value: v, Layers: []*graph.Node{n}, Input: s.input, OutAxis: s.outAxis, InAxis: s.inAxis}
				byValue[v] = w
				weights = append(weights, w)
			}
		}
		return true
	})
	weights = slices.DeleteFunc(weights, func(w *PrunableWeight) bool { return conflicts[w] })
	return weights, notes, nil
}

// unprunable says why v, read at slot s, is not a weight pruning can
// change, or returns "".
func unprunable(v *graph.Value, s weightSlot) string {
	t := constantTensor(v)
	switch {
	case t == nil && v.Init != nil:
		return fmt.Sprintf("%q is an initializer a graph input can override", v.Name)
	case t == nil && v.Producer != nil:
		return fmt.Sprintf("%q is computed by %s", v.Name, v.Producer)
	case t == nil:
		return fmt.Sprintf("%q is a graph input", v.Name)
	case !isFoldFloat(onnx.DataType(t.GetDataType())):
		return fmt.Sprintf("%q is of type %v", v.Name, onnx.DataType(t.GetDataType()))
	case t.GetDataLocation() == onnx.TensorProto_EXTERNAL:
		return fmt.Sprintf("%q is stored outside the model and was not loaded", v.Name)
	case len(t.GetDims()) < s.minRank:
		return fmt.Sprintf("%q has shape %v", v.Name, t.GetDims())
	}
	return ""
}

// pruneOptions choose which layers a pruning pass prunes, and how much.
type pruneOptions struct {
	Sparsity float64
	// Global ranks the scores of every layer together, so that layers
	// whose weights matter less lose more of them; otherwise each layer
	// loses its own Sparsity share.
	Global        bool
	Exclude       []string
	KeepFirstLast bool
	// Schedule is a JSON file {"node name": sparsity} of layers pruned
	// at their own sparsity, each on its own, whatever Global says.
	Schedule    string
	Reconstruct bool

	progress func(done, total int)
}

// A StagedProgressReporter is a ProgressReporter whose work comes in
// stages, one after the other, each reported from done = 1 to its own
// total.
type StagedProgressReporter interface {
	ProgressReporter
	// ProgressStages names the stages the pass will report, in order,
	// for the options it has.
	ProgressStages() []string
}

// SetProgress makes the pass report its work in the stages
// ProgressStages names: the layers reconstruction refits, as it starts
// each, after what the pass itself reports.
func (o *pruneOptions) SetProgress(fn func(done, total int)) { o.progress = fn }

// ProgressStages names what SetProgress reports of the options.
func (o *pruneOptions) ProgressStages() []string {
	if o.Reconstruct {
		return []string{"reconstruct"}
	}
	return nil
}

// flags binds the options; sparsity says whether the pass takes
// --sparsity, --global and --schedule (N:M pruning sets its own).
func (o *pruneOptions) flags(fs *pflag.FlagSet, sparsity bool) {
	if sparsity {
		fs.Float64Var(&o.Sparsity, "sparsity", o.Sparsity, "share of the weights to zero, in [0, 1): of each layer, or of all with --global")
		fs.BoolVar(&o.Global, "global", false, "rank every layer's weights together rather than pruning each layer by --sparsity")
		fs.StringVar(&o.Schedule, "schedule", "", `JSON file {"node name": sparsity} of layers pruned at their own sparsity`)
	}
	fs.StringSliceVar(&o.Exclude, "exclude", nil, "node names or op types (or path.Match patterns of them) whose weights stay dense")
	fs.BoolVar(&o.KeepFirstLast, "keep-first-last", false, "keep the first and the last layer with weights dense")
	fs.BoolVar(&o.Reconstruct, "reconstruct", false, "refit each layer's remaining weights and bias to its original outputs on the calibration data")
}

// A pruneTarget is a weight chosen for pruning.
type pruneTarget struct {
	w    *PrunableWeight
	vals []float64 // the weight's numbers, which pruning changes
	// sparsity is the share of vals to zero; global targets are ranked
	// together against the share of all their elements instead.
	sparsity float64
	global   bool
}

// checkSparsity checks a sparsity given as an option or in a schedule.
func checkSparsity(what string, s float64) error {
	if !(s >= 0 && s < 1) {
		return fmt.Errorf("%s %v is outside [0, 1)", what, s)
	}
	return nil
}

// targets picks the weights to prune from those found: excluded layers
// and, with KeepFirstLast, the first and last ones stay dense. The notes
// say which were left and why; a pattern of --exclude that matches no
// layer is reported through env.
func (o *pruneOptions) targets(weights []*PrunableWeight, env *Env) ([]*pruneTarget, []string, error) {
	if err := checkSparsity("--sparsity", o.Sparsity); err != nil {
		return nil, nil, err
	}
	schedule, err := readSchedule(o.Schedule)
	if err != nil {
		return nil, nil, err
	}
	matched := make([]bool, len(o.Exclude))
	excluded := func(n *graph.Node) bool {
		hit := false
		for i, p := range o.Exclude {
			if patternMatches(p, n.Name) || patternMatches(p, n.OpType) {
				matched[i], hit = true, true
			}
		}
		return hit
	}
	scheduled := map[string]bool{}
	var targets []*pruneTarget
	var notes []string
	for _, w := range weights {
		hit := false
		for _, n := range w.Layers {
			hit = excluded(n) || hit // every layer, so that every pattern that matches counts
		}
		if hit {
			notes = append(notes, fmt.Sprintf("weight %q of %s kept dense: --exclude", w.Name(), w.Layer()))
			continue
		}
		first, last := w.Layer() == weights[0].Layer(), w.Layer() == weights[len(weights)-1].Layer()
		if o.KeepFirstLast && (first || last) {
			notes = append(notes, fmt.Sprintf("weight %q of %s kept dense: --keep-first-last", w.Name(), w.Layer()))
			continue
		}
		vals, err := w.Float64s()
		if err != nil {
			return nil, nil, err
		}
		t := &pruneTarget{w: w, vals: vals, sparsity: o.Sparsity, global: o.Global}
		for _, n := range w.Layers {
			if s, ok := schedule[n.Name]; ok {
				t.sparsity, t.global = s, false
				scheduled[n.Name] = true
			}
		}
		targets = append(targets, t)
	}
	for i, p := range o.Exclude {
		if !matched[i] {
			env.warnf("--exclude %q matches no layer with prunable weights", p)
		}
	}
	for name := range schedule {
		if !scheduled[name] && !slices.ContainsFunc(weights, func(w *PrunableWeight) bool {
			return slices.ContainsFunc(w.Layers, func(n *graph.Node) bool { return n.Name == name })
		}) {
			return nil, nil, fmt.Errorf("--schedule %s: no layer with prunable weights is named %q", o.Schedule, name)
		}
	}
	return targets, notes, nil
}

// patternMatches reports whether name is pattern, or matches it as a
// path.Match pattern.
func patternMatches(pattern, name string) bool {
	if pattern == name {
		return true
	}
	ok, err := path.Match(pattern, name)
	return err == nil && ok
}

// readSchedule reads a JSON object of sparsities by node name.
func readSchedule(file string) (map[string]float64, error) {
	if file == "" {
		return nil, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--schedule: %w", err)
	}
	var s map[string]float64
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("--schedule %s: want a JSON object {\"node name\": sparsity}: %w", file, err)
	}
	for name, v := range s {
		if err := checkSparsity(fmt.Sprintf("--schedule %s: sparsity of %q:", file, name), v); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// lowestScores returns, for each target, which elements to keep: each
// target on its own loses the round(sparsity·n) elements of lowest score;
// the global targets together lose the round(sparsity·N) lowest of all
// their N elements. Ties go to the element that comes first (target
// order, then index), so that a score is a complete recipe.
func lowestScores(targets []*pruneTarget, scores [][]float64, sparsity float64) [][]bool {
	keep := make([][]bool, len(targets))
	var pooled []float64
	var global []int
	for ti, t := range targets {
		if t.global {
			pooled = append(pooled, scores[ti]...)
			global = append(global, ti)
			continue
		}
		keep[ti] = keepAboveLowest(scores[ti], pruneCount(t.sparsity, len(t.vals)))
	}
	all := keepAboveLowest(pooled, pruneCount(sparsity, len(pooled)))
	for _, ti := range global {
		keep[ti], all = all[:len(targets[ti].vals)], all[len(targets[ti].vals):]
	}
	return keep
}

// keepAboveLowest marks all but the k lowest scores to keep, the first
// of equal scores going first. NaN ranks above every number.
func keepAboveLowest(scores []float64, k int) []bool {
	keep := make([]bool, len(scores))
	for i := range keep {
		keep[i] = true
	}
	if k == 0 {
		return keep
	}
	sorted := slices.Clone(scores)
	slices.Sort(sorted) // NaNs first: sort.Float64Slice order
	nans := 0
	for nans < len(sorted) && math.IsNaN(sorted[nans]) {
		nans++
	}
	sorted = append(sorted[nans:], sorted[:nans]...)
	threshold := sorted[k-1]
	below := 0
	for _, s := range sorted[:k] {
		if s < threshold {
			below++
		}
	}
	ties := k - below
	for i, s := range scores {
		switch {
		case s < threshold:
			keep[i] = false
		case s == threshold && ties > 0, math.IsNaN(s) && math.IsNaN(threshold) && ties > 0:
			keep[i] = false
			ties--
		}
	}
	return keep
}

// pruneCount is how many of n elements a sparsity zeroes.
func pruneCount(sparsity float64, n int) int {
	return min(n, int(math.Round(sparsity*float64(n))))
}

// runPrune is the body of every unstructured pruning pass: it finds the
// weights, picks the targets, lets masks choose what each keeps, zeroes
// the rest and, with Reconstruct, refits what remains.
func runPrune(m *graph.Model, env *Env, o *pruneOptions, masks func(targets []*pruneTarget) ([][]bool, error)) (Result, error) {
	var res Result
	weights, notes, err := PrunableWeights(m)
	if err != nil {
		return res, err
	}
	res.Notes = notes
	if len(weights) == 0 {
		return res, fmt.Errorf("the model has no prunable weights: no %s layer with constant floating-point weights", prunableOps)
	}
	if o.Reconstruct {
		if len(env.Calibration) == 0 {
			return res, errors.New("--reconstruct needs calibration data")
		}
		if err := checkCalibration(m.Graph, env.Calibration); err != nil {
			return res, err
		}
	}
	targets, notes, err := o.targets(weights, env)
	if err != nil {
		return res, err
	}
	res.Notes = append(res.Notes, notes...)
	if len(targets) == 0 {
		env.warnf("every layer with prunable weights is excluded or kept dense: nothing to prune")
		return res, nil
	}
	var original *graph.Model
	if o.Reconstruct {
		if original, err = graph.FromProto(proto.CloneOf(m.ToProto())); err != nil {
			return res, fmt.Errorf("copying the model for reconstruction: %w", err)
		}
	}
	keep, err := masks(targets)
	if err != nil {
		return res, err
	}
	for ti, t := range targets {
		for i, k := range keep[ti] {
			if !k && t.vals[i] != 0 {
				t.vals[i] = 0
				res.Changes++
			}
		}
		if err := t.w.SetFloat64s(t.vals); err != nil {
			return res, err
		}
	}
	if o.Reconstruct {
		notes, err := reconstructReporting(m, original, targets, keep, env.Calibration, o.progress)
		res.Notes = append(res.Notes, notes...)
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// checkCalibration checks that every calibration batch holds samples that
// fit the inputs of g that have no default.
func checkCalibration(g *graph.Graph, calib []map[string]*runtime.Tensor) error {
	for i, batch := range calib {
		for _, in := range g.Inputs {
			t, ok := batch[in.Name]
			switch {
			case !ok && in.Init == nil:
				return fmt.Errorf("calibration batch %d has no samples for input %q", i, in.Name)
			case !ok:
				continue
			}
			if _, _, err := checkSamples(in, t); err != nil {
				return fmt.Errorf("calibration batch %d, input %q: %w", i, in.Name, err)
			}
		}
	}
	return nil
}

// A WeightReport describes one prunable weight as it stands.
type WeightReport struct {
	Name    string  `json:"name"`  // the value holding the weight
	Layer   string  `json:"layer"` // the first node reading it
	Op      string  `json:"op"`
	Shape   []int64 `json:"shape"`
	Params  int64   `json:"params"`
	NonZero int64   `json:"nonzero"`
	Bytes   int64   `json:"bytes"`
	// Sparsity is the share of the elements that are zero.
	Sparsity float64 `json:"sparsity"`
}

// PruneReport describes every prunable weight of m (see PrunableWeights),
// in topological order: shape, elements, non-zeros and bytes as stored.
func PruneReport(m *graph.Model) ([]WeightReport, error) {
	weights, _, err := PrunableWeights(m)
	if err != nil {
		return nil, err
	}
	reports := make([]WeightReport, len(weights))
	for i, w := range weights {
		vals, err := w.Float64s()
		if err != nil {
			return nil, err
		}
		t := w.Tensor()
		r := WeightReport{Name: w.Name(), Layer: w.Layer().Name, Op: w.Layer().OpType, Shape: t.GetDims(),
			Params: int64(len(vals)), Bytes: graph.TensorBytes(t)}
		for _, v := range vals {
			if v != 0 {
				r.NonZero++
			}
		}
		if r.Params > 0 {
			r.Sparsity = 1 - float64(r.NonZero)/float64(r.Params)
		}
		reports[i] = r
	}
	return reports, nil
}

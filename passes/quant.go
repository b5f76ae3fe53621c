package passes

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"

	"onnxopt/graph"
	"onnxopt/onnx"
)

// Quantization follows the ONNX operators' formulas, so that what a pass
// computes offline is what QuantizeLinear would compute at run time:
// q = saturate(round_half_even(x / scale) + zero_point), the quotient taken
// in float32, and x ≈ (q − zero_point)·scale back.

// smallestNormal is the least positive normal float32. A scale is never
// below it: a zero scale divides by zero and a denormal one loses
// precision, or is flushed to zero, in runtimes that run with FTZ/DAZ.
const smallestNormal = 0x1p-126

// An intRange is the integers a quantized type holds, and the part of them
// that a tensor's range is mapped onto.
type intRange struct {
	dt       onnx.DataType
	min, max int32 // the type's range: quantization saturates to it
	lo, hi   int32 // the range the scale maps the values onto
}

// weightRange is symmetric int8, [-127, 127], or [-63, 63] with
// reduceRange: 7 bits, so that the pairwise sums of u8×s8 products in
// CPUs without VNNI cannot overflow int16.
func weightRange(reduceRange bool) intRange {
	r := intRange{dt: onnx.TensorProto_INT8, min: -128, max: 127, lo: -127, hi: 127}
	if reduceRange {
		r.lo, r.hi = -63, 63
	}
	return r
}

// activationRange is int8 with a zero point of 0 ([-127, 127]) when
// symmetric, else uint8 over its whole range with a zero point anywhere.
func activationRange(symmetric bool) intRange {
	if symmetric {
		return intRange{dt: onnx.TensorProto_INT8, min: -128, max: 127, lo: -127, hi: 127}
	}
	return intRange{dt: onnx.TensorProto_UINT8, min: 0, max: 255, lo: 0, hi: 255}
}

// quantizeValue quantizes one value as QuantizeLinear does: the float32
// quotient (float64 division rounded once to float32 is the correctly
// rounded float32 quotient), rounded half to even, plus the zero point,
// saturated to the type. NaN, which the specification leaves undefined,
// becomes the zero point.
func quantizeValue(x, scale float32, zeroPoint int32, r intRange) int32 {
	q := math.RoundToEven(float64(float32(float64(x) / float64(scale))))
	if q != q {
		q = 0
	}
	q += float64(zeroPoint)
	switch {
	case q < float64(r.min):
		return r.min
	case q > float64(r.max):
		return r.max
	}
	return int32(q)
}

// guardScale rounds a scale to float32, replacing one that is zero (a
// constant-zero tensor: any scale represents it, 1 is the plainest) or
// below the smallest normal float32.
func guardScale(s float64) float32 {
	switch {
	case s == 0:
		return 1
	case s < smallestNormal:
		return smallestNormal
	}
	return float32(s)
}

// symmetricParams is the scale that maps [-maxAbs, maxAbs] onto [r.lo,
// r.hi] with a zero point of 0, which keeps zero weights exactly zero.
func symmetricParams(maxAbs float64, r intRange) float32 {
	return guardScale(maxAbs / float64(r.hi))
}

// affineParams is the scale and zero point that map [lo, hi], widened to
// hold 0 so that zero is exact (padding, ReLU outputs), onto [r.lo, r.hi].
func affineParams(lo, hi float64, r intRange) (float32, int32) {
	lo, hi = min(lo, 0), max(hi, 0)
	scale := guardScale((hi - lo) / float64(r.hi-r.lo))
	zp := math.RoundToEven(float64(r.lo) - lo/float64(scale))
	return scale, int32(min(max(zp, float64(r.lo)), float64(r.hi)))
}

// quantizedWeight is a float32 tensor quantized to int8, per tensor (axis
// −1, one scale) or per channel along axis.
type quantizedWeight struct {
	dims   []int64
	axis   int
	data   []byte // the int8 elements, as raw_data holds them
	scales []float32
}

// quantizeWeight quantizes the float32 tensor t symmetrically. It refuses
// tensors holding NaN or infinities, whose range has no finite scale.
// The result is what quantizeValue gives element by element, computed
// without a float32 copy of t or a division in float64.
func quantizeWeight(t *onnx.TensorProto, axis int, r intRange) (quantizedWeight, error) {
	dims := t.GetDims()
	w, err := newFloatReader(t)
	if err != nil {
		return quantizedWeight{}, err
	}
	channels, inner := 1, w.len()
	if axis >= 0 {
		channels = int(dims[axis])
		inner = 1
		for _, d := range dims[axis+1:] {
			inner *= int(d)
		}
	}
	q := quantizedWeight{dims: dims, axis: axis, data: make([]byte, w.len()), scales: make([]float32, channels)}
	// The largest magnitude of each channel, compared as bits: the bits
	// of non-negative floats sort as their values.
	maxBits := make([]uint32, channels)
	err = w.chunks(func(offset int, xs []float32) error {
		at := channelAt(offset, inner, channels)
		for i, x := range xs {
			b := math.Float32bits(x) &^ (1 << 31)
			if b >= 0x7f800000 {
				return fmt.Errorf("element %d is %v", offset+i, x)
			}
			maxBits[at.c] = max(maxBits[at.c], b)
			at.next()
		}
		return nil
	})
	if err != nil {
		return quantizedWeight{}, err
	}
	for c := range q.scales {
		q.scales[c] = symmetricParams(float64(math.Float32frombits(maxBits[c])), r)
	}
	lo, hi := float32(r.min), float32(r.max)
	err = w.chunks(func(offset int, xs []float32) error {
		at, out := channelAt(offset, inner, channels), q.data[offset:offset+len(xs)]
		for i, x := range xs {
			// Clamping to the type's integer bounds before rounding
			// saturates as rounding first would.
			v := x / q.scales[at.c]
			if v < lo {
				v = lo
			} else if v > hi {
				v = hi
			}
			out[i] = byte(int8(roundHalfEven(v)))
			at.next()
		}
		return nil
	})
	return q, err
}

// A channelCursor follows the channel of consecutive elements of a tensor
// seen as [outer, channels, inner], without a division per element.
type channelCursor struct {
	c, left         int // the channel, and the elements left in its run
	inner, channels int
}

func channelAt(offset, inner, channels int) channelCursor {
	return channelCursor{c: offset / inner % channels, left: inner - offset%inner, inner: inner, channels: channels}
}

func (at *channelCursor) next() {
	if at.left--; at.left == 0 {
		at.left = at.inner
		if at.c++; at.c == at.channels {
			at.c = 0
		}
	}
}

// roundHalfEven rounds x, of magnitude at most 2^22, to the nearest
// integer, ties to even: adding 1.5·2^23 leaves no fraction bits, so the
// sum rounds as the hardware does, to nearest even. The conversions keep
// each step in float32.
func roundHalfEven(x float32) float32 {
	const magic = 0x1.8p23
	return float32(float32(x+magic) - magic)
}

// A floatReader reads the elements of a float32 tensor in place when its
// data can be viewed as []float32, else decoded a chunk at a time into a
// buffer it reuses, so that a large weight is never copied whole.
type floatReader struct {
	view []float32 // the elements, when viewable in place
	raw  []byte    // else raw_data, little-endian
}

// floatChunk is the number of elements a floatReader decodes at a time.
const floatChunk = 1 << 14

func newFloatReader(t *onnx.TensorProto) (floatReader, error) {
	if err := onnx.ValidateTensor(t); err != nil {
		return floatReader{}, err
	}
	raw := t.GetRawData()
	if t.RawData == nil || uintptr(unsafe.Pointer(unsafe.SliceData(raw)))%4 == 0 {
		view, err := onnx.Float32s(t)
		return floatReader{view: view}, err
	}
	return floatReader{raw: raw}, nil
}

func (r floatReader) len() int {
	if r.raw != nil {
		return len(r.raw) / 4
	}
	return len(r.view)
}

// chunks calls fn with the elements in order, a chunk at a time, with
// the offset of the chunk's first element, until fn fails.
func (r floatReader) chunks(fn func(offset int, xs []float32) error) error {
	if r.raw == nil {
		return fn(0, r.view)
	}
	buf := make([]float32, min(floatChunk, len(r.raw)/4))
	for offset := 0; offset < len(r.raw)/4; offset += len(buf) {
		xs := buf[:min(len(buf), len(r.raw)/4-offset)]
		for i := range xs {
			xs[i] = math.Float32frombits(binary.LittleEndian.Uint32(r.raw[4*(offset+i):]))
		}
		if err := fn(offset, xs); err != nil {
			return err
		}
	}
	return nil
}

// tensors returns the initializers DequantizeLinear reads: the int8 data,
// the scale and the zero point, a scalar each per tensor or a vector along
// the axis per channel.
func (q quantizedWeight) tensors(name string) (data, scale, zeroPoint *onnx.TensorProto, err error) {
	var paramDims []int64
	if q.axis >= 0 {
		paramDims = []int64{int64(len(q.scales))}
	}
	data = &onnx.TensorProto{Name: proto.String(name + "_quantized"), DataType: proto.Int32(int32(onnx.TensorProto_INT8)),
		Dims: slices.Clone(q.dims), RawData: q.data}
	if err = onnx.ValidateTensor(data); err != nil {
		return
	}
	if scale, err = onnx.NewTensor(name+"_scale", onnx.TensorProto_FLOAT, paramDims, q.scales); err != nil {
		return
	}
	zeroPoint, err = onnx.NewTensor(name+"_zero_point", onnx.TensorProto_INT8, paramDims, make([]int8, len(q.scales)))
	return
}

// Roles of a layer's inputs in quantization.
const (
	slotOperand    = iota // a weight when constant, else an activation
	slotActivation        // an activation; a constant stays float
	slotWeight            // a weight when constant; else left alone
)

// A quantSlot is an input of a layer that quantization may rewrite.
type quantSlot struct {
	index int
	kind  int
	// axis is the weight's output-channel axis, −1 when the weight can
	// only be quantized per tensor.
	axis int
}

// quantSlots lists the inputs of n that quantization treats. Biases,
// indices and shape inputs are left float: they are small, and a bias
// quantized to int32 needs the scales of both operands.
func quantSlots(n *graph.Node) []quantSlot {
	switch n.OpType {
	case "Conv":
		return []quantSlot{{0, slotActivation, -1}, {1, slotOperand, 0}}
	case "ConvTranspose":
		// The weight is [C_in, C_out/group, k...].
		return []quantSlot{{0, slotActivation, -1}, {1, slotOperand, 1}}
	case "Gemm":
		axis := 1
		if n.AttrInt("transB", 0) != 0 {
			axis = 0
		}
		return []quantSlot{{0, slotOperand, -1}, {1, slotOperand, axis}}
	case "MatMul":
		axis := -1
		if b := n.Input(1); b != nil && b.Init != nil && len(b.Init.GetDims()) >= 2 {
			axis = len(b.Init.GetDims()) - 1
		}
		return []quantSlot{{0, slotOperand, -1}, {1, slotOperand, axis}}
	case "Gather":
		// An embedding table: one scale per row.
		return []quantSlot{{0, slotWeight, 0}}
	}
	slots := make([]quantSlot, len(n.Inputs))
	for i := range slots {
		slots[i] = quantSlot{i, slotActivation, -1}
	}
	return slots
}

// quantOptions are the options both quantization passes share.
type quantOptions struct {
	OpTypes       []string
	Exclude       []string
	PerChannel    bool
	ReduceRange   bool
	KeepFirstLast bool
	accuracyBudget
}

func (o *quantOptions) flags(fs *pflag.FlagSet, opTypesDoc string) {
	fs.StringSliceVar(&o.OpTypes, "op-types", o.OpTypes, opTypesDoc)
	fs.StringSliceVar(&o.Exclude, "exclude", nil, "node names or op types to keep in float")
	fs.BoolVar(&o.PerChannel, "per-channel", false, "one weight scale per output channel (needs opset 13) instead of one per tensor")
	fs.BoolVar(&o.ReduceRange, "reduce-range", false, "quantize weights to 7 bits, for u8×s8 kernels of CPUs without VNNI")
	fs.BoolVar(&o.KeepFirstLast, "keep-first-last", false, "keep the first and the last layer with weights in float")
	o.accuracyBudget.flags(fs)
}

// A layerPlan is what quantization decided for the layers of a graph.
type layerPlan struct {
	layers []*graph.Node // the nodes to quantize, in graph order
	notes  []string      // layers kept in float, and why
}

// planLayers picks the nodes of g to quantize: those of the op types
// asked for, minus the excluded ones, minus the first and last layers with
// weights under KeepFirstLast. g must be sorted.
func (o *quantOptions) planLayers(g *graph.Graph) layerPlan {
	var p layerPlan
	excluded := func(n *graph.Node) bool {
		return slices.Contains(o.Exclude, n.Name) || slices.Contains(o.Exclude, n.OpType)
	}
	for _, n := range g.Nodes {
		if !isStandard(n) || !slices.Contains(o.OpTypes, n.OpType) {
			continue
		}
		if excluded(n) {
			p.notes = append(p.notes, fmt.Sprintf("%s kept in float: excluded", n))
			continue
		}
		p.layers = append(p.layers, n)
	}
	if o.KeepFirstLast {
		var weighted []int
		for i, n := range p.layers {
			if hasWeight(n) {
				weighted = append(weighted, i)
			}
		}
		if len(weighted) > 0 {
			keep := []int{weighted[0]}
			if last := weighted[len(weighted)-1]; last != weighted[0] {
				keep = append(keep, last)
			}
			for _, k := range keep {
				p.notes = append(p.notes, fmt.Sprintf("%s kept in float: --keep-first-last", p.layers[k]))
			}
			for _, k := range slices.Backward(keep) {
				p.layers = slices.Delete(p.layers, k, k+1)
			}
		}
	}
	return p
}

// hasWeight reports whether n reads a constant float input as a weight.
func hasWeight(n *graph.Node) bool {
	for _, s := range quantSlots(n) {
		if s.kind != slotActivation && isFloatWeight(n.Input(s.index)) {
			return true
		}
	}
	return false
}

// isFloatWeight reports whether v is a float32 constant whose data is at
// hand.
func isFloatWeight(v *graph.Value) bool {
	return v != nil && v.IsConstant() && v.Init != nil && v.ElemType() == onnx.TensorProto_FLOAT &&
		v.Init.GetDataLocation() != onnx.TensorProto_EXTERNAL
}

// requireOpset checks that the model's default domain has
// QuantizeLinear and DequantizeLinear, with per-axis scales when
// perChannel.
func requireOpset(m *graph.Model, perChannel bool) error {
	v, _ := m.Opset("")
	switch {
	case v < 10:
		return fmt.Errorf("QuantizeLinear and DequantizeLinear need opset 10 or later; the model imports opset %d", v)
	case perChannel && v < 13:
		return fmt.Errorf("per-channel quantization needs opset 13 or later (DequantizeLinear's axis); the model imports opset %d: convert it, or quantize per tensor", v)
	}
	return nil
}

// quantizedOps are the operators of models quantized already, besides
// the QLinear ones.
var quantizedOps = []string{"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "ConvInteger", "MatMulInteger"}

// warnQuantized warns when m holds quantized operators already, which the
// passes leave as they are.
func warnQuantized(m *graph.Model, env *Env) {
	counts := map[string]int{}
	m.Graph.Walk(func(g *graph.Graph) bool {
		for _, n := range g.Nodes {
			if slices.Contains(quantizedOps, n.OpType) || strings.HasPrefix(n.OpType, "QLinear") {
				counts[n.OpType]++
			}
		}
		return true
	})
	if len(counts) == 0 {
		return
	}
	var parts []string
	for _, op := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%d %s", counts[op], op))
	}
	env.warnf("the model is quantized already (%s): those nodes are left as they are; only float layers are quantized", strings.Join(parts, ", "))
}

// isDequantized reports whether v is the output of a DequantizeLinear: a
// value quantized already.
func isDequantized(v *graph.Value) bool {
	return v.Producer != nil && v.Producer.OpType == "DequantizeLinear"
}

// weightUse is one weight slot of a layer that reads an initializer.
type weightUse struct {
	node *graph.Node
	slot quantSlot
}

// A dequantization is what replaces a float weight: the initializers a
// DequantizeLinear reads (data, scale, and zero point unless omitted) and
// its attributes.
type dequantization struct {
	inputs []*onnx.TensorProto
	attrs  []*onnx.AttributeProto
}

// A weightQuantizer quantizes float weight w, read by the given slots, or
// says why it leaves it float. It must not change the graph: weights are
// quantized concurrently.
type weightQuantizer func(w *graph.Value, uses []weightUse) (dequantization, error)

// int8Weights quantizes weights to int8 as the options say: per channel
// when o.PerChannel and every reader agrees on the axis.
func (o *quantOptions) int8Weights(w *graph.Value, uses []weightUse) (dequantization, error) {
	axis := -1
	if o.PerChannel {
		axis = uses[0].slot.axis
		for _, u := range uses {
			if u.slot.axis != axis {
				axis = -1
			}
		}
		if dims := w.Init.GetDims(); axis >= len(dims) {
			axis = -1
		}
	}
	q, err := quantizeWeight(w.Init, axis, weightRange(o.ReduceRange))
	if err != nil {
		return dequantization{}, err
	}
	data, scale, zp, err := q.tensors(w.Name)
	if err != nil {
		return dequantization{}, err
	}
	d := dequantization{inputs: []*onnx.TensorProto{data, scale, zp}}
	if axis >= 0 {
		d.attrs = append(d.attrs, intAttribute("axis", int64(axis)))
	}
	return d, nil
}

func intAttribute(name string, v int64) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: proto.String(name), Type: onnx.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

// quantizeWeights replaces the constant weights of layers by quantized
// initializers read through DequantizeLinear. An initializer is quantized
// only when every reader is one of layers, at a weight slot. The weights
// are quantized several at a time. It returns the number of weights
// quantized and notes on those left in float.
func quantizeWeights(layers []*graph.Node, quantize weightQuantizer, env *Env) (int, []string, error) {
	uses := map[*graph.Value][]weightUse{}
	var order []*graph.Value
	for _, n := range layers {
		for _, s := range quantSlots(n) {
			w := n.Input(s.index)
			if s.kind == slotActivation || w == nil || !w.IsConstant() {
				continue
			}
			if _, ok := uses[w]; !ok {
				order = append(order, w)
			}
			uses[w] = append(uses[w], weightUse{n, s})
		}
	}
	var notes []string
	var todo []*graph.Value
	for _, w := range order {
		if why := weightProblem(w, uses[w]); why != "" {
			notes = append(notes, fmt.Sprintf("weight %q kept in float: %s", w.Name, why))
			continue
		}
		todo = append(todo, w)
	}
	done := make([]dequantization, len(todo))
	errs := make([]error, len(todo))
	parallel(len(todo), func(i int) { done[i], errs[i] = quantize(todo[i], uses[todo[i]]) })
	quantized := 0
	for i, w := range todo {
		if errs[i] != nil {
			notes = append(notes, fmt.Sprintf("weight %q kept in float: %v", w.Name, errs[i]))
			continue
		}
		if err := insertDequantize(w, done[i], env); err != nil {
			return quantized, notes, err
		}
		quantized++
	}
	return quantized, notes, nil
}

// parallel calls fn(0), ..., fn(n−1), as many at once as there are
// processors.
func parallel(n int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(n, goruntime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				fn(i)
			}
		})
	}
	wg.Wait()
}

// weightProblem says why initializer w cannot be quantized, or "".
func weightProblem(w *graph.Value, uses []weightUse) string {
	switch {
	case !isFloatWeight(w) && w.ElemType() != onnx.TensorProto_FLOAT:
		return fmt.Sprintf("of type %v, not float", w.ElemType())
	case !isFloatWeight(w):
		return "its data is stored outside the model and not loaded"
	case len(w.Init.GetDims()) > 0 && slices.Contains(w.Init.GetDims(), 0):
		return "it is empty"
	case w.Graph.IsOutput(w):
		return "it is a graph output"
	case len(uses) != len(w.Uses):
		return "other nodes read it too"
	}
	return ""
}

// insertDequantize replaces initializer w by d read through a
// DequantizeLinear in w's graph.
func insertDequantize(w *graph.Value, d dequantization, env *Env) error {
	g := w.Graph
	var inputs []*graph.Value
	for _, t := range d.inputs {
		inputs = append(inputs, g.AddInitializer(t))
	}
	out := g.NewValue(w.Name + "_dequantized")
	dq, err := g.NewNode("DequantizeLinear", w.Name+"_DequantizeLinear", inputs, []*graph.Value{out}, d.attrs...)
	if err != nil {
		return fmt.Errorf("weight %q: %w", w.Name, err)
	}
	// The node reads only initializers: first is a valid place.
	g.InsertBefore(g.Nodes[0], dq)
	w.ReplaceAllUses(out)
	g.RemoveInitializer(w)
	g.Prune()
	env.rename(w.Name, out.Name)
	return nil
}

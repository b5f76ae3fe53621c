package passes

import (
	"fmt"
	"math"

	"github.com/spf13/pflag"

	"onnxopt/graph"
	"onnxopt/onnx"
)

// staticQuantization quantizes layers in QDQ form: each float activation a
// layer reads goes through QuantizeLinear and DequantizeLinear with a
// scale measured on calibration data, and its weights are stored as int8
// as in quantize-weight. Runtimes that fuse QDQ patterns run the layers
// in integer arithmetic.
type staticQuantization struct {
	quantOptions
	Method     string
	Percentile float64
	Bins       int
	Symmetric  bool
	Int32Bias  bool

	progress func(done, total int)
}

func newQuantizeStatic() Pass {
	return &staticQuantization{
		quantOptions: quantOptions{OpTypes: []string{"Conv", "ConvTranspose", "Gemm", "MatMul"}},
		Method:       methodMinMax,
		Percentile:   99.99,
		Bins:         2048,
	}
}

func (p *staticQuantization) Flags(fs *pflag.FlagSet) {
	p.flags(fs, "op types whose inputs are quantized (also e.g. Add, Mul, Concat, MaxPool, AveragePool, GlobalAveragePool)")
	fs.StringVar(&p.Method, "method", p.Method, "how activation ranges are calibrated: minmax, percentile or entropy (KL divergence)")
	fs.Float64Var(&p.Percentile, "percentile", p.Percentile, "with --method percentile, the percentile of values kept unclipped")
	fs.IntVar(&p.Bins, "bins", p.Bins, "histogram bins of --method percentile and entropy")
	fs.BoolVar(&p.Symmetric, "symmetric", false, "activations as int8 with a zero point of 0 instead of uint8 with any zero point")
	fs.BoolVar(&p.Int32Bias, "int32-bias", false, "store the biases of Conv and Gemm as int32 with the scale input scale × weight scale, as integer kernels add them")
}

// SetProgress makes the pass report calibration batches as they run.
func (p *staticQuantization) SetProgress(fn func(done, total int)) { p.progress = fn }

func (p *staticQuantization) Run(m *graph.Model, env *Env) (Result, error) {
	c := calibration{method: p.Method, percentile: p.Percentile, bins: p.Bins, symmetric: p.Symmetric}
	if err := c.check(); err != nil {
		return Result{}, err
	}
	if err := requireOpset(m, p.PerChannel); err != nil {
		return Result{}, err
	}
	if len(env.Calibration) == 0 {
		return Result{}, fmt.Errorf("no calibration data")
	}
	if err := p.check(env); err != nil {
		return Result{}, err
	}
	warnQuantized(m, env)
	g := m.Graph
	if err := g.Sort(); err != nil {
		return Result{}, err
	}
	plan := p.planLayers(g)
	acts, _ := activationReaders(plan.layers)
	names := make([]string, len(acts))
	for i, v := range acts {
		names[i] = v.Name
	}
	// Calibrate on the float model, before the weights are quantized.
	var params map[string]qparams
	if len(names) > 0 {
		stats, err := c.calibrate(g, names, env.Calibration, p.progress)
		if err != nil {
			return Result{}, err
		}
		params = c.paramsOf(stats, activationRange(p.Symmetric))
	}
	quantize := func(m *graph.Model, layers []*graph.Node, env *Env) (Result, error) {
		return p.quantizeLayers(m.Graph, layers, params, env)
	}
	res, err := p.quantizeWithin(m, plan, env, quantize)
	if err != nil {
		return Result{}, err
	}
	return res, g.Sort()
}

// activationReaders returns the activations the layers read that
// quantization puts through QuantizeLinear and DequantizeLinear, in
// order, each with the layer inputs that read it.
func activationReaders(layers []*graph.Node) ([]*graph.Value, map[*graph.Value][]graph.Use) {
	readers := map[*graph.Value][]graph.Use{}
	var acts []*graph.Value
	for _, n := range layers {
		for _, s := range quantSlots(n) {
			v := n.Input(s.index)
			if s.kind == slotWeight || v == nil || v.IsConstant() || isDequantized(v) {
				continue
			}
			if _, ok := readers[v]; !ok {
				acts = append(acts, v)
			}
			readers[v] = append(readers[v], graph.Use{Node: n, Index: s.index})
		}
	}
	return acts, readers
}

// quantizeLayers quantizes the activations the layers of g read, with the
// parameters calibration gave them, and their weights.
func (p *staticQuantization) quantizeLayers(g *graph.Graph, layers []*graph.Node, params map[string]qparams, env *Env) (Result, error) {
	var res Result
	acts, readers := activationReaders(layers)
	r := activationRange(p.Symmetric)
	quantizedActs := 0
	for _, v := range acts {
		q, ok := params[v.Name]
		if !ok {
			res.Notes = append(res.Notes, fmt.Sprintf("activation %q kept in float: not float32", v.Name))
			continue
		}
		if err := insertQDQ(g, v, readers[v], q.scale, q.zeroPoint, r); err != nil {
			return Result{}, err
		}
		quantizedActs++
	}
	weights, notes, err := quantizeWeights(layers, p.int8Weights, env)
	res.Notes = append(res.Notes, notes...)
	if err != nil {
		return Result{}, err
	}
	res.Changes = quantizedActs + weights
	if p.Int32Bias {
		biases, notes, err := quantizeBiases(layers, env)
		res.Notes = append(res.Notes, notes...)
		if err != nil {
			return Result{}, err
		}
		res.Changes += biases
		res.Notes = append(res.Notes, fmt.Sprintf("%d biases stored as int32", biases))
	}
	res.Notes = append(res.Notes, fmt.Sprintf("%d activations calibrated (%s, %d batches) and %d weights quantized", quantizedActs, p.Method, len(env.Calibration), weights))
	return res, nil
}

// insertQDQ makes uses read v through QuantizeLinear and DequantizeLinear
// with the given scale and zero point.
func insertQDQ(g *graph.Graph, v *graph.Value, uses []graph.Use, scale float32, zeroPoint int32, r intRange) error {
	scaleT, err := onnx.NewTensor(v.Name+"_scale", onnx.TensorProto_FLOAT, nil, []float32{scale})
	if err != nil {
		return err
	}
	var zp any = []uint8{uint8(zeroPoint)}
	if r.dt == onnx.TensorProto_INT8 {
		zp = []int8{int8(zeroPoint)}
	}
	zpT, err := onnx.NewTensor(v.Name+"_zero_point", r.dt, nil, zp)
	if err != nil {
		return err
	}
	s, z := g.AddInitializer(scaleT), g.AddInitializer(zpT)
	q, dq := g.NewValue(v.Name+"_quantized"), g.NewValue(v.Name+"_dequantized")
	if _, err := g.NewNode("QuantizeLinear", v.Name+"_QuantizeLinear", []*graph.Value{v, s, z}, []*graph.Value{q}); err != nil {
		return fmt.Errorf("activation %q: %w", v.Name, err)
	}
	if _, err := g.NewNode("DequantizeLinear", v.Name+"_DequantizeLinear", []*graph.Value{q, s, z}, []*graph.Value{dq}); err != nil {
		return fmt.Errorf("activation %q: %w", v.Name, err)
	}
	for _, u := range uses {
		u.Node.SetInput(u.Index, dq)
	}
	return nil
}

// quantizeBiases stores the constant bias of each Conv and Gemm of layers
// whose input and weight are quantized as int32 read through a
// DequantizeLinear whose scale is the input's scale times the weight's,
// per channel or per tensor as the weight's, and zero point 0: the
// integers an integer kernel adds to its int32 sums. It returns the number
// of biases quantized and notes on those left float.
func quantizeBiases(layers []*graph.Node, env *Env) (int, []string, error) {
	var notes []string
	quantized := 0
	for _, n := range layers {
		if (n.OpType != "Conv" && n.OpType != "Gemm") || len(n.Inputs) < 3 {
			continue
		}
		b := n.Input(2)
		if b == nil || !b.IsConstant() {
			continue
		}
		scale, why := biasScale(n)
		if why == "" {
			why = weightProblem(b, []weightUse{{n, quantSlot{2, slotWeight, 0}}})
		}
		if why == "" && (len(b.Init.GetDims()) != 1 || len(scale) != 1 && int64(len(scale)) != b.Init.GetDims()[0]) {
			why = fmt.Sprintf("its shape %v does not match the weight's %d scales", b.Init.GetDims(), len(scale))
		}
		if why != "" {
			notes = append(notes, fmt.Sprintf("bias %q of %s kept in float: %s", b.Name, n, why))
			continue
		}
		vals, err := onnx.Float32s(b.Init)
		if err != nil {
			return quantized, notes, fmt.Errorf("bias %q: %w", b.Name, err)
		}
		q := make([]int32, len(vals))
		for i, x := range vals {
			q[i] = quantizeInt32(x, scale[min(i, len(scale)-1)])
		}
		var paramDims []int64
		d := dequantization{}
		if len(scale) > 1 {
			paramDims = []int64{int64(len(scale))}
			d.attrs = append(d.attrs, intAttribute("axis", 0))
		}
		data, err := onnx.NewTensor(b.Name+"_quantized", onnx.TensorProto_INT32, b.Init.GetDims(), q)
		if err != nil {
			return quantized, notes, err
		}
		scaleT, err := onnx.NewTensor(b.Name+"_scale", onnx.TensorProto_FLOAT, paramDims, scale)
		if err != nil {
			return quantized, notes, err
		}
		d.inputs = []*onnx.TensorProto{data, scaleT}
		if err := insertDequantize(b, d, env); err != nil {
			return quantized, notes, err
		}
		quantized++
	}
	return quantized, notes, nil
}

// biasScale returns the scales of n's bias, the product of its input's
// and its weight's, or says why n's bias cannot be quantized.
func biasScale(n *graph.Node) ([]float32, string) {
	if n.OpType == "Gemm" && (n.AttrFloat("alpha", 1) != 1 || n.AttrFloat("beta", 1) != 1) {
		return nil, "Gemm scales it (alpha or beta is not 1)"
	}
	x, w := n.Input(0), n.Input(1)
	if !isDequantized(x) || x.Producer.Inputs[0].Producer == nil || x.Producer.Input(1).Init == nil ||
		!isDequantized(w) || w.Producer.Inputs[0].Init == nil || w.Producer.Input(1).Init == nil {
		return nil, "the layer's input or weight is not quantized"
	}
	xs, err := onnx.Float32s(x.Producer.Inputs[1].Init)
	if err != nil || len(xs) != 1 {
		return nil, "the input has no single scale"
	}
	ws, err := onnx.Float32s(w.Producer.Inputs[1].Init)
	if err != nil {
		return nil, fmt.Sprintf("the weight's scale: %v", err)
	}
	scale := make([]float32, len(ws))
	for i, s := range ws {
		scale[i] = guardScale(float64(xs[0]) * float64(s))
	}
	return scale, ""
}

// quantizeInt32 quantizes x to int32 with zero point 0 as QuantizeLinear
// would: the float32 quotient rounded half to even, saturated.
func quantizeInt32(x, scale float32) int32 {
	q := math.RoundToEven(float64(x / scale))
	switch {
	case q != q:
		return 0
	case q <= math.MinInt32:
		return math.MinInt32
	case q >= math.MaxInt32:
		return math.MaxInt32
	}
	return int32(q)
}

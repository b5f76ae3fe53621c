package passes

import (
	"fmt"

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

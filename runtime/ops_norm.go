package runtime

import (
	"fmt"
	"math"

	"onnxopt/graph"
	"onnxopt/onnx"
)

// normOps are the normalization operators. The kernels accumulate in
// float64 whatever the element type, so that a float32 variance over a
// long axis does not lose the digits the suite's tolerance asks for.
var normOps = []opDef{
	// BatchNormalization-1 differs from -6 only by consumed_inputs, which
	// the kernel ignores; -15 differs from -14 only by letting scale and
	// bias (T1) and mean and var (T2) have types of their own, which the
	// kernel reads whatever their float type.
	{"", "BatchNormalization", 1, compileBatchNorm(1)},
	{"", "BatchNormalization", 7, compileBatchNorm(7)},
	{"", "BatchNormalization", 9, compileBatchNorm(9)},
	{"", "BatchNormalization", 14, compileBatchNorm(14)},
	{"", "InstanceNormalization", 1, compileInstanceNorm},
	{"", "LayerNormalization", 17, compileLayerNorm},
	{"", "GroupNormalization", 18, compileGroupNorm(18)},
	{"", "GroupNormalization", 21, compileGroupNorm(21)},
	{"", "LRN", 1, compileLRN},
	{"", "MeanVarianceNormalization", 9, compileMVN},
	{"", "LpNormalization", 1, compileLpNorm},
}

// checkFloat reports an error unless t holds floating-point elements.
func checkFloat(what string, t *Tensor) error {
	switch t.Data.(type) {
	case []float32, []float64:
		return nil
	}
	return fmt.Errorf("%s is %s, want a floating-point tensor", what, t)
}

// loadFloats returns the elements of t, of any numeric type, widened to
// float64 in *buf, which it grows when it is too short.
func loadFloats(buf *[]float64, t *Tensor) ([]float64, error) {
	switch d := t.Data.(type) {
	case []float32:
		return widenInto(buf, d), nil
	case []float64:
		out := scratchSlice(buf, len(d))
		copy(out, d)
		return out, nil
	case []int64:
		return widenInto(buf, d), nil
	case []int32:
		return widenInto(buf, d), nil
	case []int16:
		return widenInto(buf, d), nil
	case []int8:
		return widenInto(buf, d), nil
	case []uint64:
		return widenInto(buf, d), nil
	case []uint32:
		return widenInto(buf, d), nil
	case []uint16:
		return widenInto(buf, d), nil
	case []uint8:
		return widenInto(buf, d), nil
	}
	return nil, fmt.Errorf("got %s, want a numeric tensor", t)
}

func widenInto[T float32 | int64 | int32 | int16 | int8 | uint64 | uint32 | uint16 | uint8](buf *[]float64, d []T) []float64 {
	out := scratchSlice(buf, len(d))
	for i, v := range d {
		out[i] = float64(v)
	}
	return out
}

// storeFloats writes v into t, which holds len(v) elements of a numeric
// type: rounded to float16 or bfloat16 where t is one, and for integers
// truncated toward zero, as numpy's astype does after the ONNX reference
// interpolates integer tensors, and saturated where astype's result is
// left undefined.
func storeFloats(t *Tensor, v []float64) {
	switch d := t.Data.(type) {
	case []float32:
		for i, x := range v {
			d[i] = float32(x)
		}
		narrowFloat32s(t.DType, d)
	case []float64:
		copy(d, v)
	case []int64:
		narrowInts(d, v)
	case []int32:
		narrowInts(d, v)
	case []int16:
		narrowInts(d, v)
	case []int8:
		narrowInts(d, v)
	case []uint64:
		narrowInts(d, v)
	case []uint32:
		narrowInts(d, v)
	case []uint16:
		narrowInts(d, v)
	case []uint8:
		narrowInts(d, v)
	}
}

func narrowInts[T integer](d []T, v []float64) {
	lo, hi := integerRange[T]()
	for i, x := range v {
		x = math.Trunc(x)
		switch {
		case math.IsNaN(x): // no integer value; zero is as good as any
			d[i] = 0
		case x <= lo:
			d[i] = T(lo)
		case x >= hi:
			d[i] = T(hi)
		default:
			d[i] = T(x)
		}
	}
}

// channelView describes a tensor of shape [N, C, D1, ..., Dk] as N blocks
// of C channels of S = D1*...*Dk contiguous elements.
type channelView struct{ n, c, s int }

func viewChannels(what string, x *Tensor) (channelView, error) {
	if x.Rank() < 2 {
		return channelView{}, fmt.Errorf("%s has shape %v, want at least [N, C]", what, x.Shape)
	}
	return channelView{x.Shape[0], x.Shape[1], mustElements(x.Shape[2:])}, nil
}

// An affine holds, per channel, the a and b of y = a*x + b.
type affine struct{ a, b []float64 }

// applyAffine writes y = a[c]*x + b[c] for every block of s elements of
// channel c, for n batches of len(a) channels.
func applyAffine[T blasFloat](y, x []T, n, s int, f affine) {
	c := len(f.a)
	for i := 0; i < n; i++ {
		for k := 0; k < c; k++ {
			off := (i*c + k) * s
			a, b := f.a[k], f.b[k]
			xs, ys := x[off:off+s], y[off:off+s]
			for j, v := range xs {
				ys[j] = T(a*float64(v) + b)
			}
		}
	}
}

// channelMoments accumulates, per channel, the mean and the population
// variance over the n batches and s elements of each channel.
func channelMoments[T blasFloat](x []T, n, c, s int, mean, variance []float64) {
	count := float64(n * s)
	for k := 0; k < c; k++ {
		sum := 0.0
		for i := 0; i < n; i++ {
			for _, v := range x[(i*c+k)*s : (i*c+k+1)*s] {
				sum += float64(v)
			}
		}
		m := sum / count
		sq := 0.0
		for i := 0; i < n; i++ {
			for _, v := range x[(i*c+k)*s : (i*c+k+1)*s] {
				d := float64(v) - m
				sq += d * d
			}
		}
		mean[k], variance[k] = m, sq/count
	}
}

// moments returns the mean and population variance of x.
func moments[T blasFloat](x []T) (mean, variance float64) {
	if len(x) == 0 {
		return math.NaN(), math.NaN()
	}
	sum := 0.0
	for _, v := range x {
		sum += float64(v)
	}
	mean = sum / float64(len(x))
	sq := 0.0
	for _, v := range x {
		d := float64(v) - mean
		sq += d * d
	}
	return mean, sq / float64(len(x))
}

// BatchNormalization normalizes each channel of X [N, C, ...] with a
// mean and variance: the running statistics given as inputs (inference),
// or those of the batch (training), which then also updates the running
// statistics with momentum. Before opset 9, spatial=0 keeps statistics per
// activation (C*D1*...*Dk of them) rather than per channel. Training is
// chosen by is_test=0 with statistics outputs before opset 7, by the
// presence of those outputs from 7, and by training_mode from 14.
type batchNorm struct {
	epsilon, momentum float64
	spatial, training bool
	savedMean         bool // opsets 1 to 13: output 3 is the batch mean
	scratch           [6][]float64
}

func compileBatchNorm(since int64) func(n *graph.Node) (kernel, error) {
	return func(n *graph.Node) (kernel, error) {
		bn := &batchNorm{
			epsilon:  float64(n.AttrFloat("epsilon", 1e-5)),
			momentum: float64(n.AttrFloat("momentum", 0.9)),
			spatial:  since >= 9 || n.AttrInt("spatial", 1) != 0,
		}
		stats := false // an output beyond Y is wanted
		for _, v := range n.Outputs[min(1, len(n.Outputs)):] {
			stats = stats || v != nil
		}
		switch {
		case since >= 14:
			bn.training = n.AttrInt("training_mode", 0) != 0
			if len(n.Outputs) > 3 {
				return nil, fmt.Errorf("BatchNormalization-%d has at most 3 outputs, the node has %d", since, len(n.Outputs))
			}
			if stats && !bn.training {
				return nil, fmt.Errorf("outputs running_mean and running_var need training_mode=1")
			}
		case since >= 7:
			bn.training = stats
		default:
			if stats && n.AttrInt("is_test", 0) != 0 {
				return nil, fmt.Errorf("is_test=1 computes no statistics, but the node asks for them as outputs")
			}
			bn.training = stats
		}
		if since < 14 {
			if len(n.Outputs) > 5 {
				return nil, fmt.Errorf("BatchNormalization-%d has at most 5 outputs, the node has %d", since, len(n.Outputs))
			}
			bn.savedMean = len(n.Outputs) > 3 && n.Outputs[3] != nil
			if len(n.Outputs) > 4 && n.Outputs[4] != nil {
				// ONNX never says whether saved_var is the variance or the
				// inverse standard deviation runtimes keep for gradients.
				return nil, fmt.Errorf("output saved_var is not computed: the spec leaves its meaning open")
			}
		}
		return bn.run, nil
	}
}

func (bn *batchNorm) run(e *env, in []*Tensor) ([]*Tensor, error) {
	if len(in) < 5 {
		return nil, fmt.Errorf("BatchNormalization needs inputs X, scale, B, mean and var, got %d", len(in))
	}
	names := [5]string{"X", "scale", "B", "mean", "var"}
	for i, t := range in[:5] {
		if t == nil {
			return nil, fmt.Errorf("input %s is missing", names[i])
		}
		if err := checkFloat(names[i], t); err != nil {
			return nil, err
		}
	}
	x := in[0]
	v, err := viewChannels("X", x)
	if err != nil {
		return nil, err
	}
	params, inner := v.c, v.s
	if !bn.spatial {
		params, inner = v.c*v.s, 1
	}
	var p [4][]float64 // scale, B, mean, var
	for i := range p {
		t := in[i+1]
		if t.Len() != params {
			if bn.spatial {
				return nil, fmt.Errorf("%s has shape %v, want %d elements, one per channel of X %v", names[i+1], t.Shape, params, x.Shape)
			}
			return nil, fmt.Errorf("%s has shape %v, want %d elements, one per activation of X %v (spatial=0)", names[i+1], t.Shape, params, x.Shape)
		}
		if p[i], err = loadFloats(&bn.scratch[i], t); err != nil {
			return nil, err
		}
	}
	scale, bias, mean, variance := p[0], p[1], p[2], p[3]
	var batchMean, batchVar []float64
	if bn.training {
		batchMean = scratchSlice(&bn.scratch[4], params)
		batchVar = scratchSlice(&bn.scratch[5], params)
		switch xd := x.Data.(type) {
		case []float32:
			channelMoments(xd, v.n, params, inner, batchMean, batchVar)
		case []float64:
			channelMoments(xd, v.n, params, inner, batchMean, batchVar)
		}
	}
	// The affine form overwrites scale and B, which are read first.
	f := affine{a: scale, b: bias}
	for k := 0; k < params; k++ {
		m, s := mean[k], variance[k]
		if bn.training {
			m, s = batchMean[k], batchVar[k]
		}
		a := scale[k] / math.Sqrt(s+bn.epsilon)
		f.a[k], f.b[k] = a, bias[k]-m*a
	}
	y, err := e.output(0, x.DType, x.Shape...)
	if err != nil {
		return nil, err
	}
	switch xd := x.Data.(type) {
	case []float32:
		applyAffine(y.Data.([]float32), xd, v.n, inner, f)
		narrowFloat32s(y.DType, y.Data.([]float32))
	case []float64:
		applyAffine(y.Data.([]float64), xd, v.n, inner, f)
	}
	if !bn.training {
		return []*Tensor{y}, nil
	}
	outs := []*Tensor{y}
	for i, running := range [2][]float64{mean, variance} {
		batch := batchMean
		if i == 1 {
			batch = batchVar
		}
		for k := range running {
			running[k] = running[k]*bn.momentum + batch[k]*(1-bn.momentum)
		}
		src := in[3+i]
		t, err := e.output(1+i, src.DType, src.Shape...)
		if err != nil {
			return nil, err
		}
		storeFloats(t, running)
		outs = append(outs, t)
	}
	if bn.savedMean {
		t, err := e.output(3, in[3].DType, in[3].Shape...)
		if err != nil {
			return nil, err
		}
		storeFloats(t, batchMean)
		outs = append(outs, t)
	}
	return outs, nil
}

// InstanceNormalization normalizes each channel of each batch item of X
// [N, C, D1, ..., Dk] over D1..Dk, then scales and shifts it per channel.
type instanceNorm struct {
	epsilon float64
	scratch [2][]float64
}

func compileInstanceNorm(n *graph.Node) (kernel, error) {
	in := &instanceNorm{epsilon: float64(n.AttrFloat("epsilon", 1e-5))}
	return in.run, nil
}

func (in *instanceNorm) run(e *env, ins []*Tensor) ([]*Tensor, error) {
	if len(ins) < 3 || ins[0] == nil || ins[1] == nil || ins[2] == nil {
		return nil, fmt.Errorf("InstanceNormalization needs inputs input, scale and B")
	}
	x := ins[0]
	if err := checkFloat("input", x); err != nil {
		return nil, err
	}
	v, err := viewChannels("input", x)
	if err != nil {
		return nil, err
	}
	var p [2][]float64
	for i, name := range [2]string{"scale", "B"} {
		t := ins[1+i]
		if t.Rank() != 1 || t.Shape[0] != v.c {
			return nil, fmt.Errorf("%s has shape %v, want [%d], one per channel of input %v", name, t.Shape, v.c, x.Shape)
		}
		if p[i], err = loadFloats(&in.scratch[i], t); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	y, err := e.output(0, x.DType, x.Shape...)
	if err != nil {
		return nil, err
	}
	switch xd := x.Data.(type) {
	case []float32:
		instanceNormalize(y.Data.([]float32), xd, v, p[0], p[1], in.epsilon)
		narrowFloat32s(y.DType, y.Data.([]float32))
	case []float64:
		instanceNormalize(y.Data.([]float64), xd, v, p[0], p[1], in.epsilon)
	}
	return []*Tensor{y}, nil
}

func instanceNormalize[T blasFloat](y, x []T, v channelView, scale, bias []float64, epsilon float64) {
	for i := 0; i < v.n; i++ {
		for k := 0; k < v.c; k++ {
			off := (i*v.c + k) * v.s
			xs, ys := x[off:off+v.s], y[off:off+v.s]
			m, s := moments(xs)
			a := scale[k] / math.Sqrt(s+epsilon)
			b := bias[k] - m*a
			for j, u := range xs {
				ys[j] = T(a*float64(u) + b)
			}
		}
	}
}

// LayerNormalization normalizes X over its axes from axis on, then scales
// and shifts by Scale and B, which broadcast to those axes. Its optional
// outputs Mean and InvStdDev have X's leading axes and ones after them,
// and the type stash_type names.
type layerNorm struct {
	axis    int64
	epsilon float64
	stash   onnx.TensorProto_DataType
	// scratch holds Scale and B expanded to the normalized shape, then
	// the row means and inverse deviations; params holds Scale and B as
	// given.
	scratch [4][]float64
	params  [2][]float64
}

func compileLayerNorm(n *graph.Node) (kernel, error) {
	if err := checkStashType(n); err != nil {
		return nil, err
	}
	ln := &layerNorm{
		axis:    n.AttrInt("axis", -1),
		epsilon: float64(n.AttrFloat("epsilon", 1e-5)),
		stash:   onnx.TensorProto_DataType(n.AttrInt("stash_type", int64(onnx.TensorProto_FLOAT))),
	}
	return ln.run, nil
}

// checkStashType checks the stash_type attribute names a float type.
func checkStashType(n *graph.Node) error {
	switch t := onnx.TensorProto_DataType(n.AttrInt("stash_type", int64(onnx.TensorProto_FLOAT))); t {
	case onnx.TensorProto_FLOAT, onnx.TensorProto_DOUBLE, onnx.TensorProto_FLOAT16, onnx.TensorProto_BFLOAT16:
		return nil
	default:
		return fmt.Errorf("stash_type %d is not a floating-point type", t)
	}
}

func (ln *layerNorm) run(e *env, in []*Tensor) ([]*Tensor, error) {
	if len(in) < 2 || in[0] == nil || in[1] == nil {
		return nil, fmt.Errorf("LayerNormalization needs inputs X and Scale")
	}
	x := in[0]
	if err := checkFloat("X", x); err != nil {
		return nil, err
	}
	axis, err := normAxis(ln.axis, x.Rank())
	if err != nil {
		return nil, err
	}
	normShape := x.Shape[axis:]
	outer, inner := mustElements(x.Shape[:axis]), mustElements(normShape)
	// Scale and B broadcast to the normalized axes; expanding them once
	// per run keeps the row loop free of index arithmetic.
	var p [2][]float64
	for i, name := range [2]string{"Scale", "B"} {
		var t *Tensor
		if 1+i < len(in) {
			t = in[1+i]
		}
		if t == nil {
			p[i] = scratchSlice(&ln.scratch[1], inner)
			clear(p[i])
			continue
		}
		if err := unidirectional(t.Shape, normShape); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		vals, err := loadFloats(&ln.params[i], t)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		p[i] = scratchSlice(&ln.scratch[i], inner)
		expandInto(p[i], normShape, vals, t.Shape)
	}
	y, err := e.output(0, x.DType, x.Shape...)
	if err != nil {
		return nil, err
	}
	statShape := make([]int, x.Rank())
	for i := range statShape {
		statShape[i] = 1
	}
	copy(statShape, x.Shape[:axis])
	var meanOut, invOut *Tensor
	var means, invs []float64
	if len(e.node.Outputs) > 1 && e.node.Outputs[1] != nil {
		if meanOut, err = e.output(1, ln.stash, statShape...); err != nil {
			return nil, err
		}
		means = scratchSlice(&ln.scratch[2], outer)
	}
	if len(e.node.Outputs) > 2 && e.node.Outputs[2] != nil {
		if invOut, err = e.output(2, ln.stash, statShape...); err != nil {
			return nil, err
		}
		invs = scratchSlice(&ln.scratch[3], outer)
	}
	switch xd := x.Data.(type) {
	case []float32:
		layerNormalize(y.Data.([]float32), xd, outer, inner, p[0], p[1], ln.epsilon, means, invs)
		narrowFloat32s(y.DType, y.Data.([]float32))
	case []float64:
		layerNormalize(y.Data.([]float64), xd, outer, inner, p[0], p[1], ln.epsilon, means, invs)
	}
	outs := []*Tensor{y, meanOut, invOut}
	if meanOut != nil {
		storeFloats(meanOut, means)
	}
	if invOut != nil {
		storeFloats(invOut, invs)
	}
	return outs, nil
}

// layerNormalize normalizes each of outer rows of inner elements, storing
// each row's mean and inverse standard deviation where means and invs are
// not nil.
func layerNormalize[T blasFloat](y, x []T, outer, inner int, scale, bias []float64, epsilon float64, means, invs []float64) {
	for r := 0; r < outer; r++ {
		xs, ys := x[r*inner:(r+1)*inner], y[r*inner:(r+1)*inner]
		m, s := moments(xs)
		inv := 1 / math.Sqrt(s+epsilon)
		for j, u := range xs {
			ys[j] = T((float64(u)-m)*inv*scale[j] + bias[j])
		}
		if means != nil {
			means[r] = m
		}
		if invs != nil {
			invs[r] = inv
		}
	}
}

// GroupNormalization splits the C channels of X [N, C, D1, ..., Dk] into
// num_groups groups and normalizes each group of each batch item over its
// channels and D1..Dk. Opset 18 scales and shifts per group, opset 21 per
// channel.
type groupNorm struct {
	epsilon  float64
	groups   int
	perGroup bool
	scratch  [2][]float64
}

func compileGroupNorm(since int64) func(n *graph.Node) (kernel, error) {
	return func(n *graph.Node) (kernel, error) {
		if n.Attr("num_groups") == nil {
			return nil, fmt.Errorf("attribute num_groups is required")
		}
		groups := n.AttrInt("num_groups", 0)
		if groups <= 0 || groups > math.MaxInt32 {
			return nil, fmt.Errorf("num_groups is %d, want a positive count", groups)
		}
		// stash_type (opset 21) sets the precision of the statistics;
		// they are always computed in float64 here.
		if err := checkStashType(n); err != nil {
			return nil, err
		}
		gn := &groupNorm{
			epsilon:  float64(n.AttrFloat("epsilon", 1e-5)),
			groups:   int(groups),
			perGroup: since < 21,
		}
		return gn.run, nil
	}
}

func (gn *groupNorm) run(e *env, in []*Tensor) ([]*Tensor, error) {
	if len(in) < 3 || in[0] == nil || in[1] == nil || in[2] == nil {
		return nil, fmt.Errorf("GroupNormalization needs inputs X, scale and bias")
	}
	x := in[0]
	if err := checkFloat("X", x); err != nil {
		return nil, err
	}
	v, err := viewChannels("X", x)
	if err != nil {
		return nil, err
	}
	if v.c%gn.groups != 0 {
		return nil, fmt.Errorf("%d channels of X %v do not split into num_groups=%d groups", v.c, x.Shape, gn.groups)
	}
	want, per := v.c, "channel"
	if gn.perGroup {
		want, per = gn.groups, "group"
	}
	var p [2][]float64
	for i, name := range [2]string{"scale", "bias"} {
		t := in[1+i]
		if t.Rank() != 1 || t.Shape[0] != want {
			return nil, fmt.Errorf("%s has shape %v, want [%d], one per %s", name, t.Shape, want, per)
		}
		if p[i], err = loadFloats(&gn.scratch[i], t); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	y, err := e.output(0, x.DType, x.Shape...)
	if err != nil {
		return nil, err
	}
	switch xd := x.Data.(type) {
	case []float32:
		groupNormalize(y.Data.([]float32), xd, v, gn.groups, gn.perGroup, p[0], p[1], gn.epsilon)
		narrowFloat32s(y.DType, y.Data.([]float32))
	case []float64:
		groupNormalize(y.Data.([]float64), xd, v, gn.groups, gn.perGroup, p[0], p[1], gn.epsilon)
	}
	return []*Tensor{y}, nil
}

func groupNormalize[T blasFloat](y, x []T, v channelView, groups int, perGroup bool, scale, bias []float64, epsilon float64) {
	per := v.c / groups // channels in a group
	size := per * v.s
	for i := 0; i < v.n; i++ {
		for g := 0; g < groups; g++ {
			off := (i*groups + g) * size
			m, s := moments(x[off : off+size])
			inv := 1 / math.Sqrt(s+epsilon)
			for k := 0; k < per; k++ {
				p := g
				if !perGroup {
					p = g*per + k
				}
				a := inv * scale[p]
				b := bias[p] - m*a
				row := off + k*v.s
				xs, ys := x[row:row+v.s], y[row:row+v.s]
				for j, u := range xs {
					ys[j] = T(a*float64(u) + b)
				}
			}
		}
	}
}

// LRN divides each element of X [N, C, ...] by (bias + alpha/size *
// sum of squares over size neighbouring channels)^beta.
type lrn struct {
	alpha, beta, bias float64
	size              int
}

func compileLRN(n *graph.Node) (kernel, error) {
	if n.Attr("size") == nil {
		return nil, fmt.Errorf("attribute size is required")
	}
	size := n.AttrInt("size", 0)
	if size <= 0 || size > math.MaxInt32 {
		return nil, fmt.Errorf("size is %d, want a positive channel count", size)
	}
	l := &lrn{
		alpha: float64(n.AttrFloat("alpha", 1e-4)),
		beta:  float64(n.AttrFloat("beta", 0.75)),
		bias:  float64(n.AttrFloat("bias", 1)),
		size:  int(size),
	}
	return l.run, nil
}

func (l *lrn) run(e *env, in []*Tensor) ([]*Tensor, error) {
	if len(in) < 1 || in[0] == nil {
		return nil, fmt.Errorf("LRN needs input X")
	}
	x := in[0]
	if err := checkFloat("X", x); err != nil {
		return nil, err
	}
	v, err := viewChannels("X", x)
	if err != nil {
		return nil, err
	}
	y, err := e.output(0, x.DType, x.Shape...)
	if err != nil {
		return nil, err
	}
	switch xd := x.Data.(type) {
	case []float32:
		lrnApply(y.Data.([]float32), xd, v, l)
		narrowFloat32s(y.DType, y.Data.([]float32))
	case []float64:
		lrnApply(y.Data.([]float64), xd, v, l)
	}
	return []*Tensor{y}, nil
}

// lrnApply sums, for channel c, the squares of channels c-floor((size-1)/2)
// through c+ceil((size-1)/2) that exist.
func lrnApply[T blasFloat](y, x []T, v channelView, l *lrn) {
	before, after := (l.size-1)/2, l.size/2
	k := l.alpha / float64(l.size)
	for i := 0; i < v.n; i++ {
		base := i * v.c * v.s
		for c := 0; c < v.c; c++ {
			lo, hi := max(0, c-before), min(v.c-1, c+after)
			for j := 0; j < v.s; j++ {
				sum := 0.0
				for cc := lo; cc <= hi; cc++ {
					u := float64(x[base+cc*v.s+j])
					sum += u * u
				}
				off := base + c*v.s + j
				y[off] = T(float64(x[off]) / math.Pow(l.bias+k*sum, l.beta))
			}
		}
	}
}

// MeanVarianceNormalization computes (X - mean) / (sqrt(variance) + 1e-9)
// with the mean and variance taken over axes, as the operator's function
// body does.
type mvn struct {
	axes    []int64
	groupOf []int // the statistics slot of each element, for the last shape
	shape   []int
	scratch [2][]float64
}

// mvnEpsilon is the constant the ONNX function body adds to the standard
// deviation.
const mvnEpsilon = 1e-9

func compileMVN(n *graph.Node) (kernel, error) {
	m := &mvn{axes: n.AttrInts("axes", []int64{0, 2, 3})}
	return m.run, nil
}

func (m *mvn) run(e *env, in []*Tensor) ([]*Tensor, error) {
	if len(in) < 1 || in[0] == nil {
		return nil, fmt.Errorf("MeanVarianceNormalization needs input X")
	}
	x := in[0]
	if err := checkFloat("X", x); err != nil {
		return nil, err
	}
	reduced := make([]bool, x.Rank())
	for _, a := range m.axes {
		ax, err := normAxis(a, x.Rank())
		if err != nil {
			return nil, fmt.Errorf("axes %v: %w", m.axes, err)
		}
		reduced[ax] = true
	}
	if !sameShape(m.shape, x.Shape) || len(m.groupOf) != x.Len() {
		m.shape = append(m.shape[:0], x.Shape...)
		m.groupOf = statGroups(&m.groupOf, x.Shape, reduced)
	}
	groups := 1
	for i, d := range x.Shape {
		if !reduced[i] {
			groups *= d
		}
	}
	y, err := e.output(0, x.DType, x.Shape...)
	if err != nil {
		return nil, err
	}
	mean := scratchSlice(&m.scratch[0], groups)
	variance := scratchSlice(&m.scratch[1], groups)
	switch xd := x.Data.(type) {
	case []float32:
		mvnApply(y.Data.([]float32), xd, m.groupOf, mean, variance)
		narrowFloat32s(y.DType, y.Data.([]float32))
	case []float64:
		mvnApply(y.Data.([]float64), xd, m.groupOf, mean, variance)
	}
	return []*Tensor{y}, nil
}

// statGroups numbers each element of a tensor of shape by the position of
// its statistics in the shape with the reduced axes dropped.
func statGroups(scratch *[]int, shape []int, reduced []bool) []int {
	n := mustElements(shape)
	buf := scratchSlice(scratch, n)
	// stride of each axis in the group numbering, 0 along reduced axes
	stride := make([]int, len(shape))
	acc := 1
	for i := len(shape) - 1; i >= 0; i-- {
		if !reduced[i] {
			stride[i] = acc
			acc *= shape[i]
		}
	}
	idx := make([]int, len(shape))
	g := 0
	for i := 0; i < n; i++ {
		buf[i] = g
		for a := len(shape) - 1; a >= 0; a-- {
			idx[a]++
			g += stride[a]
			if idx[a] < shape[a] {
				break
			}
			g -= stride[a] * idx[a]
			idx[a] = 0
		}
	}
	return buf
}

func mvnApply[T blasFloat](y, x []T, groupOf []int, mean, variance []float64) {
	clear(mean)
	clear(variance)
	if len(mean) == 0 {
		return
	}
	count := float64(len(x) / len(mean)) // elements per group
	for i, v := range x {
		mean[groupOf[i]] += float64(v)
	}
	for g := range mean {
		mean[g] /= count
	}
	for i, v := range x {
		d := float64(v) - mean[groupOf[i]]
		variance[groupOf[i]] += d * d
	}
	for g := range variance {
		variance[g] = math.Sqrt(variance[g]/count) + mvnEpsilon
	}
	for i, v := range x {
		g := groupOf[i]
		y[i] = T((float64(v) - mean[g]) / variance[g])
	}
}

// LpNormalization divides X by its L1 or L2 norm along axis.
type lpNorm struct {
	axis int64
	p    int64
}

func compileLpNorm(n *graph.Node) (kernel, error) {
	l := &lpNorm{axis: n.AttrInt("axis", -1), p: n.AttrInt("p", 2)}
	if l.p != 1 && l.p != 2 {
		return nil, fmt.Errorf("p is %d, want 1 or 2", l.p)
	}
	return l.run, nil
}

func (l *lpNorm) run(e *env, in []*Tensor) ([]*Tensor, error) {
	if len(in) < 1 || in[0] == nil {
		return nil, fmt.Errorf("LpNormalization needs input input")
	}
	x := in[0]
	if err := checkFloat("input", x); err != nil {
		return nil, err
	}
	axis, err := normAxis(l.axis, x.Rank())
	if err != nil {
		return nil, err
	}
	outer, length, inner := mustElements(x.Shape[:axis]), x.Shape[axis], mustElements(x.Shape[axis+1:])
	y, err := e.output(0, x.DType, x.Shape...)
	if err != nil {
		return nil, err
	}
	switch xd := x.Data.(type) {
	case []float32:
		lpNormalize(y.Data.([]float32), xd, outer, length, inner, l.p)
		narrowFloat32s(y.DType, y.Data.([]float32))
	case []float64:
		lpNormalize(y.Data.([]float64), xd, outer, length, inner, l.p)
	}
	return []*Tensor{y}, nil
}

// lpNormalize divides each vector of length elements, inner apart, by its
// norm. A zero vector gives 0/0, NaN, as in the ONNX reference.
func lpNormalize[T blasFloat](y, x []T, outer, length, inner int, p int64) {
	for o := 0; o < outer; o++ {
		for i := 0; i < inner; i++ {
			base := o*length*inner + i
			norm := 0.0
			for k := 0; k < length; k++ {
				u := float64(x[base+k*inner])
				if p == 1 {
					norm += math.Abs(u)
				} else {
					norm += u * u
				}
			}
			if p == 2 {
				norm = math.Sqrt(norm)
			}
			for k := 0; k < length; k++ {
				y[base+k*inner] = T(float64(x[base+k*inner]) / norm)
			}
		}
	}
}

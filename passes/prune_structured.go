package passes

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"

	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"

	"onnxopt/graph"
	"onnxopt/onnx"
	"onnxopt/runtime"
)

// pruneStructured removes whole output channels of Conv, Gemm and MatMul
// layers, and with them the matching input channels of the layers that
// read them, so that the graph really shrinks.
//
// The pass follows each layer's output channels forward through the ops
// that keep channels apart (elementwise ops, pooling, BatchNormalization,
// Flatten...) to the layers that sum over them (the sinks). Layers whose
// outputs meet in an elementwise op (a residual Add) share one set of
// channels, a channel group, and are pruned together; Concat lays groups
// side by side. Anything else that reads the channels, a graph output
// among them, leaves the groups it reads alone.
type pruneStructured struct {
	sparsity    float64
	norm        string
	global      bool
	reconstruct bool
}

func newPruneStructured() Pass {
	return &pruneStructured{sparsity: 0.5, norm: "l1"}
}

func (p *pruneStructured) Flags(fs *pflag.FlagSet) {
	fs.Float64Var(&p.sparsity, "sparsity", p.sparsity, "share of each layer's output channels to remove, in [0, 1)")
	fs.StringVar(&p.norm, "norm", p.norm, "channel importance: l1 or l2 norm of the channel's weights")
	fs.BoolVar(&p.global, "global", p.global, "rank channels across all layers instead of pruning each layer by the same fraction")
	fs.BoolVar(&p.reconstruct, "reconstruct", p.reconstruct, "refit the layers reading pruned channels to their original outputs on the calibration data")
}

func (p *pruneStructured) Run(m *graph.Model, env *Env) (Result, error) {
	var res Result
	if err := checkSparsity("--sparsity", p.sparsity); err != nil {
		return res, err
	}
	if p.norm != "l1" && p.norm != "l2" {
		return res, fmt.Errorf("--norm %q: want l1 or l2", p.norm)
	}
	if p.reconstruct && len(env.Calibration) == 0 {
		return res, errors.New("--reconstruct needs calibration data")
	}
	weights, notes, err := PrunableWeights(m)
	if err != nil {
		return res, err
	}
	a := analyzeChannels(m.Graph, weights)
	a.rank(p.norm)
	if p.global {
		a.chooseGlobal(p.sparsity)
	} else {
		a.choosePerLayer(p.sparsity)
	}
	res.Notes = append(notes, a.notes()...)
	var original *graph.Model
	if p.reconstruct {
		if original, err = graph.FromProto(proto.CloneOf(m.ToProto())); err != nil {
			return res, fmt.Errorf("copying the model for reconstruction: %w", err)
		}
		if err := a.keptOutputs(original.Graph); err != nil {
			return res, fmt.Errorf("the reference for reconstruction: %w", err)
		}
	}
	if err := a.apply(m.Graph); err != nil {
		return res, err
	}
	for _, grp := range a.groups {
		if grp.parent == nil && grp.keep != nil {
			res.Changes += grp.channels - len(grp.keep)
		}
	}
	if p.reconstruct {
		notes, err := a.refit(m, original, env.Calibration)
		res.Notes = append(res.Notes, notes...)
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// A channelGroup is a set of layers whose output channels are pruned
// together: one layer, or several whose outputs an elementwise op
// combines channel by channel.
type channelGroup struct {
	parent    *channelGroup // set when merged into another group
	producers []channelProducer
	channels  int
	blocked   []string  // why the group must keep all its channels
	score     []float64 // importance of each channel
	keep      []int     // channels kept, ascending; nil keeps them all
}

// A channelProducer is a layer whose output channels are one per slice of
// its weight along axis.
type channelProducer struct {
	node   *graph.Node
	weight *onnx.TensorProto
	axis   int
}

func (c *channelGroup) root() *channelGroup {
	for c.parent != nil {
		c = c.parent
	}
	return c
}

func (c *channelGroup) name() string {
	var names []string
	for _, p := range c.producers {
		names = append(names, p.node.String())
	}
	return strings.Join(names, ", ")
}

// A segment is a run of indices along a value's channel axis: the channels
// of a group, each block indices long (more than one once Flatten has
// merged the spatial axes into the channel axis), or size indices that no
// group owns, which are kept.
type segment struct {
	group *channelGroup // nil for indices no group owns
	size  int           // the group's channels, or the indices no group owns
	block int
}

// A channelLayout says how the indices along one axis of a value map to
// channel groups.
type channelLayout struct {
	axis, rank int
	segs       []segment
}

// length is the size of the layout's axis.
func (l *channelLayout) length() int {
	n := 0
	for _, s := range l.segs {
		n += s.size * s.block
	}
	return n
}

// kept returns the indices along the axis that pruning keeps, and whether
// they are fewer than all of them.
func (l *channelLayout) kept() ([]int, bool) {
	var idx []int
	changed := false
	off := 0
	for _, s := range l.segs {
		var keep []int
		if s.group != nil {
			keep = s.group.root().keep
		}
		if keep == nil {
			for i := range s.size * s.block {
				idx = append(idx, off+i)
			}
		} else {
			changed = true
			for _, c := range keep {
				for b := range s.block {
					idx = append(idx, off+c*s.block+b)
				}
			}
		}
		off += s.size * s.block
	}
	return idx, changed
}

// flattened is l with each channel spanning inner times as many indices,
// as after merging the axes behind the channel axis into it.
func (l *channelLayout) flattened(axis, rank, inner int) *channelLayout {
	out := &channelLayout{axis: axis, rank: rank}
	for _, s := range l.segs {
		if s.group == nil {
			s.size *= inner
		} else {
			s.block *= inner
		}
		out.segs = append(out.segs, s)
	}
	return out
}

// A constSlice is a constant input of a node that loses the indices along
// axis that pruning removes from layout.
type constSlice struct {
	node   *graph.Node
	input  int
	axis   int
	layout *channelLayout
}

// A channelSink is a layer that sums over the channels of its input 0:
// its weight loses the input channels pruning removes.
type channelSink struct {
	node   *graph.Node
	layout *channelLayout
}

// channelAnalysis is what analyzeChannels finds in a graph, and the
// rewrite it plans.
type channelAnalysis struct {
	g       *graph.Graph
	types   inferred
	weights map[*graph.Node]*PrunableWeight
	layouts map[*graph.Value]*channelLayout
	groups  []*channelGroup // in the order the producers come
	slices  []constSlice
	sinks   []channelSink
	// groupAttrs are depthwise convolutions whose group attribute is the
	// number of channels of the layout.
	groupAttrs []constSlice
	// reshapes are Reshape nodes whose target size of the channel axis
	// (entry axis of the target) is the layout's length.
	reshapes []constSlice
}

// analyzeChannels finds the channel groups of the layers of g with
// prunable weights, follows their channels to the layers reading them and
// plans the constants to slice. g must be sorted.
func analyzeChannels(g *graph.Graph, weights []*PrunableWeight) *channelAnalysis {
	a := &channelAnalysis{g: g, types: inferTypes(g), weights: map[*graph.Node]*PrunableWeight{}, layouts: map[*graph.Value]*channelLayout{}}
	for _, w := range weights {
		for _, n := range w.Layers {
			a.weights[n] = w
		}
	}
	for _, n := range g.Nodes {
		var tracked []int
		for i, v := range n.Inputs {
			if v != nil && a.layouts[v] != nil {
				tracked = append(tracked, i)
			}
		}
		if len(tracked) > 0 {
			if why := a.follow(n, tracked); why != "" {
				for _, i := range tracked {
					a.block(a.layouts[n.Inputs[i]], why)
				}
			}
		}
		if len(n.Outputs) == 1 && n.Outputs[0] != nil && a.layouts[n.Outputs[0]] == nil {
			a.produce(n)
		}
	}
	for v, l := range a.layouts {
		if g.IsOutput(v) {
			a.block(l, fmt.Sprintf("its channels reach graph output %q, whose shape must not change", v.Name))
		}
		for _, u := range v.Uses {
			if u.Node.Graph != g {
				a.block(l, fmt.Sprintf("%q is read inside a subgraph of %s", v.Name, u.Node.Graph.Owner))
			}
		}
	}
	return a
}

// block keeps every channel of the groups in l, for the reason why.
func (a *channelAnalysis) block(l *channelLayout, why string) {
	for _, s := range l.segs {
		if s.group != nil {
			r := s.group.root()
			if !slices.Contains(r.blocked, why) {
				r.blocked = append(r.blocked, why)
			}
		}
	}
}

func (a *channelAnalysis) shape(v *graph.Value) (graph.Shape, bool) {
	return a.types.shape(v)
}

// staticDims returns the sizes of v's axes from..rank-1 when they are known.
func (a *channelAnalysis) staticDims(v *graph.Value, from int) ([]int64, bool) {
	s, ok := a.shape(v)
	if !ok || from > len(s) {
		return nil, false
	}
	return s[from:].Static()
}

// sliceable returns the tensor of v when v is a constant whose data is at
// hand, else nil.
func sliceable(v *graph.Value) *onnx.TensorProto {
	t := constantTensor(v)
	if t == nil || t.GetDataLocation() == onnx.TensorProto_EXTERNAL || t.GetDataType() == int32(onnx.TensorProto_STRING) {
		return nil
	}
	return t
}

// produce makes a channel group of n's output channels when n is a Conv
// (not grouped), Gemm or MatMul by a 2-D B whose weight PrunableWeights
// found, with a bias pruning can slice.
func (a *channelAnalysis) produce(n *graph.Node) {
	w := a.weights[n]
	if w == nil || n.Graph != a.g || w.Input != 1 {
		return
	}
	out := n.Outputs[0]
	dims := w.Dims()
	p := channelProducer{n, w.Tensor(), w.OutAxis}
	var layout *channelLayout
	var bias []constSlice
	switch n.OpType {
	case "Conv":
		b := n.Input(2)
		if n.AttrInt("group", 1) != 1 || b != nil && !slices.Equal(sliceable(b).GetDims(), dims[:1]) {
			return
		}
		layout = &channelLayout{axis: 1, rank: len(dims)}
		if b != nil {
			bias = append(bias, constSlice{n, 2, 0, layout})
		}
	case "Gemm":
		layout = &channelLayout{axis: 1, rank: 2}
		if c := n.Input(2); c != nil {
			t := sliceable(c)
			if t == nil {
				return
			}
			cd := t.GetDims()
			switch {
			case len(cd) > 2:
				return
			case len(cd) > 0 && cd[len(cd)-1] == dims[p.axis] && dims[p.axis] > 1:
				bias = append(bias, constSlice{n, 2, len(cd) - 1, layout})
			case len(cd) > 0 && cd[len(cd)-1] != 1:
				return
			}
		}
	case "MatMul":
		s, ok := a.shape(n.Input(0))
		if len(dims) != 2 || !ok || len(s) < 2 {
			return
		}
		layout = &channelLayout{axis: len(s) - 1, rank: len(s)}
	default:
		return
	}
	grp := &channelGroup{producers: []channelProducer{p}, channels: int(dims[p.axis])}
	layout.segs = []segment{{group: grp, size: grp.channels, block: 1}}
	a.groups = append(a.groups, grp)
	a.layouts[out] = layout
	a.slices = append(a.slices, constSlice{n, 1, p.axis, layout})
	a.slices = append(a.slices, bias...)
}

// Ops that compute each output element from the input element at the same
// place, or per channel: their outputs have their input's channels.
var channelwiseOps = []string{
	"Relu", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Elu", "Selu", "Celu",
	"Softplus", "Softsign", "Gelu", "Mish", "ThresholdedRelu", "Clip", "Identity", "Dropout",
	"Neg", "Abs", "Exp", "Log", "Sqrt", "Reciprocal", "Erf", "Floor", "Ceil", "Round", "Sign",
	"Cast", "Sin", "Cos",
}

// Ops that pool each channel over the spatial axes behind it.
var poolOps = []string{"MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"}

// Elementwise ops of several inputs, which broadcast.
var broadcastOps = []string{"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "PRelu"}

var reduceOps = []string{"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd",
	"ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"}

// follow gives n's outputs the channels of its inputs listed in tracked,
// or records n as a layer summing over them, and plans the constants of
// n to slice. It returns why the channels cannot go through n otherwise.
func (a *channelAnalysis) follow(n *graph.Node, tracked []int) string {
	if !isStandard(n) {
		return fmt.Sprintf("they are read by %s, of a domain pruning does not know", n)
	}
	op := n.OpType
	l := a.layouts[n.Inputs[tracked[0]]]
	onlyInput0 := len(tracked) == 1 && tracked[0] == 0
	switch {
	case slices.Contains(broadcastOps, op):
		return a.broadcast(n, tracked)
	case op == "Concat":
		return a.concat(n, tracked)
	case !onlyInput0:
		return fmt.Sprintf("%s reads them as input %d", n, tracked[len(tracked)-1])
	case slices.Contains(channelwiseOps, op):
		a.pass(n, l)
	case slices.Contains(poolOps, op):
		if l.axis != 1 {
			return fmt.Sprintf("%s pools axis 1, and the channels are on axis %d", n, l.axis)
		}
		if len(n.Outputs) > 1 && n.Outputs[1] != nil {
			return fmt.Sprintf("%s returns indices, which count the channels", n)
		}
		a.pass(n, l)
	case op == "BatchNormalization" || op == "InstanceNormalization":
		return a.normalization(n, l)
	case op == "Conv":
		return a.conv(n, l)
	case op == "Gemm" || op == "MatMul":
		return a.matmul(n, l)
	case op == "Flatten":
		return a.flatten(n, l)
	case op == "Reshape":
		return a.reshape(n, l)
	case op == "Squeeze" || slices.Contains(reduceOps, op):
		return a.dropAxes(n, l)
	default:
		return fmt.Sprintf("they are read by %s", n)
	}
	return ""
}

// pass gives every output of n the layout l.
func (a *channelAnalysis) pass(n *graph.Node, l *channelLayout) {
	for _, v := range n.Outputs {
		if v != nil {
			a.layouts[v] = l
		}
	}
}

// normalization plans BatchNormalization and InstanceNormalization, whose
// per-channel parameters lose the pruned channels.
func (a *channelAnalysis) normalization(n *graph.Node, l *channelLayout) string {
	if l.axis != 1 {
		return fmt.Sprintf("%s normalizes axis 1, and the channels are on axis %d", n, l.axis)
	}
	params := 2
	if n.OpType == "BatchNormalization" {
		if why := batchNormInference(n); why != "" {
			return fmt.Sprintf("%s: %s", n, why)
		}
		params = 4
	}
	if len(n.Inputs) < params+1 {
		return fmt.Sprintf("%s has %d inputs", n, len(n.Inputs))
	}
	for i := 1; i <= params; i++ {
		v := n.Inputs[i]
		if !slices.Equal(sliceable(v).GetDims(), []int64{int64(l.length())}) {
			return fmt.Sprintf("input %d of %s is not a constant with one value per channel", i, n)
		}
	}
	for i := 1; i <= params; i++ {
		a.slices = append(a.slices, constSlice{n, i, 0, l})
	}
	a.layouts[n.Outputs[0]] = l
	return ""
}

// broadcast plans an elementwise op of several inputs. The inputs that
// carry channels must carry the same ones, so their groups merge; the
// others must broadcast along the channel axis or be constants, sliced.
func (a *channelAnalysis) broadcast(n *graph.Node, tracked []int) string {
	rank := 0
	for _, v := range n.Inputs {
		if v == nil {
			continue
		}
		if l := a.layouts[v]; l != nil {
			rank = max(rank, l.rank)
			continue
		}
		s, ok := a.shape(v)
		if !ok {
			return fmt.Sprintf("%s also reads %q, whose shape is unknown", n, v.Name)
		}
		rank = max(rank, len(s))
	}
	var ref *channelLayout
	axis := 0
	for _, i := range tracked {
		l := a.layouts[n.Inputs[i]]
		ax := l.axis + rank - l.rank
		if ref == nil {
			ref, axis = l, ax
			continue
		}
		if ax != axis {
			return fmt.Sprintf("%s combines channels on different axes", n)
		}
		if why := a.unify(ref, l); why != "" {
			return fmt.Sprintf("%s combines %s", n, why)
		}
	}
	var sliced []constSlice
	for i, v := range n.Inputs {
		if v == nil || a.layouts[v] != nil {
			continue
		}
		s, _ := a.shape(v)
		ax := axis - (rank - len(s))
		if ax < 0 || s[ax].Known && s[ax].Value == 1 {
			continue // broadcasts along the channels
		}
		if !s[ax].Known || s[ax].Value != int64(ref.length()) {
			return fmt.Sprintf("%s also reads %q, of shape %v", n, v.Name, s)
		}
		if sliceable(v) == nil {
			return fmt.Sprintf("%s also reads %q, which differs along the channels and is not a constant", n, v.Name)
		}
		sliced = append(sliced, constSlice{n, i, ax, ref})
	}
	a.slices = append(a.slices, sliced...)
	a.layouts[n.Outputs[0]] = &channelLayout{axis: axis, rank: rank, segs: ref.segs}
	return ""
}

// unify merges the groups of two layouts that an elementwise op combines,
// index by index. It says why when their channels do not line up.
func (a *channelAnalysis) unify(x, y *channelLayout) string {
	if len(x.segs) != len(y.segs) {
		return "channels of different layouts"
	}
	for i, s := range x.segs {
		t := y.segs[i]
		if s.size != t.size || s.block != t.block {
			return "channels of different layouts"
		}
		switch {
		case s.group == nil && t.group == nil:
		case s.group == nil || t.group == nil:
			// Channels no group owns are kept: so must their partners.
			why := "channels that cannot be pruned"
			a.block(&channelLayout{segs: []segment{s, t}}, why)
		default:
			r, q := s.group.root(), t.group.root()
			if r != q {
				q.parent = r
				r.producers = append(r.producers, q.producers...)
				for _, why := range q.blocked {
					if !slices.Contains(r.blocked, why) {
						r.blocked = append(r.blocked, why)
					}
				}
			}
		}
	}
	return ""
}

// concat plans a Concat along the channel axis: its output's channels are
// its inputs' side by side; inputs without groups are kept whole.
func (a *channelAnalysis) concat(n *graph.Node, tracked []int) string {
	l := a.layouts[n.Inputs[tracked[0]]]
	axis := int(n.AttrInt("axis", 0))
	if axis < 0 {
		axis += l.rank
	}
	out := &channelLayout{axis: axis, rank: l.rank}
	for _, v := range n.Inputs {
		if v == nil {
			continue
		}
		if t := a.layouts[v]; t != nil {
			if t.axis != axis {
				return fmt.Sprintf("%s concatenates along axis %d, not the channel axis %d", n, axis, t.axis)
			}
			out.segs = append(out.segs, t.segs...)
			continue
		}
		s, ok := a.shape(v)
		if !ok || len(s) != l.rank || !s[axis].Known {
			return fmt.Sprintf("%s also reads %q, whose size along axis %d is unknown", n, v.Name, axis)
		}
		if s[axis].Value > 0 {
			out.segs = append(out.segs, segment{size: int(s[axis].Value), block: 1})
		}
	}
	a.layouts[n.Outputs[0]] = out
	return ""
}

// conv plans a Conv reading the channels: an ordinary one sums over them;
// a depthwise one (group = channels, one filter each) keeps them apart,
// and loses the pruned channels' filters.
func (a *channelAnalysis) conv(n *graph.Node, l *channelLayout) string {
	w, b := sliceable(n.Input(1)), n.Input(2)
	if l.axis != 1 {
		return fmt.Sprintf("%s convolves axis 1, and the channels are on axis %d", n, l.axis)
	}
	if w == nil || b != nil && sliceable(b) == nil {
		return fmt.Sprintf("the weights of %s are not constants", n)
	}
	dims := w.GetDims()
	c := int64(l.length())
	switch group := n.AttrInt("group", 1); {
	case len(dims) < 3:
		return fmt.Sprintf("the weights of %s have shape %v", n, dims)
	case group == 1 && dims[1] == c:
		a.sinks = append(a.sinks, channelSink{n, l})
		a.slices = append(a.slices, constSlice{n, 1, 1, l})
	case group == c && dims[0] == c && dims[1] == 1:
		a.slices = append(a.slices, constSlice{n, 1, 0, l})
		if b != nil {
			a.slices = append(a.slices, constSlice{n, 2, 0, l})
		}
		a.groupAttrs = append(a.groupAttrs, constSlice{node: n, layout: l})
		a.layouts[n.Outputs[0]] = l
	default:
		return fmt.Sprintf("%s is a grouped convolution (group %d of %d channels): its groups would have to shrink alike", n, group, c)
	}
	return ""
}

// matmul plans a Gemm or MatMul summing over the channels, which must be
// on the last axis of input A, with a constant 2-D B.
func (a *channelAnalysis) matmul(n *graph.Node, l *channelLayout) string {
	w := sliceable(n.Input(1))
	if w == nil || len(w.GetDims()) != 2 {
		return fmt.Sprintf("%s multiplies by a B that is not a constant matrix", n)
	}
	axis := 0
	if n.OpType == "Gemm" {
		if n.AttrInt("transA", 0) != 0 {
			return fmt.Sprintf("%s transposes A", n)
		}
		if n.AttrInt("transB", 0) != 0 {
			axis = 1
		}
	}
	if l.axis != l.rank-1 {
		return fmt.Sprintf("%s sums over the last axis, and the channels are on axis %d", n, l.axis)
	}
	if w.GetDims()[axis] != int64(l.length()) {
		return fmt.Sprintf("%s has %d input channels, its input %d", n, w.GetDims()[axis], l.length())
	}
	a.sinks = append(a.sinks, channelSink{n, l})
	a.slices = append(a.slices, constSlice{n, 1, axis, l})
	return ""
}

// flatten plans a Flatten that merges the channel axis with the spatial
// axes behind it: each channel becomes a block of that many features.
func (a *channelAnalysis) flatten(n *graph.Node, l *channelLayout) string {
	at := int(n.AttrInt("axis", 1))
	if at < 0 {
		at += l.rank
	}
	x := n.Inputs[0]
	inner, why := a.behind(x, l, at)
	if why != "" {
		return fmt.Sprintf("%s: %s", n, why)
	}
	a.layouts[n.Outputs[0]] = l.flattened(1, 2, inner)
	return ""
}

// behind returns the number of elements behind the channel axis of x that
// merging the axes from..rank-1 into one puts in each channel's block. The
// axes between from and the channel axis must have size 1.
func (a *channelAnalysis) behind(x *graph.Value, l *channelLayout, from int) (int, string) {
	if from > l.axis {
		return 0, fmt.Sprintf("the channels on axis %d would merge with the axes before them", l.axis)
	}
	dims, ok := a.staticDims(x, from)
	if !ok || len(dims) != l.rank-from {
		return 0, fmt.Sprintf("the sizes of %q from axis %d are not known", x.Name, from)
	}
	inner := 1
	for i, d := range dims {
		switch k := from + i; {
		case k < l.axis && d != 1:
			return 0, fmt.Sprintf("axis %d of size %d would interleave the channels", k, d)
		case k > l.axis:
			inner *= int(d)
		}
	}
	return inner, ""
}

// reshape plans a Reshape that flattens the channel axis and every axis
// behind it into one, keeping the axes before it: a constant target
// [..., size] whose last size, when written out, shrinks with the
// channels.
func (a *channelAnalysis) reshape(n *graph.Node, l *channelLayout) string {
	target, ok := reshapeTarget(n)
	if !ok || len(target) != l.axis+1 {
		return fmt.Sprintf("%s does not flatten the channels with the axes behind them", n)
	}
	x := n.Inputs[0]
	inner, why := a.behind(x, l, l.axis)
	if why != "" {
		return fmt.Sprintf("%s: %s", n, why)
	}
	s, _ := a.shape(x)
	zeroCopies := n.AttrInt("allowzero", 0) == 0
	for i, t := range target[:l.axis] {
		if !(t == 0 && zeroCopies || t == -1 || s[i].Known && s[i].Value == t) {
			return fmt.Sprintf("%s changes the axes before the channels", n)
		}
	}
	out := l.flattened(l.axis, l.axis+1, inner)
	switch last := target[l.axis]; {
	case last == -1:
	case last == int64(out.length()):
		a.reshapes = append(a.reshapes, constSlice{node: n, axis: l.axis, layout: out})
	default:
		return fmt.Sprintf("%s does not flatten the channels with the axes behind them", n)
	}
	a.layouts[n.Outputs[0]] = out
	return ""
}

// dropAxes plans a Squeeze or a reduction over axes other than the
// channel axis.
func (a *channelAnalysis) dropAxes(n *graph.Node, l *channelLayout) string {
	var axes []int64
	attrAxes := n.OpType == "Squeeze" && n.Opset() < 13 || n.OpType != "Squeeze" && n.Opset() < 18 && !(n.OpType == "ReduceSum" && n.Opset() >= 13)
	if attrAxes {
		axes = n.AttrInts("axes", nil)
	} else if v := n.Input(1); v != nil {
		t := constantTensor(v)
		if t == nil {
			return fmt.Sprintf("the axes of %s are not constant", n)
		}
		var err error
		if axes, err = onnx.Int64s(t); err != nil {
			return fmt.Sprintf("the axes of %s: %v", n, err)
		}
	}
	keepDims := n.OpType != "Squeeze" && n.AttrInt("keepdims", 1) != 0
	if len(axes) == 0 {
		switch {
		case n.OpType != "Squeeze" && n.AttrInt("noop_with_empty_axes", 0) != 0:
		case n.OpType != "Squeeze":
			return fmt.Sprintf("%s reduces every axis", n)
		default:
			s, ok := a.shape(n.Inputs[0])
			if !ok {
				return fmt.Sprintf("%s squeezes axes of unknown size", n)
			}
			for i, d := range s {
				if !d.Known {
					return fmt.Sprintf("%s squeezes axes of unknown size", n)
				}
				if d.Value == 1 {
					axes = append(axes, int64(i))
				}
			}
		}
	}
	out := &channelLayout{axis: l.axis, rank: l.rank, segs: l.segs}
	for _, ax := range axes {
		if ax < 0 {
			ax += int64(l.rank)
		}
		switch {
		case ax == int64(l.axis):
			return fmt.Sprintf("%s removes the channel axis", n)
		case keepDims:
		case ax < int64(l.axis):
			out.axis--
			out.rank--
		default:
			out.rank--
		}
	}
	a.layouts[n.Outputs[0]] = out
	return ""
}

// rank scores each channel of the groups that can be pruned: the mean,
// over the group's layers, of the norm of the channel's weights divided
// by the norm of a weight tensor of ones of its size, so that layers of
// different fan-in compare (mean |w| for l1, root mean square for l2).
func (a *channelAnalysis) rank(norm string) {
	for _, grp := range a.groups {
		if grp.parent != nil || len(grp.blocked) > 0 {
			continue
		}
		grp.score = make([]float64, grp.channels)
		for _, p := range grp.producers {
			s, err := channelNorms(p.weight, p.axis, norm)
			if err != nil {
				grp.blocked = append(grp.blocked, fmt.Sprintf("the weights of %s: %v", p.node, err))
				break
			}
			for c, v := range s {
				grp.score[c] += v / float64(len(grp.producers))
			}
		}
	}
}

// channelNorms returns, for each index along axis of w, the norm of the
// weights at that index per weight: mean |w| (l1) or root mean square
// (l2).
func channelNorms(w *onnx.TensorProto, axis int, norm string) ([]float64, error) {
	vals, err := onnx.Float64s(w)
	if err != nil {
		return nil, err
	}
	dims := w.GetDims()
	outer, n, inner := splitAt(dims, axis)
	sums := make([]float64, n)
	for o := range outer {
		for c := range n {
			for _, v := range vals[(o*n+c)*inner : (o*n+c+1)*inner] {
				if norm == "l1" {
					sums[c] += math.Abs(v)
				} else {
					sums[c] += v * v
				}
			}
		}
	}
	per := float64(outer * inner)
	for c, s := range sums {
		if norm == "l1" {
			sums[c] = s / per
		} else {
			sums[c] = math.Sqrt(s / per)
		}
	}
	return sums, nil
}

// splitAt returns the number of elements before, along and after axis of
// a tensor of shape dims.
func splitAt(dims []int64, axis int) (outer, n, inner int) {
	outer, inner = 1, 1
	for i, d := range dims {
		switch {
		case i < axis:
			outer *= int(d)
		case i > axis:
			inner *= int(d)
		}
	}
	return outer, int(dims[axis]), inner
}

// prunable returns the groups whose channels pruning may remove.
func (a *channelAnalysis) prunable() []*channelGroup {
	var gs []*channelGroup
	for _, grp := range a.groups {
		if grp.parent == nil && len(grp.blocked) == 0 && grp.channels > 1 {
			gs = append(gs, grp)
		}
	}
	return gs
}

// choosePerLayer removes the given fraction of each group's channels, those
// of lowest score, keeping at least one.
func (a *channelAnalysis) choosePerLayer(sparsity float64) {
	for _, grp := range a.prunable() {
		drop := min(pruneCount(sparsity, grp.channels), grp.channels-1)
		if drop == 0 {
			continue
		}
		order := make([]int, grp.channels)
		for c := range order {
			order[c] = c
		}
		slices.SortStableFunc(order, func(x, y int) int { return cmp.Compare(grp.score[x], grp.score[y]) })
		grp.keep = slices.Sorted(slices.Values(order[drop:]))
	}
}

// chooseGlobal removes the given fraction of all prunable channels, those
// of lowest score in the whole model, keeping at least one per group.
func (a *channelAnalysis) chooseGlobal(sparsity float64) {
	type channel struct {
		grp   *channelGroup
		c     int
		score float64
	}
	var all []channel
	gs := a.prunable()
	for _, grp := range gs {
		// Scores compare across layers relative to their layer's mean:
		// raw norms shrink with fan-in, and would strip wide layers.
		mean := 0.0
		for _, s := range grp.score {
			mean += s / float64(grp.channels)
		}
		for c, s := range grp.score {
			if mean > 0 {
				s /= mean
			}
			all = append(all, channel{grp, c, s})
		}
	}
	slices.SortStableFunc(all, func(x, y channel) int { return cmp.Compare(x.score, y.score) })
	drop := pruneCount(sparsity, len(all))
	dropped := map[*channelGroup]map[int]bool{}
	for _, ch := range all {
		if drop == 0 {
			break
		}
		if len(dropped[ch.grp])+1 >= ch.grp.channels {
			continue
		}
		if dropped[ch.grp] == nil {
			dropped[ch.grp] = map[int]bool{}
		}
		dropped[ch.grp][ch.c] = true
		drop--
	}
	for _, grp := range gs {
		if len(dropped[grp]) == 0 {
			continue
		}
		grp.keep = []int{}
		for c := range grp.channels {
			if !dropped[grp][c] {
				grp.keep = append(grp.keep, c)
			}
		}
	}
}

// notes says, per group, how many channels it keeps or why it keeps them
// all.
func (a *channelAnalysis) notes() []string {
	var notes []string
	for _, grp := range a.groups {
		switch {
		case grp.parent != nil:
		case len(grp.blocked) > 0:
			notes = append(notes, fmt.Sprintf("%s left alone: %s", grp.name(), strings.Join(grp.blocked, "; ")))
		case grp.keep != nil:
			notes = append(notes, fmt.Sprintf("%s: %d of %d channels kept", grp.name(), len(grp.keep), grp.channels))
		case grp.channels == 1:
			notes = append(notes, fmt.Sprintf("%s keeps its only channel", grp.name()))
		default:
			notes = append(notes, fmt.Sprintf("%s: all %d channels kept", grp.name(), grp.channels))
		}
	}
	return notes
}

// apply rewrites g: it slices the planned constants, sets the group of
// depthwise convolutions and the targets of Reshapes, and updates the
// declared shapes of the values whose channels shrink.
func (a *channelAnalysis) apply(g *graph.Graph) error {
	for _, s := range a.slices {
		idx, changed := s.layout.kept()
		if !changed {
			continue
		}
		v := s.node.Inputs[s.input]
		t, err := sliceTensor(v.Name, sliceable(v), s.axis, idx)
		if err != nil {
			return fmt.Errorf("node %s: input %q: %w", s.node, v.Name, err)
		}
		replaceConstantInput(g, s.node, s.input, t)
	}
	for _, s := range a.groupAttrs {
		if idx, changed := s.layout.kept(); changed {
			s.node.SetAttr(&onnx.AttributeProto{Name: proto.String("group"), Type: onnx.AttributeProto_INT.Enum(), I: proto.Int64(int64(len(idx)))})
		}
	}
	for _, s := range a.reshapes {
		idx, changed := s.layout.kept()
		if !changed {
			continue
		}
		target, _ := reshapeTarget(s.node)
		target = slices.Clone(target)
		target[s.axis] = int64(len(idx))
		if s.node.Opset() < 5 {
			s.node.SetAttr(&onnx.AttributeProto{Name: proto.String("shape"), Type: onnx.AttributeProto_INTS.Enum(), Ints: target})
			continue
		}
		t, err := onnx.NewTensor(s.node.Inputs[1].Name, onnx.TensorProto_INT64, []int64{int64(len(target))}, target)
		if err != nil {
			return fmt.Errorf("node %s: %w", s.node, err)
		}
		replaceConstantInput(g, s.node, 1, t)
	}
	for v, l := range a.layouts {
		idx, changed := l.kept()
		if !changed || v.Type.GetTensorType() == nil {
			continue
		}
		s, ok := v.Shape()
		if !ok || len(s) != l.rank || !s[l.axis].Known {
			continue
		}
		s[l.axis].Value = int64(len(idx))
		v.SetTensorType(v.ElemType(), s)
	}
	return nil
}

// replaceConstantInput makes input i of n read the constant t: in place
// when n is the only reader of the constant there (an initializer or a
// Constant node), else through a new initializer, so that other readers
// keep their numbers.
func replaceConstantInput(g *graph.Graph, n *graph.Node, i int, t *onnx.TensorProto) {
	old := n.Inputs[i]
	sole := old != nil && old.Graph == g && !g.IsOutput(old) && len(old.Uses) == 1
	switch {
	case sole && old.IsConstant():
		old.SetInit(t)
	case sole && old.Producer != nil && old.Producer.OpType == "Constant" && isStandard(old.Producer):
		if old.Type != nil {
			old.SetTensorType(onnx.DataType(t.GetDataType()), graph.Known(t.GetDims()...))
		}
		t.Name = nil // a Constant's value is named by the node's output
		old.Producer.SetAttr(&onnx.AttributeProto{Name: proto.String("value"), Type: onnx.AttributeProto_TENSOR.Enum(), T: t})
	default:
		n.SetInput(i, g.AddInitializer(t))
	}
}

// sliceTensor returns t, named name, with only the indices idx along axis.
func sliceTensor(name string, t *onnx.TensorProto, axis int, idx []int) (*onnx.TensorProto, error) {
	data, err := onnx.Decode(t)
	if err != nil {
		return nil, err
	}
	dims := t.GetDims()
	outer, n, inner := splitAt(dims, axis)
	src := reflect.ValueOf(data)
	dst := reflect.MakeSlice(src.Type(), outer*len(idx)*inner, outer*len(idx)*inner)
	for o := range outer {
		for j, k := range idx {
			if k >= n {
				return nil, fmt.Errorf("index %d out of %d along axis %d", k, n, axis)
			}
			to := (o*len(idx) + j) * inner
			from := (o*n + k) * inner
			reflect.Copy(dst.Slice(to, to+inner), src.Slice(from, from+inner))
		}
	}
	out := slices.Clone(dims)
	out[axis] = int64(len(idx))
	return onnx.NewTensor(name, onnx.DataType(t.GetDataType()), out, dst.Interface())
}

// keptOutputs makes g, a copy of the model before pruning, the reference
// that refit aims at: where a layer that reads pruned channels loses
// output channels too, its output's name now names a Gather of the
// channels it keeps, which is what the pruned layer can still compute;
// the nodes after it read all the channels under a new name, as before.
func (a *channelAnalysis) keptOutputs(g *graph.Graph) error {
	for _, s := range a.sinks {
		out := s.node.Outputs[0]
		l := a.layouts[out]
		if l == nil {
			continue
		}
		idx, changed := l.kept()
		if !changed {
			continue
		}
		all := g.Lookup(out.Name)
		if all == nil || all.Graph != g {
			return fmt.Errorf("the copy has no value %q", out.Name)
		}
		if err := all.Rename(g.UniqueName(out.Name + "_all_channels")); err != nil {
			return err
		}
		indices := make([]int64, len(idx))
		for i, c := range idx {
			indices[i] = int64(c)
		}
		t, err := onnx.NewTensor(out.Name+"_kept_channels", onnx.TensorProto_INT64, []int64{int64(len(idx))}, indices)
		if err != nil {
			return err
		}
		axis := &onnx.AttributeProto{Name: proto.String("axis"), Type: onnx.AttributeProto_INT.Enum(), I: proto.Int64(int64(l.axis))}
		if _, err := g.NewNode("Gather", out.Name+"_kept_channels", []*graph.Value{all, g.AddInitializer(t)}, []*graph.Value{g.Value(out.Name)}, axis); err != nil {
			return err
		}
	}
	return g.Sort()
}

// refit refits each layer whose input channels pruning removed, with the
// least squares of reconstruct: on the calibration batches its output in
// the pruned model, fed by the layers before it (pruned and refitted),
// comes as close as it can to its output in original, the reference that
// keptOutputs makes.
func (a *channelAnalysis) refit(m, original *graph.Model, calib []map[string]*runtime.Tensor) ([]string, error) {
	changed := map[*graph.Node]bool{}
	for _, s := range a.sinks {
		if _, ok := s.layout.kept(); ok {
			changed[s.node] = true
		}
	}
	if len(changed) == 0 {
		return nil, nil
	}
	// Slicing may have given a sink a weight of its own: find them anew.
	weights, _, err := PrunableWeights(m)
	if err != nil {
		return nil, err
	}
	var targets []*pruneTarget
	var keep [][]bool
	for _, w := range weights {
		if !slices.ContainsFunc(w.Layers, func(n *graph.Node) bool { return changed[n] }) {
			continue
		}
		vals, err := w.Float64s()
		if err != nil {
			return nil, err
		}
		all := make([]bool, len(vals))
		for i := range all {
			all[i] = true
		}
		targets = append(targets, &pruneTarget{w: w, vals: vals})
		keep = append(keep, all)
	}
	return reconstruct(m, original, targets, keep, calib)
}

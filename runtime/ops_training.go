package runtime

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"onnxopt/graph"
	"onnxopt/onnx"
)

// trainingOps are the operators of the ai.onnx.preview.training domain:
// the optimizers here, and Gradient (ops_gradient.go).
var trainingOps = []opDef{
	{"ai.onnx.preview.training", "Adagrad", 1, compileAdagrad},
	{"ai.onnx.preview.training", "Adam", 1, compileAdam},
	{"ai.onnx.preview.training", "Momentum", 1, compileMomentum},
	{"ai.onnx.preview.training", "Gradient", 1, compileGradient},
}

// An optimizer is the layout shared by Adagrad, Adam and Momentum. The
// inputs are the learning rate R, the update count T and then one run of
// tensors per role: the optimized tensors X, their gradients G, and each
// of their states (Adagrad H; Adam V then H; Momentum V), as in
// [R, T, X1, X2, G1, G2, H1, H2]. The outputs are the new X and the new
// states, in the same runs: [X1_new, X2_new, H1_new, H2_new].
//
// The spec writes the updates with numpy broadcasting, but its shape
// inference gives each output the shape of its input; the runtime
// requires every tensor of a group to have the shape of its X.
type optimizer struct {
	roles   []string // X, G, then the states
	tensors int      // optimized tensors: the length of each run
	// Scratch for update: one optimized tensor's inputs and outputs.
	group []*Tensor
	f32   [][]float32
	f64   [][]float64
}

func newOptimizer(n *graph.Node, roles ...string) (*optimizer, error) {
	o := &optimizer{roles: roles}
	vars := len(n.Inputs) - 2
	if vars < len(roles) || vars%len(roles) != 0 {
		return nil, fmt.Errorf("%d inputs: want R, T and then %d runs of equal length (%s), one tensor per optimized tensor in each",
			len(n.Inputs), len(roles), strings.Join(roles, ", "))
	}
	o.tensors = vars / len(roles)
	for i, v := range n.Inputs {
		if v == nil {
			return nil, fmt.Errorf("input %d (%s) is omitted; the operator has no optional inputs", i, o.inputName(i))
		}
	}
	if limit := (len(roles) - 1) * o.tensors; len(n.Outputs) > limit {
		return nil, fmt.Errorf("%d outputs: %d optimized tensors give at most %d (new %s)",
			len(n.Outputs), o.tensors, limit, strings.Join(append([]string{roles[0]}, roles[2:]...), ", new "))
	}
	groups := 2*len(roles) - 1 // a tensor's inputs and outputs
	o.group = make([]*Tensor, 0, groups)
	o.f32, o.f64 = make([][]float32, groups), make([][]float64, groups)
	return o, nil
}

// inputName names input i for errors: R, T, or a role and the 1-based
// index of its optimized tensor, such as G2.
func (o *optimizer) inputName(i int) string {
	switch i {
	case 0:
		return "R"
	case 1:
		return "T"
	}
	return fmt.Sprintf("%s%d", o.roles[(i-2)/o.tensors], (i-2)%o.tensors+1)
}

// check checks the inputs of a run and returns R and T.
func (o *optimizer) check(in []*Tensor) (rate float64, count int64, err error) {
	if len(in) != 2+len(o.roles)*o.tensors {
		return 0, 0, fmt.Errorf("got %d inputs, want %d", len(in), 2+len(o.roles)*o.tensors)
	}
	for i, t := range in {
		if t == nil {
			return 0, 0, fmt.Errorf("input %d (%s) is missing", i, o.inputName(i))
		}
	}
	r, t := in[0], in[1]
	ok := false
	switch d := r.Data.(type) {
	case []float32:
		if ok = r.DType == onnx.TensorProto_FLOAT && len(d) == 1; ok {
			rate = float64(d[0])
		}
	case []float64:
		if ok = len(d) == 1; ok {
			rate = d[0]
		}
	}
	if !ok {
		return 0, 0, fmt.Errorf("R is %s, want a float or double scalar", r)
	}
	d, ok := t.Data.([]int64)
	if !ok || len(d) != 1 {
		return 0, 0, fmt.Errorf("T is %s, want an int64 scalar", t)
	}
	count = d[0]
	for i := range o.tensors {
		x := in[2+i]
		if x.DType != onnx.TensorProto_FLOAT && x.DType != onnx.TensorProto_DOUBLE {
			return 0, 0, fmt.Errorf("%s is %s, want float or double", o.inputName(2+i), x)
		}
		for role := 1; role < len(o.roles); role++ {
			j := 2 + role*o.tensors + i
			if v := in[j]; v.DType != x.DType || !sameShape(v.Shape, x.Shape) {
				return 0, 0, fmt.Errorf("%s is %s, want %s like %s", o.inputName(j), v, x, o.inputName(2+i))
			}
		}
	}
	return rate, count, nil
}

// update computes the outputs of a run whose inputs check has passed.
// For each optimized tensor it calls f32 or f64 with the tensor's inputs in
// role order and then its outputs: X, G, the states, X_new, the new
// states, all of X's shape.
func (o *optimizer) update(e *env, in []*Tensor, f32 func(s [][]float32), f64 func(s [][]float64)) ([]*Tensor, error) {
	outs := make([]*Tensor, (len(o.roles)-1)*o.tensors)
	for i := range o.tensors {
		x := in[2+i]
		group := o.group[:0]
		for role := range o.roles {
			group = append(group, in[2+role*o.tensors+i])
		}
		for role := range len(o.roles) - 1 {
			k := role*o.tensors + i
			t, err := e.output(k, x.DType, x.Shape...)
			if err != nil {
				return nil, err
			}
			outs[k] = t
			group = append(group, t)
		}
		var ok bool
		switch x.DType {
		case onnx.TensorProto_FLOAT:
			if ok = slicesOf(o.f32, group); ok {
				f32(o.f32)
			}
		case onnx.TensorProto_DOUBLE:
			if ok = slicesOf(o.f64, group); ok {
				f64(o.f64)
			}
		}
		if !ok {
			return nil, errors.New("a tensor's data does not match its type")
		}
	}
	return outs, nil
}

// slicesOf sets dst to the data of ts, reporting false when one does not
// hold []T.
func slicesOf[T float32 | float64](dst [][]T, ts []*Tensor) bool {
	for i, t := range ts {
		d, ok := t.Data.([]T)
		if !ok {
			return false
		}
		dst[i] = d
	}
	return true
}

// compileAdagrad: r = R / (1 + T*decay_factor), then per element
//
//	G_regularized = norm_coefficient*X + G
//	H_new = H + G_regularized²
//	X_new = X - r*G_regularized / (sqrt(H_new) + epsilon)
func compileAdagrad(n *graph.Node) (kernel, error) {
	o, err := newOptimizer(n, "X", "G", "H")
	if err != nil {
		return nil, err
	}
	decay := float64(n.AttrFloat("decay_factor", 0))
	norm := float64(n.AttrFloat("norm_coefficient", 0))
	eps := float64(n.AttrFloat("epsilon", 1e-6))
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		rate, count, err := o.check(in)
		if err != nil {
			return nil, err
		}
		r := rate / (1 + float64(count)*decay)
		return o.update(e, in,
			func(s [][]float32) { adagrad(s, r, norm, eps) },
			func(s [][]float64) { adagrad(s, r, norm, eps) })
	}, nil
}

// adagrad updates one tensor: s is X, G, H, X_new, H_new.
func adagrad[T float32 | float64](s [][]T, r, norm, eps float64) {
	x, g, h, xNew, hNew := s[0], s[1], s[2], s[3], s[4]
	for j, xv := range x {
		gr := norm*float64(xv) + float64(g[j])
		hn := float64(h[j]) + gr*gr
		hNew[j] = T(hn)
		xNew[j] = T(float64(xv) - r*gr/(math.Sqrt(hn)+eps))
	}
}

// compileAdam: with R_adjusted = R*sqrt(1 - beta^T) / (1 - alpha^T) when
// T > 0 and R otherwise, per element
//
//	G_regularized = norm_coefficient*X + G
//	V_new = alpha*V + (1 - alpha)*G_regularized
//	H_new = beta*H + (1 - beta)*G_regularized²
//	X_new = (1 - norm_coefficient_post) * (X - R_adjusted*V_new / (sqrt(H_new) + epsilon))
func compileAdam(n *graph.Node) (kernel, error) {
	o, err := newOptimizer(n, "X", "G", "V", "H")
	if err != nil {
		return nil, err
	}
	c := adamCoefficients{
		alpha:    float64(n.AttrFloat("alpha", 0.9)),
		beta:     float64(n.AttrFloat("beta", 0.999)),
		norm:     float64(n.AttrFloat("norm_coefficient", 0)),
		normPost: float64(n.AttrFloat("norm_coefficient_post", 0)),
		eps:      float64(n.AttrFloat("epsilon", 1e-6)),
	}
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		rate, count, err := o.check(in)
		if err != nil {
			return nil, err
		}
		c := c
		c.rate = rate
		if count > 0 {
			t := float64(count)
			c.rate *= math.Sqrt(1-math.Pow(c.beta, t)) / (1 - math.Pow(c.alpha, t))
		}
		return o.update(e, in,
			func(s [][]float32) { adam(s, &c) },
			func(s [][]float64) { adam(s, &c) })
	}, nil
}

type adamCoefficients struct {
	rate                             float64 // R_adjusted
	alpha, beta, norm, normPost, eps float64
}

// adam updates one tensor: s is X, G, V, H, X_new, V_new, H_new.
func adam[T float32 | float64](s [][]T, c *adamCoefficients) {
	x, g, v, h, xNew, vNew, hNew := s[0], s[1], s[2], s[3], s[4], s[5], s[6]
	for j, xv := range x {
		gr := c.norm*float64(xv) + float64(g[j])
		vn := c.alpha*float64(v[j]) + (1-c.alpha)*gr
		hn := c.beta*float64(h[j]) + (1-c.beta)*gr*gr
		vNew[j], hNew[j] = T(vn), T(hn)
		xNew[j] = T((1 - c.normPost) * (float64(xv) - c.rate*vn/(math.Sqrt(hn)+c.eps)))
	}
}

// compileMomentum: with beta_adjusted = beta when T > 0 and 1 otherwise,
// per element
//
//	G_regularized = norm_coefficient*X + G
//	V_new = alpha*V + beta_adjusted*G_regularized
//	X_new = X - R*V_new                                (mode "standard")
//	X_new = X - R*(G_regularized + alpha*V_new)        (mode "nesterov")
func compileMomentum(n *graph.Node) (kernel, error) {
	o, err := newOptimizer(n, "X", "G", "V")
	if err != nil {
		return nil, err
	}
	for _, name := range []string{"alpha", "beta", "norm_coefficient", "mode"} {
		if n.Attr(name) == nil {
			return nil, fmt.Errorf("attribute %s is required", name)
		}
	}
	alpha := float64(n.AttrFloat("alpha", 0))
	beta := float64(n.AttrFloat("beta", 0))
	norm := float64(n.AttrFloat("norm_coefficient", 0))
	var nesterov bool
	switch mode := n.AttrString("mode", ""); mode {
	case "standard":
	case "nesterov":
		nesterov = true
	default:
		return nil, fmt.Errorf("mode %q is not standard or nesterov", mode)
	}
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		rate, count, err := o.check(in)
		if err != nil {
			return nil, err
		}
		b := 1.0
		if count > 0 {
			b = beta
		}
		return o.update(e, in,
			func(s [][]float32) { momentum(s, rate, alpha, b, norm, nesterov) },
			func(s [][]float64) { momentum(s, rate, alpha, b, norm, nesterov) })
	}, nil
}

// momentum updates one tensor: s is X, G, V, X_new, V_new.
func momentum[T float32 | float64](s [][]T, r, alpha, beta, norm float64, nesterov bool) {
	x, g, v, xNew, vNew := s[0], s[1], s[2], s[3], s[4]
	for j, xv := range x {
		gr := norm*float64(xv) + float64(g[j])
		vn := alpha*float64(v[j]) + beta*gr
		vNew[j] = T(vn)
		step := vn
		if nesterov {
			step = gr + alpha*vn
		}
		xNew[j] = T(float64(xv) - r*step)
	}
}

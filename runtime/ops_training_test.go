package runtime

import (
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"onnxopt/graph"
	"onnxopt/internal/suite"
	"onnxopt/onnx"
)

// TestTrainingSuiteCases runs the suite's cases of the
// ai.onnx.preview.training domain (rtol 1e-3, atol 1e-7): the optimizers
// and Gradient.
func TestTrainingSuiteCases(t *testing.T) {
	checkSuiteCases(t, []string{
		"node/test_adagrad", "node/test_adam", "node/test_momentum", "node/test_nesterov_momentum",
		"simple/test_gradient_of",
	}, []suiteCase{
		{path: "node/test_adagrad"},
		{path: "node/test_adagrad_multiple"},
		{path: "node/test_adam"},
		{path: "node/test_adam_multiple", skip: "its model lacks the epsilon of its data; TestAdamMultipleSuiteEpsilon runs it"},
		{path: "node/test_momentum"},
		{path: "node/test_momentum_multiple"},
		{path: "node/test_nesterov_momentum"},
		{path: "simple/test_gradient_of_add"},
		{path: "simple/test_gradient_of_add_and_mul"},
	})
}

// test_adam_multiple's expected outputs were computed with epsilon 0.01,
// which its model's Adam node does not set, so the spec's default 1e-6
// applies (onnx/onnx#7749; onnx/onnx#7763 adds the attribute to the model
// and keeps the outputs). By the spec, X1_new is 0.75596 with epsilon 1e-6
// and 0.75914 with 0.01: the case as shipped fails by that difference, and
// passes with the attribute added.
func TestAdamMultipleSuiteEpsilon(t *testing.T) {
	dir := filepath.Join(suite.Dir(t), "node", "test_adam_multiple")
	res := RunCase(dir)
	if res.Status != StatusFail || !strings.Contains(res.Err, `output 0 "X1_new": got float[1], want float[1], max abs err 0.00317`) {
		t.Fatalf("as shipped: %s %q; want X1_new off by 0.00318", res.Status, res.Err)
	}
	m, err := graph.Load(filepath.Join(dir, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	adam := m.Graph.Nodes[0]
	if adam.OpType != "Adam" || adam.Attr("epsilon") != nil {
		t.Fatalf("node %s already sets epsilon: the suite has the fixed model, run it as a plain case", adam)
	}
	adam.SetAttr(floatAttr("epsilon", 0.01))
	if res := RunModelCase(m, dir); res.Status != StatusPass {
		t.Fatalf("with epsilon 0.01: %s: %s", res.Status, res.Err)
	}
}

func floatAttr(name string, v float32) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: proto.String(name), Type: onnx.AttributeProto_FLOAT.Enum(), F: proto.Float32(v)}
}

func stringAttr(name, v string) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: proto.String(name), Type: onnx.AttributeProto_STRING.Enum(), S: []byte(v)}
}

// trainingPlan compiles a graph of one training node op whose inputs are
// graph inputs and whose outputs are graph outputs ("" omits one).
func trainingPlan(op string, in, out []string, attrs ...*onnx.AttributeProto) (*Plan, error) {
	n := nodeProto(op, in, out, attrs...)
	n.Domain = proto.String("ai.onnx.preview.training")
	g := &onnx.GraphProto{Name: proto.String(op), Node: []*onnx.NodeProto{n}}
	for _, name := range in {
		if name != "" {
			g.Input = append(g.Input, &onnx.ValueInfoProto{Name: proto.String(name)})
		}
	}
	for _, name := range out {
		if name != "" {
			g.Output = append(g.Output, &onnx.ValueInfoProto{Name: proto.String(name)})
		}
	}
	return gradientModel(g)
}

var momentumAttrs = []*onnx.AttributeProto{
	floatAttr("alpha", 0.5), floatAttr("beta", 0.25), floatAttr("norm_coefficient", 0.5), stringAttr("mode", "standard"),
}

// The suite's cases all have T = 0. These run T > 0 on values whose
// results the spec's pseudo code gives exactly (worked out by hand in the
// comments), in float and double, twice each to catch state kept between
// runs.
func TestOptimizersLaterSteps(t *testing.T) {
	tests := []struct {
		name  string
		op    string
		attrs []*onnx.AttributeProto
		in    map[string]*Tensor
		want  map[string][]float64
	}{{
		// r = 0.5/(1 + 4*0.25) = 0.25; G_reg = 0.5*1 + 2.5 = 3;
		// H_new = 0 + 9 = 9; X_new = 1 - 0.25*3/3 = 0.75.
		name:  "adagrad",
		op:    "Adagrad",
		attrs: []*onnx.AttributeProto{floatAttr("decay_factor", 0.25), floatAttr("norm_coefficient", 0.5), floatAttr("epsilon", 0)},
		in: map[string]*Tensor{
			"R": trainingScalar(t, 0.5), "T": trainingCount(t, 4),
			"X1": trainingVector(t, onnx.TensorProto_FLOAT, 1), "G1": trainingVector(t, onnx.TensorProto_FLOAT, 2.5),
			"H1": trainingVector(t, onnx.TensorProto_FLOAT, 0),
		},
		want: map[string][]float64{"X1_new": {0.75}, "H1_new": {9}},
	}, {
		// R_adjusted = 0.75*sqrt(1 - 0.6²)/(1 - 0.5²) = 0.75*0.8/0.75 = 0.8;
		// G_reg = 1; V_new = 0.5*1 + 0.5*1 = 1; H_new = 0.6*1 + 0.4*1 = 1;
		// X_new = (1 - 0.5)*(2 - 0.8*1/1) = 0.6.
		name: "adam",
		op:   "Adam",
		attrs: []*onnx.AttributeProto{floatAttr("alpha", 0.5), floatAttr("beta", 0.6),
			floatAttr("norm_coefficient_post", 0.5), floatAttr("epsilon", 0)},
		in: map[string]*Tensor{
			"R": trainingScalar(t, 0.75), "T": trainingCount(t, 2),
			"X1": trainingVector(t, onnx.TensorProto_DOUBLE, 2), "G1": trainingVector(t, onnx.TensorProto_DOUBLE, 1),
			"V1": trainingVector(t, onnx.TensorProto_DOUBLE, 1), "H1": trainingVector(t, onnx.TensorProto_DOUBLE, 1),
		},
		want: map[string][]float64{"X1_new": {0.6}, "V1_new": {1}, "H1_new": {1}},
	}, {
		// G_reg = 0.5*2 + 1 = 2; V_new = 0.5*4 + 0.25*2 = 2.5;
		// X_new = 2 - 0.5*2.5 = 0.75.
		name:  "momentum",
		op:    "Momentum",
		attrs: momentumAttrs,
		in: map[string]*Tensor{
			"R": trainingScalar(t, 0.5), "T": trainingCount(t, 3),
			"X1": trainingVector(t, onnx.TensorProto_FLOAT, 2), "G1": trainingVector(t, onnx.TensorProto_FLOAT, 1),
			"V1": trainingVector(t, onnx.TensorProto_FLOAT, 4),
		},
		want: map[string][]float64{"X1_new": {0.75}, "V1_new": {2.5}},
	}, {
		// As momentum, then X_new = 2 - 0.5*(2 + 0.5*2.5) = 0.375.
		name: "nesterov",
		op:   "Momentum",
		attrs: []*onnx.AttributeProto{floatAttr("alpha", 0.5), floatAttr("beta", 0.25), floatAttr("norm_coefficient", 0.5),
			stringAttr("mode", "nesterov")},
		in: map[string]*Tensor{
			"R": trainingScalar(t, 0.5), "T": trainingCount(t, 3),
			"X1": trainingVector(t, onnx.TensorProto_DOUBLE, 2), "G1": trainingVector(t, onnx.TensorProto_DOUBLE, 1),
			"V1": trainingVector(t, onnx.TensorProto_DOUBLE, 4),
		},
		want: map[string][]float64{"X1_new": {0.375}, "V1_new": {2.5}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			roles := map[string][]string{"Adagrad": {"X1", "G1", "H1"}, "Adam": {"X1", "G1", "V1", "H1"}, "Momentum": {"X1", "G1", "V1"}}[tt.op]
			in := append([]string{"R", "T"}, roles...)
			var out []string
			for _, r := range roles[:1] {
				out = append(out, r+"_new")
			}
			for _, r := range roles[2:] {
				out = append(out, r+"_new")
			}
			p, err := trainingPlan(tt.op, in, out, tt.attrs...)
			if err != nil {
				t.Fatal(err)
			}
			for run := range 2 {
				got, err := p.Run(tt.in)
				if err != nil {
					t.Fatal(err)
				}
				for name, want := range tt.want {
					g := got[name]
					if g == nil || g.DType != tt.in["X1"].DType {
						t.Fatalf("run %d: %s is %v, want %s", run, name, g, dtypeName(tt.in["X1"].DType))
					}
					w := mustTensor(t, want, len(want))
					if g.DType == onnx.TensorProto_FLOAT {
						w = mustTensor(t, []float32{float32(want[0])}, 1)
					}
					if maxAbs, _, ok := Compare(g, w, ConformanceRTol, ConformanceATol); !ok {
						t.Errorf("run %d: %s = %v, want %v (max abs err %g)", run, name, g.Data, want, maxAbs)
					}
				}
			}
		})
	}
}

func trainingScalar(t *testing.T, v float32) *Tensor { return mustTensor(t, []float32{v}) }

func trainingCount(t *testing.T, v int64) *Tensor { return mustTensor(t, []int64{v}) }

func trainingVector(t *testing.T, dt onnx.TensorProto_DataType, v float64) *Tensor {
	if dt == onnx.TensorProto_DOUBLE {
		return mustTensor(t, []float64{v}, 1)
	}
	return mustTensor(t, []float32{float32(v)}, 1)
}

// Nodes whose inputs do not split into R, T and equal runs of X, G and the
// states, or with more outputs than those give, fail to compile.
func TestOptimizersRefuseBadLayouts(t *testing.T) {
	tests := []struct {
		name    string
		op      string
		in, out []string
		attrs   []*onnx.AttributeProto
		err     string
	}{
		{"adagrad without H", "Adagrad", []string{"R", "T", "X", "G"}, []string{"X_new"}, nil, "4 inputs: want R, T and then 3 runs"},
		{"adagrad with a partial group", "Adagrad", []string{"R", "T", "X1", "X2", "G1", "G2", "H1"}, []string{"X1_new"}, nil, "7 inputs"},
		{"adam with three runs", "Adam", []string{"R", "T", "X", "G", "V"}, []string{"X_new"}, nil, "5 inputs: want R, T and then 4 runs"},
		{"adam with six tensors", "Adam", []string{"R", "T", "X1", "X2", "G1", "G2", "V1", "V2"}, []string{"X1_new"}, nil, "8 inputs"},
		{"momentum with R and T only", "Momentum", []string{"R", "T"}, []string{"X_new"}, momentumAttrs, "2 inputs"},
		{"momentum with too many outputs", "Momentum", []string{"R", "T", "X", "G", "V"}, []string{"X_new", "V_new", "W_new"}, momentumAttrs,
			"3 outputs: 1 optimized tensors give at most 2"},
		{"omitted gradient", "Adagrad", []string{"R", "T", "X", "", "H"}, []string{"X_new"}, nil, "input 3 (G1) is omitted"},
		{"momentum without mode", "Momentum", []string{"R", "T", "X", "G", "V"}, []string{"X_new"}, momentumAttrs[:3], "attribute mode is required"},
		{"momentum in an unknown mode", "Momentum", []string{"R", "T", "X", "G", "V"}, []string{"X_new"},
			append(momentumAttrs[:3:3], stringAttr("mode", "heavy-ball")), `mode "heavy-ball" is not standard or nesterov`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := trainingPlan(tt.op, tt.in, tt.out, tt.attrs...)
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("got error %v, want one containing %q", err, tt.err)
			}
		})
	}
}

// Inputs of the wrong type or shape fail the run with an error naming the
// input.
func TestOptimizersRefuseBadInputs(t *testing.T) {
	p, err := trainingPlan("Adagrad", []string{"R", "T", "X1", "X2", "G1", "G2", "H1", "H2"}, []string{"X1_new", "X2_new", "H1_new", "H2_new"})
	if err != nil {
		t.Fatal(err)
	}
	good := func() map[string]*Tensor {
		return map[string]*Tensor{
			"R": trainingScalar(t, 0.1), "T": trainingCount(t, 0),
			"X1": mustTensor(t, []float32{1}, 1), "G1": mustTensor(t, []float32{-1}, 1), "H1": mustTensor(t, []float32{2}, 1),
			"X2": mustTensor(t, []float32{1, 2}, 2), "G2": mustTensor(t, []float32{-1, -3}, 2), "H2": mustTensor(t, []float32{4, 1}, 2),
		}
	}
	if _, err := p.Run(good()); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, input string
		value       *Tensor
		err         string
	}{
		{"R a vector", "R", mustTensor(t, []float32{0.1, 0.2}, 2), "R is float[2], want a float or double scalar"},
		{"R an integer", "R", mustTensor(t, []int64{1}), "R is int64[], want a float or double scalar"},
		{"T a float", "T", mustTensor(t, []float32{0}), "T is float[], want an int64 scalar"},
		{"X an integer", "X2", mustTensor(t, []int32{1, 2}, 2), "X2 is int32[2], want float or double"},
		{"G of another shape", "G2", mustTensor(t, []float32{-1, -3, 0}, 3), "G2 is float[3], want float[2] like X2"},
		{"H of another type", "H1", mustTensor(t, []float64{2}, 1), "H1 is double[1], want float[1] like X1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := good()
			in[tt.input] = tt.value
			_, err := p.Run(in)
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("got error %v, want one containing %q", err, tt.err)
			}
		})
	}
}

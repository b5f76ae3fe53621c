// Package testmodels builds models for tests and benchmarks: models whose
// size is set by parameters, with random weights from a seeded generator,
// so that a test can make a model of any size without shipping it.
package testmodels

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"

	"google.golang.org/protobuf/proto"

	"onnxopt/onnx"
)

// GPTConfig sizes a GPT-shaped decoder.
type GPTConfig struct {
	Layers int    // transformer blocks
	DModel int    // width of the residual stream; a multiple of 64 gets DModel/64 heads, others one head
	Vocab  int    // rows of the token embedding and columns of the output projection
	Seed   uint64 // seed of the weights
}

// GPT400MB is a GPT-2-small-shaped model of 97.6 million parameters, 390
// MB of float32 weights: the size of the I/O benchmarks.
func GPT400MB() GPTConfig { return GPTConfig{Layers: 12, DModel: 768, Vocab: 8192, Seed: 1} }

// maxWidth bounds DModel and Vocab, so that sizes computed from them cannot
// overflow.
const maxWidth = 1 << 20

// Params is the number of weights of GPT(c), not counting the few
// constants of the attention.
func (c GPTConfig) Params() int64 {
	d, v := int64(c.DModel), int64(c.Vocab)
	perLayer := 4*d + // two LayerNormalizations
		4*(d*d+d) + // q, k, v, o projections with biases
		d*4*d + 4*d + 4*d*d + d // MLP up and down with biases
	return v*d + int64(c.Layers)*perLayer + 2*d + d*v
}

// GPT builds a decoder-only transformer at opset 17: input_ids (int64,
// [batch, seq]) go through a token embedding (Gather), then Layers blocks of
// pre-norm attention (LayerNormalization; MatMul+Add for q, k, v; per-head
// scores scaled by 1/sqrt(head size), Softmax, MatMul with v; output
// projection; residual Add) and a pre-norm MLP (MatMul+Add up to 4×DModel,
// Relu, MatMul+Add down, residual Add), a final LayerNormalization and a
// projection to Vocab logits (float32, [batch, seq, vocab]). Weights are
// uniform with standard deviation 0.02, LayerNormalization scales 1 and
// all biases 0. The attention has no causal mask: the model has the shape
// and weight layout of a GPT, which is what the tools that use it measure.
func GPT(c GPTConfig) (*onnx.ModelProto, error) {
	return buildGPT(c, func(name string, dims []int64, fill func([]float32)) (*onnx.TensorProto, error) {
		n, err := onnx.NumElements(dims)
		if err != nil {
			return nil, err
		}
		v := make([]float32, n)
		fill(v)
		return onnx.NewTensor(name, onnx.TensorProto_FLOAT, dims, v)
	})
}

// A floatSink makes the float32 initializer name of shape dims. fill
// writes the elements, in order, into each slice it is given: GPT passes
// one slice for the whole tensor, WriteGPTExternal a chunk at a time, and
// both get the same elements.
type floatSink func(name string, dims []int64, fill func([]float32)) (*onnx.TensorProto, error)

// buildGPT builds the model GPT describes, with its weights made by sink.
func buildGPT(c GPTConfig, sink floatSink) (*onnx.ModelProto, error) {
	if c.Layers < 0 || c.DModel <= 0 || c.Vocab <= 0 || c.DModel > maxWidth || c.Vocab > maxWidth || c.Layers > maxWidth {
		return nil, fmt.Errorf("GPT config %+v: sizes out of range", c)
	}
	if largest := 4 * int64(c.DModel) * max(int64(c.Vocab), 4*int64(c.DModel)); largest > onnx.MaxTensorBytes {
		return nil, fmt.Errorf("GPT config %+v: a weight of %d bytes is over the tensor limit", c, largest)
	}
	heads := 1
	if c.DModel%64 == 0 {
		heads = c.DModel / 64
	}
	b := &gptBuilder{rng: rand.New(rand.NewPCG(c.Seed, 0x6770742d6f6e6e78)), graph: &onnx.GraphProto{Name: proto.String("gpt")}, sink: sink}
	d, dh := int64(c.DModel), int64(c.DModel/heads)

	b.graph.Input = []*onnx.ValueInfoProto{valueInfo("input_ids", onnx.TensorProto_INT64, "batch", "seq")}
	b.graph.Output = []*onnx.ValueInfoProto{valueInfo("logits", onnx.TensorProto_FLOAT, "batch", "seq", int64(c.Vocab))}

	splitHeads := b.constInt64("split_heads_shape", 0, 0, int64(heads), dh)
	mergeHeads := b.constInt64("merge_heads_shape", 0, 0, d)
	scale := b.constFloat("attention_scale", float32(1/math.Sqrt(float64(dh))))

	x := b.node("Gather", "embed", []string{b.weight("wte", int64(c.Vocab), d), "input_ids"}, nil)
	for l := range c.Layers {
		p := fmt.Sprintf("h%d.", l)
		ln1 := b.layerNorm(p+"ln_1", x, d)
		q := b.linear(p+"attn.q", ln1, d, d)
		k := b.linear(p+"attn.k", ln1, d, d)
		v := b.linear(p+"attn.v", ln1, d, d)
		qh := b.node("Transpose", p+"attn.q_heads", []string{b.node("Reshape", p+"attn.q_split", []string{q, splitHeads}, nil)}, perm(0, 2, 1, 3))
		kh := b.node("Transpose", p+"attn.k_heads", []string{b.node("Reshape", p+"attn.k_split", []string{k, splitHeads}, nil)}, perm(0, 2, 3, 1))
		vh := b.node("Transpose", p+"attn.v_heads", []string{b.node("Reshape", p+"attn.v_split", []string{v, splitHeads}, nil)}, perm(0, 2, 1, 3))
		scores := b.node("Mul", p+"attn.scale", []string{b.node("MatMul", p+"attn.scores", []string{qh, kh}, nil), scale}, nil)
		probs := b.node("Softmax", p+"attn.softmax", []string{scores}, []*onnx.AttributeProto{intAttr("axis", -1)})
		ctx := b.node("MatMul", p+"attn.context", []string{probs, vh}, nil)
		merged := b.node("Reshape", p+"attn.merge", []string{b.node("Transpose", p+"attn.unheads", []string{ctx}, perm(0, 2, 1, 3)), mergeHeads}, nil)
		x = b.node("Add", p+"attn.residual", []string{x, b.linear(p+"attn.o", merged, d, d)}, nil)

		ln2 := b.layerNorm(p+"ln_2", x, d)
		up := b.node("Relu", p+"mlp.relu", []string{b.linear(p+"mlp.up", ln2, d, 4*d)}, nil)
		x = b.node("Add", p+"mlp.residual", []string{x, b.linear(p+"mlp.down", up, 4*d, d)}, nil)
	}
	lnf := b.layerNorm("ln_f", x, d)
	b.nodeOut("MatMul", "lm_head", "logits", []string{lnf, b.weight("lm_head.weight", d, int64(c.Vocab))}, nil)
	if b.err != nil {
		return nil, b.err
	}
	return &onnx.ModelProto{
		IrVersion:    proto.Int64(8),
		ProducerName: proto.String("onnxopt/internal/testmodels"),
		OpsetImport:  []*onnx.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(17)}},
		Graph:        b.graph,
	}, nil
}

// WriteGPT builds GPT(c) and writes it to dir/model.onnx, returning the
// path and the file's size.
func WriteGPT(dir string, c GPTConfig) (string, int64, error) {
	m, err := GPT(c)
	if err != nil {
		return "", 0, err
	}
	path := filepath.Join(dir, "model.onnx")
	if err := onnx.WriteModel(path, m, onnx.WriteOptions{}); err != nil {
		return "", 0, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", 0, err
	}
	return path, fi.Size(), nil
}

type gptBuilder struct {
	rng   *rand.Rand
	graph *onnx.GraphProto
	sink  floatSink
	err   error
}

func (b *gptBuilder) addInitializer(t *onnx.TensorProto, err error) string {
	if err != nil {
		b.err = errors.Join(b.err, err)
		return ""
	}
	b.graph.Initializer = append(b.graph.Initializer, t)
	return t.GetName()
}

// weight adds a random [rows, cols] initializer.
func (b *gptBuilder) weight(name string, rows, cols int64) string {
	// Uniform on [-a, a] has standard deviation a/sqrt(3).
	a := float32(0.02 * math.Sqrt(3))
	return b.addInitializer(b.sink(name, []int64{rows, cols}, func(v []float32) {
		for i := range v {
			v[i] = (2*b.rng.Float32() - 1) * a
		}
	}))
}

func (b *gptBuilder) filled(name string, n int64, value float32) string {
	return b.addInitializer(b.sink(name, []int64{n}, func(v []float32) {
		for i := range v {
			v[i] = value
		}
	}))
}

func (b *gptBuilder) constInt64(name string, v ...int64) string {
	return b.addInitializer(onnx.NewTensor(name, onnx.TensorProto_INT64, []int64{int64(len(v))}, v))
}

func (b *gptBuilder) constFloat(name string, v float32) string {
	return b.addInitializer(onnx.NewTensor(name, onnx.TensorProto_FLOAT, nil, []float32{v}))
}

// node appends a node whose single output is named after it.
func (b *gptBuilder) node(op, name string, inputs []string, attrs []*onnx.AttributeProto) string {
	return b.nodeOut(op, name, name, inputs, attrs)
}

func (b *gptBuilder) nodeOut(op, name, output string, inputs []string, attrs []*onnx.AttributeProto) string {
	b.graph.Node = append(b.graph.Node, &onnx.NodeProto{
		Name: proto.String(name), OpType: proto.String(op), Input: inputs, Output: []string{output}, Attribute: attrs,
	})
	return output
}

func (b *gptBuilder) layerNorm(name, x string, d int64) string {
	return b.node("LayerNormalization", name, []string{x, b.filled(name+".weight", d, 1), b.filled(name+".bias", d, 0)},
		[]*onnx.AttributeProto{intAttr("axis", -1), {Name: proto.String("epsilon"), Type: onnx.AttributeProto_FLOAT.Enum(), F: proto.Float32(1e-5)}})
}

// linear is x·W + b with W of shape [in, out].
func (b *gptBuilder) linear(name, x string, in, out int64) string {
	mm := b.node("MatMul", name+".matmul", []string{x, b.weight(name+".weight", in, out)}, nil)
	return b.node("Add", name, []string{mm, b.filled(name+".bias", out, 0)}, nil)
}

func intAttr(name string, v int64) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: proto.String(name), Type: onnx.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

func perm(p ...int64) []*onnx.AttributeProto {
	return []*onnx.AttributeProto{{Name: proto.String("perm"), Type: onnx.AttributeProto_INTS.Enum(), Ints: p}}
}

// valueInfo declares a tensor whose dimensions are names (symbolic) or
// int64 sizes.
func valueInfo(name string, elem onnx.TensorProto_DataType, dims ...any) *onnx.ValueInfoProto {
	shape := &onnx.TensorShapeProto{}
	for _, d := range dims {
		dim := &onnx.TensorShapeProto_Dimension{}
		switch d := d.(type) {
		case string:
			dim.Value = &onnx.TensorShapeProto_Dimension_DimParam{DimParam: d}
		case int64:
			dim.Value = &onnx.TensorShapeProto_Dimension_DimValue{DimValue: d}
		}
		shape.Dim = append(shape.Dim, dim)
	}
	return &onnx.ValueInfoProto{
		Name: proto.String(name),
		Type: &onnx.TypeProto{Value: &onnx.TypeProto_TensorType{TensorType: &onnx.TypeProto_Tensor{ElemType: proto.Int32(int32(elem)), Shape: shape}}},
	}
}

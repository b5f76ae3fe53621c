package passes

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"

	"onnxopt/graph"
	"onnxopt/onnx"
)

// commonSubexpressions merges nodes that compute the same thing, and
// initializers that hold the same data.
type commonSubexpressions struct{}

func (*commonSubexpressions) Flags(*pflag.FlagSet) {}

func (*commonSubexpressions) Run(m *graph.Model, env *Env) (Result, error) {
	var res Result
	var err error
	m.Graph.Walk(func(g *graph.Graph) bool {
		res.Changes += mergeInitializers(g, env)
		var n int
		n, err = mergeNodes(g, env)
		res.Changes += n
		return err == nil
	})
	return res, err
}

// mergeInitializers makes the readers of each constant initializer read
// the first one holding the same type, shape and data, and drops the
// others.
func mergeInitializers(g *graph.Graph, env *Env) int {
	first := map[[sha256.Size]byte][]*graph.Value{}
	merged := 0
	for _, v := range slices.Clone(g.Initializers) {
		if !v.IsConstant() || v.Init.GetDataLocation() == onnx.TensorProto_EXTERNAL {
			continue
		}
		data, ok := canonicalData(v.Init)
		if !ok {
			continue
		}
		key := tensorKey(v.Init, data)
		keep := slices.IndexFunc(first[key], func(w *graph.Value) bool {
			d, _ := canonicalData(w.Init)
			return w.Init.GetDataType() == v.Init.GetDataType() && slices.Equal(w.Init.GetDims(), v.Init.GetDims()) && bytes.Equal(d, data)
		})
		if keep < 0 || g.IsOutput(v) {
			first[key] = append(first[key], v)
			continue
		}
		w := first[key][keep]
		v.ReplaceAllUses(w)
		g.RemoveInitializer(v)
		env.rename(v.Name, w.Name)
		merged++
	}
	g.Prune()
	return merged
}

// canonicalData is t's data in one layout whichever field holds it: raw
// bytes, or for strings each one after its length.
func canonicalData(t *onnx.TensorProto) ([]byte, bool) {
	if t.GetDataType() != int32(onnx.TensorProto_STRING) {
		raw, err := onnx.RawData(t)
		return raw, err == nil
	}
	var b []byte
	for _, s := range t.GetStringData() {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b, true
}

func tensorKey(t *onnx.TensorProto, data []byte) [sha256.Size]byte {
	h := sha256.New()
	fmt.Fprintf(h, "%d %v ", t.GetDataType(), t.GetDims())
	h.Write(data)
	var key [sha256.Size]byte
	h.Sum(key[:0])
	return key
}

// mergeNodes replaces the outputs of each node that repeats an earlier
// one's computation (op, inputs and attributes) with the earlier one's.
// Nodes are visited in order, so that chains of repeats merge in one
// sweep.
func mergeNodes(g *graph.Graph, env *Env) (int, error) {
	if err := g.Sort(); err != nil {
		return 0, err
	}
	ids := map[*graph.Value]int{}
	id := func(v *graph.Value) int {
		if v == nil {
			return -1
		}
		if _, ok := ids[v]; !ok {
			ids[v] = len(ids)
		}
		return ids[v]
	}
	seen := map[string][]*graph.Node{}
	merged := 0
	for _, n := range slices.Clone(g.Nodes) {
		if !isStandard(n) && n.Domain != "ai.onnx.ml" || isRandom(n) || hasSubgraph(n) {
			continue
		}
		var key strings.Builder
		fmt.Fprintf(&key, "%s|%s|%s|", n.Domain, n.OpType, n.Overload)
		for _, v := range n.Inputs {
			fmt.Fprintf(&key, "%d,", id(v))
		}
		key.WriteByte('|')
		for _, v := range n.Outputs {
			if v == nil {
				key.WriteByte('-')
			} else {
				key.WriteByte('o')
			}
		}
		k := key.String()
		i := slices.IndexFunc(seen[k], func(m *graph.Node) bool { return sameAttrs(m, n) })
		if i < 0 {
			seen[k] = append(seen[k], n)
			continue
		}
		done, err := mergeNode(g, seen[k][i], n, env)
		if err != nil {
			return merged, err
		}
		if done {
			merged++
		} else {
			seen[k] = append(seen[k], n)
		}
	}
	g.Prune()
	return merged, nil
}

// sameAttrs reports whether a and b have equal attributes, in any order.
func sameAttrs(a, b *graph.Node) bool {
	if len(a.Attrs) != len(b.Attrs) {
		return false
	}
	for _, x := range a.Attrs {
		y := b.Attr(x.Name())
		if y == nil || !proto.Equal(x.Proto, y.Proto) {
			return false
		}
	}
	return true
}

// mergeNode makes the readers of drop's outputs read keep's, and removes
// drop. An output of drop that is a graph output keeps its name: keep's
// output takes it. When that cannot be (both are graph outputs), nothing
// changes and mergeNode reports false.
func mergeNode(g *graph.Graph, keep, drop *graph.Node, env *Env) (bool, error) {
	for i, v := range drop.Outputs {
		if v != nil && g.IsOutput(v) && g.IsOutput(keep.Outputs[i]) {
			return false, nil
		}
	}
	g.RemoveNode(drop)
	var named []int // outputs of keep to take the names of drop's
	for i, v := range drop.Outputs {
		if v == nil {
			continue
		}
		w := keep.Outputs[i]
		v.ReplaceAllUses(w)
		g.ValueInfo = slices.DeleteFunc(g.ValueInfo, func(x *graph.Value) bool { return x == v })
		if g.IsOutput(v) {
			g.ReplaceOutput(v, w)
			if w.Type == nil {
				w.Type = v.Type
			}
			named = append(named, i)
		} else {
			env.rename(v.Name, w.Name)
		}
	}
	// Nothing refers to drop's outputs any more, so Prune frees their
	// names.
	g.Prune()
	for _, i := range named {
		w, name := keep.Outputs[i], drop.Outputs[i].Name
		old := w.Name
		if err := w.Rename(name); err != nil {
			return false, fmt.Errorf("node %s: %w", drop, err)
		}
		env.rename(old, name)
	}
	return true, nil
}

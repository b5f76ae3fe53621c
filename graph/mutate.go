package graph

import (
	"errors"
	"fmt"
	"slices"

	"onnxopt/onnx"
)

// NewNode creates a node in g with the given inputs and outputs and appends
// it to g.Nodes. Outputs must not have producers yet. The node's name is
// made unique from name.
func (g *Graph) NewNode(opType, name string, inputs []*Value, outputs []*Value, attrs ...*onnx.AttributeProto) (*Node, error) {
	n := &Node{OpType: opType, Name: g.UniqueName(name), Graph: g}
	for _, a := range attrs {
		n.Attrs = append(n.Attrs, &Attr{Proto: a})
	}
	if err := n.setOutputs(outputs); err != nil {
		return nil, err
	}
	n.SetInputs(inputs)
	g.Nodes = append(g.Nodes, n)
	return n, nil
}

func (n *Node) setOutputs(outputs []*Value) error {
	for _, v := range outputs {
		if v != nil && v.Producer != nil {
			return fmt.Errorf("value %q is already produced by node %s", v.Name, v.Producer)
		}
	}
	for _, v := range n.Outputs {
		if v != nil {
			v.Producer = nil
		}
	}
	n.Outputs = slices.Clone(outputs)
	for _, v := range outputs {
		if v != nil {
			v.Producer = n
		}
	}
	return nil
}

// NewValue creates a value in g with a unique name derived from prefix.
func (g *Graph) NewValue(prefix string) *Value {
	return g.Value(g.UniqueName(prefix))
}

// SetInputs replaces all of n's inputs, keeping use lists right.
func (n *Node) SetInputs(inputs []*Value) {
	for i, v := range n.Inputs {
		if v != nil {
			v.removeUse(n, i)
		}
	}
	n.Inputs = slices.Clone(inputs)
	for i, v := range n.Inputs {
		if v != nil {
			v.Uses = append(v.Uses, Use{n, i})
		}
	}
}

// SetInput replaces input i of n (which must exist) with v, which may be nil
// for an omitted optional input.
func (n *Node) SetInput(i int, v *Value) {
	if old := n.Inputs[i]; old != nil {
		old.removeUse(n, i)
	}
	n.Inputs[i] = v
	if v != nil {
		v.Uses = append(v.Uses, Use{n, i})
	}
}

// AddInput appends v to n's inputs.
func (n *Node) AddInput(v *Value) {
	n.Inputs = append(n.Inputs, nil)
	n.SetInput(len(n.Inputs)-1, v)
}

func (v *Value) removeUse(n *Node, i int) {
	for k, u := range v.Uses {
		if u.Node == n && u.Index == i {
			v.Uses = slices.Delete(v.Uses, k, k+1)
			return
		}
	}
}

// ReplaceAllUses makes every node that reads old read new instead, in old's
// scope and every subgraph under it. Graph outputs are not uses: a pass that
// removes a value listed as an output must rename or replace the output
// itself.
func (old *Value) ReplaceAllUses(new *Value) {
	for _, u := range slices.Clone(old.Uses) {
		u.Node.SetInput(u.Index, new)
	}
}

// ReplaceOutput replaces old with new in g's output list, keeping its
// position.
func (g *Graph) ReplaceOutput(old, new *Value) {
	for i, v := range g.Outputs {
		if v == old {
			g.Outputs[i] = new
		}
	}
}

// RemoveNode deletes n from its graph. Its outputs lose their producer and
// its inputs lose the uses. Values are left in the scope; Prune drops the
// ones nothing refers to any more.
func (g *Graph) RemoveNode(n *Node) {
	n.SetInputs(nil)
	for _, v := range n.Outputs {
		if v != nil && v.Producer == n {
			v.Producer = nil
		}
	}
	g.Nodes = slices.DeleteFunc(g.Nodes, func(m *Node) bool { return m == n })
}

// InsertBefore moves n, which must belong to g, to just before at in g.Nodes.
func (g *Graph) InsertBefore(at, n *Node) {
	g.Nodes = slices.DeleteFunc(g.Nodes, func(m *Node) bool { return m == n })
	i := slices.Index(g.Nodes, at)
	if i < 0 {
		i = len(g.Nodes)
	}
	g.Nodes = slices.Insert(g.Nodes, i, n)
}

// InsertAfter moves n, which must belong to g, to just after at in g.Nodes.
func (g *Graph) InsertAfter(at, n *Node) {
	g.Nodes = slices.DeleteFunc(g.Nodes, func(m *Node) bool { return m == n })
	i := slices.Index(g.Nodes, at)
	if i < 0 {
		i = len(g.Nodes) - 1
	}
	g.Nodes = slices.Insert(g.Nodes, i+1, n)
}

// AddInitializer adds a constant tensor as a new value whose name is made
// unique from t's name. The tensor's name is set to the value's name.
func (g *Graph) AddInitializer(t *onnx.TensorProto) *Value {
	v := g.NewValue(t.GetName())
	name := v.Name
	t.Name = &name
	v.Init = t
	g.Initializers = append(g.Initializers, v)
	return v
}

// SetInit replaces the data of initializer v, keeping its name.
func (v *Value) SetInit(t *onnx.TensorProto) {
	name := v.Name
	t.Name = &name
	v.Init = t
	if v.Type != nil {
		v.Type = tensorTypeOf(t)
	}
}

// RemoveInitializer drops v's constant data and its place in the
// initializer list.
func (g *Graph) RemoveInitializer(v *Value) {
	v.Init = nil
	g.Initializers = slices.DeleteFunc(g.Initializers, func(w *Value) bool { return w == v })
}

// Rename gives v a new name, which must be free in its scope.
func (v *Value) Rename(name string) error {
	if name == v.Name {
		return nil
	}
	g := v.Graph
	if _, ok := g.values[name]; ok {
		return fmt.Errorf("rename %q: name %q is already taken", v.Name, name)
	}
	delete(g.values, v.Name)
	v.Name = name
	g.values[name] = v
	return nil
}

// Prune removes from g's scope the values that nothing produces, reads,
// lists or initializes.
func (g *Graph) Prune() {
	keep := map[*Value]bool{}
	for _, list := range [][]*Value{g.Inputs, g.Outputs, g.Initializers, g.Sparse, g.ValueInfo} {
		for _, v := range list {
			keep[v] = true
		}
	}
	for name, v := range g.values {
		if v.Producer == nil && len(v.Uses) == 0 && !keep[v] {
			delete(g.values, name)
		}
	}
}

// ErrCycle is returned (wrapped) when a graph's nodes form a cycle.
var ErrCycle = errors.New("graph has a cycle")

// Sort orders g.Nodes topologically, keeping file order among nodes that
// are ready at the same time. Subgraphs are sorted too. A node that reads
// a value computed in g from inside one of its subgraphs depends on that
// value's producer.
func (g *Graph) Sort() error {
	order, err := g.topoOrder()
	if err != nil {
		return err
	}
	g.Nodes = order
	for _, n := range g.Nodes {
		for _, s := range n.subgraphs() {
			if err := s.Sort(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (n *Node) subgraphs() []*Graph {
	var gs []*Graph
	for _, a := range n.Attrs {
		if a.Graph != nil {
			gs = append(gs, a.Graph)
		}
		gs = append(gs, a.Graphs...)
	}
	return gs
}

// deps returns the nodes of g that n (a node of g) must follow.
func (g *Graph) deps(n *Node) []*Node {
	var ds []*Node
	add := func(v *Value) {
		if v != nil && v.Producer != nil && v.Producer.Graph == g {
			ds = append(ds, v.Producer)
		}
	}
	for _, v := range n.Inputs {
		add(v)
	}
	for _, s := range n.subgraphs() {
		s.Walk(func(h *Graph) bool {
			for _, m := range h.Nodes {
				for _, v := range m.Inputs {
					if v != nil && v.Graph == g {
						add(v)
					}
				}
			}
			for _, v := range h.Outputs {
				if v != nil && v.Graph == g {
					add(v)
				}
			}
			return true
		})
	}
	return ds
}

func (g *Graph) topoOrder() ([]*Node, error) {
	index := make(map[*Node]int, len(g.Nodes))
	for i, n := range g.Nodes {
		index[n] = i
	}
	pending := make([]int, len(g.Nodes))
	users := make([][]int, len(g.Nodes))
	for i, n := range g.Nodes {
		for _, d := range g.deps(n) {
			j, ok := index[d]
			if !ok {
				return nil, fmt.Errorf("node %s reads a value of node %s, which is not in the graph", n, d)
			}
			pending[i]++
			users[j] = append(users[j], i)
		}
	}
	// A min-heap on file position keeps the order stable; a sorted ready
	// list is simpler and fast enough for graphs of this size.
	var ready []int
	for i := range g.Nodes {
		if pending[i] == 0 {
			ready = append(ready, i)
		}
	}
	order := make([]*Node, 0, len(g.Nodes))
	for len(ready) > 0 {
		i := ready[0]
		ready = ready[1:]
		order = append(order, g.Nodes[i])
		for _, u := range users[i] {
			pending[u]--
			if pending[u] == 0 {
				k, _ := slices.BinarySearch(ready, u)
				ready = slices.Insert(ready, k, u)
			}
		}
	}
	if len(order) != len(g.Nodes) {
		for i, n := range g.Nodes {
			if pending[i] > 0 {
				return nil, fmt.Errorf("%w through node %s", ErrCycle, n)
			}
		}
	}
	return order, nil
}

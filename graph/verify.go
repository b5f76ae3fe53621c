package graph

import (
	"errors"
	"fmt"
)

// maxProblems bounds how many problems Verify reports at once; past the
// first few, a broken graph is better fixed than listed.
const maxProblems = 10

// Verify checks the model's invariants and returns every broken one it
// finds (up to a limit), joined:
//
//   - every value read by a node or listed as a graph output is defined: a
//     graph input, an initializer, or a node output, in its graph or an
//     enclosing one;
//   - no value is both produced by a node and a graph input or initializer;
//   - graph inputs and non-empty node names are unique;
//   - the nodes are in topological order and form no cycle;
//   - every domain used by a node has an opset import;
//   - the IR's own links (producers, use lists, owning graphs) agree.
func (m *Model) Verify() error {
	v := &verifier{model: m}
	if m.Graph == nil {
		return errors.New("model has no graph")
	}
	v.graph(m.Graph)
	return errors.Join(v.problems...)
}

type verifier struct {
	model    *Model
	problems []error
}

func (v *verifier) add(format string, args ...any) {
	if len(v.problems) < maxProblems {
		v.problems = append(v.problems, fmt.Errorf(format, args...))
	}
}

func (v *verifier) graph(g *Graph) {
	where := "graph"
	if g.Owner != nil {
		where = fmt.Sprintf("subgraph of node %s", g.Owner)
	}

	inputs := map[string]bool{}
	for _, in := range g.Inputs {
		if inputs[in.Name] {
			v.add("%s: input %q is listed twice", where, in.Name)
		}
		inputs[in.Name] = true
		if in.Producer != nil {
			v.add("%s: input %q is also produced by node %s", where, in.Name, in.Producer)
		}
	}
	for _, init := range g.Initializers {
		if init.Init == nil {
			v.add("%s: initializer %q has no data", where, init.Name)
		}
		if init.Producer != nil {
			v.add("%s: initializer %q is also produced by node %s", where, init.Name, init.Producer)
		}
	}

	names := map[string]*Node{}
	done := map[*Value]bool{}
	for _, n := range g.Nodes {
		if n.Graph != g {
			v.add("%s: node %s is listed in a graph it does not belong to", where, n)
		}
		if n.Name != "" {
			if other, ok := names[n.Name]; ok {
				v.add("%s: node name %q is used by node %s and node %s", where, n.Name, other, n)
			}
			names[n.Name] = n
		}
		if _, ok := v.model.Opset(n.Domain); !ok {
			v.add("%s: node %s uses domain %q, which the model does not import", where, n, n.Domain)
		}
		for i, in := range n.Inputs {
			if in == nil {
				continue
			}
			v.checkUse(where, in, n, i)
			switch {
			case !v.defined(g, in):
				v.add("%s: input %q of node %s is never produced", where, in.Name, n)
			case in.Producer != nil && in.Producer.Graph == g && !done[in]:
				v.add("%s: node %s reads %q before node %s produces it (nodes out of order or in a cycle)", where, n, in.Name, in.Producer)
			}
		}
		for _, out := range n.Outputs {
			if out == nil {
				continue
			}
			if out.Producer != n {
				v.add("%s: output %q of node %s names another producer", where, out.Name, n)
			}
			if out.Graph != g {
				v.add("%s: output %q of node %s is not in the node's graph scope", where, out.Name, n)
			}
			done[out] = true
		}
		for _, s := range n.subgraphs() {
			if s.Parent != g || s.Owner != n {
				v.add("%s: a subgraph of node %s does not link back to it", where, n)
			}
			v.graph(s)
		}
	}
	for _, out := range g.Outputs {
		if !v.defined(g, out) {
			v.add("%s: output %q is never produced", where, out.Name)
		}
	}
	if _, err := g.topoOrder(); err != nil {
		v.add("%s: %v", where, err)
	}
}

// defined reports whether x is an input, initializer or node output in g's
// scope or an enclosing one.
func (v *verifier) defined(g *Graph, x *Value) bool {
	if g.Lookup(x.Name) != x {
		return false
	}
	if x.Producer != nil || x.Init != nil || x.SparseInit != nil {
		return true
	}
	return x.Graph.IsInput(x)
}

func (v *verifier) checkUse(where string, x *Value, n *Node, i int) {
	for _, u := range x.Uses {
		if u.Node == n && u.Index == i {
			return
		}
	}
	v.add("%s: use list of %q lacks input %d of node %s", where, x.Name, i, n)
}

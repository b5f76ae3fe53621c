package onnx

import "fmt"

// site is where a tensor sits in a model, for error messages. Sites form a
// chain up to the model and are formatted only when an error names one, so
// that walking deeply nested subgraphs costs no string building.
type site struct {
	parent *site
	format string
	args   []any
}

func (s *site) String() string {
	if s == nil {
		return ""
	}
	text := fmt.Sprintf(s.format, s.args...)
	if s.parent == nil {
		return text
	}
	return s.parent.String() + " " + text
}

func (s *site) child(format string, args ...any) *site {
	return &site{parent: s, format: format, args: args}
}

// visitTensor is called for each tensor of a model with where it is.
type visitTensor func(t *TensorProto, where *site) error

// walkTensors calls visit for every tensor of m: the initializers, sparse
// initializers and tensor attributes of the main graph, of every subgraph,
// of the training graphs and of the model's functions. These are all the
// places the schema allows a TensorProto in a model.
func walkTensors(m *ModelProto, visit visitTensor) error {
	if m.Graph != nil {
		if err := walkGraph(m.Graph, (*site)(nil).child("graph %q", m.Graph.GetName()), visit); err != nil {
			return err
		}
	}
	for i, ti := range m.TrainingInfo {
		if ti == nil {
			continue
		}
		for _, g := range []*GraphProto{ti.Initialization, ti.Algorithm} {
			if g != nil {
				if err := walkGraph(g, (*site)(nil).child("training_info[%d] graph %q", i, g.GetName()), visit); err != nil {
					return err
				}
			}
		}
	}
	for _, f := range m.Functions {
		if f != nil {
			if err := walkNodes(f.Node, (*site)(nil).child("function %q", f.GetName()), visit); err != nil {
				return err
			}
		}
	}
	return nil
}

func walkGraph(g *GraphProto, where *site, visit visitTensor) error {
	for _, t := range g.Initializer {
		if t != nil {
			if err := visit(t, where.child("initializer")); err != nil {
				return err
			}
		}
	}
	for _, s := range g.SparseInitializer {
		if err := walkSparse(s, where.child("sparse initializer"), visit); err != nil {
			return err
		}
	}
	return walkNodes(g.Node, where, visit)
}

func walkSparse(s *SparseTensorProto, where *site, visit visitTensor) error {
	if s == nil {
		return nil
	}
	if s.Values != nil {
		if err := visit(s.Values, where.child("values")); err != nil {
			return err
		}
	}
	if s.Indices != nil {
		if err := visit(s.Indices, where.child("indices")); err != nil {
			return err
		}
	}
	return nil
}

func walkNodes(nodes []*NodeProto, where *site, visit visitTensor) error {
	for _, n := range nodes {
		if n == nil {
			continue
		}
		for _, a := range n.Attribute {
			if a == nil {
				continue
			}
			aw := where.child("node %q (%s) attribute %q", n.GetName(), n.GetOpType(), a.GetName())
			if a.T != nil {
				if err := visit(a.T, aw); err != nil {
					return err
				}
			}
			for _, t := range a.Tensors {
				if t != nil {
					if err := visit(t, aw); err != nil {
						return err
					}
				}
			}
			if err := walkSparse(a.SparseTensor, aw, visit); err != nil {
				return err
			}
			for _, s := range a.SparseTensors {
				if err := walkSparse(s, aw, visit); err != nil {
					return err
				}
			}
			if a.G != nil {
				if err := walkGraph(a.G, aw.child("graph %q", a.G.GetName()), visit); err != nil {
					return err
				}
			}
			for _, g := range a.Graphs {
				if g != nil {
					if err := walkGraph(g, aw.child("graph %q", g.GetName()), visit); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

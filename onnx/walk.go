package onnx

import "fmt"

// visitTensor is called for each tensor of a model with a description of
// where it is, for error messages.
type visitTensor func(t *TensorProto, where string) error

// walkTensors calls visit for every tensor of m: the initializers, sparse
// initializers and tensor attributes of the main graph, of every subgraph,
// of the training graphs and of the model's functions. These are all the
// places the schema allows a TensorProto in a model.
func walkTensors(m *ModelProto, visit visitTensor) error {
	if m.Graph != nil {
		if err := walkGraph(m.Graph, graphWhere("", m.Graph), visit); err != nil {
			return err
		}
	}
	for i, ti := range m.TrainingInfo {
		if ti == nil {
			continue
		}
		for _, g := range []*GraphProto{ti.Initialization, ti.Algorithm} {
			if g != nil {
				if err := walkGraph(g, graphWhere(fmt.Sprintf("training_info[%d] ", i), g), visit); err != nil {
					return err
				}
			}
		}
	}
	for _, f := range m.Functions {
		if f != nil {
			if err := walkNodes(f.Node, fmt.Sprintf("function %q", f.GetName()), visit); err != nil {
				return err
			}
		}
	}
	return nil
}

func graphWhere(prefix string, g *GraphProto) string {
	return fmt.Sprintf("%sgraph %q", prefix, g.GetName())
}

func walkGraph(g *GraphProto, where string, visit visitTensor) error {
	for _, t := range g.Initializer {
		if t != nil {
			if err := visit(t, where+" initializer"); err != nil {
				return err
			}
		}
	}
	for _, s := range g.SparseInitializer {
		if err := walkSparse(s, where+" sparse initializer", visit); err != nil {
			return err
		}
	}
	return walkNodes(g.Node, where, visit)
}

func walkSparse(s *SparseTensorProto, where string, visit visitTensor) error {
	if s == nil {
		return nil
	}
	if s.Values != nil {
		if err := visit(s.Values, where+" values"); err != nil {
			return err
		}
	}
	if s.Indices != nil {
		if err := visit(s.Indices, where+" indices"); err != nil {
			return err
		}
	}
	return nil
}

func walkNodes(nodes []*NodeProto, where string, visit visitTensor) error {
	for _, n := range nodes {
		if n == nil {
			continue
		}
		for _, a := range n.Attribute {
			if a == nil {
				continue
			}
			aw := fmt.Sprintf("%s node %q (%s) attribute %q", where, n.GetName(), n.GetOpType(), a.GetName())
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
				if err := walkGraph(a.G, aw+" "+graphWhere("", a.G), visit); err != nil {
					return err
				}
			}
			for _, g := range a.Graphs {
				if g != nil {
					if err := walkGraph(g, aw+" "+graphWhere("", g), visit); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

package graph

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"onnxopt/onnx"
)

// FromProto converts a model message into the IR. The IR keeps pointers to
// m's tensors and attributes; m must not be used afterwards except through
// the IR.
//
// The conversion fails only where the IR cannot hold the model: a value
// produced by two nodes, or an initializer defined twice. Everything else
// that is wrong with a graph (undefined inputs, cycles, missing opsets) is
// kept as it is and reported by Verify.
func FromProto(m *onnx.ModelProto) (*Model, error) {
	model := &Model{
		IRVersion:       m.GetIrVersion(),
		ProducerName:    m.GetProducerName(),
		ProducerVersion: m.GetProducerVersion(),
		Domain:          m.GetDomain(),
		ModelVersion:    m.GetModelVersion(),
		DocString:       m.GetDocString(),
		Metadata:        m.MetadataProps,
	}
	for _, o := range m.OpsetImport {
		model.Opsets = append(model.Opsets, Opset{Domain: o.GetDomain(), Version: o.GetVersion()})
	}
	gp, opsets := m.Graph, m.OpsetImport
	m.Graph, m.OpsetImport = nil, nil
	model.rest = proto.CloneOf(m)
	model.rest.MetadataProps = nil
	m.Graph, m.OpsetImport = gp, opsets
	model.rest.OpsetImport = opsets // kept for field presence only

	g := newGraph(nil)
	g.Model = model
	model.Graph = g
	if gp != nil {
		if err := g.fromProto(gp); err != nil {
			return nil, err
		}
	} else {
		g.rest = nil
	}
	return model, nil
}

type infoList int

const (
	listInput infoList = iota
	listOutput
	listValueInfo
)

type infoKey struct {
	list  infoList
	index int
}

type infoSnapshot struct {
	entry *onnx.ValueInfoProto // the entry as it was in the file
	base  *onnx.ValueInfoProto // the value's own info when it was read; nil for a value of an enclosing scope
}

func (g *Graph) fromProto(gp *onnx.GraphProto) error {
	g.Name = gp.GetName()
	g.DocString = gp.GetDocString()
	g.QuantizationAnnotation = gp.QuantizationAnnotation
	g.Metadata = gp.MetadataProps

	nodes, inits, sparse := gp.Node, gp.Initializer, gp.SparseInitializer
	inputs, outputs, infos := gp.Input, gp.Output, gp.ValueInfo
	gp.Node, gp.Initializer, gp.SparseInitializer = nil, nil, nil
	gp.Input, gp.Output, gp.ValueInfo = nil, nil, nil
	g.rest = proto.CloneOf(gp)
	g.rest.QuantizationAnnotation, g.rest.MetadataProps = nil, nil
	gp.Node, gp.Initializer, gp.SparseInitializer = nodes, inits, sparse
	gp.Input, gp.Output, gp.ValueInfo = inputs, outputs, infos

	seenInfo := map[*Value]bool{}
	for i, vi := range inputs {
		v := g.Value(vi.GetName())
		g.takeInfo(v, vi, infoKey{listInput, i}, seenInfo)
		g.Inputs = append(g.Inputs, v)
	}
	for _, t := range inits {
		v := g.Value(t.GetName())
		if v.Init != nil {
			return fmt.Errorf("graph %q: initializer %q is defined twice", g.Name, v.Name)
		}
		v.Init = t
		g.Initializers = append(g.Initializers, v)
	}
	for _, st := range sparse {
		v := g.Value(st.GetValues().GetName())
		if v.Init != nil || v.SparseInit != nil {
			return fmt.Errorf("graph %q: sparse initializer %q is defined twice", g.Name, v.Name)
		}
		v.SparseInit = st
		g.Sparse = append(g.Sparse, v)
	}

	// Every node's outputs exist before any input is wired, so that
	// subgraphs can see all values of their enclosing scopes.
	g.Nodes = make([]*Node, len(nodes))
	for i, np := range nodes {
		n := &Node{
			Name:      np.GetName(),
			OpType:    np.GetOpType(),
			Domain:    np.GetDomain(),
			Overload:  np.GetOverload(),
			DocString: np.GetDocString(),
			Graph:     g,
		}
		for _, name := range np.Output {
			if name == "" {
				n.Outputs = append(n.Outputs, nil)
				continue
			}
			v := g.Value(name)
			if v.Producer != nil {
				return fmt.Errorf("graph %q: value %q is produced by node %s and by node %s", g.Name, name, v.Producer, n)
			}
			v.Producer = n
			n.Outputs = append(n.Outputs, v)
		}
		g.Nodes[i] = n
	}
	for i, np := range nodes {
		n := g.Nodes[i]
		for k, name := range np.Input {
			var v *Value
			if name != "" {
				if v = g.Lookup(name); v == nil {
					v = g.Value(name)
				}
				v.Uses = append(v.Uses, Use{n, k})
			}
			n.Inputs = append(n.Inputs, v)
		}
		for _, ap := range np.Attribute {
			a, err := g.attrFromProto(n, ap)
			if err != nil {
				return err
			}
			n.Attrs = append(n.Attrs, a)
		}
		in, out, attrs := np.Input, np.Output, np.Attribute
		np.Input, np.Output, np.Attribute = nil, nil, nil
		n.rest = proto.CloneOf(np)
		np.Input, np.Output, np.Attribute = in, out, attrs
	}

	for i, vi := range outputs {
		v := g.lookupOrCreate(vi.GetName())
		g.takeInfo(v, vi, infoKey{listOutput, i}, seenInfo)
		g.Outputs = append(g.Outputs, v)
	}
	for i, vi := range infos {
		v := g.lookupOrCreate(vi.GetName())
		g.takeInfo(v, vi, infoKey{listValueInfo, i}, seenInfo)
		g.ValueInfo = append(g.ValueInfo, v)
	}
	return nil
}

func (g *Graph) lookupOrCreate(name string) *Value {
	if v := g.Lookup(name); v != nil {
		return v
	}
	return g.Value(name)
}

// takeInfo gives v the type and docs of its first value-info entry, and
// remembers any later entry that says something else.
func (g *Graph) takeInfo(v *Value, vi *onnx.ValueInfoProto, key infoKey, seen map[*Value]bool) {
	if v.Graph != g {
		// A subgraph's entry for an outer value describes it as the
		// subgraph sees it; it is kept as written.
		if g.infoOverride == nil {
			g.infoOverride = map[infoKey]infoSnapshot{}
		}
		g.infoOverride[key] = infoSnapshot{entry: vi}
		return
	}
	if seen[v] {
		if base := v.info(); !proto.Equal(base, vi) {
			if g.infoOverride == nil {
				g.infoOverride = map[infoKey]infoSnapshot{}
			}
			g.infoOverride[key] = infoSnapshot{entry: vi, base: base}
		}
		return
	}
	seen[v] = true
	v.Type = vi.Type
	v.DocString = vi.GetDocString()
	v.Metadata = vi.MetadataProps
	v.infoRest = &onnx.ValueInfoProto{Name: vi.Name, DocString: vi.DocString}
	v.infoRest.ProtoReflect().SetUnknown(vi.ProtoReflect().GetUnknown())
}

// info builds the value's ValueInfoProto.
func (v *Value) info() *onnx.ValueInfoProto {
	vi := &onnx.ValueInfoProto{}
	if v.infoRest != nil {
		vi = proto.CloneOf(v.infoRest)
	}
	setString(&vi.Name, v.Name)
	setString(&vi.DocString, v.DocString)
	vi.Type = v.Type
	vi.MetadataProps = v.Metadata
	return vi
}

func (g *Graph) attrFromProto(n *Node, ap *onnx.AttributeProto) (*Attr, error) {
	if ap.G == nil && len(ap.Graphs) == 0 {
		return &Attr{Proto: ap}, nil
	}
	a := &Attr{}
	convert := func(gp *onnx.GraphProto) (*Graph, error) {
		s := newGraph(g)
		s.Owner = n
		if err := s.fromProto(gp); err != nil {
			return nil, fmt.Errorf("node %s attribute %q: %w", n, ap.GetName(), err)
		}
		return s, nil
	}
	if ap.G != nil {
		s, err := convert(ap.G)
		if err != nil {
			return nil, err
		}
		a.Graph = s
	}
	for _, gp := range ap.Graphs {
		s, err := convert(gp)
		if err != nil {
			return nil, err
		}
		a.Graphs = append(a.Graphs, s)
	}
	sub, subs := ap.G, ap.Graphs
	ap.G, ap.Graphs = nil, nil
	a.Proto = proto.CloneOf(ap)
	ap.G, ap.Graphs = sub, subs
	return a, nil
}

// ToProto converts the IR back into a model message. The message shares
// tensors and attributes with the IR: clone it before changing it.
func (m *Model) ToProto() *onnx.ModelProto {
	out := &onnx.ModelProto{}
	if m.rest != nil {
		out = proto.CloneOf(m.rest)
	}
	setInt(&out.IrVersion, m.IRVersion)
	setString(&out.ProducerName, m.ProducerName)
	setString(&out.ProducerVersion, m.ProducerVersion)
	setString(&out.Domain, m.Domain)
	setInt(&out.ModelVersion, m.ModelVersion)
	setString(&out.DocString, m.DocString)
	out.MetadataProps = m.Metadata

	old := out.OpsetImport
	out.OpsetImport = make([]*onnx.OperatorSetIdProto, len(m.Opsets))
	for i, o := range m.Opsets {
		op := &onnx.OperatorSetIdProto{}
		if i < len(old) {
			op = proto.CloneOf(old[i])
		}
		setString(&op.Domain, o.Domain)
		setInt(&op.Version, o.Version)
		out.OpsetImport[i] = op
	}
	if m.Graph != nil && (m.Graph.rest != nil || len(m.Graph.Nodes) > 0 || len(m.Graph.Inputs) > 0 || len(m.Graph.Outputs) > 0) {
		out.Graph = m.Graph.toProto()
	}
	return out
}

func (g *Graph) toProto() *onnx.GraphProto {
	gp := &onnx.GraphProto{}
	if g.rest != nil {
		gp = proto.CloneOf(g.rest)
	}
	setString(&gp.Name, g.Name)
	setString(&gp.DocString, g.DocString)
	gp.QuantizationAnnotation = g.QuantizationAnnotation
	gp.MetadataProps = g.Metadata

	for _, n := range g.Nodes {
		gp.Node = append(gp.Node, n.toProto())
	}
	for _, v := range g.Initializers {
		if v.Init.GetName() != v.Name {
			name := v.Name
			v.Init.Name = &name
		}
		gp.Initializer = append(gp.Initializer, v.Init)
	}
	for _, v := range g.Sparse {
		if vals := v.SparseInit.GetValues(); vals != nil && vals.GetName() != v.Name {
			name := v.Name
			vals.Name = &name
		}
		gp.SparseInitializer = append(gp.SparseInitializer, v.SparseInit)
	}
	gp.Input = g.infoList(listInput, g.Inputs)
	gp.Output = g.infoList(listOutput, g.Outputs)
	gp.ValueInfo = g.infoList(listValueInfo, g.ValueInfo)
	return gp
}

func (g *Graph) infoList(list infoList, vs []*Value) []*onnx.ValueInfoProto {
	var out []*onnx.ValueInfoProto
	for i, v := range vs {
		vi := v.info()
		if o, ok := g.infoOverride[infoKey{list, i}]; ok && (o.base == nil || proto.Equal(vi, o.base)) {
			vi = o.entry
		}
		out = append(out, vi)
	}
	return out
}

func (n *Node) toProto() *onnx.NodeProto {
	np := &onnx.NodeProto{}
	if n.rest != nil {
		np = proto.CloneOf(n.rest)
	}
	setString(&np.Name, n.Name)
	setString(&np.OpType, n.OpType)
	setString(&np.Domain, n.Domain)
	setString(&np.Overload, n.Overload)
	setString(&np.DocString, n.DocString)
	np.Input = valueNames(n.Inputs)
	np.Output = valueNames(n.Outputs)
	for _, a := range n.Attrs {
		np.Attribute = append(np.Attribute, a.toProto())
	}
	return np
}

func (a *Attr) toProto() *onnx.AttributeProto {
	if a.Graph == nil && len(a.Graphs) == 0 {
		return a.Proto
	}
	ap := proto.CloneOf(a.Proto)
	if a.Graph != nil {
		ap.G = a.Graph.toProto()
	}
	for _, s := range a.Graphs {
		ap.Graphs = append(ap.Graphs, s.toProto())
	}
	return ap
}

func valueNames(vs []*Value) []string {
	names := make([]string, len(vs))
	for i, v := range vs {
		if v != nil {
			names[i] = v.Name
		}
	}
	return names
}

// setString sets an optional proto2 field to v, leaving it absent when it
// was absent and v is empty, so that presence survives a round trip.
func setString(p **string, v string) {
	if (*p == nil && v == "") || (*p != nil && **p == v) {
		return
	}
	*p = &v
}

func setInt(p **int64, v int64) {
	if (*p == nil && v == 0) || (*p != nil && **p == v) {
		return
	}
	*p = &v
}

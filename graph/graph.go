package graph

import (
	"fmt"
	"slices"
	"strconv"

	"onnxopt/onnx"
)

// A Model is an ONNX model held as an IR that passes can edit.
//
// Fields the IR does not model (training info, functions, device
// configurations, fields unknown to this schema) are kept as protobuf and
// written back unchanged, so that a model read and written without edits
// is the same message.
type Model struct {
	IRVersion       int64
	Opsets          []Opset // in the order the model declares them
	ProducerName    string
	ProducerVersion string
	Domain          string
	ModelVersion    int64
	DocString       string
	Metadata        []*onnx.StringStringEntryProto
	Graph           *Graph

	// rest holds the model's fields that the IR does not model, and
	// remembers which modelled scalars were present on the wire.
	rest *onnx.ModelProto
}

// An Opset is one operator-set import: a domain and its version.
type Opset struct {
	Domain  string // "" and "ai.onnx" both name the default domain
	Version int64
}

// Opset returns the version the model imports for domain, and whether it
// imports the domain at all. The default domain answers to "" and "ai.onnx".
func (m *Model) Opset(domain string) (int64, bool) {
	domain = canonicalDomain(domain)
	for _, o := range m.Opsets {
		if canonicalDomain(o.Domain) == domain {
			return o.Version, true
		}
	}
	return 0, false
}

func canonicalDomain(d string) string {
	if d == "ai.onnx" {
		return ""
	}
	return d
}

// A Graph is a list of nodes with the values they read and write. A
// subgraph (the body of If, Loop or Scan) has a Parent and may read values
// of its enclosing graphs.
type Graph struct {
	Name      string
	DocString string

	Nodes []*Node // in file order until Sort is called

	Inputs       []*Value // graph inputs, which may include initializers (IR < 4)
	Outputs      []*Value
	Initializers []*Value // values with Init set, in file order
	Sparse       []*Value // values with SparseInit set, in file order
	ValueInfo    []*Value // values with a value_info entry, in file order

	QuantizationAnnotation []*onnx.TensorAnnotation
	Metadata               []*onnx.StringStringEntryProto

	Model  *Model // the model, for the root graph; nil for subgraphs
	Parent *Graph // the enclosing graph, for subgraphs
	Owner  *Node  // the node whose attribute holds this subgraph

	values map[string]*Value
	rest   *onnx.GraphProto

	// infoOverride keeps a graph input, output or value_info entry whose
	// content differs from its value's first entry, so that a model
	// naming one value twice with different types survives a round trip.
	infoOverride map[infoKey]infoSnapshot
}

// A Value is a named tensor (or sequence, map, optional) in a graph.
type Value struct {
	Name      string
	Type      *onnx.TypeProto // nil when nothing is known
	DocString string
	Metadata  []*onnx.StringStringEntryProto

	Producer *Node // nil for graph inputs, initializers and undefined values
	Uses     []Use // nodes that read this value, in no particular order

	Init       *onnx.TensorProto       // set for initializers
	SparseInit *onnx.SparseTensorProto // set for sparse initializers

	Graph *Graph // the graph whose scope defines the value

	infoRest *onnx.ValueInfoProto // presence of fields on the wire
}

// A Use is one input slot of a node that reads a value.
type Use struct {
	Node  *Node
	Index int
}

// A Node is one operator application.
type Node struct {
	Name      string
	OpType    string
	Domain    string
	Overload  string
	DocString string

	Inputs  []*Value // nil for an omitted optional input ("")
	Outputs []*Value // nil for an omitted optional output ("")
	Attrs   []*Attr

	Graph *Graph

	// rest holds the node's fields the IR does not model (metadata,
	// device configurations, unknown fields) and the presence of scalars.
	rest *onnx.NodeProto
}

// An Attr is a node attribute. Graph-valued attributes are held as IR
// graphs in Graph and Graphs; Proto carries everything else, with its g and
// graphs fields left empty.
type Attr struct {
	Proto  *onnx.AttributeProto
	Graph  *Graph
	Graphs []*Graph
}

// Name returns the attribute's name.
func (a *Attr) Name() string { return a.Proto.GetName() }

// NewModel returns a model with an empty graph and the given opsets.
func NewModel(irVersion int64, opsets ...Opset) *Model {
	m := &Model{IRVersion: irVersion, Opsets: opsets}
	m.Graph = newGraph(nil)
	m.Graph.Model = m
	return m
}

func newGraph(parent *Graph) *Graph {
	return &Graph{Parent: parent, values: map[string]*Value{}}
}

// Root returns the outermost graph.
func (g *Graph) Root() *Graph {
	for g.Parent != nil {
		g = g.Parent
	}
	return g
}

// Opset returns the version imported for domain by the model that holds g.
func (g *Graph) Opset(domain string) (int64, bool) {
	root := g.Root()
	if root.Model == nil {
		return 0, false
	}
	return root.Model.Opset(domain)
}

// Lookup returns the value called name in g's scope or an enclosing one.
func (g *Graph) Lookup(name string) *Value {
	for s := g; s != nil; s = s.Parent {
		if v, ok := s.values[name]; ok {
			return v
		}
	}
	return nil
}

// Value returns the value called name defined in g itself, creating it
// when it does not exist yet.
func (g *Graph) Value(name string) *Value {
	if v, ok := g.values[name]; ok {
		return v
	}
	v := &Value{Name: name, Graph: g}
	g.values[name] = v
	return v
}

// Values returns every value defined in g's own scope, sorted by name.
func (g *Graph) Values() []*Value {
	vs := make([]*Value, 0, len(g.values))
	for _, v := range g.values {
		vs = append(vs, v)
	}
	slices.SortFunc(vs, func(a, b *Value) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return vs
}

// UniqueName returns a name starting with prefix that no value or node in
// the model uses yet.
func (g *Graph) UniqueName(prefix string) string {
	root := g.Root()
	taken := func(name string) bool {
		found := false
		root.Walk(func(h *Graph) bool {
			if _, ok := h.values[name]; ok {
				found = true
				return false
			}
			for _, n := range h.Nodes {
				if n.Name == name {
					found = true
					return false
				}
			}
			return true
		})
		return found
	}
	if prefix != "" && !taken(prefix) {
		return prefix
	}
	for i := 1; ; i++ {
		name := prefix + "_" + strconv.Itoa(i)
		if !taken(name) {
			return name
		}
	}
}

// Walk calls fn for g and every subgraph below it, depth first, until fn
// returns false.
func (g *Graph) Walk(fn func(*Graph) bool) bool {
	if !fn(g) {
		return false
	}
	for _, n := range g.Nodes {
		for _, a := range n.Attrs {
			if a.Graph != nil && !a.Graph.Walk(fn) {
				return false
			}
			for _, s := range a.Graphs {
				if !s.Walk(fn) {
					return false
				}
			}
		}
	}
	return true
}

// IsInput reports whether v is one of g's inputs.
func (g *Graph) IsInput(v *Value) bool { return slices.Contains(g.Inputs, v) }

// IsOutput reports whether v is one of g's outputs.
func (g *Graph) IsOutput(v *Value) bool { return slices.Contains(g.Outputs, v) }

// IsConstant reports whether v holds an initializer that no graph input
// can override.
func (v *Value) IsConstant() bool {
	return (v.Init != nil || v.SparseInit != nil) && !v.Graph.IsInput(v)
}

// Attr returns the attribute called name, or nil.
func (n *Node) Attr(name string) *Attr {
	for _, a := range n.Attrs {
		if a.Name() == name {
			return a
		}
	}
	return nil
}

// AttrInt returns the integer attribute name, or def when it is absent.
func (n *Node) AttrInt(name string, def int64) int64 {
	if a := n.Attr(name); a != nil {
		return a.Proto.GetI()
	}
	return def
}

// AttrFloat returns the float attribute name, or def when it is absent.
func (n *Node) AttrFloat(name string, def float32) float32 {
	if a := n.Attr(name); a != nil {
		return a.Proto.GetF()
	}
	return def
}

// AttrString returns the string attribute name, or def when it is absent.
func (n *Node) AttrString(name string, def string) string {
	if a := n.Attr(name); a != nil {
		return string(a.Proto.GetS())
	}
	return def
}

// AttrInts returns the integer-list attribute name, or def when it is absent.
func (n *Node) AttrInts(name string, def []int64) []int64 {
	if a := n.Attr(name); a != nil {
		return a.Proto.GetInts()
	}
	return def
}

// AttrFloats returns the float-list attribute name, or def when it is absent.
func (n *Node) AttrFloats(name string, def []float32) []float32 {
	if a := n.Attr(name); a != nil {
		return a.Proto.GetFloats()
	}
	return def
}

// AttrTensor returns the tensor attribute name, or nil when it is absent.
func (n *Node) AttrTensor(name string) *onnx.TensorProto {
	if a := n.Attr(name); a != nil {
		return a.Proto.GetT()
	}
	return nil
}

// SetAttr sets or replaces an attribute that holds no graph.
func (n *Node) SetAttr(a *onnx.AttributeProto) {
	for i, old := range n.Attrs {
		if old.Name() == a.GetName() {
			n.Attrs[i] = &Attr{Proto: a}
			return
		}
	}
	n.Attrs = append(n.Attrs, &Attr{Proto: a})
}

// RemoveAttr deletes the attribute called name, if present.
func (n *Node) RemoveAttr(name string) {
	n.Attrs = slices.DeleteFunc(n.Attrs, func(a *Attr) bool { return a.Name() == name })
}

// Input returns input i, or nil when it is omitted or out of range.
func (n *Node) Input(i int) *Value {
	if i < 0 || i >= len(n.Inputs) {
		return nil
	}
	return n.Inputs[i]
}

// Opset returns the version of the node's domain that the model imports.
func (n *Node) Opset() int64 {
	v, _ := n.Graph.Opset(n.Domain)
	return v
}

// String names the node for error messages: its name and op type.
func (n *Node) String() string {
	if n.Domain != "" && n.Domain != "ai.onnx" {
		return fmt.Sprintf("%q (%s:%s)", n.Name, n.Domain, n.OpType)
	}
	return fmt.Sprintf("%q (%s)", n.Name, n.OpType)
}

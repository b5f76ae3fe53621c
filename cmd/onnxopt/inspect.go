package main

import (
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	"onnxopt/graph"
	"onnxopt/internal/numfmt"
	"onnxopt/onnx"
)

// inspectReport is the JSON form of "onnxopt inspect" (docs/json.md).
type inspectReport struct {
	File         string          `json:"file"`
	IRVersion    int64           `json:"ir_version"`
	Opsets       []opsetJSON     `json:"opsets"`
	Producer     string          `json:"producer"`
	ProducerVer  string          `json:"producer_version"`
	Domain       string          `json:"domain,omitempty"`
	ModelVersion int64           `json:"model_version,omitempty"`
	Inputs       []valueJSON     `json:"inputs"`
	Outputs      []valueJSON     `json:"outputs"`
	Nodes        int             `json:"nodes"`
	Ops          []opCountJSON   `json:"ops"`
	Parameters   paramsJSON      `json:"parameters"`
	Largest      []tensorJSON    `json:"largest_initializers"`
	External     []externalJSON  `json:"external_data"`
	Functions    []string        `json:"functions,omitempty"`
	Metadata     []metadataEntry `json:"metadata,omitempty"`
}

type opsetJSON struct {
	Domain  string `json:"domain"`
	Version int64  `json:"version"`
}

type valueJSON struct {
	Name  string `json:"name"`
	DType string `json:"dtype"`
	// Shape holds a number per known dimension, a string per symbolic
	// one and null per unknown one; it is null when the rank is unknown.
	Shape []any `json:"shape"`
}

type opCountJSON struct {
	Op     string `json:"op"`
	Domain string `json:"domain,omitempty"`
	Count  int    `json:"count"`
}

type paramsJSON struct {
	Count   int64       `json:"count"`
	NonZero int64       `json:"nonzero"`
	Bytes   int64       `json:"bytes"`
	ByDType []dtypeJSON `json:"by_dtype"`
}

type dtypeJSON struct {
	DType   string `json:"dtype"`
	Tensors int    `json:"tensors"`
	Count   int64  `json:"count"`
	Bytes   int64  `json:"bytes"`
}

type tensorJSON struct {
	Name  string  `json:"name"`
	DType string  `json:"dtype"`
	Shape []int64 `json:"shape"`
	Bytes int64   `json:"bytes"`
}

type externalJSON struct {
	File    string `json:"file"`
	Tensors int    `json:"tensors"`
	Bytes   int64  `json:"bytes"`
}

type metadataEntry struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

func runInspect(c *cli, args []string) error {
	fs := c.flags("inspect")
	asJSON := fs.Bool("json", false, "print a JSON report instead of text")
	if err := parse(fs, args, 1, 1); err != nil {
		return err
	}
	path := fs.Arg(0)
	m, ext, err := graph.LoadRefs(path)
	if err != nil {
		return err
	}
	if err := m.Verify(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	r := inspect(path, m, ext)
	if *asJSON {
		return c.printJSON(r)
	}
	printInspect(c, r)
	return nil
}

func inspect(path string, m *graph.Model, ext []onnx.ExternalRef) inspectReport {
	r := inspectReport{
		File:         path,
		IRVersion:    m.IRVersion,
		Producer:     m.ProducerName,
		ProducerVer:  m.ProducerVersion,
		Domain:       m.Domain,
		ModelVersion: m.ModelVersion,
		Ops:          []opCountJSON{},
		Largest:      []tensorJSON{},
		External:     []externalJSON{},
	}
	for _, o := range m.Opsets {
		d := o.Domain
		if d == "" {
			d = "ai.onnx"
		}
		r.Opsets = append(r.Opsets, opsetJSON{d, o.Version})
	}
	g := m.Graph
	for _, v := range g.Inputs {
		if v.Init == nil {
			r.Inputs = append(r.Inputs, valueOf(v))
		}
	}
	for _, v := range g.Outputs {
		r.Outputs = append(r.Outputs, valueOf(v))
	}

	counts := map[opCountJSON]int{}
	var inits []*onnx.TensorProto
	g.Walk(func(h *graph.Graph) bool {
		for _, n := range h.Nodes {
			counts[opCountJSON{Op: n.OpType, Domain: n.Domain}]++
		}
		for _, v := range h.Initializers {
			inits = append(inits, v.Init)
		}
		return true
	})
	for k, n := range counts {
		k.Count = n
		r.Ops = append(r.Ops, k)
	}
	sort.Slice(r.Ops, func(i, j int) bool {
		a, b := r.Ops[i], r.Ops[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		return a.Domain+"/"+a.Op < b.Domain+"/"+b.Op
	})

	s := m.Stats()
	r.Nodes = s.Nodes
	r.Parameters = paramsJSON{Count: s.Params, NonZero: s.NonZero, Bytes: s.Bytes, ByDType: []dtypeJSON{}}
	for _, t := range s.ByType {
		r.Parameters.ByDType = append(r.Parameters.ByDType, dtypeJSON{dtypeName(t.DType), t.Tensors, t.Params, t.Bytes})
	}

	sort.SliceStable(inits, func(i, j int) bool { return graph.TensorBytes(inits[i]) > graph.TensorBytes(inits[j]) })
	for _, t := range inits[:min(10, len(inits))] {
		r.Largest = append(r.Largest, tensorJSON{t.GetName(), dtypeName(onnx.DataType(t.GetDataType())), t.GetDims(), graph.TensorBytes(t)})
	}

	files := map[string]*externalJSON{}
	for _, e := range ext {
		f := files[e.Location]
		if f == nil {
			f = &externalJSON{File: e.Location}
			files[e.Location] = f
		}
		f.Tensors++
		f.Bytes += e.Length
	}
	for _, f := range files {
		r.External = append(r.External, *f)
	}
	sort.Slice(r.External, func(i, j int) bool { return r.External[i].File < r.External[j].File })

	for _, f := range m.ToProto().GetFunctions() {
		r.Functions = append(r.Functions, f.GetDomain()+"."+f.GetName())
	}
	for _, e := range m.Metadata {
		r.Metadata = append(r.Metadata, metadataEntry{e.GetKey(), e.GetValue()})
	}
	return r
}

func valueOf(v *graph.Value) valueJSON {
	out := valueJSON{Name: v.Name, DType: dtypeName(v.ElemType())}
	if v.Type != nil && v.Type.GetTensorType() == nil {
		out.DType = "non-tensor"
	}
	if s, ok := v.Shape(); ok {
		out.Shape = []any{}
		for _, d := range s {
			switch {
			case d.Known:
				out.Shape = append(out.Shape, d.Value)
			case d.Param != "":
				out.Shape = append(out.Shape, d.Param)
			default:
				out.Shape = append(out.Shape, nil)
			}
		}
	}
	return out
}

func dtypeName(dt onnx.DataType) string {
	if dt == onnx.TensorProto_UNDEFINED {
		return "unknown"
	}
	return strings.ToLower(dt.String())
}

func shapeText(shape []any) string {
	if shape == nil {
		return "(rank unknown)"
	}
	parts := make([]string, len(shape))
	for i, d := range shape {
		if d == nil {
			parts[i] = "?"
		} else {
			parts[i] = fmt.Sprint(d)
		}
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func printInspect(c *cli, r inspectReport) {
	w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintf(w, "model\t%s\n", r.File)
	producer := strings.TrimSpace(r.Producer + " " + r.ProducerVer)
	if producer == "" {
		producer = "(none)"
	}
	fmt.Fprintf(w, "ir version\t%d\n", r.IRVersion)
	fmt.Fprintf(w, "producer\t%s\n", producer)
	var opsets []string
	for _, o := range r.Opsets {
		opsets = append(opsets, fmt.Sprintf("%s %d", o.Domain, o.Version))
	}
	fmt.Fprintf(w, "opsets\t%s\n", strings.Join(opsets, ", "))
	fmt.Fprintln(w, "\ninputs")
	for _, v := range r.Inputs {
		fmt.Fprintf(w, "  %s\t%s\t%s\n", v.Name, v.DType, shapeText(v.Shape))
	}
	fmt.Fprintln(w, "outputs")
	for _, v := range r.Outputs {
		fmt.Fprintf(w, "  %s\t%s\t%s\n", v.Name, v.DType, shapeText(v.Shape))
	}
	fmt.Fprintf(w, "\noperators (%d nodes, %d kinds)\n", r.Nodes, len(r.Ops))
	for _, o := range r.Ops {
		name := o.Op
		if o.Domain != "" {
			name = o.Domain + ":" + o.Op
		}
		fmt.Fprintf(w, "  %s\t%d\n", name, o.Count)
	}
	p := r.Parameters
	nz := "unknown (external data not read)"
	if p.NonZero >= 0 {
		nz = fmt.Sprintf("%s (%.1f%%)", thousands(p.NonZero), percent(p.NonZero, p.Count))
	}
	fmt.Fprintf(w, "\nparameters\t%s\t%s\n", thousands(p.Count), byteSize(p.Bytes))
	fmt.Fprintf(w, "  non-zero\t%s\n", nz)
	for _, d := range p.ByDType {
		fmt.Fprintf(w, "  %s\t%s in %d tensors\t%s\n", d.DType, thousands(d.Count), d.Tensors, byteSize(d.Bytes))
	}
	if len(r.Largest) > 0 {
		fmt.Fprintln(w, "\nlargest initializers")
		for _, t := range r.Largest {
			fmt.Fprintf(w, "  %s\t%s\t%v\t%s\n", t.Name, t.DType, t.Shape, byteSize(t.Bytes))
		}
	}
	fmt.Fprintln(w)
	if len(r.External) == 0 {
		fmt.Fprintln(w, "external data\tnone")
	} else {
		fmt.Fprintln(w, "external data")
		for _, f := range r.External {
			fmt.Fprintf(w, "  %s\t%d tensors\t%s\n", f.File, f.Tensors, byteSize(f.Bytes))
		}
	}
	if len(r.Functions) > 0 {
		fmt.Fprintf(w, "functions\t%s\n", strings.Join(r.Functions, ", "))
	}
}

func percent(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

// thousands and byteSize are numfmt's formats, which the HTML report
// shares.
func thousands(n int64) string { return numfmt.Thousands(n) }
func byteSize(n int64) string  { return numfmt.ByteSize(n) }

package runtime

import (
	"fmt"

	"onnxopt/graph"
)

// A kernel computes a node's outputs from its inputs. An omitted optional
// input is nil. A kernel never writes to its inputs: it writes into
// buffers from e.output, or returns an input (or a view of one) unchanged.
type kernel func(e *env, in []*Tensor) ([]*Tensor, error)

// An opDef says how to compile one operator from one opset version on.
// compile reads and checks the node's attributes once and returns the
// kernel that runs it.
type opDef struct {
	domain  string // "" for the default ONNX domain
	opType  string
	since   int64 // the first opset version this definition covers
	compile func(n *graph.Node) (kernel, error)
}

// opTables lists the operator tables, one per family of operators; each
// lives in the file named after it.
var opTables = [][]opDef{
	elementwiseOps, // ops_elementwise.go
	reduceOps,      // ops_reduce.go
	linearOps,      // ops_linear.go
	convOps,        // ops_conv.go
	poolOps,        // ops_pool.go
	normOps,        // ops_norm.go
	resizeOps,      // ops_resize.go
	shapeOps,       // ops_shape.go
	rnnOps,         // ops_rnn.go
	controlOps,     // ops_control.go
	quantOps,       // ops_quant.go
	sequenceOps,    // ops_sequence.go
	lossOps,        // ops_loss.go
	signalOps,      // ops_signal.go
	visionOps,      // ops_vision.go
	stringOps,      // ops_string.go
	mathOps,        // ops_math.go
	trainingOps,    // ops_training.go
}

// lookupOp finds the definition for op in domain at the given opset: the
// one with the highest since not above opset.
func lookupOp(domain, op string, opset int64) (opDef, bool) {
	if domain == "ai.onnx" {
		domain = ""
	}
	var best opDef
	found := false
	for _, table := range opTables {
		for _, d := range table {
			if d.domain == domain && d.opType == op && d.since <= opset && (!found || d.since > best.since) {
				best, found = d, true
			}
		}
	}
	return best, found
}

// UnsupportedError reports an operator the runtime lacks, or a use of one
// it does not compute (Reason says which).
type UnsupportedError struct {
	Op, Domain, Node string
	Opset            int64
	Reason           string // empty when the op itself is missing
}

func (e *UnsupportedError) Error() string {
	domain := e.Domain
	if domain == "" {
		domain = "ai.onnx"
	}
	msg := fmt.Sprintf("unsupported op %s (%s, opset %d) at node %q", e.Op, domain, e.Opset, e.Node)
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	return msg
}

// unsupported reports that the node of e is used in a way the runtime
// does not compute.
func (e *env) unsupported(format string, args ...any) error {
	n := e.node
	return &UnsupportedError{Op: n.OpType, Domain: n.Domain, Node: n.Name, Opset: n.Opset(), Reason: fmt.Sprintf(format, args...)}
}

// Supported reports whether the runtime has a kernel for op in domain at
// the given opset.
func Supported(domain, op string, opset int64) bool {
	_, ok := lookupOp(domain, op, opset)
	return ok
}

package passes

// Table returns every pass, in the order "onnxopt passes" lists them.
func Table() []Info {
	return []Info{
		{Name: "deadcode", New: func() Pass { return &deadCode{} },
			Doc: "remove nodes whose outputs nothing reads\n\nA node whose every output is neither read by another node nor a graph output is removed, repeatedly, in subgraphs too."},
		{Name: "unused-initializers", New: func() Pass { return &unusedInitializers{} },
			Doc: "drop unused initializers and inputs shadowing them\n\nInitializers no node reads are removed. Graph inputs that merely give an initializer a default a caller could override (IR < 4 exports list every weight as an input) are removed from the inputs, so the weights become constants that later passes can fold."},
		{Name: "identity", New: func() Pass { return &identityElimination{} },
			Doc: "remove Identity and inference-mode Dropout\n\nReaders of the node's output read its input instead. Where the output is a graph output, the input's producer writes it directly. Dropout is removed when its mask is unused and it is not in training mode."},
	}
}

// defaultPipeline is the cleanup that "onnxopt optimize" runs when no
// passes are named.
var defaultPipeline = []string{
	"identity",
	"deadcode",
	"unused-initializers",
}

// Package passes holds onnxopt's model transformations and the manager that
// runs them.
//
// Every pass is listed in one table (Table, in table.go), with its name, a
// doc line and a constructor; the pass itself is a small type in a file
// named after what it does, whose fields are its options. Run applies a
// list of passes in order. After each pass it sorts the graph, runs
// graph.Verify, optionally compares the model's outputs before and after on
// the same inputs, and records what the pass changed: nodes, parameters,
// non-zero parameters, bytes and estimated FLOPs, and its time. An error
// names the pass that broke the model.
package passes

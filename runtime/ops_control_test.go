package runtime

import "testing"

func TestControlNodeCases(t *testing.T) {
	const sequences = "sequence and optional values are not tensors, which the runtime computes"
	checkNodeCases(t, []string{"test_if", "test_loop", "test_scan"}, []nodeCase{
		{name: "test_if"},
		{name: "test_if_opt", unsupported: sequences},
		{name: "test_if_seq", unsupported: sequences},
		{name: "test_loop11"},
		{name: "test_loop13_seq", unsupported: sequences},
		{name: "test_loop16_seq_none", unsupported: sequences},
		{name: "test_scan9_sum"},
		{name: "test_scan_sum"},
	})
}

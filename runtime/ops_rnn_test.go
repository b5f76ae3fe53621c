package runtime

import "testing"

func TestRNNSuiteCases(t *testing.T) {
	checkSuiteCases(t, []string{"node/test_lstm", "node/test_gru", "node/test_rnn", "node/test_simple_rnn"}, []suiteCase{
		{path: "node/test_lstm_batchwise"},
		{path: "node/test_lstm_defaults"},
		{path: "node/test_lstm_with_initial_bias"},
		{path: "node/test_lstm_with_peepholes"},
		{path: "node/test_gru_batchwise"},
		{path: "node/test_gru_defaults"},
		{path: "node/test_gru_seq_length"},
		{path: "node/test_gru_with_initial_bias"},
		{path: "node/test_rnn_seq_length"},
		{path: "node/test_simple_rnn_batchwise"},
		{path: "node/test_simple_rnn_defaults"},
		{path: "node/test_simple_rnn_with_initial_bias"},
	})
}

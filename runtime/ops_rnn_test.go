package runtime

import "testing"

func TestRNNNodeCases(t *testing.T) {
	checkNodeCases(t, []string{"test_lstm", "test_gru", "test_rnn", "test_simple_rnn"}, []nodeCase{
		{name: "test_lstm_batchwise"},
		{name: "test_lstm_defaults"},
		{name: "test_lstm_with_initial_bias"},
		{name: "test_lstm_with_peepholes"},
		{name: "test_gru_batchwise"},
		{name: "test_gru_defaults"},
		{name: "test_gru_seq_length"},
		{name: "test_gru_with_initial_bias"},
		{name: "test_rnn_seq_length"},
		{name: "test_simple_rnn_batchwise"},
		{name: "test_simple_rnn_defaults"},
		{name: "test_simple_rnn_with_initial_bias"},
	})
}

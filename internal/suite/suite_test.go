package suite

import "testing"

func TestArgmaxAccuracy(t *testing.T) {
	logits := []float32{
		0, 1, 0, // 1
		2, 2, 0, // a tie: the first, 0
		0, 0, 3, // 2
		5, 4, 3, // 0
	}
	acc, err := ArgmaxAccuracy(logits, []int{4, 3}, []int64{1, 0, 1, 1})
	if err != nil {
		t.Fatal(err)
	}
	if acc != 0.5 {
		t.Errorf("accuracy %v, want 0.5", acc)
	}
	for _, shape := range [][]int{{4}, {3, 3}, {4, 4}, {0, 3}} {
		if _, err := ArgmaxAccuracy(logits, shape, []int64{1, 0, 1, 1}); err == nil {
			t.Errorf("shape %v for 12 logits and 4 labels accepted", shape)
		}
	}
}

package onnx

import (
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"
)

// progressModel holds 21 MB of weights: a 20 MB tensor, larger than
// progressStep twice over, and small ones inline whatever the options.
func progressModel(t *testing.T) *ModelProto {
	t.Helper()
	big, err := NewTensor("big", TensorProto_FLOAT, []int64{5, 1 << 20}, make([]float32, 5<<20))
	if err != nil {
		t.Fatal(err)
	}
	for i := range big.RawData {
		big.RawData[i] = byte(i * 7)
	}
	mid, _ := NewTensor("mid", TensorProto_FLOAT, []int64{1 << 18}, make([]float32, 1<<18))
	small, _ := NewTensor("small", TensorProto_INT64, []int64{2}, []int64{7, -7})
	return &ModelProto{IrVersion: proto.Int64(8), Graph: &GraphProto{Name: proto.String("g"), Initializer: []*TensorProto{small, big, mid}}}
}

// checkProgress checks the calls a Progress callback got: the first with
// done 0, every total the same as the first, done growing by at most
// progressStep a call, and the last with done = total = want.
func checkProgress(t *testing.T, calls [][2]int64, want int64) {
	t.Helper()
	if len(calls) < 2 {
		t.Fatalf("%d calls: %v", len(calls), calls)
	}
	if calls[0] != [2]int64{0, want} {
		t.Errorf("first call %v, want [0 %d]", calls[0], want)
	}
	for i := 1; i < len(calls); i++ {
		prev, c := calls[i-1], calls[i]
		if c[1] != want || c[0] <= prev[0] || c[0]-prev[0] > progressStep {
			t.Errorf("call %d: %v after %v: want done growing by 1 to %d bytes, total %d", i, c, prev, progressStep, want)
		}
	}
	if last := calls[len(calls)-1]; last != [2]int64{want, want} {
		t.Errorf("last call %v, want [%d %d]", last, want, want)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestWriteProgress writes a model inline and with external data: the
// callback counts every byte of the files written, in steps.
func TestWriteProgress(t *testing.T) {
	m := progressModel(t)
	for _, external := range []bool{false, true} {
		dir := t.TempDir()
		path := filepath.Join(dir, "m.onnx")
		var calls [][2]int64
		opt := WriteOptions{ExternalData: external, Threshold: 1 << 20, Progress: func(done, total int64) {
			calls = append(calls, [2]int64{done, total})
		}}
		if err := WriteModel(path, m, opt); err != nil {
			t.Fatal(err)
		}
		want := fileSize(t, path)
		if external {
			want += fileSize(t, path+".data")
			if len(plainUnmarshal(t, path).Graph.Initializer[1].ExternalData) == 0 {
				t.Fatal("the big tensor is not external")
			}
		}
		checkProgress(t, calls, want)
		if want < 21e6 || len(calls) < 4 {
			t.Errorf("external data %t: %d calls for %d bytes", external, len(calls), want)
		}
	}
}

// TestReadProgress reads a model with and without a Progress callback:
// the models are the same, and the callback counts every byte of the
// model file. External data is mapped, not read: only the model file
// counts.
func TestReadProgress(t *testing.T) {
	dir := t.TempDir()
	for _, external := range []bool{false, true} {
		path := filepath.Join(dir, "inline.onnx")
		if external {
			path = filepath.Join(dir, "external.onnx")
		}
		if err := WriteModel(path, progressModel(t), WriteOptions{ExternalData: external}); err != nil {
			t.Fatal(err)
		}
		want, err := ReadModel(path)
		if err != nil {
			t.Fatal(err)
		}
		var calls [][2]int64
		got, err := ReadOptions{Progress: func(done, total int64) { calls = append(calls, [2]int64{done, total}) }}.ReadModel(path)
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got, want) {
			t.Errorf("external data %t: the model read with progress differs", external)
		}
		checkProgress(t, calls, fileSize(t, path))
	}
}

// TestReadProgressMissing: a file that cannot be opened is an error, with
// no call.
func TestReadProgressMissing(t *testing.T) {
	called := false
	_, err := ReadOptions{Progress: func(done, total int64) { called = true }}.ReadModel(filepath.Join(t.TempDir(), "none.onnx"))
	if !os.IsNotExist(err) || called {
		t.Errorf("error %v, called %t; want not-exist and no call", err, called)
	}
}

package main

import (
	"fmt"
	"path/filepath"

	"google.golang.org/protobuf/proto"

	"onnxopt/onnx"
)

func runConvert(c *cli, args []string) error {
	fs := c.flags("convert")
	out := fs.StringP("output", "o", "", "where to write the model (required)")
	external := fs.Bool("external-data", false, "store tensors of at least the threshold in a data file beside the model")
	threshold := fs.Int64("external-data-threshold", onnx.DefaultExternalThreshold, "smallest tensor, in bytes, stored as external data")
	location := fs.String("external-data-file", "", "the data file's name, relative to the output's folder (default OUT.data)")
	if err := parse(fs, args, 1, 1); err != nil {
		return err
	}
	if *out == "" {
		return usagef("-o OUT is required")
	}
	if *threshold < 0 {
		return usagef("--external-data-threshold must not be negative")
	}
	m, err := c.loadModel(fs.Arg(0))
	if err != nil {
		return err
	}
	opt := onnx.WriteOptions{ExternalData: *external, Threshold: *threshold, Location: *location}
	mp := m.ToProto()
	if size := proto.Size(mp); !opt.ExternalData && size > onnx.MaxProtoSize {
		file, least := opt.Location, opt.Threshold
		if file == "" {
			file = filepath.Base(*out) + ".data"
		}
		if least <= 0 {
			least = onnx.DefaultExternalThreshold
		}
		fmt.Fprintf(c.stderr, "onnxopt convert: the model is %s, over protobuf's 2 GiB limit: writing tensors of at least %d bytes as external data to %s\n",
			byteSize(int64(size)), least, file)
	}
	return c.writeModel(*out, mp, opt)
}

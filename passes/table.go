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
		{Name: "fold-constants", New: func() Pass { return &foldConstants{} },
			Doc: "evaluate nodes whose inputs are all constants\n\nA node reading only constants (initializers no graph input overrides, Constant outputs) is run once on the runtime, so its numbers are the runtime's own, and its outputs become initializers. Constant nodes become initializers. Shape and Size of values whose shape is static are answered from it, so PyTorch's Shape→Gather→Concat→Reshape chains fold. Random ops, ops with subgraphs and DequantizeLinear (quantized weights) are left, and so is a result over --fold-limit bytes unless it replaces constants as large that only it reads."},
		{Name: "cse", New: func() Pass { return &commonSubexpressions{} },
			Doc: "merge nodes and initializers that repeat others\n\nA node of a standard domain with the same op, inputs and attributes as an earlier one is removed and its readers read the earlier one's outputs; a graph output keeps its name. Constant initializers with the same type, shape and data are merged. Random ops and ops with subgraphs are left."},
		{Name: "cast", New: func() Pass { return &redundantCasts{} },
			Doc: "remove casts that change no value\n\nA Cast or CastLike to its input's own type is removed. Cast(Cast(x, B), C) reads x directly when B holds every value of x's type exactly and C is x's type or holds every value of B (float32→float64→float32, int32→int64→int32); a narrowing round trip such as float32→float16→float32 rounds, and stays."},
		{Name: "transpose", New: func() Pass { return &transposes{} },
			Doc: "fuse consecutive Transposes, drop identity ones\n\nA Transpose of a Transpose reads the first one's input with the composed permutation; a Transpose whose permutation keeps every axis in place is removed."},
		{Name: "reshape", New: func() Pass { return &reshapes{} },
			Doc: "collapse Reshape chains, drop no-op reshapes\n\nA Reshape to a constant shape reading a Reshape, Flatten, Squeeze or Unsqueeze reads that node's input instead, unless its shape has 0 entries that copy the intermediate sizes. A Reshape to its input's own shape (known statically, or entry by entry), and a Flatten or Squeeze whose output has its input's static shape, are removed."},
		{Name: "fuse-gemm", New: func() Pass { return &fuseGemm{} },
			Doc: "fuse MatMul and Add of a constant bias into Gemm\n\nA MatMul of a 2-D A by a constant 2-D B, read only by an Add of a constant bias that broadcasts to the product's [M, N] shape ([N], [1, N], [M, N] and the like), becomes one Gemm with the bias as C."},
		{Name: "fold-batchnorm", New: func() Pass { return &foldBatchNorm{} },
			Doc: "fold BatchNormalization into Conv, ConvTranspose, Gemm\n\nAn inference BatchNormalization reading a layer's output that nothing else reads is folded into the layer's constant weights and bias, per output channel: W·γ/√(σ²+ε) and (b−μ)·γ/√(σ²+ε)+β, computed in float64. Weights other nodes share are copied first. The normalized value keeps its name."},
		{Name: "prune-random", Lossy: true, New: newPruneRandom,
			Doc: "zero a random share of the layer weights (a baseline)\n\nA uniformly random round(S·n) of each layer's weights (Conv, ConvTranspose, Gemm, MatMul, LSTM, GRU, RNN; not biases) become 0, so each is zeroed with probability --sparsity S; --seed fixes the choice, and the same seed and model give the same bytes. Pruned weights stay dense: the file keeps its size."},
		{Name: "prune-magnitude", Lossy: true, New: newPruneMagnitude,
			Doc: "zero the weights of least magnitude (L1 unstructured)\n\nThe round(S·n) weights of least |w| of each layer become 0, or with --global the share S of all layers' weights ranked together. --exclude, --keep-first-last and --schedule (JSON {\"node name\": sparsity}) choose the layers; a weight several layers read is pruned once. --reconstruct then refits what each layer keeps, and its bias, to the original layer's outputs on calibration data (least squares per output channel, layer by layer on the pruned model's own activations). Pruned weights stay dense: the file keeps its size."},
		{Name: "prune-nm", Lossy: true, New: newPruneNM,
			Doc: "keep N of every M input-channel weights (2:4 sparsity)\n\nIn every group of M consecutive input channels (for Conv at the same output channel and kernel position; along K for Gemm and MatMul), the N weights of largest magnitude stay and the others become 0: the layout sparse tensor cores run. A last, shorter group keeps at most N. --reconstruct refits the kept weights as prune-magnitude does, keeping the pattern."},
		{Name: "prune-gradient", Lossy: true, Needs: NeedsRuntime | NeedsCalibration, New: newPruneGradient,
			Doc: "zero the weights the loss needs least, from gradients\n\nSaliency from the runtime's gradients on the calibration data of the cross-entropy against the model's own predictions (no labels needed): first-order Taylor |w·∂L/∂w| (--saliency taylor) or the Fisher estimate w²·E[g²] over single samples (--saliency fisher). The lowest are zeroed per layer or, with --global, across layers; the other options are those of prune-magnitude."},
		{Name: "prune-structured", Lossy: true, New: newPruneStructured,
			Doc: "remove whole output channels of layers (structured)\n\nEach Conv (not grouped), Gemm and MatMul by a constant matrix loses the round(S·C) of its C output channels whose weights have the least --norm (l1: mean |w|, l2: root mean square), keeping at least one; with --global the share S of all channels is ranked together, each layer's scores relative to their mean. The graph shrinks: the layer's weight rows and bias, the per-channel constants on the way (BatchNormalization, Add/Mul/PRelu constants, depthwise Conv filters and group), Reshape targets, declared shapes, and the input channels of the Conv, Gemm or MatMul that reads them, through Flatten's spatial blocks. Layers whose outputs an elementwise op joins (residual Add) are pruned together by their summed scores; Concat keeps each input's channels at its offset. Channels that reach a graph output or an op it cannot follow (grouped Conv, Transpose, Softmax...) stay, with a note. --reconstruct refits the layers reading pruned channels on calibration data as prune-magnitude does."},
		{Name: "quantize-weight", Lossy: true, New: newQuantizeWeight,
			Doc: "store layer weights as int8 read through DequantizeLinear\n\nThe constant float32 weights of Conv (per channel along axis 0), ConvTranspose (axis 1), Gemm and MatMul (the output axis, after transB) and Gather (embedding rows) become int8 initializers with a DequantizeLinear: symmetric, zero point 0 (zero weights stay exactly zero), rounded half to even and saturated as QuantizeLinear does. Scales are float32, never zero or denormal. Per tensor from opset 10; --per-channel needs opset 13. A weight other nodes also read stays float. Activations stay float. With calibration data, --max-error and --min-top1 set an accuracy budget as in quantize-static."},
		{Name: "quantize-static", Lossy: true, Needs: NeedsRuntime | NeedsCalibration, New: newQuantizeStatic,
			Doc: "quantize layers to int8 QDQ form from calibration data\n\nEach float activation a layer of --op-types reads gets a QuantizeLinear and DequantizeLinear pair, uint8 with a zero point (int8 symmetric with --symmetric), whose range is measured by running the float model on the calibration batches: minmax, a percentile of the values, or the clip of least KL divergence (TensorRT's entropy calibration). Calibration keeps one range or histogram per activation, never the activations. Weights are quantized as in quantize-weight. An accuracy budget, --max-error (largest output difference from the float model) and --min-top1 (top-1 agreement of [N, C] outputs), both on the calibration data, keeps layers in float: each layer is quantized alone to measure its sensitivity, and the most sensitive are kept in float, one more at a time, until the budget holds; the notes name them and their errors. --int32-bias stores Conv and Gemm biases as int32 (scale: input scale × weight scale), which ONNX Runtime needs to fuse a Gemm. ONNX Runtime runs a Conv or Gemm in integers only when a QuantizeLinear follows it: quantize the inputs of the ops after the layers too (--op-types Conv,Gemm,MatMul,Add,MaxPool,GlobalAveragePool,Flatten,Relu)."},
		{Name: "quantize-int4", Lossy: true, New: newQuantizeInt4,
			Doc: "store MatMul and Gemm weights as int4 blocks\n\nThe constant float32 B of MatMul (blocks along its second-last axis) and Gemm (along K, after transB) becomes INT4, two weights a byte, read through DequantizeLinear-21 with block_size: every --block-size (default 32) consecutive weights along the reduction axis share a float32 scale, symmetric in [-7, 7] with no zero point, rounded half to even. About 6.4 times smaller than float32 with blocks of 32. The model's default opset import is raised to 21 when every operator means the same there (operators from opset 13 on that only gained types or optional features), else the pass refuses. --max-error and --min-top1 set an accuracy budget as in quantize-static. Activations stay float."},
	}
}

// defaultPipeline names, in order, the cleanup that "onnxopt optimize"
// runs when no passes are named.
func defaultPipeline() []string {
	return []string{
		// First, so that weights IR < 4 exports also list as inputs are
		// constants the folds can use; last, to drop what the folds
		// replaced.
		"unused-initializers",
		"identity",
		"fold-constants",
		"cse",
		"cast",
		"transpose",
		"reshape",
		"fuse-gemm",
		"fold-batchnorm",
		"deadcode",
		"unused-initializers",
	}
}

package runtime

// convSgemm computes a float32 Conv with the packed product (sgemm.go),
// W packed beforehand (convScratch.packedWeights), without writing out
// the im2col matrix: X is first copied into a layout where each row of
// that matrix is a run of consecutive elements, which the product then
// packs directly or reads in place (offsetB). Two layouts serve,
// whichever computes fewer micro-tiles (convLayout):
//
//   - convGrid, image by image: X padded and split into stride phases, so
//     that tap (kd, kh, kw) of channel c reads one phase shifted by whole
//     positions. Columns are positions of the phase grid, whose rows are
//     wider than the output's: the extra columns are computed and dropped.
//     Padding-free unit-stride convolutions read X itself.
//   - convLanes, sixteen images at a time: X padded with the images
//     innermost, so that a panel of 16 columns is one output position in
//     16 images and each of its rows 16 consecutive elements, a cache line
//     the micro-kernel reads in place. Nothing is computed in vain but for
//     a last partial group of images, which suits batches of small images,
//     whose grids would be mostly padding; the results go back to the
//     images through 8×8 transposes.
//
// weights is W packed whole for the product, a block of wStride floats
// per group. The caller handles depthwise groups and empty shapes.
func convSgemm(s *convShape, x, bias, y []float32, cs *convScratch, weights sgemmA, wStride int) {
	lanes, sub, gridCols := convLayout(s)
	if lanes {
		convLanes(s, x, bias, y, cs, weights, wStride)
		return
	}
	convGrid(s, sub, gridCols, x, bias, y, cs, weights, wStride)
}

// convLayout chooses convSgemm's layout: convLanes if lanes holds, else
// convGrid on the phase grid of extent sub, which the output positions
// span gridCols columns of.
func convLayout(s *convShape) (lanes bool, sub [maxSpatial]int, gridCols int) {
	g := &s.geometry
	for i := range maxSpatial {
		sub[i] = (g.in[i] + g.padBegin[i] + g.padEnd[i] + g.stride[i] - 1) / g.stride[i]
	}
	gridCols = ((g.out[0]-1)*sub[1]+g.out[1]-1)*sub[2] + g.out[2]
	gridTiles := s.batch * ((gridCols + sgemmNR - 1) / sgemmNR)
	laneTiles := (s.batch + sgemmNR - 1) / sgemmNR * g.outVolume()
	// A group of images in lanes takes sixteen times an image's copy in
	// the grid: lanes suit small images.
	laneVol := s.inChannels / s.group * sgemmNR
	for i := range maxSpatial {
		laneVol *= g.in[i] + g.padBegin[i] + g.padEnd[i]
	}
	return laneTiles < gridTiles && laneVol <= maxIm2colElements, sub, gridCols
}

// convGrid is convSgemm image by image on the stride-phase grid sub, whose
// columns the output positions span gridCols of.
func convGrid(s *convShape, sub [maxSpatial]int, gridCols int, x, bias, y []float32, cs *convScratch, weights sgemmA, wStride int) {
	g := &s.geometry
	cG, mG := s.inChannels/s.group, s.outChannels/s.group
	inVol, outVol, kVol := g.inVolume(), g.outVolume(), g.kernelVolume()
	rows := cG * kVol
	phases := g.stride[0] * g.stride[1] * g.stride[2]
	subVol := sub[0] * sub[1] * sub[2]
	// X serves as it is without padding and strides.
	identity := phases == 1 && g.padBegin == [maxSpatial]int{} && g.padEnd == [maxSpatial]int{}
	// The output is the product itself when the grid's rows are the
	// output's.
	direct := sub[2] == g.out[2] && (sub[1] == g.out[1] || g.out[0] == 1) && gridCols == outVol
	gridLen := 0
	if !identity {
		// A last partial panel reads up to sgemmNR past the grid.
		gridLen = cG*phases*subVol + sgemmNR
	}
	prodLen := 0
	if !direct {
		prodLen = mG * gridCols
	}
	buf := scratchSlice(&cs.f32, gridLen+prodLen)
	grid, prod := buf[:gridLen], buf[gridLen:]
	rowOff := scratchSlice(&cs.rowOff, rows)
	for c := range cG {
		l := c * kVol
		for kd := range g.kernel[0] {
			for kh := range g.kernel[1] {
				for kw := range g.kernel[2] {
					var at, phase [maxSpatial]int
					for i, k := range [maxSpatial]int{kd, kh, kw} {
						at[i] = k * g.dilation[i] / g.stride[i]
						phase[i] = k * g.dilation[i] % g.stride[i]
					}
					p := (phase[0]*g.stride[1]+phase[1])*g.stride[2] + phase[2]
					rowOff[l] = (c*phases+p)*subVol + (at[0]*sub[1]+at[1])*sub[2] + at[2]
					l++
				}
			}
		}
	}
	colOff := scratchSlice(&cs.colOff, (gridCols+sgemmNR-1)/sgemmNR)
	for p := range colOff {
		colOff[p] = p * sgemmNR
	}
	for n := range s.batch {
		for gr := range s.group {
			xg := x[(n*s.inChannels+gr*cG)*inVol:][:cG*inVol]
			src := xg
			if !identity {
				phaseSplit(g, sub, cG, xg, grid)
				src = grid
			}
			b := &cs.sgemm.opOffset
			*b = offsetB{src: src, rowOff: rowOff, colOff: colOff}
			a := &cs.sgemm.opA
			*a = sgemmA{kernel: weights.kernel, packed: weights.packed[gr*wStride:]}
			yg := y[(n*s.outChannels+gr*mG)*outVol:][:mG*outVol]
			if direct {
				sgemmBlocked(&cs.sgemm, mG, outVol, rows, a, b, 0, yg, outVol)
				if bias != nil {
					for m := range mG {
						addConstant(yg[m*outVol:][:outVol], bias[gr*mG+m])
					}
				}
				continue
			}
			sgemmBlocked(&cs.sgemm, mG, gridCols, rows, a, b, 0, prod, gridCols)
			for m := range mG {
				var bv float32
				if bias != nil {
					bv = bias[gr*mG+m]
				}
				ym := yg[m*outVol:][:outVol]
				pm := prod[m*gridCols:][:gridCols]
				for od := range g.out[0] {
					for oh := range g.out[1] {
						dst := ym[(od*g.out[1]+oh)*g.out[2]:][:g.out[2]]
						src := pm[(od*sub[1]+oh)*sub[2]:][:len(dst)]
						if !addConstFloat32(dst, src, bv) {
							for j, v := range src {
								dst[j] = v + bv
							}
						}
					}
				}
			}
		}
	}
}

// addConstant adds v to every element of row.
func addConstant(row []float32, v float32) {
	if addConstFloat32(row, row, v) {
		return
	}
	for i := range row {
		row[i] += v
	}
}

// phaseSplit writes channels×the padded input x into grid, phase by
// phase: phase (a, b, c) of a channel holds the padded input's elements
// (i·stride+a, j·stride+b, k·stride+c) at (i, j, k) of its sub extent,
// zero where that falls in the padding or past the padded input. Phases
// that no tap reads (a 1×1 kernel with stride 2 reads one in four) are
// left as they are.
func phaseSplit(g *geometry, sub [maxSpatial]int, channels int, x, grid []float32) {
	inD, inH, inW := g.in[0], g.in[1], g.in[2]
	sD, sH, sW := g.stride[0], g.stride[1], g.stride[2]
	subVol := sub[0] * sub[1] * sub[2]
	at := 0
	for c := range channels {
		xc := x[c*inD*inH*inW:][:inD*inH*inW]
		for pd := range sD {
			for ph := range sH {
				for pw := range sW {
					plane := grid[at:][:subVol]
					at += subVol
					if !phaseRead(g, 0, pd) || !phaseRead(g, 1, ph) || !phaseRead(g, 2, pw) {
						continue
					}
					offW := pw - g.padBegin[2]
					lo, hi := validRange(sub[2], sW, offW, inW)
					for i := range sub[0] {
						d := i*sD + pd - g.padBegin[0]
						for j := range sub[1] {
							row := plane[(i*sub[1]+j)*sub[2]:][:sub[2]]
							h := j*sH + ph - g.padBegin[1]
							if d < 0 || d >= inD || h < 0 || h >= inH {
								clear(row)
								continue
							}
							src := xc[(d*inH+h)*inW:][:inW]
							clear(row[:lo])
							clear(row[hi:])
							if sW == 1 {
								copy(row[lo:hi], src[lo+offW:])
								continue
							}
							for k := lo; k < hi; k++ {
								row[k] = src[k*sW+offW]
							}
						}
					}
				}
			}
		}
	}
}

// phaseRead reports whether a tap of the kernel reads phase p of spatial
// dimension i.
func phaseRead(g *geometry, i, p int) bool {
	for k := range g.kernel[i] {
		if k*g.dilation[i]%g.stride[i] == p {
			return true
		}
	}
	return false
}

// convLanes is convSgemm on groups of sgemmNR images with the images
// innermost.
func convLanes(s *convShape, x, bias, y []float32, cs *convScratch, weights sgemmA, wStride int) {
	const lanes = sgemmNR
	g := &s.geometry
	cG, mG := s.inChannels/s.group, s.outChannels/s.group
	inVol, outVol, kVol := g.inVolume(), g.outVolume(), g.kernelVolume()
	rows := cG * kVol
	var padded [maxSpatial]int
	for i := range maxSpatial {
		padded[i] = g.in[i] + g.padBegin[i] + g.padEnd[i]
	}
	laneVol := cG * padded[0] * padded[1] * padded[2] * lanes // one group of images
	// Groups of images per product: enough columns to amortize a
	// product's overhead, with the copy of X bounded.
	perProduct := max(1, min((s.batch+lanes-1)/lanes, convLaneColumns/(outVol*lanes), maxIm2colElements/laneVol))
	cols := perProduct * outVol * lanes
	buf := scratchSlice(&cs.f32, perProduct*laneVol+mG*cols)
	xl, prod := buf[:perProduct*laneVol], buf[perProduct*laneVol:]
	rowOff := scratchSlice(&cs.rowOff, rows)
	l := 0
	for c := range cG {
		for kd := range g.kernel[0] {
			for kh := range g.kernel[1] {
				for kw := range g.kernel[2] {
					rowOff[l] = (((c*padded[0]+kd*g.dilation[0])*padded[1]+kh*g.dilation[1])*padded[2] + kw*g.dilation[2]) * lanes
					l++
				}
			}
		}
	}
	colOff := scratchSlice(&cs.colOff, perProduct*outVol)
	p := 0
	for lg := range perProduct {
		for od := range g.out[0] {
			for oh := range g.out[1] {
				for ow := range g.out[2] {
					colOff[p] = lg*laneVol + ((od*g.stride[0]*padded[1]+oh*g.stride[1])*padded[2]+ow*g.stride[2])*lanes
					p++
				}
			}
		}
	}
	imageStride := s.inChannels * inVol
	for n0 := 0; n0 < s.batch; n0 += perProduct * lanes {
		count := min(perProduct*lanes, s.batch-n0)
		used := (count + lanes - 1) / lanes
		n := used * outVol * lanes
		for gr := range s.group {
			// The sixteen images of a group fill each row of the copy
			// while it is in L1.
			clear(xl[:used*laneVol])
			for t0 := 0; t0 < count; t0 += lanes {
				group := xl[t0/lanes*laneVol:][:laneVol]
				images := min(lanes, count-t0)
				for c := range cG {
					for d := range g.in[0] {
						for h := range g.in[1] {
							at := (((c*padded[0]+d+g.padBegin[0])*padded[1]+h+g.padBegin[1])*padded[2] + g.padBegin[2]) * lanes
							dst := group[at:][:g.in[2]*lanes]
							// Lane 0's row; the others follow imageStride apart.
							first := ((n0+t0)*s.inChannels+gr*cG)*inVol + ((c*g.in[0]+d)*g.in[1]+h)*g.in[2]
							lanesTranspose(dst, x[first:], imageStride, images, g.in[2])

						}
					}
				}
			}
			// The micro-kernel reads the rows of the copy in place, as
			// they are cache lines already.
			b := &cs.sgemm.opOffset
			*b = offsetB{src: xl, rowOff: rowOff, colOff: colOff}
			b.readInPlace()
			a := &cs.sgemm.opA
			*a = sgemmA{kernel: weights.kernel, packed: weights.packed[gr*wStride:]}
			sgemmBlocked(&cs.sgemm, mG, n, rows, a, b, 0, prod, n)
			// prod holds, per output channel, per group of images, per
			// position, the lanes; Y wants image, channel, position. A
			// group's block of a channel stays in L1 while its lanes go
			// out.
			for lg := range used {
				images := min(lanes, count-lg*lanes)
				for m := range mG {
					var bv float32
					if bias != nil {
						bv = bias[gr*mG+m]
					}
					block := prod[m*n+lg*outVol*lanes:][:outVol*lanes]
					first := ((n0+lg*lanes)*s.outChannels + gr*mG + m) * outVol
					lanesScatter(y[first:], s.outChannels*outVol, block, images, outVol, bv)
				}
			}
		}
	}
}

// lanesTranspose writes the rows x[i*stride:][:width] of images lanes
// into dst's lanes: dst[w*sgemmNR+i] = x[i*stride+w], eight by eight
// with vector transposes.
func lanesTranspose(dst, x []float32, stride, images, width int) {
	i := 0
	for ; i+8 <= images; i += 8 {
		w := 0
		for ; w+8 <= width; w += 8 {
			transpose8(dst[w*sgemmNR+i:], sgemmNR, x[i*stride+w:], stride, 0)
		}
		for ; w < width; w++ {
			for j := range 8 {
				dst[w*sgemmNR+i+j] = x[(i+j)*stride+w]
			}
		}
	}
	for ; i < images; i++ {
		for w, v := range x[i*stride:][:width] {
			dst[w*sgemmNR+i] = v
		}
	}
}

// lanesScatter is lanesTranspose's converse with bias added: the lanes
// of block (positions × sgemmNR) go to the rows y[i*stride:][:positions]
// of images lanes, plus bias.
func lanesScatter(y []float32, stride int, block []float32, images, positions int, bias float32) {
	i := 0
	for ; i+8 <= images; i += 8 {
		p := 0
		for ; p+8 <= positions; p += 8 {
			transpose8(y[i*stride+p:], stride, block[p*sgemmNR+i:], sgemmNR, bias)
		}
		for ; p < positions; p++ {
			for j := range 8 {
				y[(i+j)*stride+p] = block[p*sgemmNR+i+j] + bias
			}
		}
	}
	for ; i < images; i++ {
		row := y[i*stride:][:positions]
		for p := range row {
			row[p] = block[p*sgemmNR+i] + bias
		}
	}
}

// convLaneColumns is how many columns a product of convLanes takes at
// most: enough that its overhead is small.
const convLaneColumns = 4096

package runtime

var lossOps = []opDef{}

package runtime

var sequenceOps = []opDef{}

package runtime

var poolOps = []opDef{}

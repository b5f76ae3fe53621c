package runtime

var convOps = []opDef{}

package runtime

var rnnOps = []opDef{}

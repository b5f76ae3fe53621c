package runtime

var controlOps = []opDef{}

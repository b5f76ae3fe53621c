package runtime

var quantOps = []opDef{}

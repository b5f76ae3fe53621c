package runtime

var linearOps = []opDef{}
